//! The level check of the `tracing` and `log` bridges: is a record at this level, for this
//! target, logged?
//!
//! A bridged record's logger is named by its target, and kakashi has one level system for
//! loggers: a logger's own level if one was set, else the [directives](crate::directives) for
//! its name, else its pipeline's minimum level. So the check asks a [`Logger`] named by the
//! target: for the global pipeline the registered one ([`get_logger`]), whose own level the
//! program may set; for another pipeline, one made on that pipeline. A logger caches its
//! decision under the directives' generation, and the bridges ask on every call, disabled
//! ones included, so the loggers are kept in a per-thread cache keyed by the destination and
//! the target's address: no lock, no hashing of the name, no reference count touched.
//!
//! (Each bridge module includes this file with `#[path]`, so that `lib.rs` needs no private
//! module for it.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::level::Level;
use crate::logger::{get_logger, Logger};
use crate::pipeline::Pipeline;

/// The most targets a thread keeps; past that the cache starts over (targets made up at run
/// time must not grow it without bound).
const MAX_CACHED: usize = 1024;

/// Loggers by destination (0: the global pipeline, else [`Destination::Pipeline`]'s `id`) and
/// by the address of the target string they were looked up with. An address can be reused by
/// another string (a target that is not `'static`), so a hit is confirmed by comparing the
/// logger's name.
type Cache = HashMap<(u64, usize), Logger, BuildHasherDefault<AddressHasher>>;

/// Hashes one address: a multiply, the well-mixed high bits brought down (hashbrown takes the
/// bucket from the low bits).
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// Where a bridge sends its records.
#[derive(Clone, Debug)]
pub(crate) enum Destination {
    /// The global pipeline; the levels of the registered loggers named by the targets.
    Global,
    /// This pipeline; the directives, else its minimum level.
    Pipeline {
        pipeline: Pipeline,
        /// Tells this destination's loggers from others' in the per-thread cache (clones
        /// share it: same pipeline).
        id: u64,
    },
}

impl Destination {
    pub(crate) fn pipeline_of(pipeline: &Pipeline) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Destination::Pipeline {
            pipeline: pipeline.clone(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The pipeline to log through.
    #[inline]
    pub(crate) fn pipeline(&self) -> &Pipeline {
        match self {
            Destination::Global => crate::global::pipeline(),
            Destination::Pipeline { pipeline, .. } => pipeline,
        }
    }

    /// A new logger named `target` for this destination.
    fn logger(&self, target: &str) -> Logger {
        match self {
            Destination::Global => get_logger(target),
            Destination::Pipeline { pipeline, .. } => pipeline.logger(target),
        }
    }

    fn id(&self) -> u64 {
        match self {
            Destination::Global => 0,
            Destination::Pipeline { id, .. } => *id,
        }
    }

    /// True if a record at `level` for `target` is logged.
    pub(crate) fn enabled(&self, level: Level, target: &str) -> bool {
        thread_local! {
            static LOGGERS: RefCell<Cache> = RefCell::new(Cache::default());
        }
        let cached = LOGGERS.try_with(|cache| {
            // Borrowed only here, and no user code runs while it is.
            let mut cache = cache.try_borrow_mut().ok()?;
            let key = (self.id(), target.as_ptr() as usize);
            if let Some(logger) = cache.get(&key) {
                if logger.name() == target {
                    return Some(logger.enabled(level));
                }
            }
            let logger = self.logger(target);
            let enabled = logger.enabled(level);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(key, logger);
            Some(enabled)
        });
        match cached {
            Ok(Some(enabled)) => enabled,
            // Thread-locals gone (thread exit): a logger made for the question.
            _ => self.logger(target).enabled(level),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_logger_named_by_the_target() {
        let global = Destination::Global;
        let name = format!("target-level-test::{}", line!());
        assert_eq!(
            global.enabled(Level::Trace, &name),
            get_logger(&name).enabled(Level::Trace)
        );
        get_logger(&name).set_level(Some(Level::Trace));
        assert!(global.enabled(Level::Trace, &name));
        get_logger(&name).set_level(Some(Level::Error));
        assert!(!global.enabled(Level::Warn, &name));
        assert!(global.enabled(Level::Error, &name));

        // Another string at the same address: the cached logger is not taken for it.
        let mut target = format!("target-level-test::reuse::{}", line!());
        get_logger(&target).set_level(Some(Level::Error));
        assert!(!global.enabled(Level::Info, &target));
        let address = target.as_ptr();
        target.make_ascii_uppercase();
        assert_eq!(target.as_ptr(), address);
        get_logger(&target).set_level(Some(Level::Trace));
        assert!(global.enabled(Level::Info, &target));
    }

    #[test]
    fn a_pipeline_destination_follows_its_pipeline_not_the_global_loggers() {
        let config = crate::PipelineConfig::builder()
            .min_level(Level::Warn)
            .writer(crate::Writer::sync(std::sync::Arc::new(
                crate::write::MemoryWriter::new(),
            )))
            .build()
            .unwrap();
        let (pipeline, _guard) = crate::SyncPipeline::start(config).unwrap();
        let destination = Destination::pipeline_of(&pipeline);
        let name = format!("target-level-test::pipeline::{}", line!());
        get_logger(&name).set_level(Some(Level::Trace));
        assert!(!destination.enabled(Level::Info, &name));
        assert!(destination.enabled(Level::Warn, &name));
        pipeline.set_min_level(Level::Debug);
        assert!(destination.enabled(Level::Debug, &name));
        assert!(!destination.enabled(Level::Trace, &name));
    }
}
