//! Escaping: what stands between attacker-controlled text and a forged log line.
//!
//! Every formatter writes text through these functions. They guarantee that no line feed,
//! carriage return, other C0 or C1 control character (ESC among them, so no ANSI sequence),
//! DEL, Unicode line or paragraph separator, or bidirectional control (the embeddings,
//! overrides and isolates U+202A–U+202E and U+2066–U+2069, and the marks U+200E, U+200F and
//! U+061C) reaches the output raw: each is written as a `\uXXXX` escape, in keys as well as in
//! values and messages.
//!
//! These characters are multi-byte in UTF-8 and start with one of three lead bytes (0xC2,
//! 0xD8, 0xE2), so the byte classes flag only those lead bytes: text without them, ASCII or
//! not, stays on the word-at-a-time fast path.

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
        // U+061C ARABIC LETTER MARK: a bidi mark.
        0xD8 => match bytes.get(i + 1) {
            Some(0x9C) => 2,
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
        if c == 0xC2 || c == 0xD8 || c == 0xE2 {
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

/// What the word-at-a-time scanners look for: the bytes the byte-at-a-time slow paths act on,
/// so a byte a scanner skips would have been copied as it is anyway.
const SCAN_QUOTED: u8 = 0; // `ESCAPE_QUOTED | MULTIBYTE` bytes (JSON and quoted logfmt)
const SCAN_BARE: u8 = 1; // `ESCAPE_BARE | MULTIBYTE` bytes (console text)
const SCAN_QUOTE: u8 = 2; // `QUOTE` bytes (a superset of `ESCAPE_QUOTED | MULTIBYTE`)
const SCAN_KEY: u8 = 3; // bytes that are not `KEY_OK`

/// True if the scanners for `SET` stop at `b`: the byte-at-a-time definition of the sets.
#[inline]
fn stops_at<const SET: u8>(b: u8) -> bool {
    let cls = class(b);
    match SET {
        SCAN_QUOTED => cls & (ESCAPE_QUOTED | MULTIBYTE) != 0,
        SCAN_BARE => cls & (ESCAPE_BARE | MULTIBYTE) != 0,
        SCAN_QUOTE => cls & QUOTE != 0,
        _ => cls & KEY_OK == 0,
    }
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// `b` in every byte of a word.
const fn splat(b: u8) -> u64 {
    LOW_BITS * b as u64
}

// The comparisons below work on words whose bytes are all below 0x80 (`t`): adding a constant
// below 0x81 to such a byte never carries into the next one, so bit 7 of each byte of the sum
// answers the question for that byte alone (no false positives from borrows or carries).

/// Bit 7 of each byte set iff that byte of `t` is `>= lo`.
#[inline(always)]
fn ge(t: u64, lo: u8) -> u64 {
    t + splat(0x80 - lo)
}

/// Bit 7 of each byte set iff that byte of `t` is `> hi`.
#[inline(always)]
fn gt(t: u64, hi: u8) -> u64 {
    t + splat(0x7F - hi)
}

/// Bit 7 of each byte set iff that byte of `t` is `v` (`v < 0x80`).
#[inline(always)]
fn eq(t: u64, v: u8) -> u64 {
    !((t ^ splat(v)) + splat(0x7F))
}

/// Bit 7 of each byte of the result is set iff that byte of `x` (in little-endian order) is in
/// `SET` or, for all sets but `SCAN_KEY`, is >= 0x80 (see [`candidate_flags`] for the exact
/// sets); all other bits are clear.
#[inline(always)]
fn stop_flags<const SET: u8>(x: u64) -> u64 {
    let t = x & !HIGH_BITS;
    let flags = match SET {
        SCAN_KEY => {
            // [-./0-9:] is 0x2D..=0x3A; `| 0x20` folds A-Z onto a-z.
            let punct_digits = ge(t, b'-') & !gt(t, b':');
            let folded = t | splat(0x20);
            let letters = ge(folded, b'a') & !gt(folded, b'z');
            x | !(punct_digits | letters | eq(t, b'_'))
        }
        SCAN_BARE => x | !ge(t, 0x20) | gt(t, 0x7E),
        SCAN_QUOTED => x | !ge(t, 0x20) | gt(t, 0x7E) | eq(t, b'"') | eq(t, b'\\'),
        _ => x | !ge(t, 0x21) | gt(t, 0x7E) | eq(t, b'"') | eq(t, b'\\') | eq(t, b'='),
    };
    flags & HIGH_BITS
}

/// Like [`stop_flags`], but flags only the bytes the slow paths act on: of the bytes >= 0x80,
/// only the lead bytes 0xC2, 0xD8 and 0xE2 of possibly dangerous characters. Exactly the bytes whose
/// [`class`] has a bit of `ESCAPE_QUOTED | MULTIBYTE` (`SCAN_QUOTED`),
/// `ESCAPE_BARE | MULTIBYTE` (`SCAN_BARE`) or `QUOTE` (`SCAN_QUOTE`).
#[inline(always)]
fn candidate_flags<const SET: u8>(x: u64) -> u64 {
    // 0xC2 and 0xE2 differ only in bit 5: a byte of `folded` is zero iff it was one of them.
    let folded = (x | splat(0x20)) ^ splat(0xE2);
    let arabic = x ^ splat(0xD8);
    let lead = !(((folded & !HIGH_BITS) + !HIGH_BITS) | folded)
        | !(((arabic & !HIGH_BITS) + !HIGH_BITS) | arabic);
    ((stop_flags::<SET>(x) & !x) | lead) & HIGH_BITS
}

/// How far the slow paths can skip from `bytes[i]`, a byte they leave as it is, to the next
/// byte they act on (or the end): a word at a time instead of a table lookup per byte, so that
/// runs of plain text, ASCII or not, between escapes stay cheap.
#[inline(always)]
fn skip_plain<const SET: u8>(bytes: &[u8], i: usize) -> usize {
    let n = bytes.len();
    if i + 8 <= n {
        let flags = candidate_flags::<SET>(word_at(bytes, i));
        if flags == 0 {
            8
        } else {
            (flags.trailing_zeros() / 8) as usize
        }
    } else if n >= 8 {
        // The last eight bytes, ignoring those before `i`.
        let base = n - 8;
        let flags = candidate_flags::<SET>(word_at(bytes, base)) & (u64::MAX << (8 * (i - base)));
        if flags == 0 {
            n - i
        } else {
            base + (flags.trailing_zeros() / 8) as usize - i
        }
    } else {
        1
    }
}

#[inline(always)]
fn word_at(bytes: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[i..i + 8]);
    u64::from_le_bytes(w)
}

/// The bytes of a 1..=7-byte slice packed into a word, some of them repeated, the rest safe
/// filler: the word holds a stop byte iff the slice does.
#[inline(always)]
fn short_word(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    debug_assert!((1..8).contains(&n));
    if n >= 4 {
        let mut lo = [0u8; 4];
        lo.copy_from_slice(&bytes[..4]);
        let mut hi = [0u8; 4];
        hi.copy_from_slice(&bytes[n - 4..]);
        u64::from(u32::from_le_bytes(lo)) | (u64::from(u32::from_le_bytes(hi)) << 32)
    } else {
        u64::from(bytes[0])
            | (u64::from(bytes[n / 2]) << 8)
            | (u64::from(bytes[n - 1]) << 16)
            | (splat(b'a') << 24)
    }
}

/// The index of the first byte of `bytes` the slow paths for `SET` act on (see [`stops_at`]),
/// or `bytes.len()`, eight bytes at a time. ASCII text takes the cheaper [`stop_flags`] only;
/// from the first plain non-ASCII byte on, the exact [`candidate_flags`] take over.
#[inline]
fn scan<const SET: u8>(bytes: &[u8]) -> usize {
    let i = scan_words::<SET, false>(bytes);
    match bytes.get(i) {
        Some(&b) if SET != SCAN_KEY && !stops_at::<SET>(b) => i + scan_exact::<SET>(&bytes[i..]),
        _ => i,
    }
}

/// [`scan_words`] with the exact flags, out of line so that the scan of ASCII text stays small.
#[cold]
#[inline(never)]
fn scan_exact<const SET: u8>(bytes: &[u8]) -> usize {
    scan_words::<SET, true>(bytes)
}

/// The flags of one word: with `EXACT`, [`candidate_flags`], else [`stop_flags`].
#[inline(always)]
fn scan_flags<const SET: u8, const EXACT: bool>(x: u64) -> u64 {
    if EXACT && SET != SCAN_KEY {
        candidate_flags::<SET>(x)
    } else {
        stop_flags::<SET>(x)
    }
}

/// The index of the first byte [`scan_flags`] flags, or `bytes.len()`.
#[inline(always)]
fn scan_words<const SET: u8, const EXACT: bool>(bytes: &[u8]) -> usize {
    let n = bytes.len();
    if n < 8 {
        if n == 0 || scan_flags::<SET, EXACT>(short_word(bytes)) == 0 {
            return n;
        }
        let cheap = !EXACT && SET != SCAN_KEY;
        return bytes
            .iter()
            .position(|&b| stops_at::<SET>(b) || (cheap && b >= 0x80))
            .unwrap_or(n);
    }
    let mut i = 0;
    while i + 16 <= n {
        let a = scan_flags::<SET, EXACT>(word_at(bytes, i));
        let b = scan_flags::<SET, EXACT>(word_at(bytes, i + 8));
        if a | b != 0 {
            return if a != 0 {
                i + (a.trailing_zeros() / 8) as usize
            } else {
                i + 8 + (b.trailing_zeros() / 8) as usize
            };
        }
        i += 16;
    }
    if i + 8 <= n {
        let a = scan_flags::<SET, EXACT>(word_at(bytes, i));
        if a != 0 {
            return i + (a.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i < n {
        // The last eight bytes, overlapping ones already found clean.
        let a = scan_flags::<SET, EXACT>(word_at(bytes, n - 8));
        if a != 0 {
            return n - 8 + (a.trailing_zeros() / 8) as usize;
        }
    }
    n
}

/// Writes the escape for one ASCII byte that needs one.
#[inline]
fn push_ascii_escape(out: &mut BytesMut, b: u8) {
    match b {
        b'\n' => out.put_slice(b"\\n"),
        b'\r' => out.put_slice(b"\\r"),
        b'\t' => out.put_slice(b"\\t"),
        b'"' => out.put_slice(b"\\\""),
        b'\\' => out.put_slice(b"\\\\"),
        _ => push_unicode_escape(out, u32::from(b)),
    }
}

/// Writes `s` escaped in `style`.
#[inline]
pub(crate) fn write_escaped(out: &mut BytesMut, s: &str, style: Style) {
    write_escaped_after(out, s, 0, style);
}

/// Writes `s` escaped in `style`, given that `s[..clean]` needs no escaping (`clean` is at a
/// character boundary): the common case, nothing to escape, is one scan and one copy.
#[inline]
fn write_escaped_after(out: &mut BytesMut, s: &str, clean: usize, style: Style) {
    let bytes = s.as_bytes();
    let rest = &bytes[clean..];
    let clean = clean
        + match style {
            Style::Json | Style::Quoted => scan::<SCAN_QUOTED>(rest),
            Style::Bare => scan::<SCAN_BARE>(rest),
        };
    if clean == bytes.len() {
        out.put_slice(bytes);
    } else {
        write_escaped_from(out, s, clean, style);
    }
}

/// Writes `s` escaped in `style` from its first byte that may need escaping, `clean` (at a
/// character boundary; nothing before it needs escaping).
#[cold]
fn write_escaped_from(out: &mut BytesMut, s: &str, clean: usize, style: Style) {
    let mask = match style {
        Style::Json | Style::Quoted => ESCAPE_QUOTED | MULTIBYTE,
        Style::Bare => ESCAPE_BARE | MULTIBYTE,
    };
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = clean;
    while i < bytes.len() {
        let b = bytes[i];
        let cls = class(b);
        if cls & mask == 0 {
            i += match style {
                Style::Json | Style::Quoted => skip_plain::<SCAN_QUOTED>(bytes, i),
                Style::Bare => skip_plain::<SCAN_BARE>(bytes, i),
            };
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
            push_ascii_escape(out, b);
            i += 1;
        }
        start = i;
    }
    out.put_slice(&bytes[start..]);
}

/// True if a byte at or after `from` in `bytes` forces logfmt quotes, given that none before
/// `from` does (`from` is at a character boundary).
fn forces_quotes_from(bytes: &[u8], from: usize) -> bool {
    let mut i = from;
    while i < bytes.len() {
        let cls = class(bytes[i]);
        if cls & QUOTE == 0 {
            i += skip_plain::<SCAN_QUOTE>(bytes, i);
            continue;
        }
        if cls & MULTIBYTE == 0 || dangerous_multibyte(bytes, i) > 0 {
            return true;
        }
        i += 1;
    }
    false
}

/// True if `s` must be quoted as a logfmt value.
#[cfg(test)]
fn logfmt_needs_quotes(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.is_empty() || {
        let clean = scan::<SCAN_QUOTE>(bytes);
        clean < bytes.len() && forces_quotes_from(bytes, clean)
    }
}

/// Writes a logfmt key: bytes outside `[A-Za-z0-9_.:/-]` become `_`; an empty key is `_`.
#[inline]
pub(crate) fn write_logfmt_key(out: &mut BytesMut, key: &str) {
    let bytes = key.as_bytes();
    if !bytes.is_empty() && scan::<SCAN_KEY>(bytes) == bytes.len() {
        out.put_slice(bytes);
    } else {
        write_logfmt_key_slow(out, key);
    }
}

/// The byte logfmt writes for a key's byte `b` that starts a character: `b` when it is allowed
/// in a bare key, else `_` (the whole character becomes one `_`).
#[inline]
pub(crate) fn logfmt_key_byte(b: u8) -> u8 {
    KEY_BYTES[b as usize]
}

/// [`logfmt_key_byte`] for each byte: one load on the hot path.
static KEY_BYTES: [u8; 256] = {
    let mut table = [b'_'; 256];
    let mut b = 0;
    while b < 256 {
        if CLASSES[b] & KEY_OK != 0 {
            table[b] = b as u8;
        }
        b += 1;
    }
    table
};

#[cold]
fn write_logfmt_key_slow(out: &mut BytesMut, key: &str) {
    if key.is_empty() {
        out.put_u8(b'_');
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
#[inline]
pub(crate) fn write_logfmt_str(out: &mut BytesMut, s: &str) {
    let bytes = s.as_bytes();
    let clean = scan::<SCAN_QUOTE>(bytes);
    if clean == bytes.len() && !bytes.is_empty() {
        out.put_slice(bytes);
    } else {
        write_logfmt_str_from(out, s, clean);
    }
}

/// [`write_logfmt_str`] past the first byte that may force quotes, `clean`.
fn write_logfmt_str_from(out: &mut BytesMut, s: &str, clean: usize) {
    let bytes = s.as_bytes();
    if bytes.is_empty() || forces_quotes_from(bytes, clean) {
        out.put_u8(b'"');
        // Nothing before `clean` is a `QUOTE` byte, so nothing there needs escaping either.
        write_escaped_after(out, s, clean, Style::Quoted);
        out.put_u8(b'"');
    } else {
        out.put_slice(bytes);
    }
}

/// A `fmt::Write` that escapes everything written through it.
///
/// For a logfmt value ([`EscapingWriter::logfmt_value`]) it also decides on quotes: the value
/// is written bare until something in it needs quoting, and only then is the opening quote
/// inserted in front of what was written so far (nothing of which needed escaping).
pub(crate) struct EscapingWriter<'a> {
    pub(crate) out: &'a mut BytesMut,
    style: Style,
    /// Set once anything written needs logfmt quoting; tracked for [`Style::Quoted`] only.
    pub(crate) needs_quotes: bool,
    /// Where the opening quote goes once quotes are needed (logfmt values only).
    quote_at: Option<usize>,
    /// The byte classes that leave the one-byte fast path of `write_char`.
    stop: u8,
}

impl<'a> EscapingWriter<'a> {
    /// A writer that escapes in `style`. For [`Style::Quoted`] it records in `needs_quotes`
    /// whether anything written needs logfmt quoting.
    pub(crate) fn new(out: &'a mut BytesMut, style: Style) -> Self {
        let stop = match style {
            Style::Json => ESCAPE_QUOTED,
            Style::Quoted => ESCAPE_QUOTED | QUOTE,
            Style::Bare => ESCAPE_BARE,
        };
        EscapingWriter {
            out,
            style,
            needs_quotes: false,
            quote_at: None,
            stop,
        }
    }

    /// A writer for a logfmt value starting at the end of `out`: the opening quote is inserted
    /// when the value turns out to need quotes (see [`EscapingWriter::finish_logfmt_value`]).
    pub(crate) fn logfmt_value(out: &'a mut BytesMut) -> Self {
        let start = out.len();
        let mut w = EscapingWriter::new(out, Style::Quoted);
        w.quote_at = Some(start);
        w
    }

    /// Notes that the value needs quotes, inserting the opening quote if it goes in later.
    fn start_quoting(&mut self) {
        self.needs_quotes = true;
        self.stop = ESCAPE_QUOTED;
        if let Some(at) = self.quote_at.take() {
            let end = self.out.len();
            self.out.put_u8(b'"');
            self.out.copy_within(at..end, at + 1);
            self.out[at] = b'"';
        }
    }

    /// Ends a logfmt value: the `<formatting error>` marker if `failed`, and the quotes if the
    /// value needs them, is empty, or failed.
    fn finish_logfmt_value(mut self, failed: bool) {
        let empty = self.quote_at == Some(self.out.len());
        if failed || empty {
            if !self.needs_quotes {
                self.start_quoting();
            }
            if failed {
                self.out.put_slice(b"<formatting error>");
            }
        }
        if self.needs_quotes {
            self.out.put_u8(b'"');
        }
    }

    /// `write_str` once something needed quotes, or for any style but `Quoted`.
    #[inline]
    fn write_escaped_str(&mut self, s: &str) {
        if s.len() < 4 {
            // Pieces of `Debug` output such as `\"`: straight to the byte loop.
            write_escaped_from(self.out, s, 0, self.style);
        } else {
            write_escaped(self.out, s, self.style);
        }
    }

    /// `write_str` for a `Quoted` value that needs no quotes yet.
    #[inline]
    fn write_unquoted_str(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let clean = scan::<SCAN_QUOTE>(bytes);
        if clean == bytes.len() {
            self.out.put_slice(bytes);
        } else {
            self.write_from(s, clean);
        }
    }

    /// [`Self::write_unquoted_str`] past the first byte that may force quotes, `clean`.
    fn write_from(&mut self, s: &str, clean: usize) {
        let bytes = s.as_bytes();
        if forces_quotes_from(bytes, clean) {
            self.start_quoting();
            // Nothing before `clean` is a `QUOTE` byte, so nothing there needs escaping either.
            write_escaped_after(self.out, s, clean, self.style);
        } else {
            // Only harmless non-ASCII past `clean`: nothing to escape.
            self.out.put_slice(bytes);
        }
    }

    /// `write_char` for anything but plain ASCII.
    #[cold]
    fn write_char_slow(&mut self, c: char) -> fmt::Result {
        if !c.is_ascii() {
            return fmt::Write::write_str(self, c.encode_utf8(&mut [0; 4]));
        }
        let b = c as u8;
        let cls = class(b);
        if cls & QUOTE != 0 && self.style == Style::Quoted && !self.needs_quotes {
            self.start_quoting();
        }
        let escape = match self.style {
            Style::Json | Style::Quoted => ESCAPE_QUOTED,
            Style::Bare => ESCAPE_BARE,
        };
        if cls & escape == 0 {
            self.out.put_u8(b);
        } else {
            push_ascii_escape(self.out, b);
        }
        Ok(())
    }
}

impl fmt::Write for EscapingWriter<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.needs_quotes || self.style != Style::Quoted {
            self.write_escaped_str(s);
        } else {
            self.write_unquoted_str(s);
        }
        Ok(())
    }

    /// Padding and `Debug` output come a `char` at a time: one table lookup for plain ASCII.
    #[inline]
    fn write_char(&mut self, c: char) -> fmt::Result {
        if c.is_ascii() && class(c as u8) & self.stop == 0 {
            self.out.put_u8(c as u8);
            Ok(())
        } else {
            self.write_char_slow(c)
        }
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
/// is written bare, and the opening quote is inserted in front of it when something in it turns
/// out to need quoting (an empty value and one whose `Display` failed are quoted too).
pub(crate) fn write_logfmt_display(out: &mut BytesMut, value: &dyn fmt::Display) {
    let mut w = EscapingWriter::logfmt_value(out);
    let failed = fmt::write(&mut w, format_args!("{value}")).is_err();
    w.finish_logfmt_value(failed);
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    /// The byte-at-a-time `write_escaped` the fast paths replaced: the oracle.
    fn oracle_write_escaped(out: &mut BytesMut, s: &str, style: Style) {
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

    /// The old `logfmt_needs_quotes`.
    fn oracle_needs_quotes(s: &str) -> bool {
        let bytes = s.as_bytes();
        s.is_empty()
            || bytes.iter().enumerate().any(|(i, &b)| {
                let cls = class(b);
                cls & QUOTE != 0 && (cls & MULTIBYTE == 0 || dangerous_multibyte(bytes, i) > 0)
            })
    }

    fn oracle_logfmt_str(out: &mut BytesMut, s: &str) {
        if oracle_needs_quotes(s) {
            out.put_u8(b'"');
            oracle_write_escaped(out, s, Style::Quoted);
            out.put_u8(b'"');
        } else {
            out.put_slice(s.as_bytes());
        }
    }

    fn oracle_logfmt_key(out: &mut BytesMut, key: &str) {
        if key.is_empty() {
            out.put_u8(b'_');
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

    /// What the old `EscapingWriter` did with `pieces`: (output, needs_quotes).
    fn oracle_writer(pieces: &[&str], style: Style) -> (BytesMut, bool) {
        let mut out = BytesMut::new();
        let mut needs_quotes = false;
        for s in pieces {
            if !needs_quotes && oracle_needs_quotes(s) && !s.is_empty() {
                needs_quotes = true;
            }
            oracle_write_escaped(&mut out, s, style);
        }
        (out, needs_quotes)
    }

    const STYLES: [Style; 3] = [Style::Json, Style::Quoted, Style::Bare];

    /// A `Display` that writes its pieces with `write_str`, or a `char` at a time, and then
    /// fails if asked to.
    struct Pieces<'a> {
        pieces: &'a [&'a str],
        chars: bool,
        fail: bool,
    }

    impl fmt::Display for Pieces<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for piece in self.pieces {
                if self.chars {
                    for c in piece.chars() {
                        f.write_char(c)?;
                    }
                } else {
                    f.write_str(piece)?;
                }
            }
            if self.fail {
                Err(fmt::Error)
            } else {
                Ok(())
            }
        }
    }

    /// The old `write_logfmt_display`: a provisional quote, removed when not needed.
    fn oracle_logfmt_display(pieces: &[&str], fail: bool) -> BytesMut {
        let (escaped, needs_quotes) = oracle_writer(pieces, Style::Quoted);
        let mut out = BytesMut::new();
        out.put_u8(b'"');
        out.put_slice(&escaped);
        if fail {
            out.put_slice(b"<formatting error>");
        }
        if needs_quotes || fail || out.len() == 1 {
            out.put_u8(b'"');
        } else {
            out.copy_within(1.., 0);
            out.truncate(out.len() - 1);
        }
        out
    }

    /// `write_logfmt_display` against the oracle, after a prefix, for every way of writing.
    fn check_display(pieces: &[&str]) {
        for chars in [false, true] {
            for fail in [false, true] {
                let value = Pieces {
                    pieces,
                    chars,
                    fail,
                };
                let mut out = BytesMut::from(&b"k="[..]);
                write_logfmt_display(&mut out, &value);
                let expected = oracle_logfmt_display(pieces, fail);
                assert_eq!(&out[..2], b"k=");
                assert_eq!(
                    out[2..],
                    expected[..],
                    "{pieces:?} chars={chars} fail={fail}"
                );
            }
        }
    }

    /// Checks every function with a fast path against its oracle on `s`.
    fn check(s: &str) {
        for style in STYLES {
            let mut fast = BytesMut::new();
            write_escaped(&mut fast, s, style);
            let mut slow = BytesMut::new();
            oracle_write_escaped(&mut slow, s, style);
            assert_eq!(fast, slow, "write_escaped {style:?} {s:?}");
        }
        // Through the fmt::Write adapter, which also decides on logfmt quotes.
        let (expected, expected_quotes) = oracle_writer(&[s], Style::Quoted);
        let mut out = BytesMut::new();
        let mut w = EscapingWriter::new(&mut out, Style::Quoted);
        w.write_str(s).unwrap();
        assert_eq!(w.needs_quotes, expected_quotes, "needs_quotes {s:?}");
        assert_eq!(out, expected, "write_str {s:?}");
        assert_eq!(logfmt_needs_quotes(s), oracle_needs_quotes(s), "{s:?}");
        let (mut fast, mut slow) = (BytesMut::new(), BytesMut::new());
        write_logfmt_str(&mut fast, s);
        oracle_logfmt_str(&mut slow, s);
        assert_eq!(fast, slow, "write_logfmt_str {s:?}");
        let (mut fast, mut slow) = (BytesMut::new(), BytesMut::new());
        write_logfmt_key(&mut fast, s);
        oracle_logfmt_key(&mut slow, s);
        assert_eq!(fast, slow, "write_logfmt_key {s:?}");
    }

    /// [`check`], and the adapter fed in pieces and a `char` at a time, in every style.
    fn check_pieces(s: &str) {
        check(s);
        check_display(&[s]);
        for style in STYLES {
            let (expected, expected_quotes) = oracle_writer(&[s], style);
            let mut out = BytesMut::new();
            let mut w = EscapingWriter::new(&mut out, style);
            w.write_str(s).unwrap();
            let needs_quotes = w.needs_quotes;
            assert_eq!(out, expected, "write_str {style:?} {s:?}");
            let chars: Vec<String> = s.chars().map(String::from).collect();
            let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
            let (expected_chars, expected_char_quotes) = oracle_writer(&pieces, style);
            let mut out = BytesMut::new();
            let mut w = EscapingWriter::new(&mut out, style);
            for c in s.chars() {
                w.write_char(c).unwrap();
            }
            let char_quotes = w.needs_quotes;
            assert_eq!(out, expected_chars, "write_char {style:?} {s:?}");
            // Split in two at every character boundary.
            for (at, _) in s.char_indices() {
                let (a, b) = s.split_at(at);
                let (expected_split, expected_split_quotes) = oracle_writer(&[a, b], style);
                let mut out = BytesMut::new();
                let mut w = EscapingWriter::new(&mut out, style);
                w.write_str(a).unwrap();
                w.write_str(b).unwrap();
                let split_quotes = w.needs_quotes;
                assert_eq!(out, expected_split, "split {style:?} {a:?} {b:?}");
                if style == Style::Quoted {
                    check_display(&[a, b]);
                    check_display(&[a, "", b, ""]);
                }
                if style == Style::Quoted {
                    assert_eq!(split_quotes, expected_split_quotes, "{a:?} {b:?}");
                }
            }
            if style == Style::Quoted {
                assert_eq!(needs_quotes, expected_quotes, "needs_quotes {s:?}");
                assert_eq!(
                    char_quotes, expected_char_quotes,
                    "needs_quotes (chars) {s:?}"
                );
            }
        }
    }

    /// Every scanner against its byte-at-a-time definition: every byte value in every lane of a
    /// word, and at every position of every length up to 40, alone and followed by a second
    /// stop byte.
    #[test]
    fn scanners_find_the_first_stop_byte() {
        fn lanes<const SET: u8>() {
            for b in 0..=255u8 {
                let one_lane = (u64::from(b) << 24) | (splat(b'a') & !(0xFF << 24));
                let expect = |stops: bool, all: bool| match (stops, all) {
                    (false, _) => 0,
                    (true, true) => HIGH_BITS,
                    (true, false) => 0x80 << 24,
                };
                let exact = stops_at::<SET>(b);
                assert_eq!(
                    scan_flags::<SET, true>(splat(b)),
                    expect(exact, true),
                    "{b:#x}"
                );
                assert_eq!(
                    scan_flags::<SET, true>(one_lane),
                    expect(exact, false),
                    "{b:#x}"
                );
                let cheap = exact || (SET != SCAN_KEY && b >= 0x80);
                assert_eq!(stop_flags::<SET>(splat(b)), expect(cheap, true), "{b:#x}");
                assert_eq!(stop_flags::<SET>(one_lane), expect(cheap, false), "{b:#x}");
            }
        }
        fn positions<const SET: u8>(filler: u8) {
            assert!(!stops_at::<SET>(filler));
            let check = |bytes: &[u8]| {
                let naive = bytes.iter().position(|&b| stops_at::<SET>(b));
                assert_eq!(
                    scan::<SET>(bytes),
                    naive.unwrap_or(bytes.len()),
                    "{bytes:?}"
                );
                // The cheap first pass on its own.
                let cheap = bytes
                    .iter()
                    .position(|&b| stops_at::<SET>(b) || (SET != SCAN_KEY && b >= 0x80));
                let first = scan_words::<SET, false>(bytes);
                assert_eq!(first, cheap.unwrap_or(bytes.len()), "{bytes:?}");
            };
            for len in 0..=40usize {
                for pos in 0..len {
                    for b in 0..=255u8 {
                        let mut bytes = vec![filler; len];
                        bytes[pos] = b;
                        check(&bytes);
                        // A second candidate later on (in the same word, the next one, the
                        // overlapping last one) must not hide the first.
                        for later in [pos + 1, pos + 8, len - 1] {
                            if later <= pos || later >= len {
                                continue;
                            }
                            for second in [0x0A, 0xE2] {
                                let mut bytes = bytes.clone();
                                bytes[later] = second;
                                check(&bytes);
                            }
                        }
                    }
                }
                check(&vec![filler; len]);
            }
        }
        lanes::<SCAN_QUOTED>();
        lanes::<SCAN_BARE>();
        lanes::<SCAN_QUOTE>();
        lanes::<SCAN_KEY>();
        for filler in [b'a', 0xE3] {
            positions::<SCAN_QUOTED>(filler);
            positions::<SCAN_BARE>(filler);
            positions::<SCAN_QUOTE>(filler);
        }
        positions::<SCAN_KEY>(b'a');
        positions::<SCAN_KEY>(b'-');
        // Fillers that only some scanners skip.
        positions::<SCAN_QUOTED>(b' ');
        positions::<SCAN_BARE>(b'"');
        // Each set, per byte value, as the byte classes define it.
        for b in 0..=255u8 {
            let c = class(b);
            assert_eq!(stops_at::<SCAN_KEY>(b), c & KEY_OK == 0);
            assert_eq!(
                stops_at::<SCAN_QUOTED>(b),
                c & (ESCAPE_QUOTED | MULTIBYTE) != 0
            );
            assert_eq!(stops_at::<SCAN_BARE>(b), c & (ESCAPE_BARE | MULTIBYTE) != 0);
            assert_eq!(stops_at::<SCAN_QUOTE>(b), c & QUOTE != 0);
        }
    }

    /// The slow paths' word-at-a-time skips, from every byte they leave as it is.
    #[test]
    fn slow_paths_skip_to_the_next_candidate() {
        fn skips<const SET: u8>(filler: u8) {
            let candidate = stops_at::<SET>;
            assert!(!candidate(filler));
            for len in 0..=24usize {
                for pos in 0..len {
                    for b in 0..=255u8 {
                        let mut bytes = vec![filler; len];
                        bytes[pos] = b;
                        for i in 0..len {
                            if candidate(bytes[i]) {
                                continue;
                            }
                            let next = (i..len).find(|&j| candidate(bytes[j])).unwrap_or(len);
                            let skip = skip_plain::<SET>(&bytes, i);
                            // At least one byte, never past the next candidate, and all the
                            // way to it when it is in the word looked at.
                            assert!(skip >= 1 && i + skip <= next, "{bytes:?} {i} {skip}");
                            if len >= 8 && (next - i < 8 || i + 8 > len) {
                                assert_eq!(i + skip, next, "{bytes:?} {i}");
                            }
                        }
                    }
                }
            }
        }
        for filler in [b'a', 0xE3, 0xA9] {
            skips::<SCAN_QUOTED>(filler);
            skips::<SCAN_BARE>(filler);
            skips::<SCAN_QUOTE>(filler);
        }
    }

    /// Characters whose UTF-8 bytes take, between them, every byte value that valid UTF-8 can
    /// hold, in every position of a character; plus the dangerous ones and their neighbours.
    fn probe_chars() -> Vec<char> {
        let mut chars: Vec<char> = (0u8..0x80).map(char::from).collect();
        for cont in 0x80..=0xBFu32 {
            // As a last byte: [C2 cont] (C1 controls), [E2 80 cont] (separators, bidi
            // overrides), [E2 81 cont] (bidi isolates); as a middle byte: [E2 cont 80].
            let low = cont - 0x80;
            for c in [0x80 + low, 0x2000 + low, 0x2040 + low, 0x2000 + (low << 6)] {
                chars.extend(char::from_u32(c));
            }
        }
        for lead in 0xC2..=0xDFu32 {
            chars.extend(char::from_u32((lead - 0xC0) << 6));
        }
        for lead in 0xE0..=0xEFu32 {
            // 0xED 0xA0.. would be a surrogate: take 0xED 0x9C.. there.
            let c = ((lead - 0xE0) << 12) | 0x800;
            chars.extend(char::from_u32(c).or(char::from_u32(c - 0x100)));
        }
        for lead in 0xF0..=0xF4u32 {
            chars.extend(char::from_u32(((lead - 0xF0) << 18).max(0x1_0000)));
        }
        chars.extend([
            '\u{200D}', '\u{2027}', '\u{202F}', '\u{2065}', '\u{206A}', '\u{FEFF}', '\u{061B}',
            '\u{061C}', '\u{061D}', '\u{0600}', '\u{063F}',
        ]);
        chars.sort_unstable();
        chars.dedup();
        let mut bytes_seen = [false; 256];
        for c in &chars {
            for b in c.encode_utf8(&mut [0; 4]).bytes() {
                bytes_seen[usize::from(b)] = true;
            }
        }
        // Every byte value that can occur in UTF-8 (all but C0, C1, F5..=FF) is covered.
        for (b, seen) in bytes_seen.iter().enumerate() {
            assert_eq!(*seen, !matches!(b, 0xC0 | 0xC1 | 0xF5..=0xFF), "{b:#x}");
        }
        chars
    }

    /// Every probe character at every position of strings up to 40 bytes, in plain and in
    /// busier surroundings, gives the same output as the byte-at-a-time oracle.
    #[test]
    fn fast_paths_match_the_oracle_at_every_position() {
        let chars = probe_chars();
        let fillers = ["a", "é", "a b=c"];
        for filler in fillers {
            let filler: String = filler.chars().cycle().take(40).collect();
            for c in &chars {
                let c = c.to_string();
                for len in c.len()..=40 {
                    for pos in 0..=len - c.len() {
                        let mut s = String::new();
                        for f in filler.chars() {
                            if s.len() + f.len_utf8() > pos {
                                break;
                            }
                            s.push(f);
                        }
                        s.push_str(&c);
                        for f in filler.chars() {
                            if s.len() + f.len_utf8() > len {
                                break;
                            }
                            s.push(f);
                        }
                        check(&s);
                        if filler.starts_with('a') {
                            check_display(&[&s]);
                        }
                    }
                }
            }
        }
        check("");
    }

    /// Pseudo-random strings from an alphabet of edge cases.
    #[test]
    fn fast_paths_match_the_oracle_on_random_strings() {
        let alphabet: Vec<char> = "aZ09_-./: =\"\\\n\r\t\x1b\x7fé€\u{85}\u{9b}\u{a0}\u{2028}\u{2029}\u{202e}\u{2066}\u{200f}\u{61c}\u{61b}\u{1F600}"
            .chars()
            .collect();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..6_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 48) as usize;
            let mut y = x;
            let s: String = (0..len)
                .map(|_| {
                    y = y.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    // Mostly plain letters, as in real logs.
                    let k = (y >> 33) as usize % (alphabet.len() * 3);
                    alphabet.get(k).copied().unwrap_or('k')
                })
                .collect();
            check_pieces(&s);
        }
    }

    #[test]
    fn display_values_pieces_and_padding() {
        fn logfmt_display(v: &dyn fmt::Display) -> String {
            let mut out = BytesMut::new();
            write_logfmt_display(&mut out, v);
            String::from_utf8(out.to_vec()).unwrap()
        }
        assert_eq!(
            logfmt_display(&format_args!("{:016x}", 0xbeef)),
            "000000000000beef"
        );
        assert_eq!(logfmt_display(&format_args!("{:>6}", "a b")), "\"   a b\"");
        assert_eq!(logfmt_display(&format_args!("{:=^5}", 'x')), "\"==x==\"");
        assert_eq!(
            logfmt_display(&format_args!("{:?}", "q\"\n")),
            "\"\\\"q\\\\\\\"\\\\n\\\"\""
        );
        assert_eq!(logfmt_display(&format_args!("{}", "")), "\"\"");
        assert_eq!(
            logfmt_display(&format_args!("{}{}", "é", "\u{2028}")),
            "\"é\\u2028\""
        );
    }
}
