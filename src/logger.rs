//! Named loggers with a lock-free level check.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::directives::{self, LevelCache};
use crate::field::Field;
use crate::level::Level;
use crate::pipeline::Pipeline;
use crate::record::Location;

/// A logger's level when it has none of its own: it follows its pipeline's.
const INHERIT: u8 = u8::MAX;

/// A named logger; cloning it is one reference-count increment.
///
/// A logger from [`get_logger`] logs through the global pipeline (see [`init`](crate::init));
/// one from [`Pipeline::logger`] logs through that pipeline. Its level is its own (see
/// [`set_level`](Logger::set_level)), else the [directives](crate::directives) for its name,
/// else its pipeline's minimum level. The check is a few relaxed atomic loads (the decision is
/// cached with the directives' generation), so a disabled call costs about a nanosecond and
/// formats nothing.
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
    /// The directives' (or the pipeline's) decision for this name, with its generation.
    cache: LevelCache,
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
                cache: LevelCache::new(),
                pipeline,
            }),
        }
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
            self.inner.cache.enabled(level, || self.decide())
        }
    }

    /// The threshold when the logger has no level of its own: the directives' for its name,
    /// else its pipeline's minimum level (`None`: off).
    fn decide(&self) -> Option<Level> {
        directives::decide(&self.inner.name, || self.pipeline().min_level())
    }

    /// The level in force: the logger's own, else the directives' for its name, else its
    /// pipeline's (`Critical` when the directives turn the logger off).
    pub fn level(&self) -> Level {
        Level::from_index(self.inner.level.load(Ordering::Relaxed))
            .unwrap_or_else(|| self.decide().unwrap_or(Level::Critical))
    }

    /// Sets this logger's own level (`None`: follow the pipeline's). An atomic store; every
    /// clone of the logger sees it. (With the `tracing` feature, `tracing` is also told to
    /// ask the [`tracing` layer](crate::tracing) about its call sites again.)
    pub fn set_level(&self, level: Option<Level>) {
        let value = level.map_or(INHERIT, |l| l as u8);
        self.inner.level.store(value, Ordering::Relaxed);
        #[cfg(feature = "tracing")]
        crate::tracing::levels_changed();
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

/// Loggers bound to a pipeline live beside [`Logger`], so that the pipeline module does not
/// depend on this one.
impl Pipeline {
    /// A logger named `name` that logs through this pipeline.
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::write::MemoryWriter;
    /// use kakashi::{info, PipelineConfig, SyncPipeline, Writer};
    ///
    /// let memory = MemoryWriter::new();
    /// let config = PipelineConfig::builder().writer(Writer::memory(&memory)).build().unwrap();
    /// let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    /// let log = pipeline.logger("app");
    /// info!(log, "ready"; port = 8080);
    /// assert!(memory.lines()[0].ends_with("logger=app msg=ready port=8080"));
    /// ```
    pub fn logger(&self, name: &str) -> Logger {
        Logger::with_target(name, Some(self.clone()))
    }
}

fn registry() -> &'static Mutex<HashMap<String, Logger>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Logger>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// The registered logger named `name`, registering it first if needed.
fn registered(name: &str) -> Logger {
    let mut loggers = registry().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(logger) = loggers.get(name) {
        return logger.clone();
    }
    let logger = Logger::with_target(name, None);
    loggers.insert(name.to_owned(), logger.clone());
    logger
}

/// The most names a thread keeps in its cache; past that the cache starts over, so that a
/// program making up logger names cannot grow every thread's cache without bound.
const MAX_CACHED: usize = 1024;

/// A thread's clones of the registered loggers it has looked up: found again without a lock
/// or an allocation. Registered loggers are never removed, so an entry never goes stale.
type LoggerCache = HashMap<Box<str>, Logger, BuildHasherDefault<NameHasher>>;

/// A cheap hash for logger names (a multiply-rotate over eight-byte words, as in `FxHash`):
/// the names are the program's own, and a thread's cache holds at most [`MAX_CACHED`] of them.
#[derive(Default)]
struct NameHasher(u64);

impl NameHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // At most seven bytes: the eighth tells "ab" from "ab\0".
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            word[7] = rest.len() as u8;
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown takes the bucket from the low bits and a tag from the top seven: bring the
        // well-mixed high bits down.
        self.0.rotate_left(26)
    }
}

/// The logger named `name` on the global pipeline, created on first use; later calls with the
/// same name return a clone of the same logger (so a level set on one is seen by all).
///
/// A name this thread has looked up before is found in a per-thread cache: no lock, no
/// allocation, so calling `get_logger` in every request handler is cheap.
pub fn get_logger(name: &str) -> Logger {
    thread_local! {
        static CACHE: RefCell<LoggerCache> = RefCell::new(LoggerCache::default());
    }
    CACHE
        .try_with(|cache| {
            // Borrowed only by this function, which calls no user code while it holds it.
            let mut cache = cache.try_borrow_mut().ok()?;
            if let Some(logger) = cache.get(name) {
                return Some(logger.clone());
            }
            let logger = registered(name);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(Box::from(name), logger.clone());
            Some(logger)
        })
        .ok()
        .flatten()
        // Thread-locals gone (thread exit): the registry itself.
        .unwrap_or_else(|| registered(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_logger_across_threads_and_cache_resets() {
        let a = get_logger("logger-test::a");
        let again = get_logger("logger-test::a");
        assert!(Arc::ptr_eq(&a.inner, &again.inner));
        let other = std::thread::spawn(|| get_logger("logger-test::a"))
            .join()
            .unwrap();
        assert!(Arc::ptr_eq(&a.inner, &other.inner));
        a.set_level(Some(Level::Error));
        assert_eq!(other.level(), Level::Error);
        assert_eq!(get_logger("logger-test::a").level(), Level::Error);

        // Names first seen on another thread are the same loggers here.
        let b = std::thread::spawn(|| get_logger("logger-test::b"))
            .join()
            .unwrap();
        assert!(Arc::ptr_eq(&b.inner, &get_logger("logger-test::b").inner));

        // Past the cache's limit it starts over, and lookups still find the same loggers.
        let names: Vec<String> = (0..MAX_CACHED + 10)
            .map(|i| format!("logger-test::many::{i}"))
            .collect();
        let first: Vec<Logger> = names.iter().map(|n| get_logger(n)).collect();
        for (name, logger) in names.iter().zip(&first) {
            assert!(
                Arc::ptr_eq(&logger.inner, &get_logger(name).inner),
                "{name}"
            );
            assert_eq!(get_logger(name).name(), name);
        }
        assert!(Arc::ptr_eq(&a.inner, &get_logger("logger-test::a").inner));
        assert_eq!(get_logger("").name(), "");
    }

    #[test]
    fn name_hash_depends_on_every_byte() {
        use std::hash::BuildHasher;
        let hash = |s: &str| BuildHasherDefault::<NameHasher>::default().hash_one(s);
        let names = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "app",
            "app::db",
            "app::dc",
            "app::db2",
            "app::db\0",
        ];
        for (i, x) in names.iter().enumerate() {
            for y in &names[i + 1..] {
                assert_ne!(hash(x), hash(y), "{x:?} {y:?}");
            }
        }
    }
}
