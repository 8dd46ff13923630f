//! Severity levels and their parsing.

use std::fmt;
use std::str::FromStr;

/// How severe a record is, from [`Level::Trace`] (most verbose) to [`Level::Critical`].
///
/// Levels are ordered: `Level::Trace < Level::Debug < … < Level::Critical`. A pipeline or a
/// logger with a minimum level lets a record through when `record.level() >= min_level`.
///
/// Levels parse case-insensitively from their names, from the aliases `warning` and `fatal`, and
/// from Kakashi's (and Python's `logging`) numbers: 5 trace, 10 debug, 20 info, 30 warn, 40
/// error, 50 critical.
///
/// # Examples
///
/// ```
/// use kakashi::Level;
///
/// assert_eq!("WARNING".parse::<Level>().unwrap(), Level::Warn);
/// assert_eq!("40".parse::<Level>().unwrap(), Level::Error);
/// assert!(Level::Error > Level::Info);
///
/// let err = "loud".parse::<Level>().unwrap_err();
/// assert!(err.to_string().contains("\"loud\""));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// Very fine-grained diagnostics.
    Trace = 0,
    /// Information useful while developing or debugging.
    Debug = 1,
    /// Normal operation worth recording.
    Info = 2,
    /// Something unexpected that the program handled.
    Warn = 3,
    /// An operation failed.
    Error = 4,
    /// The program, or a part of it, cannot go on.
    Critical = 5,
}

impl Level {
    /// Every level, from least to most severe.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Critical,
    ];

    /// The lower-case name used in output (`"info"`, `"warn"`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }

    /// Kakashi's numeric value: 5, 10, 20, 30, 40 or 50.
    pub const fn number(self) -> u8 {
        match self {
            Level::Trace => 5,
            Level::Debug => 10,
            Level::Info => 20,
            Level::Warn => 30,
            Level::Error => 40,
            Level::Critical => 50,
        }
    }

    /// The level's index in [`Level::ALL`] (0 for trace … 5 for critical).
    pub const fn index(self) -> usize {
        self as usize
    }

    pub(crate) const fn from_index(index: u8) -> Option<Level> {
        match index {
            0 => Some(Level::Trace),
            1 => Some(Level::Debug),
            2 => Some(Level::Info),
            3 => Some(Level::Warn),
            4 => Some(Level::Error),
            5 => Some(Level::Critical),
            _ => None,
        }
    }

    fn from_number(number: u64) -> Option<Level> {
        match number {
            5 => Some(Level::Trace),
            10 => Some(Level::Debug),
            20 => Some(Level::Info),
            30 => Some(Level::Warn),
            40 => Some(Level::Error),
            50 => Some(Level::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Level {
    type Err = ParseLevelError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        let by_name = match trimmed.to_ascii_lowercase().as_str() {
            "trace" => Some(Level::Trace),
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" | "warning" => Some(Level::Warn),
            "error" => Some(Level::Error),
            "critical" | "fatal" => Some(Level::Critical),
            _ => None,
        };
        by_name
            .or_else(|| trimmed.parse::<u64>().ok().and_then(Level::from_number))
            .ok_or_else(|| ParseLevelError {
                input: input.chars().take(64).collect(),
            })
    }
}

/// The error returned when a string names no [`Level`].
///
/// Its message quotes the bad input (cut to 64 characters) and lists what is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseLevelError {
    input: String,
}

impl ParseLevelError {
    /// The input that could not be parsed (at most 64 characters of it).
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for ParseLevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid log level {:?}: expected one of trace, debug, info, warn (or warning), \
             error, critical (or fatal), or a number 5, 10, 20, 30, 40, 50",
            self.input
        )
    }
}

impl std::error::Error for ParseLevelError {}
