//! [`Redaction`]: the field names whose values every formatter writes as `[redacted]`.
//!
//! The check runs for every field a formatter writes, so it is built for the common answer,
//! "not redacted": a table of 32 words indexed by the key's length, each word a set of first
//! bytes and a set of last bytes (bytes cut to their low five bits, which ignores ASCII case),
//! rejects almost every key with one load and a test (no name has its length) or two shifts;
//! only a key that passes is compared with the names, without allocating.

use std::fmt;
use std::sync::Arc;

use crate::field::Value;

/// Field names whose values are written as `[redacted]`, by every formatter, wherever the field
/// comes from: the call site, an [`Enricher`](crate::Enricher), a
/// [`LogContext`](crate::LogContext) (its custom fields included), a `tracing` event or span,
/// or a `log` record's key-values.
///
/// Each of kakashi's formatters holds one ([`Logfmt::redaction`](super::Logfmt::redaction),
/// [`Json::redaction`](super::Json::redaction), [`Console::redaction`](super::Console::redaction)),
/// and starts with [`Redaction::default`]:
///
/// | redacted by default |
/// |---|
/// | `password`, `authorization`, `cookie`, `set-cookie`, `token` |
///
/// **Matching**: a key matches a name when they are equal ignoring ASCII case, with `-` and `_`
/// counted as the same character: `Authorization`, `SET_COOKIE` and `set-cookie` all match
/// `set-cookie`'s and `authorization`'s entries. The whole key must match: `user.password`,
/// `password_hint` and `x-auth-token` do not match `password` or `token` (add them if your
/// fields are named so). The key is kept and only the value is replaced, so a reader sees that
/// the field was there. Messages are not searched, and a value's own contents (a `Debug`
/// struct with a `password` member) are not either: log secrets as fields of their own.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use kakashi::format::{Formatter, Logfmt, Redaction};
/// use kakashi::{Field, Level, Location, LogRecord, Value};
///
/// static HERE: Location = Location::new("app", "src/main.rs", 1);
/// let fields = [
///     Field::new("user", Value::Str("ann")),
///     Field::new("Password", Value::Str("hunter2")),
///     Field::new("api_key", Value::Str("k-123")),
/// ];
/// let record = LogRecord::new(Level::Info, "app", format_args!("login"), &HERE)
///     .with_fields(&fields)
///     .with_timestamp(std::time::UNIX_EPOCH);
///
/// let mut out = BytesMut::new();
/// Logfmt::new().format(&record, &mut out);
/// assert!(out.ends_with(b"user=ann Password=[redacted] api_key=k-123\n"));
///
/// // Add a name to the defaults.
/// let formatter = Logfmt::new().redaction(Redaction::default().with_name("api-key"));
/// let mut out = BytesMut::new();
/// formatter.format(&record, &mut out);
/// assert!(out.ends_with(b"user=ann Password=[redacted] api_key=[redacted]\n"));
///
/// assert!(Redaction::default().is_redacted("SET_COOKIE"));
/// assert!(!Redaction::none().is_redacted("password"));
/// ```
#[derive(Clone)]
pub struct Redaction {
    /// Entry `len & 31` has bit `first & 31` and bit `32 + (last & 31)` set when a name has
    /// that length, first and last byte (both `-` and `_` where a name has either): a key
    /// missing either bit matches no name.
    filter: [u64; 32],
    /// The names, folded (see [`fold`]).
    names: Arc<[Box<[u8]>]>,
}

/// What a redacted value is written as.
pub(crate) const REDACTED: &str = "[redacted]";

/// `value`, or `[redacted]` (as a string) when `redaction` says so for `key`: what every
/// formatter writes for a field.
#[inline(always)]
pub(crate) fn redacted<'v, 'a>(
    redaction: &Redaction,
    key: &str,
    value: &'v Value<'a>,
) -> &'v Value<'a> {
    if redaction.is_redacted(key) {
        &Value::Str(REDACTED)
    } else {
        value
    }
}

/// The names redacted by default.
const DEFAULT_NAMES: [&str; 5] = ["password", "authorization", "cookie", "set-cookie", "token"];

/// A byte as names are compared: ASCII lowercase, and `-` as `_`.
#[inline(always)]
fn fold(b: u8) -> u8 {
    match b {
        b'-' => b'_',
        _ => b.to_ascii_lowercase(),
    }
}

impl Default for Redaction {
    /// Redacts `password`, `authorization`, `cookie`, `set-cookie` and `token`.
    fn default() -> Self {
        Redaction::names(DEFAULT_NAMES)
    }
}

impl Redaction {
    /// Redacts nothing.
    pub fn none() -> Self {
        Redaction {
            filter: [0; 32],
            names: Arc::from(Vec::new()),
        }
    }

    /// Redacts exactly `names` (the defaults are not included; see
    /// [`with_name`](Self::with_name) to add to them). Empty names are ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::format::Redaction;
    ///
    /// let only = Redaction::names(["ssn", "card_number"]);
    /// assert!(only.is_redacted("SSN"));
    /// assert!(only.is_redacted("card-number"));
    /// assert!(!only.is_redacted("password"));
    /// ```
    pub fn names<I>(names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut folded: Vec<Box<[u8]>> = Vec::new();
        for name in names {
            let name: Box<[u8]> = name.as_ref().bytes().map(fold).collect();
            if !name.is_empty() && !folded.contains(&name) {
                folded.push(name);
            }
        }
        let mut filter = [0u64; 32];
        for name in &folded {
            // `fold` maps `-` to `_`: a key may have either where the name has `_`.
            let variants = |b: u8| if b == b'_' { [b'_', b'-'] } else { [b; 2] };
            let entry = &mut filter[name.len() & 31];
            for b in variants(name[0]) {
                *entry |= 1 << (b & 31);
            }
            for b in variants(name[name.len() - 1]) {
                *entry |= 1 << (32 + (b & 31));
            }
        }
        Redaction {
            filter,
            names: Arc::from(folded),
        }
    }

    /// These names and `name`.
    #[must_use]
    pub fn with_name(self, name: impl AsRef<str>) -> Self {
        let mut all: Vec<String> = self.folded_names().collect();
        all.push(name.as_ref().to_owned());
        Redaction::names(all)
    }

    /// Whether a field named `key` is written as `[redacted]`.
    #[inline(always)]
    pub fn is_redacted(&self, key: &str) -> bool {
        let bytes = key.as_bytes();
        let entry = self.filter[bytes.len() & 31];
        // Most keys stop here: no name has their length (modulo 32).
        entry != 0 && self.ends_match(entry, bytes)
    }

    /// The rest of the filter, then the comparison. `& 31` ignores ASCII case.
    #[inline(always)]
    fn ends_match(&self, entry: u64, bytes: &[u8]) -> bool {
        match (bytes.first(), bytes.last()) {
            (Some(&first), Some(&last)) => {
                (entry >> (first & 31)) & (entry >> (32 + (last & 31))) & 1 != 0
                    && self.compare(bytes)
            }
            _ => false,
        }
    }

    /// The full comparison, for the few keys that pass the filter.
    #[cold]
    #[inline(never)]
    fn compare(&self, key: &[u8]) -> bool {
        self.names.iter().any(|name| {
            name.len() == key.len() && name.iter().zip(key).all(|(&n, &k)| n == fold(k))
        })
    }

    /// The names, as compared (lowercase, `_` for `-`).
    fn folded_names(&self) -> impl Iterator<Item = String> + '_ {
        self.names
            .iter()
            .map(|name| String::from_utf8_lossy(name).into_owned())
    }
}

impl fmt::Debug for Redaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.folded_names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_ignores_ascii_case_and_dash_versus_underscore() {
        let r = Redaction::default();
        for key in [
            "password",
            "PASSWORD",
            "Password",
            "authorization",
            "Authorization",
            "cookie",
            "set-cookie",
            "Set-Cookie",
            "set_cookie",
            "token",
            "TOKEN",
        ] {
            assert!(r.is_redacted(key), "{key}");
        }
        for key in [
            "",
            "passwor",
            "passwords",
            "user.password",
            "password_hint",
            "x-auth-token",
            "tokens",
            "status",
            "user_id",
            "path",
            "latency_ms",
            "pässword",
            "p\u{0}ssword",
        ] {
            assert!(!r.is_redacted(key), "{key}");
        }
        assert!(!Redaction::none().is_redacted("password"));
        let custom = Redaction::names(["", "API-Key"]).with_name("ssn");
        assert!(custom.is_redacted("api_key"));
        assert!(custom.is_redacted("SSN"));
        assert!(!custom.is_redacted("password"));
        assert_eq!(format!("{custom:?}"), r#"{"api_key", "ssn"}"#);
    }

    #[test]
    fn the_filter_passes_every_name() {
        // Long names and names whose length or first byte alias in the filter.
        let names = [
            "a",
            "A_very_long_field_name_over_thirty_two_bytes",
            "b_very_long_field_name_over_thirty_two_bytes",
            "@x",
            "`x",
        ];
        let r = Redaction::names(names);
        for name in names {
            assert!(r.is_redacted(name), "{name}");
            assert!(r.is_redacted(&name.to_ascii_uppercase()), "{name}");
        }
        assert!(!r.is_redacted("c_very_long_field_name_over_thirty_two_bytes"));
        assert!(!r.is_redacted("b"));
        // Same length and first byte as a name, another last byte.
        assert!(!Redaction::default().is_redacted("trace"));
        let dash = Redaction::names(["-x", "_y", "a-", "b_"]);
        for key in ["-x", "_x", "-X", "_Y", "-y", "a_", "A-", "b-", "B_"] {
            assert!(dash.is_redacted(key), "{key}");
        }
    }
}
