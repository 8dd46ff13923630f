//! The logfmt formatter: `key=value` pairs on one line.

use bytes::{BufMut, BytesMut};

use super::escape::{write_logfmt_display, write_logfmt_key, write_logfmt_str};
use super::redact::Redaction;
use super::{
    is_reserved_key, keys, write_f64, write_i64, write_plain, write_timestamp, write_u64, Formatter,
};
use crate::field::Value;
use crate::record::LogRecord;

/// Writes records as logfmt: `ts=… level=info logger=app msg="…" key=value …`.
///
/// Keys are written as given when they only hold `[A-Za-z0-9_.:/-]`; any other character becomes
/// `_`. Values are bare when they hold no space, `=`, `"`, `\` or control character, else they
/// are double-quoted with `\"`, `\\`, `\n`, `\r`, `\t` and `\uXXXX` escapes (the same escapes as
/// JSON strings). Call-site fields come first, then enriched fields, then context fields, then
/// with [`with_location`](Logfmt::with_location) `module`, `file` and `line`.
///
/// Every key appears once per line (see [one key per name](super#one-key-per-name)), keys
/// compared as written (`a b` and `a_b` are the same key, `a_b`): a call-site field hides an
/// enriched or context field of the same name, an enriched field hides a context field, and of
/// two fields with the same name from one source the later one is written. A field named like
/// one of the formatter's own keys (`ts`, `level`, `logger`, `msg`, `timestamp`, `message`, and
/// `module`, `file`, `line` when locations are on) is written as `fields.<name>`, and so is a
/// field already named `fields.<such a name>`.
///
/// The values of fields named `password`, `authorization`, `cookie`, `set-cookie` or `token`
/// are written `[redacted]`; see [`Redaction`] and [`redaction`](Logfmt::redaction).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use kakashi::format::{Formatter, Logfmt};
/// use kakashi::{Field, Level, Location, LogRecord, Value};
///
/// static HERE: Location = Location::new("app", "src/main.rs", 7);
/// let fields = [Field::new("user", Value::Str("ann lee")), Field::new("n", Value::I64(-3))];
/// let record = LogRecord::new(Level::Warn, "app", format_args!("hi"), &HERE)
///     .with_fields(&fields)
///     .with_timestamp(std::time::UNIX_EPOCH);
/// let mut out = BytesMut::new();
/// Logfmt::new().format(&record, &mut out);
/// assert_eq!(
///     &out[..],
///     &b"ts=1970-01-01T00:00:00.000000Z level=warn logger=app msg=hi user=\"ann lee\" n=-3\n"[..]
/// );
/// ```
#[derive(Clone, Debug, Default)]
pub struct Logfmt {
    location: bool,
    redaction: Redaction,
}

impl Logfmt {
    /// A logfmt formatter without source locations.
    pub fn new() -> Self {
        Logfmt::default()
    }

    /// Also writes `module=… file=… line=…` for each record.
    #[must_use]
    pub fn with_location(mut self, yes: bool) -> Self {
        self.location = yes;
        self
    }

    /// The field names whose values are written `[redacted]` (default
    /// [`Redaction::default`]; [`Redaction::none`] turns redaction off).
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::format::{Logfmt, Redaction};
    ///
    /// let formatter = Logfmt::new().redaction(Redaction::default().with_name("api_key"));
    /// # let _ = formatter;
    /// ```
    #[must_use]
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }
}

pub(crate) fn write_logfmt_value(out: &mut BytesMut, value: &Value<'_>) {
    match *value {
        Value::Str(s) => write_logfmt_str(out, s),
        Value::I64(v) => write_i64(out, v),
        Value::U64(v) => write_u64(out, v),
        Value::I128(v) => write_plain(out, v),
        Value::U128(v) => write_plain(out, v),
        Value::F64(v) => write_f64(out, v),
        Value::Bool(v) => out.put_slice(if v { b"true" } else { b"false" }),
        Value::Char(c) => write_logfmt_str(out, c.encode_utf8(&mut [0; 4])),
        Value::Display(d) => write_logfmt_display(out, d),
        Value::Debug(d) => write_logfmt_display(out, &DebugAsDisplay(d)),
        Value::Error(e) => write_logfmt_display(out, &ErrorChain(e)),
        Value::Null => out.put_slice(b"null"),
    }
}

pub(crate) struct DebugAsDisplay<'a>(pub(crate) &'a dyn std::fmt::Debug);

impl std::fmt::Display for DebugAsDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Displays an error followed by each of its sources, joined by `": "`.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        for cause in crate::field::error_sources(self.0) {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

/// Writes `key=value` (the caller writes the separator before it, and the renaming prefix).
#[inline(never)]
fn write_pair(out: &mut BytesMut, key: &str, value: &Value<'_>) {
    write_logfmt_key(out, key);
    out.put_u8(b'=');
    write_logfmt_value(out, value);
}

/// Writes the separator before the field named `key`: ` `, or ` fields.` when the field is
/// renamed.
#[inline(always)]
fn write_separator(out: &mut BytesMut, key: &str, location: bool, may_rename: bool) {
    if may_rename && is_reserved_key(key, location) {
        out.put_slice(b" fields.");
    } else {
        out.put_u8(b' ');
    }
}

impl Formatter for Logfmt {
    fn format(&self, record: &LogRecord<'_>, out: &mut BytesMut) {
        out.put_slice(b"ts=");
        write_timestamp(out, record.timestamp());
        out.put_slice(b" level=");
        out.put_slice(record.level().as_str().as_bytes());
        out.put_slice(b" logger=");
        write_logfmt_str(out, record.logger());
        out.put_slice(b" msg=");
        match record.message_str() {
            Some(s) => write_logfmt_str(out, s),
            None => {
                // Formatting once into a provisional quote keeps this single-pass.
                write_logfmt_display(out, &record.message());
            }
        }
        let location = self.location;
        keys::for_each_written_field::<true>(record, &self.redaction, |key, value, may_rename| {
            write_separator(out, key, location, may_rename);
            write_pair(out, key, value);
        });
        if self.location {
            let loc = record.location();
            out.put_slice(b" module=");
            write_logfmt_str(out, loc.module());
            out.put_slice(b" file=");
            write_logfmt_str(out, loc.file());
            out.put_slice(b" line=");
            write_u64(out, u64::from(loc.line()));
        }
        out.put_u8(b'\n');
    }
}
