//! Errors of configuration and setup.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::level::ParseLevelError;

/// What went wrong while configuring or starting a pipeline.
///
/// Logging itself never returns errors: failures while writing are counted, reported through
/// the error hook and routed to the fallback writer.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

/// The kind of an [`Error`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is inconsistent (the message says how).
    InvalidConfig(String),
    /// A log file (or its directory) could not be opened or created.
    OpenFile {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// An environment variable holds a bad value.
    InvalidEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// A level could not be parsed.
    Level(ParseLevelError),
    /// A global pipeline was already installed by `init`/`try_init`.
    AlreadyInitialized,
}

impl Error {
    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::InvalidConfig(message.into()),
        }
    }

    pub(crate) fn open_file(path: &Path, source: io::Error) -> Self {
        Error {
            kind: ErrorKind::OpenFile {
                path: path.to_path_buf(),
                source,
            },
        }
    }

    pub(crate) fn env(var: &'static str, value: &str, expected: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::InvalidEnv {
                var,
                value: value.chars().take(64).collect(),
                expected: expected.into(),
            },
        }
    }

    pub(crate) fn already_initialized() -> Self {
        Error {
            kind: ErrorKind::AlreadyInitialized,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::InvalidConfig(m) => write!(f, "invalid logging configuration: {m}"),
            ErrorKind::OpenFile { path, source } => {
                write!(f, "cannot open log file {}: {source}", path.display())
            }
            ErrorKind::InvalidEnv {
                var,
                value,
                expected,
            } => write!(f, "invalid {var}={value:?}: expected {expected}"),
            ErrorKind::Level(e) => e.fmt(f),
            ErrorKind::AlreadyInitialized => {
                f.write_str("a global kakashi pipeline is already installed")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::OpenFile { source, .. } => Some(source),
            ErrorKind::Level(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ParseLevelError> for Error {
    fn from(e: ParseLevelError) -> Self {
        Error {
            kind: ErrorKind::Level(e),
        }
    }
}
