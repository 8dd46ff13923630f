//! Named loggers with a lock-free level check.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::field::Field;
use crate::level::Level;
use crate::pipeline::Pipeline;
use crate::record::Location;

/// A logger's level when it has none of its own: it follows its pipeline's.
const INHERIT: u8 = u8::MAX;

/// A named logger; cloning it is one reference-count increment.
///
/// A logger from [`get_logger`] logs through the global pipeline (see [`init`](crate::init));
/// one from [`Pipeline::logger`] logs through that pipeline. Its level check is one relaxed
/// atomic load (two when it follows its pipeline's level), so a disabled call costs about a
/// nanosecond and formats nothing.
///
/// # Examples
///
/// ```
/// use kakashi::{get_logger, info, Level};
///
/// let log = get_logger("app::db");
/// log.set_level(Some(Level::Debug));
/// assert!(log.enabled(Level::Debug));
/// info!(log, "connected to {}", "db-1"; pool = 8);
/// ```
#[derive(Clone)]
pub struct Logger {
    inner: Arc<LoggerInner>,
}

struct LoggerInner {
    name: Arc<str>,
    level: AtomicU8,
    /// `None`: the global pipeline, looked up at each call.
    pipeline: Option<Pipeline>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("name", &self.inner.name)
            .field("level", &self.level())
            .field("global", &self.inner.pipeline.is_none())
            .finish()
    }
}

impl Logger {
    fn with_target(name: &str, pipeline: Option<Pipeline>) -> Self {
        Logger {
            inner: Arc::new(LoggerInner {
                name: Arc::from(name),
                level: AtomicU8::new(INHERIT),
                pipeline,
            }),
        }
    }

    pub(crate) fn bound(name: &str, pipeline: Pipeline) -> Self {
        Logger::with_target(name, Some(pipeline))
    }

    /// The logger's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn pipeline(&self) -> &Pipeline {
        match &self.inner.pipeline {
            Some(p) => p,
            None => crate::global::pipeline(),
        }
    }

    /// True if a record at `level` would be logged.
    #[inline]
    pub fn enabled(&self, level: Level) -> bool {
        let own = self.inner.level.load(Ordering::Relaxed);
        if own != INHERIT {
            level as u8 >= own
        } else {
            self.pipeline().enabled(level)
        }
    }

    /// The level in force: the logger's own, else its pipeline's.
    pub fn level(&self) -> Level {
        Level::from_index(self.inner.level.load(Ordering::Relaxed))
            .unwrap_or_else(|| self.pipeline().min_level())
    }

    /// Sets this logger's own level (`None`: follow the pipeline's). An atomic store; every
    /// clone of the logger sees it.
    pub fn set_level(&self, level: Option<Level>) {
        let value = level.map_or(INHERIT, |l| l as u8);
        self.inner.level.store(value, Ordering::Relaxed);
    }

    /// Logs a record at `level` with `fields`, made at `location`, without checking the level
    /// (call [`enabled`](Self::enabled) first). The macros expand to this; it is public for
    /// integrations whose fields are only known at run time.
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::{get_logger, Field, Level, Location, Value};
    ///
    /// static HERE: Location = Location::new(module_path!(), file!(), line!());
    /// let log = get_logger("integration");
    /// if log.enabled(Level::Warn) {
    ///     let fields = [Field::new("status", Value::U64(503))];
    ///     log.log_at(Level::Warn, format_args!("upstream down"), &fields, &HERE);
    /// }
    /// ```
    pub fn log_at(
        &self,
        level: Level,
        message: fmt::Arguments<'_>,
        fields: &[Field<'_>],
        location: &Location,
    ) {
        self.pipeline()
            .log(level, &self.inner.name, message, fields, location);
    }
}

fn registry() -> &'static Mutex<HashMap<String, Logger>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Logger>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// The logger named `name` on the global pipeline, created on first use; later calls with the
/// same name return a clone of the same logger (so a level set on one is seen by all).
pub fn get_logger(name: &str) -> Logger {
    let mut loggers = registry().lock().unwrap_or_else(PoisonError::into_inner);
    loggers
        .entry(name.to_owned())
        .or_insert_with(|| Logger::with_target(name, None))
        .clone()
}
