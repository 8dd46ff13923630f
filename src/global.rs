//! The global pipeline: `init`, `try_init`, `flush` and the panic hook.

use std::sync::OnceLock;
use std::time::Duration;

use crate::error::Error;
use crate::level::Level;
use crate::pipeline::{AsyncPipeline, Pipeline, PipelineConfig, PipelineGuard};

static GLOBAL: OnceLock<Pipeline> = OnceLock::new();
static DEFAULT: OnceLock<Pipeline> = OnceLock::new();

/// The global pipeline; before `init`, a synchronous one that writes warnings and worse to
/// stderr, so that early errors are not lost.
pub(crate) fn pipeline() -> &'static Pipeline {
    match GLOBAL.get() {
        Some(p) => p,
        None => DEFAULT.get_or_init(|| Pipeline::stderr(Level::Warn)),
    }
}

/// Installs a built pipeline as the global one (for [`testing`](crate::testing)).
pub(crate) fn install(pipeline: Pipeline) -> Result<(), Error> {
    GLOBAL
        .set(pipeline)
        .map_err(|_| Error::already_initialized())?;
    crate::directives::bump_generation();
    Ok(())
}

/// Installs `config` as the global pipeline (what `info!("…")` without a logger and
/// [`get_logger`](crate::get_logger) loggers use) and returns its guard.
///
/// On a tokio runtime the pipeline is async (its worker is spawned on the runtime); without one
/// it is synchronous.
///
/// # Errors
///
/// [`Error`] if a global pipeline is already installed or a writer cannot be opened.
///
/// # Examples
///
/// ```
/// use kakashi::{info, PipelineConfig};
///
/// #[tokio::main]
/// async fn run() -> Result<(), kakashi::Error> {
///     let _guard = kakashi::try_init(PipelineConfig::builder().build()?)?;
///     info!("service started"; port = 8080);
///     Ok(())
/// }
/// run().unwrap();
/// ```
pub fn try_init(config: PipelineConfig) -> Result<PipelineGuard, Error> {
    if GLOBAL.get().is_some() {
        return Err(Error::already_initialized());
    }
    let (pipeline, guard) = AsyncPipeline::start(config)?;
    GLOBAL
        .set(pipeline)
        .map_err(|_| Error::already_initialized())?;
    // Call sites decided against the default pipeline's level until now.
    crate::directives::bump_generation();
    Ok(guard)
}

/// Like [`try_init`], but panics on error (at startup, where that is what you want).
///
/// # Panics
///
/// If a global pipeline is already installed or a writer cannot be opened.
pub fn init(config: PipelineConfig) -> PipelineGuard {
    match try_init(config) {
        Ok(guard) => guard,
        Err(e) => panic!("kakashi::init failed: {e}"),
    }
}

/// Installs the global pipeline from the environment: `KAKASHI_ENV` picks a
/// [`Preset`](crate::Preset), `KAKASHI_LEVEL` overrides its level, and level
/// [directives](crate::directives) come from `KAKASHI_LOG`, else `RUST_LOG`.
///
/// # Errors
///
/// [`Error`] naming the variable when one holds a bad value (or is not valid UTF-8), and the
/// errors of [`try_init`]; nothing is installed then.
pub fn init_from_env() -> Result<PipelineGuard, Error> {
    let config = crate::preset::Preset::config_from_env()?.build()?;
    let directives = crate::directives::from_env()?;
    let guard = try_init(config)?;
    if let Some(directives) = directives {
        crate::directives::handle().set(directives);
    }
    Ok(guard)
}

/// Flushes the global pipeline: returns once every record logged before the call is written,
/// or after two seconds (then false, after reporting how many lines were not written). Call it
/// before `std::process::exit`, which runs no destructors. It works on every runtime, a
/// `current_thread` one blocked in this very call included: the queue is drained from a
/// helper thread rather than by waiting for the worker task.
pub fn flush() -> bool {
    pipeline().flush_blocking(Duration::from_secs(2))
}

/// Installs a panic hook that logs the panic as a critical record on the global pipeline and
/// flushes it, then runs the hook that was installed before.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let log = crate::get_logger("panic");
        crate::critical!(log, "{}", info);
        pipeline().flush_blocking(Duration::from_secs(2));
        previous(info);
    }));
}
