//! A [`log`] integration (feature `log`): a [`log::Log`] implementation that writes `log`
//! records, with their key-values, through kakashi.
//!
//! [`init()`] installs a [`Bridge`] to the global pipeline as `log`'s logger; a bridge to a
//! given pipeline is [`Bridge::for_pipeline`] and [`Bridge::install`]. Libraries that log with
//! `log` (and code that uses `log`'s macros) then log through kakashi, with the current
//! [`LogContext`](crate::LogContext) like native records:
//!
//! | log | kakashi |
//! |---|---|
//! | level `Trace` … `Error` | [`Level::Trace`] … [`Level::Error`] |
//! | target | logger name |
//! | message | message |
//! | key-values (`info!(user = 7, name = "ann"; "…")`) | fields; integers, floats, booleans, characters and strings keep their type, other values (`key:? = v`, `key:% = v`) are written with the formatting they were captured with |
//! | file, line and module path | the record's [`Location`] (left empty when the record's strings are not `'static`) |
//!
//! # Levels
//!
//! [`Log::enabled`](log::Log::enabled) and [`Log::log`](log::Log::log) answer with kakashi's
//! one level system, for a logger named by the record's target: its own level if one was set,
//! else the [directives](crate::directives) for the target, else the pipeline's minimum level.
//! For a bridge to the global pipeline that logger is [`get_logger`]`(target)`, so
//! [`Logger::set_level`] on it applies; for a bridge to a given pipeline it is one on that
//! pipeline.
//!
//! `log` checks its own maximum level ([`log::max_level`]) before it calls the logger, at the
//! cost of one atomic load. [`init()`] and [`Bridge::install`] set it to the most verbose
//! level the directives allow when they are set, else to the pipeline's minimum level, **as
//! they are then**. It follows changes of the directives
//! ([`directives::handle`](crate::directives::handle)) by itself; after changing the
//! pipeline's level ([`Pipeline::set_min_level`]) call [`sync_max_level`]. A logger given a
//! more verbose level of its own ([`Logger::set_level`]) is not seen by `log`'s maximum
//! level: raise it with `log::set_max_level` yourself.
//!
//! # Examples
//!
//! ```
//! use kakashi::format::Json;
//! use kakashi::write::MemoryWriter;
//! use kakashi::{PipelineConfig, SyncPipeline, Writer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let memory = MemoryWriter::new();
//! let config = PipelineConfig::builder()
//!     .formatter(Json::new())
//!     .writer(Writer::memory(&memory))
//!     .build()?;
//! let (pipeline, _guard) = SyncPipeline::start(config)?;
//! kakashi::log::Bridge::for_pipeline(&pipeline).install()?;
//! assert_eq!(log::max_level(), log::LevelFilter::Info);
//!
//! log::info!(target: "shop", items = 3, user = "u-42"; "paid {}", 9.5);
//! log::debug!("not logged: the pipeline's level is info");
//!
//! let lines = memory.lines();
//! assert_eq!(lines.len(), 1);
//! assert!(lines[0].ends_with(
//!     r#""level":"info","logger":"shop","message":"paid 9.5","items":3,"user":"u-42"}"#
//! ));
//! # Ok(())
//! # }
//! ```
//!
//! [`log`]: https://docs.rs/log
//! [`get_logger`]: crate::get_logger
//! [`Logger::set_level`]: crate::Logger::set_level

use std::sync::OnceLock;
use std::time::Duration;

use ::log::kv::{self, VisitSource, VisitValue};
use ::log::{LevelFilter, SetLoggerError};

use crate::field::{Field, Value};
use crate::level::Level;
use crate::pipeline::Pipeline;
use crate::record::Location;

use crate::bridge::inline::{Fields, Inline};
use crate::bridge::target_level::Destination;

/// Inline room for a record's key-values; more go to the heap.
const KEY_VALUES: usize = 16;

/// How long [`Log::flush`](log::Log::flush) waits for the pipeline.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// The destination of the bridge [`Bridge::install`] installed, for [`sync_max_level`].
static INSTALLED: OnceLock<Destination> = OnceLock::new();

/// A [`log::Log`] that writes records through a kakashi pipeline. See the
/// [module docs](self).
///
/// # Examples
///
/// ```
/// kakashi::log::Bridge::new().install().expect("the first logger");
/// log::warn!(target: "app", retries = 3; "upstream slow"); // to the global pipeline
/// ```
#[derive(Clone, Debug)]
pub struct Bridge {
    destination: Destination,
}

impl Default for Bridge {
    fn default() -> Self {
        Bridge::new()
    }
}

impl Bridge {
    /// A bridge to the global pipeline, with the levels of the loggers named by the records'
    /// targets ([`get_logger`](crate::get_logger)`(target)`).
    pub fn new() -> Self {
        Bridge {
            destination: Destination::Global,
        }
    }

    /// A bridge to `pipeline`: the [directives](crate::directives) for each record's target
    /// decide, else the pipeline's minimum level. The own levels of
    /// [`get_logger`](crate::get_logger) loggers do not apply: those loggers belong to the
    /// global pipeline.
    pub fn for_pipeline(pipeline: &Pipeline) -> Self {
        Bridge {
            destination: Destination::pipeline_of(pipeline),
        }
    }

    /// The most verbose `log` level the bridge logs now: the directives' most verbose level
    /// when they are set, else the pipeline's minimum level (`Off` when that is critical,
    /// which `log` cannot make). Loggers' own levels are not counted.
    pub fn max_level(&self) -> LevelFilter {
        max_level_of(&self.destination)
    }

    /// Installs this bridge as `log`'s logger and sets `log`'s maximum level to
    /// [`max_level`](Self::max_level), again whenever the directives change (see
    /// [`sync_max_level`] for changes of the pipeline's level).
    ///
    /// # Errors
    ///
    /// When `log` already has a logger (from this function or another); nothing changes then.
    pub fn install(self) -> Result<(), SetLoggerError> {
        let destination = self.destination.clone();
        ::log::set_boxed_logger(Box::new(self))?;
        // The first successful `set_boxed_logger` is the only one: this is set once, and the
        // hook registered once.
        let _ = INSTALLED.set(destination);
        crate::directives::on_change(|| {
            sync_max_level();
        });
        sync_max_level();
        Ok(())
    }
}

/// Installs a [`Bridge`] to the global pipeline as `log`'s logger ([`Bridge::install`]):
/// `log`'s maximum level follows the global pipeline's minimum level **as it is now** (see
/// [`sync_max_level`]).
///
/// Call it after [`kakashi::init`](crate::init), which sets the global pipeline's level.
///
/// # Errors
///
/// When `log` already has a logger (from this function or another).
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let _guard = kakashi::try_init(kakashi::PipelineConfig::builder().build()?)?;
/// kakashi::log::init()?;
/// assert_eq!(log::max_level(), log::LevelFilter::Info);
/// log::info!(port = 8080; "listening");
/// assert!(kakashi::log::init().is_err());
/// # Ok(())
/// # }
/// ```
pub fn init() -> Result<(), SetLoggerError> {
    Bridge::new().install()
}

/// Sets `log`'s maximum level again to the installed [`Bridge`]'s
/// [`max_level`](Bridge::max_level), after its pipeline's level changed; returns the maximum
/// level now in force. Without an installed bridge, it changes nothing.
///
/// # Examples
///
/// ```
/// use kakashi::{Level, PipelineConfig, SyncPipeline, Writer};
///
/// let config = PipelineConfig::builder().writer(Writer::stderr()).build().unwrap();
/// let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
/// kakashi::log::Bridge::for_pipeline(&pipeline).install().unwrap();
///
/// pipeline.set_min_level(Level::Debug);
/// assert_eq!(kakashi::log::sync_max_level(), log::LevelFilter::Debug);
/// assert!(log::log_enabled!(log::Level::Debug));
/// ```
pub fn sync_max_level() -> LevelFilter {
    if let Some(destination) = INSTALLED.get() {
        ::log::set_max_level(max_level_of(destination));
    }
    ::log::max_level()
}

/// See [`Bridge::max_level`].
fn max_level_of(destination: &Destination) -> LevelFilter {
    let threshold = match crate::directives::installed() {
        Some(directives) => directives.most_verbose(),
        None => Some(destination.pipeline().min_level()),
    };
    threshold.map_or(LevelFilter::Off, level_filter)
}

/// kakashi's level for a `log` level.
fn level_of(level: ::log::Level) -> Level {
    match level {
        ::log::Level::Error => Level::Error,
        ::log::Level::Warn => Level::Warn,
        ::log::Level::Info => Level::Info,
        ::log::Level::Debug => Level::Debug,
        ::log::Level::Trace => Level::Trace,
    }
}

/// The most verbose `log` level at or above `min`.
fn level_filter(min: Level) -> LevelFilter {
    match min {
        Level::Trace => LevelFilter::Trace,
        Level::Debug => LevelFilter::Debug,
        Level::Info => LevelFilter::Info,
        Level::Warn => LevelFilter::Warn,
        Level::Error => LevelFilter::Error,
        Level::Critical => LevelFilter::Off,
    }
}

impl ::log::Log for Bridge {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        self.destination
            .enabled(level_of(metadata.level()), metadata.target())
    }

    fn log(&self, record: &::log::Record<'_>) {
        let level = level_of(record.level());
        // `log`'s macros check only its maximum level, not `enabled`.
        if !self.destination.enabled(level, record.target()) {
            return;
        }
        let mut pairs = Pairs(Inline::new());
        // Our visitor never fails; a source that fails midway leaves the pairs it gave.
        let _ = record.key_values().visit(&mut pairs);
        let mut fields: Fields<'_, KEY_VALUES> = Fields::new();
        for (key, value) in pairs.0.iter() {
            fields.push(Field::new(key.as_str(), typed(value)));
        }
        let location = Location::new(
            record.module_path_static().unwrap_or(""),
            record.file_static().unwrap_or(""),
            record.line().unwrap_or(0),
        );
        self.destination.pipeline().log(
            level,
            record.target(),
            *record.args(),
            fields.as_slice(),
            &location,
        );
    }

    fn flush(&self) {
        self.destination.pipeline().flush_blocking(FLUSH_TIMEOUT);
    }
}

/// A record's key-values, borrowed from the record.
struct Pairs<'kvs>(Inline<(kv::Key<'kvs>, kv::Value<'kvs>), KEY_VALUES>);

impl<'kvs> VisitSource<'kvs> for Pairs<'kvs> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        self.0.push((key, value));
        Ok(())
    }
}

/// `value` as a kakashi value: its own type when it has a primitive one, else written with
/// its `Display` impl (which writes it as it was captured: `Debug`, `Display`, …).
fn typed<'a>(value: &'a kv::Value<'_>) -> Value<'a> {
    let mut typed = Typed {
        value: Value::Display(value),
    };
    // Our visitor never fails.
    let _ = value.visit(&mut typed);
    typed.value
}

/// Finds a [`kv::Value`]'s type; left at `Display` for anything else.
struct Typed<'a> {
    value: Value<'a>,
}

impl<'a, 'v: 'a> VisitValue<'v> for Typed<'a> {
    fn visit_any(&mut self, _: kv::Value<'_>) -> Result<(), kv::Error> {
        Ok(())
    }

    fn visit_null(&mut self) -> Result<(), kv::Error> {
        self.value = Value::Null;
        Ok(())
    }

    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        self.value = Value::U64(value);
        Ok(())
    }

    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        self.value = Value::I64(value);
        Ok(())
    }

    fn visit_u128(&mut self, value: u128) -> Result<(), kv::Error> {
        self.value = Value::U128(value);
        Ok(())
    }

    fn visit_i128(&mut self, value: i128) -> Result<(), kv::Error> {
        self.value = Value::I128(value);
        Ok(())
    }

    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        self.value = Value::F64(value);
        Ok(())
    }

    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        self.value = Value::Bool(value);
        Ok(())
    }

    fn visit_char(&mut self, value: char) -> Result<(), kv::Error> {
        self.value = Value::Char(value);
        Ok(())
    }

    fn visit_borrowed_str(&mut self, value: &'v str) -> Result<(), kv::Error> {
        self.value = Value::Str(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_both_ways() {
        for level in [
            ::log::Level::Error,
            ::log::Level::Warn,
            ::log::Level::Info,
            ::log::Level::Debug,
            ::log::Level::Trace,
        ] {
            assert_eq!(level_of(level).as_str(), level.as_str().to_lowercase());
            assert_eq!(level_filter(level_of(level)), level.to_level_filter());
        }
        assert_eq!(level_filter(Level::Critical), LevelFilter::Off);
    }

    #[test]
    fn values_keep_their_type() {
        let s = String::from("text");
        let debug = vec![1, 2];
        assert!(matches!(typed(&kv::Value::from(7u8)), Value::U64(7)));
        assert!(matches!(typed(&kv::Value::from(-7i32)), Value::I64(-7)));
        assert!(matches!(typed(&kv::Value::from(1.5f64)), Value::F64(v) if v == 1.5));
        assert!(matches!(typed(&kv::Value::from(true)), Value::Bool(true)));
        assert!(matches!(typed(&kv::Value::from('x')), Value::Char('x')));
        assert!(matches!(
            typed(&kv::Value::from(s.as_str())),
            Value::Str("text")
        ));
        assert!(matches!(typed(&kv::Value::null()), Value::Null));
        let captured = kv::Value::from_debug(&debug);
        match typed(&captured) {
            Value::Display(d) => assert_eq!(d.to_string(), "[1, 2]"),
            other => panic!("{other:?}"),
        }
    }
}
