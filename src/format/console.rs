//! The console formatter: human-readable lines, colored on a terminal.

use std::io::IsTerminal;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::escape::{write_escaped, write_escaped_args, write_logfmt_key, Style};
use super::logfmt::write_logfmt_value;
use super::redact::Redaction;
use super::{keys, write_timestamp, write_u64, Formatter};
use crate::field::Value;
use crate::level::Level;
use crate::record::LogRecord;

/// When the console formatter writes ANSI colors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorMode {
    /// Colors when the destination is a terminal and `NO_COLOR` is unset or empty (the default).
    #[default]
    Auto,
    /// Always colors.
    Always,
    /// Never colors.
    Never,
}

/// Writes records for people: `2026-11-24T04:12:22.123456Z  INFO app: message key=value`.
///
/// Fields and context follow the message as logfmt pairs, each key once (see
/// [one key per name](super#one-key-per-name)): keys are compared as written (`a b` and `a_b`
/// are both `a_b`), a call-site field hides an enriched or context field of the same name, an
/// enriched field hides a context field, and of two fields with the same name from one source
/// the later one is written. The timestamp, level, logger, message and location are not
/// written as keys, so no field name is reserved: a `level` field is written `level=…`.
///
/// With [`ColorMode::Auto`] (the default), colors are used only when the writer's destination
/// is a terminal and `NO_COLOR` is unset or empty (see <https://no-color.org>). Control
/// characters and escape sequences in the message are shown escaped (`\n`, `\u001b`), so the
/// only ANSI sequences on a line are the formatter's own.
///
/// The values of fields named `password`, `authorization`, `cookie`, `set-cookie` or `token`
/// are written `[redacted]`; see [`Redaction`] and [`redaction`](Console::redaction).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use kakashi::format::{ColorMode, Console, Formatter};
/// use kakashi::{Level, Location, LogRecord};
///
/// static HERE: Location = Location::new("app", "src/main.rs", 7);
/// let record = LogRecord::new(Level::Error, "db", format_args!("\x1b[2Jgone"), &HERE)
///     .with_timestamp(std::time::UNIX_EPOCH);
/// let mut out = BytesMut::new();
/// Console::new().colors(ColorMode::Never).format(&record, &mut out);
/// assert_eq!(&out[..], &b"1970-01-01T00:00:00.000000Z ERROR db: \\u001b[2Jgone\n"[..]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Console {
    mode: ColorMode,
    location: bool,
    redaction: Redaction,
}

impl Console {
    /// A console formatter with [`ColorMode::Auto`].
    pub fn new() -> Self {
        Console::default()
    }

    /// Sets when colors are written.
    #[must_use]
    pub fn colors(mut self, mode: ColorMode) -> Self {
        self.mode = mode;
        self
    }

    /// Also writes ` at module (file:line)` after the fields.
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
    /// use kakashi::format::{Console, Redaction};
    ///
    /// let formatter = Console::new().redaction(Redaction::none());
    /// # let _ = formatter;
    /// ```
    #[must_use]
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    fn colored(&self) -> bool {
        // `Auto` is resolved by `for_destination` when the pipeline is built; if a user calls
        // `format` directly on an unresolved formatter, look at stdout.
        match self.mode {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => colors_wanted(std::io::stdout().is_terminal()),
        }
    }
}

fn colors_wanted(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn level_style(level: Level) -> (&'static [u8], &'static [u8]) {
    match level {
        Level::Trace => (b"\x1b[35m", b"TRACE"),
        Level::Debug => (b"\x1b[34m", b"DEBUG"),
        Level::Info => (b"\x1b[32m", b" INFO"),
        Level::Warn => (b"\x1b[33m", b" WARN"),
        Level::Error => (b"\x1b[31m", b"ERROR"),
        Level::Critical => (b"\x1b[1;31m", b" CRIT"),
    }
}

/// Writes ` key=value`, the key dimmed when `color`.
fn write_pair(out: &mut BytesMut, key: &str, value: &Value<'_>, color: bool) {
    out.put_u8(b' ');
    if color {
        out.put_slice(DIM);
    }
    write_logfmt_key(out, key);
    out.put_u8(b'=');
    if color {
        out.put_slice(RESET);
    }
    write_logfmt_value(out, value);
}

const DIM: &[u8] = b"\x1b[2m";
const RESET: &[u8] = b"\x1b[0m";

impl Formatter for Console {
    fn format(&self, record: &LogRecord<'_>, out: &mut BytesMut) {
        let color = self.colored();
        let (level_color, level_name) = level_style(record.level());
        if color {
            out.put_slice(DIM);
        }
        write_timestamp(out, record.timestamp());
        if color {
            out.put_slice(RESET);
        }
        out.put_u8(b' ');
        if color {
            out.put_slice(level_color);
        }
        out.put_slice(level_name);
        if color {
            out.put_slice(RESET);
        }
        out.put_u8(b' ');
        write_escaped(out, record.logger(), Style::Bare);
        out.put_slice(b": ");
        match record.message_str() {
            Some(s) => write_escaped(out, s, Style::Bare),
            None => write_escaped_args(out, record.message(), Style::Bare),
        }
        keys::for_each_written_field::<true>(record, &self.redaction, |key, value, _| {
            write_pair(out, key, value, color);
        });
        if self.location {
            let loc = record.location();
            if color {
                out.put_slice(DIM);
            }
            out.put_slice(b" at ");
            write_escaped(out, loc.module(), Style::Bare);
            out.put_slice(b" (");
            write_escaped(out, loc.file(), Style::Bare);
            out.put_u8(b':');
            write_u64(out, u64::from(loc.line()));
            out.put_u8(b')');
            if color {
                out.put_slice(RESET);
            }
        }
        out.put_u8(b'\n');
    }

    fn for_destination(&self, is_terminal: bool) -> Option<Arc<dyn Formatter>> {
        if self.mode != ColorMode::Auto {
            return None;
        }
        let mode = if colors_wanted(is_terminal) {
            ColorMode::Always
        } else {
            ColorMode::Never
        };
        Some(Arc::new(Console {
            mode,
            location: self.location,
            redaction: self.redaction.clone(),
        }))
    }
}
