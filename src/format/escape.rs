//! Escaping: what stands between attacker-controlled text and a forged log line.
//!
//! Every formatter writes text through these functions. They guarantee that no line feed,
//! carriage return, other C0 or C1 control character (ESC among them, so no ANSI sequence),
//! DEL, Unicode line or paragraph separator, or bidirectional override reaches the output raw.

use std::fmt;

use bytes::{BufMut, BytesMut};

/// How escaped text is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// Inside a JSON string: `"` and `\` escaped too.
    Json,
    /// Inside a logfmt (or console) double-quoted value: same escapes as JSON.
    Quoted,
    /// Free text on a console line: only dangerous characters are escaped.
    Bare,
}

/// Returns the length of a dangerous multi-byte sequence starting at `bytes[i]` (a non-ASCII
/// lead byte), or 0 when the character there is harmless.
#[inline]
fn dangerous_multibyte(bytes: &[u8], i: usize) -> usize {
    match bytes[i] {
        // U+0080..=U+009F: C1 controls, CSI (U+009B) and NEL (U+0085) among them.
        0xC2 => match bytes.get(i + 1) {
            Some(0x80..=0x9F) => 2,
            _ => 0,
        },
        0xE2 => match (bytes.get(i + 1), bytes.get(i + 2)) {
            // U+200E, U+200F (marks), U+2028, U+2029 (separators), U+202A..=U+202E (bidi).
            (Some(0x80), Some(0x8E | 0x8F | 0xA8..=0xAE)) => 3,
            // U+2066..=U+2069: bidi isolates.
            (Some(0x81), Some(0xA6..=0xA9)) => 3,
            _ => 0,
        },
        _ => 0,
    }
}

/// Byte classes, looked up once per byte on the hot path.
const KEY_OK: u8 = 1; // allowed in a bare logfmt key
const QUOTE: u8 = 2; // forces quotes around a logfmt value
const ESCAPE_QUOTED: u8 = 4; // escaped inside a JSON or logfmt string
const ESCAPE_BARE: u8 = 8; // escaped in bare console text
const MULTIBYTE: u8 = 16; // lead byte of a possibly dangerous multi-byte character

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut class = 0;
        if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b':' | b'/') {
            class |= KEY_OK;
        }
        if c <= b' ' || c == b'=' || c == b'"' || c == b'\\' || c == 0x7F {
            class |= QUOTE;
        }
        if c < 0x20 || c == 0x7F {
            class |= ESCAPE_QUOTED | ESCAPE_BARE;
        }
        if c == b'"' || c == b'\\' {
            class |= ESCAPE_QUOTED;
        }
        if c == 0xC2 || c == 0xE2 {
            class |= MULTIBYTE | QUOTE;
        }
        table[b] = class;
        b += 1;
    }
    table
};

#[inline]
fn class(b: u8) -> u8 {
    CLASSES[b as usize]
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_unicode_escape(out: &mut BytesMut, c: u32) {
    let mut esc = *b"\\u0000";
    for (i, shift) in [12, 8, 4, 0].into_iter().enumerate() {
        esc[2 + i] = HEX[((c >> shift) & 0xF) as usize];
    }
    out.put_slice(&esc);
}

/// Writes `s` escaped in `style`.
pub(crate) fn write_escaped(out: &mut BytesMut, s: &str, style: Style) {
    let mask = match style {
        Style::Json | Style::Quoted => ESCAPE_QUOTED | MULTIBYTE,
        Style::Bare => ESCAPE_BARE | MULTIBYTE,
    };
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let cls = class(b);
        if cls & mask == 0 {
            i += 1;
            continue;
        }
        if cls & MULTIBYTE != 0 {
            let len = dangerous_multibyte(bytes, i);
            if len == 0 {
                i += 1;
                continue;
            }
            out.put_slice(&bytes[start..i]);
            let c = s[i..i + len].chars().next().map_or(0xFFFD, u32::from);
            push_unicode_escape(out, c);
            i += len;
        } else {
            out.put_slice(&bytes[start..i]);
            match b {
                b'\n' => out.put_slice(b"\\n"),
                b'\r' => out.put_slice(b"\\r"),
                b'\t' => out.put_slice(b"\\t"),
                b'"' => out.put_slice(b"\\\""),
                b'\\' => out.put_slice(b"\\\\"),
                _ => push_unicode_escape(out, u32::from(b)),
            }
            i += 1;
        }
        start = i;
    }
    out.put_slice(&bytes[start..]);
}

/// True if `s` must be quoted as a logfmt value.
pub(crate) fn logfmt_needs_quotes(s: &str) -> bool {
    let bytes = s.as_bytes();
    s.is_empty()
        || bytes.iter().enumerate().any(|(i, &b)| {
            let cls = class(b);
            cls & QUOTE != 0 && (cls & MULTIBYTE == 0 || dangerous_multibyte(bytes, i) > 0)
        })
}

/// Writes a logfmt key: bytes outside `[A-Za-z0-9_.:/-]` become `_`; an empty key is `_`.
pub(crate) fn write_logfmt_key(out: &mut BytesMut, key: &str) {
    if key.is_empty() {
        out.put_u8(b'_');
        return;
    }
    if key.bytes().all(|b| class(b) & KEY_OK != 0) {
        out.put_slice(key.as_bytes());
        return;
    }
    for c in key.chars() {
        if c.is_ascii() && class(c as u8) & KEY_OK != 0 {
            out.put_u8(c as u8);
        } else {
            out.put_u8(b'_');
        }
    }
}

/// Writes a logfmt value: bare when safe, else double-quoted and escaped.
pub(crate) fn write_logfmt_str(out: &mut BytesMut, s: &str) {
    if logfmt_needs_quotes(s) {
        out.put_u8(b'"');
        write_escaped(out, s, Style::Quoted);
        out.put_u8(b'"');
    } else {
        out.put_slice(s.as_bytes());
    }
}

/// A `fmt::Write` that escapes everything written through it.
pub(crate) struct EscapingWriter<'a> {
    pub(crate) out: &'a mut BytesMut,
    pub(crate) style: Style,
    /// Set once anything written needs logfmt quoting.
    pub(crate) needs_quotes: bool,
}

impl<'a> EscapingWriter<'a> {
    pub(crate) fn new(out: &'a mut BytesMut, style: Style) -> Self {
        EscapingWriter {
            out,
            style,
            needs_quotes: false,
        }
    }
}

impl fmt::Write for EscapingWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.needs_quotes && logfmt_needs_quotes(s) && !s.is_empty() {
            self.needs_quotes = true;
        }
        write_escaped(self.out, s, self.style);
        Ok(())
    }
}

/// Writes `args` escaped in `style`. A `Display` impl that fails leaves what it wrote so far
/// and a `<formatting error>` marker; it never panics.
pub(crate) fn write_escaped_args(out: &mut BytesMut, args: fmt::Arguments<'_>, style: Style) {
    if let Some(s) = args.as_str() {
        write_escaped(out, s, style);
        return;
    }
    let mut w = EscapingWriter::new(out, style);
    if fmt::write(&mut w, args).is_err() {
        w.out.put_slice(b"<formatting error>");
    }
}

/// Writes a `Display` value as a logfmt value, quoting only when needed, in one pass: the value
/// is written after a provisional quote, which is removed again when no quoting was needed.
pub(crate) fn write_logfmt_display(out: &mut BytesMut, value: &dyn fmt::Display) {
    let start = out.len();
    out.put_u8(b'"');
    let mut w = EscapingWriter::new(out, Style::Quoted);
    let failed = fmt::write(&mut w, format_args!("{value}")).is_err();
    let needs_quotes = w.needs_quotes;
    if failed {
        out.put_slice(b"<formatting error>");
    }
    if needs_quotes || failed || out.len() == start + 1 {
        out.put_u8(b'"');
    } else {
        // Nothing was escaped (that would have set `needs_quotes`): drop the provisional quote.
        let end = out.len();
        out.copy_within(start + 1..end, start);
        out.truncate(end - 1);
    }
}
