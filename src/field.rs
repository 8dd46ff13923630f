//! Typed `key=value` fields attached to a record.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// One structured field of a record: a key and a borrowed, typed [`Value`].
///
/// Fields are usually made by the logging macros (`info!(log, "msg"; key = value)`), which
/// borrow the values for the duration of the call: nothing is copied or allocated.
#[derive(Clone, Copy, Debug)]
pub struct Field<'a> {
    key: &'a str,
    value: Value<'a>,
}

impl<'a> Field<'a> {
    /// A field with `key` and `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::{Field, Value};
    ///
    /// let field = Field::new("user_id", Value::U64(42));
    /// assert_eq!(field.key(), "user_id");
    /// ```
    pub const fn new(key: &'a str, value: Value<'a>) -> Self {
        Field { key, value }
    }

    /// The field's key.
    pub const fn key(&self) -> &'a str {
        self.key
    }

    /// The field's value.
    pub const fn value(&self) -> &Value<'a> {
        &self.value
    }
}

/// A borrowed field value.
///
/// Integers, floats, booleans and strings keep their type so that JSON output writes numbers as
/// numbers; `Display` and `Debug` captures are formatted only when a formatter writes the record;
/// an `Error` value is written with its `source()` chain (bounded: see [`Value::Error`]).
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Value<'a> {
    /// A string.
    Str(&'a str),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A signed 128-bit integer.
    I128(i128),
    /// An unsigned 128-bit integer.
    U128(u128),
    /// A floating-point number (non-finite values are written as strings in JSON).
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// A character.
    Char(char),
    /// A value captured with `%`, written through its `Display` impl.
    Display(&'a dyn fmt::Display),
    /// A value captured with `?`, written through its `Debug` impl.
    Debug(&'a dyn fmt::Debug),
    /// An error captured with `@`, written with its `source()` chain: at most 16 sources, and
    /// the chain stops at a source that is the same error (same pointer) as one already
    /// written, so a cyclic chain cannot loop. A chain cut short ends with `…`.
    Error(&'a (dyn StdError + 'static)),
    /// No value (`None`, or an explicit null).
    Null,
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "Str({s:?})"),
            Value::I64(v) => write!(f, "I64({v})"),
            Value::U64(v) => write!(f, "U64({v})"),
            Value::I128(v) => write!(f, "I128({v})"),
            Value::U128(v) => write!(f, "U128({v})"),
            Value::F64(v) => write!(f, "F64({v})"),
            Value::Bool(v) => write!(f, "Bool({v})"),
            Value::Char(v) => write!(f, "Char({v:?})"),
            Value::Display(v) => write!(f, "Display({v})"),
            Value::Debug(v) => write!(f, "Debug({v:?})"),
            Value::Error(v) => write!(f, "Error({v})"),
            Value::Null => f.write_str("Null"),
        }
    }
}

impl<'a> Value<'a> {
    /// Captures `value` through its `Display` impl (the macros' `%value`).
    pub fn display(value: &'a dyn fmt::Display) -> Self {
        Value::Display(value)
    }

    /// Captures `value` through its `Debug` impl (the macros' `?value`).
    pub fn debug(value: &'a dyn fmt::Debug) -> Self {
        Value::Debug(value)
    }

    /// Captures an error and its `source()` chain (the macros' `@error`).
    pub fn error(value: &'a (dyn StdError + 'static)) -> Self {
        Value::Error(value)
    }

    /// An owned copy of this value (captures are formatted to strings).
    pub fn to_owned_value(&self) -> OwnedValue {
        match *self {
            Value::Str(s) => OwnedValue::Str(Arc::from(s)),
            Value::I64(v) => OwnedValue::I64(v),
            Value::U64(v) => OwnedValue::U64(v),
            Value::I128(v) => OwnedValue::I128(v),
            Value::U128(v) => OwnedValue::U128(v),
            Value::F64(v) => OwnedValue::F64(v),
            Value::Bool(v) => OwnedValue::Bool(v),
            Value::Char(v) => OwnedValue::Str(Arc::from(v.to_string())),
            Value::Display(v) => OwnedValue::Str(Arc::from(v.to_string())),
            Value::Debug(v) => OwnedValue::Str(Arc::from(format!("{v:?}"))),
            Value::Error(e) => OwnedValue::Str(Arc::from(error_chain_string(e))),
            Value::Null => OwnedValue::Null,
        }
    }
}

/// An error and its sources, joined by `": "`, as [`error_sources`] bounds them.
pub(crate) fn error_chain_string(error: &(dyn StdError + 'static)) -> String {
    use std::fmt::Write as _;

    let mut out = error.to_string();
    for source in error_sources(error) {
        // Writing to a `String` only fails if a `Display` impl fails: keep what it wrote.
        let _ = write!(out, ": {source}");
    }
    out
}

/// The most sources written after an error (a [`Value::Error`]); a longer chain is cut and
/// ends with [`ErrorSource::Cut`].
pub(crate) const MAX_ERROR_SOURCES: usize = 16;

/// One link after the error itself in its written `source()` chain; see [`error_sources`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum ErrorSource<'a> {
    /// The next source.
    Source(&'a (dyn StdError + 'static)),
    /// The chain goes on but is cut here: after [`MAX_ERROR_SOURCES`] sources, or at a source
    /// already written (a cycle). Displayed as `…`; always the last item.
    Cut,
}

impl fmt::Display for ErrorSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorSource::Source(e) => fmt::Display::fmt(e, f),
            ErrorSource::Cut => f.write_str("…"),
        }
    }
}

/// The sources of `error` to write after it, bounded: at most [`MAX_ERROR_SOURCES`] of them,
/// stopping at a source that is pointer-equal to `error` or to a source already yielded; when
/// the chain goes on, the last item is [`ErrorSource::Cut`]. Does not allocate.
///
/// Every formatter walks an error's chain with this (instead of `while let Some(cause) =
/// source { …; source = cause.source() }`, which never ends on a cyclic chain):
///
/// ```text
/// write!(f, "{error}")?;
/// for source in crate::field::error_sources(error) {
///     write!(f, ": {source}")?;
/// }
/// ```
///
/// "Pointer-equal" compares the address and the vtable (`std::ptr::eq` on `dyn Error`): a
/// newtype error whose source is its only field shares that field's address, but they are
/// different errors and both are written. (The same error reached through two vtables is
/// caught one round of the cycle later.)
pub(crate) fn error_sources<'a>(error: &'a (dyn StdError + 'static)) -> ErrorSources<'a> {
    let mut seen = [None; MAX_ERROR_SOURCES + 1];
    seen[0] = Some(error);
    ErrorSources {
        seen,
        len: 1,
        next: error.source(),
        done: false,
    }
}

/// The iterator of [`error_sources`].
#[derive(Debug)]
pub(crate) struct ErrorSources<'a> {
    /// The error and the sources yielded so far, `len` of them.
    seen: [Option<&'a (dyn StdError + 'static)>; MAX_ERROR_SOURCES + 1],
    len: usize,
    next: Option<&'a (dyn StdError + 'static)>,
    done: bool,
}

impl<'a> Iterator for ErrorSources<'a> {
    type Item = ErrorSource<'a>;

    fn next(&mut self) -> Option<ErrorSource<'a>> {
        if self.done {
            return None;
        }
        let Some(source) = self.next.take() else {
            self.done = true;
            return None;
        };
        let seen = &self.seen[..self.len];
        let repeated = seen.iter().flatten().any(|e| std::ptr::eq(*e, source));
        if repeated || self.len > MAX_ERROR_SOURCES {
            self.done = true;
            return Some(ErrorSource::Cut);
        }
        self.seen[self.len] = Some(source);
        self.len += 1;
        self.next = source.source();
        Some(ErrorSource::Source(source))
    }
}

impl std::iter::FusedIterator for ErrorSources<'_> {}

/// An owned field value, for records and contexts that must be kept.
///
/// Strings are reference-counted, so cloning a context that carries them is cheap.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum OwnedValue {
    /// A string.
    Str(Arc<str>),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A signed 128-bit integer.
    I128(i128),
    /// An unsigned 128-bit integer.
    U128(u128),
    /// A floating-point number.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// No value.
    Null,
}

impl OwnedValue {
    /// Borrows this value as a [`Value`].
    pub fn as_value(&self) -> Value<'_> {
        match self {
            OwnedValue::Str(s) => Value::Str(s),
            OwnedValue::I64(v) => Value::I64(*v),
            OwnedValue::U64(v) => Value::U64(*v),
            OwnedValue::I128(v) => Value::I128(*v),
            OwnedValue::U128(v) => Value::U128(*v),
            OwnedValue::F64(v) => Value::F64(*v),
            OwnedValue::Bool(v) => Value::Bool(*v),
            OwnedValue::Null => Value::Null,
        }
    }

    /// The string inside, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            OwnedValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

macro_rules! owned_from {
    ($($t:ty => $variant:ident as $as:ty),* $(,)?) => {
        $(impl From<$t> for OwnedValue {
            fn from(v: $t) -> Self {
                OwnedValue::$variant(v as $as)
            }
        })*
    };
}

owned_from!(
    i8 => I64 as i64, i16 => I64 as i64, i32 => I64 as i64, i64 => I64 as i64, isize => I64 as i64,
    u8 => U64 as u64, u16 => U64 as u64, u32 => U64 as u64, u64 => U64 as u64, usize => U64 as u64,
    f32 => F64 as f64, f64 => F64 as f64, i128 => I128 as i128, u128 => U128 as u128,
);

impl From<bool> for OwnedValue {
    fn from(v: bool) -> Self {
        OwnedValue::Bool(v)
    }
}

impl From<&str> for OwnedValue {
    fn from(v: &str) -> Self {
        OwnedValue::Str(Arc::from(v))
    }
}

impl From<String> for OwnedValue {
    fn from(v: String) -> Self {
        OwnedValue::Str(Arc::from(v))
    }
}

impl From<Arc<str>> for OwnedValue {
    fn from(v: Arc<str>) -> Self {
        OwnedValue::Str(v)
    }
}

impl<T: Into<OwnedValue>> From<Option<T>> for OwnedValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(OwnedValue::Null, Into::into)
    }
}

/// Conversion of a borrowed value into a [`Value`]; what the macros use for `key = value`.
///
/// Implemented for strings, integers, floats, `bool`, `char`, `Option<T>` (where `None` is
/// null) and references to these. For other types, capture them with `%` (`Display`) or `?`
/// (`Debug`) in the macros.
pub trait ToValue {
    /// Borrows `self` as a [`Value`].
    fn to_value(&self) -> Value<'_>;
}

macro_rules! to_value_int {
    ($($t:ty => $variant:ident as $as:ty),* $(,)?) => {
        $(impl ToValue for $t {
            #[inline]
            fn to_value(&self) -> Value<'_> {
                Value::$variant(*self as $as)
            }
        })*
    };
}

to_value_int!(
    i8 => I64 as i64, i16 => I64 as i64, i32 => I64 as i64, i64 => I64 as i64, isize => I64 as i64,
    u8 => U64 as u64, u16 => U64 as u64, u32 => U64 as u64, u64 => U64 as u64, usize => U64 as u64,
    f32 => F64 as f64, f64 => F64 as f64, i128 => I128 as i128, u128 => U128 as u128,
);

impl ToValue for bool {
    #[inline]
    fn to_value(&self) -> Value<'_> {
        Value::Bool(*self)
    }
}

impl ToValue for char {
    #[inline]
    fn to_value(&self) -> Value<'_> {
        Value::Char(*self)
    }
}

impl ToValue for str {
    #[inline]
    fn to_value(&self) -> Value<'_> {
        Value::Str(self)
    }
}

impl ToValue for String {
    #[inline]
    fn to_value(&self) -> Value<'_> {
        Value::Str(self)
    }
}

impl ToValue for Arc<str> {
    #[inline]
    fn to_value(&self) -> Value<'_> {
        Value::Str(self)
    }
}

impl ToValue for std::borrow::Cow<'_, str> {
    #[inline]
    fn to_value(&self) -> Value<'_> {
        Value::Str(self)
    }
}

impl ToValue for OwnedValue {
    #[inline]
    fn to_value(&self) -> Value<'_> {
        self.as_value()
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    #[inline]
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    #[inline]
    fn to_value(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}
