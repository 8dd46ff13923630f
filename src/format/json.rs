//! The JSON formatter: one object per line.

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::escape::{write_escaped, write_escaped_args, EscapingWriter, Style};
use super::logfmt::DebugAsDisplay;
use super::redact::Redaction;
use super::{
    is_reserved_key, keys, write_f64, write_i64, write_plain, write_timestamp, write_u64, Formatter,
};
use crate::field::Value;
use crate::record::LogRecord;

/// Writes records as JSON, one object per line.
///
/// The record's own keys come first: `timestamp`, `level`, `logger`, `message`; then call-site
/// fields, enriched fields and context fields, all flattened at the root; then, with
/// [`with_location`](Json::with_location), `module`, `file` and `line`.
///
/// Every key appears once per object (see [one key per name](super#one-key-per-name)): a
/// call-site field hides an enriched or context field of the same name, an enriched field hides
/// a context field, and of two fields with the same name from one source the later one is
/// written. A field named like one of the formatter's own keys (`timestamp`, `level`, `logger`,
/// `message`, `ts`, `msg`, and `module`, `file`, `line` when locations are on) is written as
/// `fields.<name>`, and so is a field already named `fields.<such a name>`.
///
/// The values of fields named `password`, `authorization`, `cookie`, `set-cookie` or `token`
/// are written `"[redacted]"`; see [`Redaction`] and [`redaction`](Json::redaction).
///
/// Numbers and booleans keep their type (non-finite floats become strings); an error value is
/// an object `{"message": …, "sources": [ … ]}`. The output always parses: every string is
/// escaped, and the characters that could forge a line (line separators, bidi overrides, C1
/// controls) are written as `\uXXXX` too.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use kakashi::format::{Formatter, Json};
/// use kakashi::{Field, Level, Location, LogContext, LogRecord, Value};
///
/// static HERE: Location = Location::new("app", "src/main.rs", 7);
/// let fields = [Field::new("status", Value::U64(200))];
/// let ctx = LogContext::new().with_request_id("r-1");
/// let record = LogRecord::new(Level::Info, "http", format_args!("done"), &HERE)
///     .with_fields(&fields)
///     .with_context(Some(&ctx))
///     .with_timestamp(std::time::UNIX_EPOCH);
/// let mut out = BytesMut::new();
/// Json::new().format(&record, &mut out);
/// assert_eq!(
///     std::str::from_utf8(&out).unwrap(),
///     "{\"timestamp\":\"1970-01-01T00:00:00.000000Z\",\"level\":\"info\",\"logger\":\"http\",\
///      \"message\":\"done\",\"status\":200,\"request_id\":\"r-1\"}\n"
/// );
///
/// // One key per name: the call site's `request_id` hides the context's, the later `status`
/// // wins, and a `level` field is renamed.
/// let fields = [
///     Field::new("status", Value::U64(500)),
///     Field::new("request_id", Value::Str("r-2")),
///     Field::new("level", Value::Str("forged")),
///     Field::new("status", Value::U64(200)),
/// ];
/// let record = record.with_fields(&fields);
/// let mut out = BytesMut::new();
/// Json::new().format(&record, &mut out);
/// assert!(std::str::from_utf8(&out).unwrap().ends_with(
///     "\"message\":\"done\",\"request_id\":\"r-2\",\"fields.level\":\"forged\",\"status\":200}\n"
/// ));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Json {
    location: bool,
    redaction: Redaction,
}

impl Json {
    /// A JSON formatter without source locations.
    pub fn new() -> Self {
        Json::default()
    }

    /// Also writes `"module"`, `"file"` and `"line"` for each record.
    #[must_use]
    pub fn with_location(mut self, yes: bool) -> Self {
        self.location = yes;
        self
    }

    /// The field names whose values are written `"[redacted]"` (default
    /// [`Redaction::default`]; [`Redaction::none`] turns redaction off).
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::format::{Json, Redaction};
    ///
    /// let formatter = Json::new().redaction(Redaction::names(["password", "session_id"]));
    /// # let _ = formatter;
    /// ```
    #[must_use]
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }
}

fn write_string(out: &mut BytesMut, s: &str) {
    out.put_u8(b'"');
    write_escaped(out, s, Style::Json);
    out.put_u8(b'"');
}

fn write_display_string(out: &mut BytesMut, value: &dyn fmt::Display) {
    out.put_u8(b'"');
    let mut w = EscapingWriter::new(out, Style::Json);
    if fmt::write(&mut w, format_args!("{value}")).is_err() {
        out.put_slice(b"<formatting error>");
    }
    out.put_u8(b'"');
}

fn write_float(out: &mut BytesMut, v: f64) {
    if v.is_finite() {
        write_f64(out, v);
    } else {
        write_display_string(out, &v);
    }
}

fn write_value(out: &mut BytesMut, value: &Value<'_>) {
    match *value {
        Value::Str(s) => write_string(out, s),
        Value::I64(v) => write_i64(out, v),
        Value::U64(v) => write_u64(out, v),
        Value::I128(v) => write_plain(out, v),
        Value::U128(v) => write_plain(out, v),
        Value::F64(v) => write_float(out, v),
        Value::Bool(v) => out.put_slice(if v { b"true" } else { b"false" }),
        Value::Char(c) => write_string(out, c.encode_utf8(&mut [0; 4])),
        Value::Display(d) => write_display_string(out, d),
        Value::Debug(d) => write_display_string(out, &DebugAsDisplay(d)),
        Value::Error(e) => {
            out.put_slice(b"{\"message\":");
            write_display_string(out, e);
            out.put_slice(b",\"sources\":[");
            let mut first = true;
            for cause in crate::field::error_sources(e) {
                if !first {
                    out.put_u8(b',');
                }
                first = false;
                write_display_string(out, &cause);
            }
            out.put_slice(b"]}");
        }
        Value::Null => out.put_slice(b"null"),
    }
}

/// Writes `key":value` (the caller writes the separator and opening quote before it, and the
/// renaming prefix).
fn write_member(out: &mut BytesMut, key: &str, value: &Value<'_>) {
    write_escaped(out, key, Style::Json);
    out.put_slice(b"\":");
    write_value(out, value);
}

/// Writes what comes before the member named `key`: `,"`, or `,"fields.` when the field is
/// renamed.
#[inline(always)]
fn write_separator(out: &mut BytesMut, key: &str, location: bool, may_rename: bool) {
    if may_rename && is_reserved_key(key, location) {
        out.put_slice(b",\"fields.");
    } else {
        out.put_slice(b",\"");
    }
}

impl Formatter for Json {
    fn format(&self, record: &LogRecord<'_>, out: &mut BytesMut) {
        out.put_slice(b"{\"timestamp\":\"");
        write_timestamp(out, record.timestamp());
        out.put_slice(b"\",\"level\":\"");
        out.put_slice(record.level().as_str().as_bytes());
        out.put_slice(b"\",\"logger\":");
        write_string(out, record.logger());
        out.put_slice(b",\"message\":\"");
        match record.message_str() {
            Some(s) => write_escaped(out, s, Style::Json),
            None => write_escaped_args(out, record.message(), Style::Json),
        }
        out.put_u8(b'"');
        let location = self.location;
        keys::for_each_written_field::<false>(record, &self.redaction, |key, value, may_rename| {
            write_separator(out, key, location, may_rename);
            write_member(out, key, value);
        });
        if self.location {
            let loc = record.location();
            out.put_slice(b",\"module\":");
            write_string(out, loc.module());
            out.put_slice(b",\"file\":");
            write_string(out, loc.file());
            out.put_slice(b",\"line\":");
            write_u64(out, u64::from(loc.line()));
        }
        out.put_slice(b"}\n");
    }
}
