//! Ready-made configurations: development, production, testing.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::error::Error;
use crate::format::{Console, Json, Logfmt};
use crate::level::Level;
use crate::pipeline::{Enricher, PipelineConfig, PipelineConfigBuilder};
use crate::write::{MemoryWriter, Writer};

/// A ready-made configuration, in the spirit of Kakashi's `development` / `production` /
/// `testing` setups.
///
/// | preset | formatter | level | writer | enrichers |
/// |---|---|---|---|---|
/// | `Development` | [`Console`] (colors on a terminal) | debug | stdout | — |
/// | `Production` | [`Json`] | info | stdout | host, pid |
/// | `Testing` | [`Logfmt`] | trace | [`testing_memory`] | — |
///
/// Each preset gives a builder, so any setting can still be changed.
///
/// # Examples
///
/// ```
/// use kakashi::{Level, Preset};
///
/// let preset: Preset = "prod".parse().unwrap();
/// let config = preset.builder().min_level(Level::Warn).build().unwrap();
/// assert_eq!(config.min_level(), Level::Warn);
/// assert!("staging".parse::<Preset>().unwrap_err().to_string().contains("staging"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preset {
    /// Human-readable, verbose.
    Development,
    /// JSON for log shippers.
    Production,
    /// Everything, in memory, for tests.
    Testing,
}

/// The in-memory writer that the [`Preset::Testing`] preset writes to.
pub fn testing_memory() -> &'static MemoryWriter {
    static MEMORY: OnceLock<MemoryWriter> = OnceLock::new();
    MEMORY.get_or_init(MemoryWriter::new)
}

impl Preset {
    /// The preset's configuration, as a builder.
    pub fn builder(self) -> PipelineConfigBuilder {
        match self {
            Preset::Development => PipelineConfig::builder()
                .min_level(Level::Debug)
                .formatter(Console::new())
                .writer(Writer::stdout()),
            Preset::Production => PipelineConfig::builder()
                .min_level(Level::Info)
                .formatter(Json::new())
                .enricher(Enricher::hostname())
                .enricher(Enricher::pid())
                .writer(Writer::stdout()),
            Preset::Testing => PipelineConfig::builder()
                .min_level(Level::Trace)
                .formatter(Logfmt::new())
                .writer(Writer::memory(testing_memory())),
        }
    }

    /// The preset named by `KAKASHI_ENV`, with the level from `KAKASHI_LEVEL` when it is set.
    /// Without `KAKASHI_ENV`: level info, stdout, and the [`Console`] format when stdout is a
    /// terminal and `NO_COLOR` is unset, else [`Logfmt`] (a pipe, a file, a container's log
    /// collector).
    ///
    /// # Errors
    ///
    /// [`Error`] naming the variable, its value and what is accepted, when either holds a bad
    /// value or is not valid UTF-8.
    pub fn config_from_env() -> Result<PipelineConfigBuilder, Error> {
        let env = |var: &'static str| match std::env::var(var) {
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(raw)) => Err(Error::env(
                var,
                &raw.to_string_lossy(),
                "valid UTF-8 (the value is not)",
            )),
        };
        let mut builder = match env("KAKASHI_ENV")? {
            Some(value) => value
                .parse::<Preset>()
                .map_err(|_| {
                    Error::env(
                        "KAKASHI_ENV",
                        &value,
                        "development (or dev), production (or prod), testing (or test)",
                    )
                })?
                .builder(),
            None => default_builder(),
        };
        if let Some(value) = env("KAKASHI_LEVEL")? {
            let level = value.parse::<Level>().map_err(|_| {
                Error::env(
                    "KAKASHI_LEVEL",
                    &value,
                    "trace, debug, info, warn, error, critical, or 5, 10, 20, 30, 40, 50",
                )
            })?;
            builder = builder.min_level(level);
        }
        Ok(builder)
    }
}

/// What [`Preset::config_from_env`] uses when `KAKASHI_ENV` is not set: fitted to where the
/// program runs.
fn default_builder() -> PipelineConfigBuilder {
    use std::io::IsTerminal as _;
    let colors = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = PipelineConfig::builder()
        .min_level(Level::Info)
        .writer(Writer::stdout());
    if colors {
        builder.formatter(Console::new())
    } else {
        builder.formatter(Logfmt::new())
    }
}

/// The error returned when a string names no [`Preset`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsePresetError {
    input: String,
}

impl fmt::Display for ParsePresetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown preset {:?}: expected development (or dev), production (or prod), \
             testing (or test)",
            self.input
        )
    }
}

impl std::error::Error for ParsePresetError {}

impl FromStr for Preset {
    type Err = ParsePresetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Preset::Development),
            "production" | "prod" => Ok(Preset::Production),
            "testing" | "test" => Ok(Preset::Testing),
            _ => Err(ParsePresetError {
                input: s.chars().take(64).collect(),
            }),
        }
    }
}
