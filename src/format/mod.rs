//! Formatters: how a record becomes one line of bytes.
//!
//! A [`Formatter`] writes one record as exactly one line (ending in `\n`) into a `BytesMut`.
//! kakashi ships three:
//!
//! | formatter | output |
//! |---|---|
//! | [`Logfmt`] (the default) | `ts=2026-11-24T04:12:22.123456Z level=info logger=app msg="user logged in" user_id=42` |
//! | [`Json`] | `{"timestamp":"2026-11-24T04:12:22.123456Z","level":"info","logger":"app","message":"user logged in","user_id":42}` |
//! | [`Console`] | `2026-11-24T04:12:22.123456Z  INFO app: user logged in user_id=42` (colored on a terminal) |
//!
//! Each of them escapes what could forge a line: line feeds, carriage returns, other control
//! characters, ANSI escape sequences, Unicode line separators and bidi overrides in messages,
//! keys and values never reach the output raw. Timestamps are RFC 3339 in UTC with
//! microseconds; the date and time part is cached per second and per thread.
//!
//! # Redaction
//!
//! Every formatter writes the value of a field named `password`, `authorization`, `cookie`,
//! `set-cookie` or `token` as `[redacted]` (names compared ignoring ASCII case, `-` and `_`
//! the same), whether the field comes from the call site, an enricher, the context or a
//! `tracing`/`log` bridge. Change the names per formatter with a [`Redaction`]
//! (`Json::new().redaction(Redaction::default().with_name("api_key"))`); the check costs a
//! table lookup per field and allocates nothing.
//!
//! # One key per name
//!
//! Every formatter writes each key at most once per line, so that a JSON line is an object
//! without duplicate members and a logfmt line has one value per key. A record's fields come
//! from three sources, written in this order: the call site's fields, the enrichers' fields
//! ([`Enricher`](crate::Enricher)), and the context's fields ([`LogContext`](crate::LogContext):
//! its standard fields, then its custom ones). When two of them have the same key:
//!
//! - **the call site wins**: a call-site field hides an enriched or context field with its key,
//!   and an enriched field hides a context field with its key;
//! - **within one source, the last wins**, written at its own place (the earlier ones are
//!   left out): `info!(log, "x"; a = 1, b = 2, a = 3)` writes `b=2 a=3`. In a context the
//!   custom fields come after the standard ones, so `with_field("request_id", …)` wins over
//!   `with_request_id(…)`;
//! - **"the same key" means written the same**: the same string in JSON; in logfmt and on the
//!   console, the same key after sanitizing (`a b` and `a_b` are both written `a_b`).
//!
//! The formatters' own keys are never repeated either. JSON and logfmt write a field named
//! like one of them under the name `fields.<name>`, nothing lost: `ts`, `timestamp`, `level`,
//! `logger`, `msg`, `message` always, and `module`, `file`, `line` when the formatter writes
//! locations (`with_location(true)`; without it, a `file` field keeps its name). A field whose
//! name is `fields.` followed by such a name is renamed too (`fields.level` is written
//! `fields.fields.level`), so a renamed field cannot collide with another field. An error
//! value's `message` and `sources` are members of its own JSON object and collide with
//! nothing. The console writes the timestamp, level, logger, message and location in fixed
//! places rather than as keys, so it renames nothing.
//!
//! The check costs little: nothing is allocated, and a record with no enriched fields, no
//! context and up to eight call-site fields whose keys differ in their first or last byte is
//! written after a few integer comparisons.

mod console;
pub(crate) mod escape;
mod json;
pub(crate) mod keys;
pub(crate) mod logfmt;
pub(crate) mod redact;

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};

pub use console::{ColorMode, Console};
pub use json::Json;
pub use logfmt::Logfmt;
pub use redact::Redaction;

use crate::record::LogRecord;

/// Writes one record as one line.
///
/// Implementations must append exactly one line, ending in `\n` and with no other `\n` or `\r`,
/// to `out`, and must not panic. The helpers in kakashi's own formatters are private; a custom
/// formatter that writes user text should escape it the same way (see the module docs).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use kakashi::format::{Formatter, Logfmt};
/// use kakashi::{Level, Location, LogRecord};
///
/// static HERE: Location = Location::new("app", "src/main.rs", 1);
/// let record = LogRecord::new(Level::Info, "app", format_args!("hello\nworld"), &HERE);
/// let mut out = BytesMut::new();
/// Logfmt::new().format(&record, &mut out);
/// let line = std::str::from_utf8(&out).unwrap();
/// assert!(line.ends_with("msg=\"hello\\nworld\"\n"));
/// assert_eq!(line.matches('\n').count(), 1);
/// ```
pub trait Formatter: Send + Sync + fmt::Debug + 'static {
    /// Appends `record` as one line to `out`.
    fn format(&self, record: &LogRecord<'_>, out: &mut BytesMut);

    /// A variant of this formatter for a destination that is (or is not) a terminal, if it
    /// differs; the console formatter uses this to turn colors on or off.
    fn for_destination(&self, is_terminal: bool) -> Option<Arc<dyn Formatter>> {
        let _ = is_terminal;
        None
    }
}

/// Writes `t` as `2026-11-24T04:12:22.123456Z`. The part up to the seconds is cached per thread.
pub(crate) fn write_timestamp(out: &mut BytesMut, t: SystemTime) {
    thread_local! {
        static CACHE: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let micros = since.subsec_micros();
    let prefix = CACHE
        .try_with(|cache| {
            let (cached_secs, prefix) = cache.get();
            if cached_secs == secs {
                prefix
            } else {
                let prefix = date_time_prefix(secs);
                cache.set((secs, prefix));
                prefix
            }
        })
        .unwrap_or_else(|_| date_time_prefix(secs));
    // One copy of the whole timestamp; the microseconds two digits at a time.
    let mut text = [0u8; 27];
    text[..19].copy_from_slice(&prefix);
    text[19] = b'.';
    let (high, rest) = (micros / 10_000, micros % 10_000);
    for (slot, pair) in text[20..26]
        .chunks_exact_mut(2)
        .zip([high, rest / 100, rest % 100])
    {
        let pair = pair as usize * 2;
        slot.copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    text[26] = b'Z';
    out.put_slice(&text);
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the Unix epoch (UTC, proleptic Gregorian).
fn date_time_prefix(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let (h, mi, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
    let mut b = [0u8; 19];
    let year = year.clamp(0, 9999) as u64;
    put_digits(&mut b[0..4], year);
    b[4] = b'-';
    put_digits(&mut b[5..7], month);
    b[7] = b'-';
    put_digits(&mut b[8..10], day);
    b[10] = b'T';
    put_digits(&mut b[11..13], h);
    b[13] = b':';
    put_digits(&mut b[14..16], mi);
    b[16] = b':';
    put_digits(&mut b[17..19], s);
    b
}

fn put_digits(slot: &mut [u8], mut value: u64) {
    for d in slot.iter_mut().rev() {
        *d = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
pub(crate) fn civil_from_days(z: i64) -> (i64, u64, u64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Two decimal digits for each value below 100.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes an unsigned integer in decimal, two digits at a time.
#[inline]
pub(crate) fn write_u64(out: &mut BytesMut, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    out.put_slice(&buf[i..]);
}

/// Writes a float so that it reads back as the same `f64`, without an exponent (`3.25`,
/// `2.0`); non-finite values as `NaN`, `inf`, `-inf`. Integral values keep a `.0` so that they
/// read back as floats.
pub(crate) fn write_f64(out: &mut BytesMut, v: f64) {
    if !write_short_decimal(out, v) {
        let start = out.len();
        write_plain(out, v);
        if v.is_finite() && !out[start..].contains(&b'.') {
            out.put_slice(b".0");
        }
    }
}

/// The fast path of [`write_f64`] for values with at most six decimals and at most 15
/// digits (latencies, ratios, prices): the fewest decimals `k` for which `n / 10^k`, with
/// `n` the nearest integer to `v * 10^k`, is `v` again. Division is correctly rounded, so that
/// test is exactly "the decimal text `n·10^-k` parses back to `v`"; the text is the one
/// `Display` writes (the tests compare them). Returns false (writing nothing) for other
/// values, which take the general path.
fn write_short_decimal(out: &mut BytesMut, v: f64) -> bool {
    const POWERS: [f64; 7] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6];
    const INT_POWERS: [u64; 7] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
    let magnitude = v.abs();
    if !v.is_finite() || magnitude >= 1e15 {
        return false;
    }
    for (k, power) in POWERS.iter().enumerate() {
        let n = (magnitude * power).round();
        // Below 2^52, decimals with `k` digits lie further apart than the doubles near `v`,
        // so at most one of them reads back as `v`: the one this finds, which is also the
        // one `Display` writes.
        if n >= 4_503_599_627_370_496.0 {
            return false;
        }
        if n / power != magnitude {
            continue;
        }
        let n = n as u64;
        if v.is_sign_negative() {
            out.put_u8(b'-');
        }
        write_u64(out, n / INT_POWERS[k]);
        out.put_u8(b'.');
        if k == 0 {
            out.put_u8(b'0');
        } else {
            let frac = n % INT_POWERS[k];
            let mut digits = [b'0'; 6];
            let mut rest = frac;
            for d in digits[..k].iter_mut().rev() {
                *d = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            out.put_slice(&digits[..k]);
        }
        return true;
    }
    false
}

/// Writes a signed integer in decimal.
#[inline]
pub(crate) fn write_i64(out: &mut BytesMut, v: i64) {
    if v < 0 {
        out.put_u8(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// Writes a `Display` value that cannot contain characters needing escapes (numbers).
pub(crate) fn write_plain(out: &mut BytesMut, v: impl fmt::Display) {
    use std::fmt::Write as _;
    let _ = write!(out, "{v}");
}

/// The prefix of a field written under another name: see [`is_reserved_key`].
pub(crate) const RENAMED_PREFIX: &str = "fields.";

/// Whether a field named `key` is written as `fields.<key>`: when `key` is one of the keys the
/// JSON and logfmt formatters write themselves (`ts`, `timestamp`, `level`, `logger`, `msg`,
/// `message`, and with `location` on, `module`, `file`, `line`), or is `fields.` followed by
/// such a renamed key (`fields.level` becomes `fields.fields.level`). Renaming is therefore
/// one-to-one: a renamed field never takes the name of another field.
#[inline(always)]
pub(crate) fn is_reserved_key(key: &str, location: bool) -> bool {
    is_own_key(key, location)
        || (key.len() > RENAMED_PREFIX.len()
            && key.as_bytes()[0] == b'f'
            && is_renamed_own_key(key, location))
}

/// Whether `key` is one of the keys the JSON and logfmt formatters write themselves.
#[inline(always)]
fn is_own_key(key: &str, location: bool) -> bool {
    matches!(
        key,
        "ts" | "timestamp" | "level" | "logger" | "msg" | "message"
    ) || (location && matches!(key, "module" | "file" | "line"))
}

/// Whether `key` is `fields.` (once or more) followed by one of the formatters' own keys.
#[cold]
fn is_renamed_own_key(key: &str, location: bool) -> bool {
    let mut key = key;
    while let Some(rest) = key.strip_prefix(RENAMED_PREFIX) {
        key = rest;
    }
    is_own_key(key, location)
}

/// A quick filter for [`is_reserved_key`] from a key's first and last byte: false when no key
/// with these ends is reserved (with or without locations). Indexed by the first byte's low
/// five bits, a mask of the last bytes' low five bits; bytes that share low bits with a
/// reserved key's end only pass the filter needlessly.
#[inline(always)]
pub(crate) fn may_be_reserved(first: u8, last: u8) -> bool {
    (RESERVED_ENDS[usize::from(first & 31)] >> (last & 31)) & 1 != 0
}

const RESERVED_ENDS: [u32; 32] = {
    let keys: [&[u8]; 9] = [
        b"ts",
        b"timestamp",
        b"level",
        b"logger",
        b"msg",
        b"message",
        b"module",
        b"file",
        b"line",
    ];
    let mut table = [0u32; 32];
    let mut i = 0;
    while i < keys.len() {
        let key = keys[i];
        table[(key[0] & 31) as usize] |= 1 << (key[key.len() - 1] & 31);
        i += 1;
    }
    // `fields.<anything>`.
    table[(b'f' & 31) as usize] = u32::MAX;
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserved_filter_passes_every_reserved_key() {
        let mut keys: Vec<String> = [
            "ts",
            "timestamp",
            "level",
            "logger",
            "msg",
            "message",
            "module",
            "file",
            "line",
        ]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
        for k in keys.clone() {
            keys.push(format!("fields.{k}"));
            keys.push(format!("fields.fields.{k}"));
        }
        for key in &keys {
            for location in [false, true] {
                if is_reserved_key(key, location) {
                    let b = key.as_bytes();
                    assert!(may_be_reserved(b[0], b[b.len() - 1]), "{key}");
                }
            }
            assert!(is_reserved_key(key, true));
        }
        for key in [
            "user_id",
            "path",
            "status",
            "latency_ms",
            "trace",
            "seq",
            "fields.",
        ] {
            assert!(!is_reserved_key(key, true), "{key}");
        }
        for key in ["user_id", "path", "status", "latency_ms", "trace", "seq"] {
            let b = key.as_bytes();
            assert!(!may_be_reserved(b[0], b[b.len() - 1]), "{key}");
        }
        assert!(!is_reserved_key("file", false));
        assert!(!is_reserved_key("fields.line", false));
        assert!(is_reserved_key("fields.line", true));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(&date_time_prefix(1_795_580_000), b"2026-11-25T04:13:20");
    }

    #[test]
    fn integers_and_floats() {
        for v in [0u64, 7, 10, 99, 100, 101, 12_345, u64::MAX] {
            let mut out = BytesMut::new();
            write_u64(&mut out, v);
            assert_eq!(&out[..], v.to_string().as_bytes());
        }
        let mut out = BytesMut::new();
        write_i64(&mut out, i64::MIN);
        assert_eq!(&out[..], i64::MIN.to_string().as_bytes());
        for (v, text) in [
            (3.25, "3.25"),
            (2.0, "2.0"),
            (-0.5, "-0.5"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (0.000_001, "0.000001"),
            (1e-7, "0.0000001"),
            (123_456.789, "123456.789"),
            (1e15, "1000000000000000.0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            let mut out = BytesMut::new();
            write_f64(&mut out, v);
            assert_eq!(std::str::from_utf8(&out).unwrap(), text);
        }
    }

    #[test]
    fn floats_read_back_exactly_and_match_display() {
        // A deterministic spread of values: short decimals, arbitrary doubles, tiny and huge.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = match i % 5 {
                0 => (x % 10_000_000) as f64 / 1_000.0,
                1 => f64::from_bits(x),
                2 => (x % 1_000_000) as f64 * 1e-9,
                3 => (x % 1_000_000_000_000) as f64 / 1e6 * if i % 2 == 0 { -1.0 } else { 1.0 },
                _ => x as f64,
            };
            if !v.is_finite() {
                continue;
            }
            let mut out = BytesMut::new();
            write_f64(&mut out, v);
            let text = std::str::from_utf8(&out).unwrap();
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{v:?} -> {text}"
            );
            let display = v.to_string();
            let expected = if display.contains('.') {
                display
            } else {
                display + ".0"
            };
            assert_eq!(text, expected, "{v:?}");
        }
    }

    #[test]
    fn timestamp_micros() {
        let t = UNIX_EPOCH + std::time::Duration::from_micros(1_000_000 * 86_400 + 42);
        let mut out = BytesMut::new();
        write_timestamp(&mut out, t);
        assert_eq!(&out[..], b"1970-01-02T00:00:00.000042Z");
        for micros in [
            0, 1, 9, 10, 99, 100, 4_200, 10_000, 99_999, 100_000, 123_456, 999_999,
        ] {
            let t = UNIX_EPOCH + std::time::Duration::from_micros(1_795_580_000_000_000 + micros);
            let mut out = BytesMut::new();
            write_timestamp(&mut out, t);
            let expected = format!("2026-11-25T04:13:20.{micros:06}Z");
            assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
        }
    }
}
