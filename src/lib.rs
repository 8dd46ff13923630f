//! # kakashi
//!
//! A tokio-native async logging runtime: structured records, request context on tokio
//! task-locals, and a pipeline that formats on the caller, hands whole lines to a tokio task
//! over a bounded channel, and writes them in batches with `AsyncWrite` — losing nothing by
//! default.
//!
//! ## Quick start
//!
//! ```
//! use kakashi::{info, warn, get_logger, LogContext, PipelineConfig, Writer};
//! use kakashi::format::Json;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), kakashi::Error> {
//! #   let dir = std::env::temp_dir().join(format!("kakashi-doc-{}", std::process::id()));
//!     let config = PipelineConfig::builder()
//!         .formatter(Json::new())
//! #       .writer(Writer::file(dir.join("app.log")))
//!         .writer(Writer::stdout())
//!         .build()?;
//!     let _guard = kakashi::try_init(config)?; // dropping the guard flushes
//!
//!     let log = get_logger("app");
//!     info!(log, "listening on {}", "127.0.0.1:3000"; workers = 4);
//!
//!     let ctx = LogContext::new().with_request_id("req-1").with_user_id("u-42");
//!     kakashi::context::scope(ctx, async {
//!         warn!(log, "slow query"; ms = 250); // carries request_id and user_id
//!     })
//!     .await;
//! #   let _ = std::fs::remove_dir_all(dir);
//!     Ok(())
//! }
//! ```
//!
//! ## Logger
//!
//! [`get_logger`] returns a named [`Logger`] on the global pipeline; [`Pipeline::logger`] one on
//! a given pipeline. The macros [`trace!`], [`debug!`], [`info!`], [`warn!`], [`error!`] and
//! [`critical!`] take an optional logger, a format string with arguments, and fields after a
//! `;`: `key = value` (typed), `key = %value` (`Display`), `key = ?value` (`Debug`),
//! `key = @error` (an error with its `source()` chain). The level check comes first and is one
//! relaxed atomic load: a disabled call formats nothing and evaluates no field.
//!
//! ## Records and context
//!
//! A [`LogRecord`] is borrowed on the caller's stack: timestamp, [`Level`], logger name,
//! message arguments, [`Field`]s, the current [`LogContext`], the call's [`Location`];
//! [`OwnedLogRecord`] keeps one. A [`LogContext`] (ip, access, request id, user and session
//! ids, service name, version, environment, custom fields) lives in a tokio task-local for
//! async code ([`context::scope`], [`WithLogContext`], [`context::spawn`]) and in a
//! thread-local for sync code ([`LogContext::enter`]). Nested scopes merge; the inner one wins.
//!
//! ## Pipeline
//!
//! A [`PipelineConfig`] is immutable once built: minimum level, [`Filter`]s, [`Enricher`]s, a
//! default [`Formatter`](format::Formatter), and [`Writer`]s that may carry their own level and
//! formatter. [`AsyncPipeline::start`] spawns the worker on the current runtime (or falls back
//! to a [`SyncPipeline`] without one); [`AsyncPipeline::with_worker`] hands the [`Worker`] back.
//!
//! ```text
//! call ─► level check ─► record ─► filters ─► enrichers + context
//!      ─► format into a thread-local BytesMut ─► Bytes ─► push into a preallocated ring
//!      ─► consumer role (the worker, or whoever must write now): take in order
//!      ─► one batch per writer ─► write, resuming from the byte offset
//! ```
//!
//! - **No per-record allocation, no lock, no syscall on the caller** while the worker keeps up:
//!   lines are slices of a reclaimed per-thread chunk, the hand-off is one compare-and-swap
//!   into a ring allocated once, and a busy worker drains on a tick instead of being woken per
//!   line.
//! - **One consumer at a time.** The worker, a caller that found the ring full, a flush and a
//!   teardown all write queued lines by taking one consumer role; what a holder has taken and
//!   not finished stays in the role's state, where the next holder finds it.
//! - **A flush barrier that counts.** Every queued line has a position; [`Pipeline::flush`]
//!   waits until the consumers have finished every position before the one it started at.
//!   [`flush`] and the guards drain from a helper thread, so they work when the worker cannot
//!   run (a `current_thread` runtime blocked in the caller).
//! - **Exact accounting.** Every accepted line ends in one bucket — written, fallback, dropped
//!   or failed — per writer ([`Stats`], [`WriterStats`]); a short write resumes from its offset,
//!   so no byte a destination accepted is written to it twice.
//! - **Lossless by default**: when the ring is full the caller takes the consumer role, writes
//!   the queued lines and then its own ([`Overflow::WriteInline`]); [`Overflow::Drop`] drops,
//!   counts per level, and writes an in-band `"N records dropped"` line.
//! - **Fallbacks**: no runtime → synchronous writer; pipeline closed or worker dropped (the
//!   runtime shut down) → callers write synchronously through the consumer role, after the
//!   queued lines; a failing writer → the error hook hears once, the unfinished lines go to the
//!   fallback writer (stderr).
//! - **Bounded teardown.** [`PipelineGuard::shutdown`] in async code, [`PipelineGuard::close`]
//!   or the guard's drop in sync code, [`flush`] before `std::process::exit`,
//!   [`install_panic_hook`]: each has a deadline that holds even when a write blocks, and hands
//!   back (or reports) what it could not write.
//! - Works on every tokio runtime: multi-thread, `current_thread` (`#[tokio::test]`), with or
//!   without the time driver.
//!
//! ## Formatters
//!
//! [`format::Logfmt`] (default), [`format::Json`] and [`format::Console`]. Each writes exactly
//! one line per record: control characters, ANSI escapes, Unicode line separators and bidi
//! overrides in messages, keys and values are escaped, never raw.
//! The values of fields named `password`, `authorization`, `cookie`, `set-cookie` or `token`
//! are written `[redacted]` ([`format::Redaction`] changes the names).
//!
//! ## Writers
//!
//! stdout, stderr, files (`O_APPEND`, parent directories created), in-memory
//! ([`write::MemoryWriter`]), any [`write::SyncWrite`], and any `AsyncWrite` such as a
//! `TcpStream` or `UnixStream` ([`Writer::async_writer`]).
//! With the `syslog` feature, `Writer::syslog` sends each record as one RFC 5424 message to a
//! collector over UDP, TCP, RELP or a Unix datagram socket ([module docs](crate::syslog)).
//!
//! Rolling files ([`write::rolling::RollingFile`], [`Writer::rolling`]) rotate by size and
//! time, keep a bounded number, age or size of files, compress them off the logging path,
//! and reopen on request, on SIGHUP, or when logrotate moves the file away.
//!
//! ## Integrations
//!
//! With the `tower` feature, [`tower::RequestLogLayer`](crate::tower) sets each request's
//! context (request id, client IP, access line) for the whole request future and writes one
//! access record per request, for axum and plain hyper servers alike; its module docs show an
//! axum service.
//!
//! What dependencies log through `tracing` or `log` (hyper, tower-http, sqlx, reqwest,
//! `#[tracing::instrument]`) reaches kakashi through its bridges: with the `tracing` feature,
//! `kakashi::tracing::layer()` is a `tracing_subscriber` layer (span fields flattened into each
//! record, the request context added); with the `log` feature, `kakashi::log::init()` installs
//! a `log::Log`. Both obey the same levels and [directives] as kakashi's own loggers.
//!
//! ## Setup
//!
//! [`init`] / [`try_init`] install the global pipeline; [`Preset`] gives development,
//! production and testing configurations; [`init_from_env`] reads the environment:
//!
//! | variable | what it does | when unset |
//! |---|---|---|
//! | `KAKASHI_ENV` | picks a [`Preset`] | info to stdout: colour console on a terminal, logfmt otherwise |
//! | `KAKASHI_LEVEL` | the minimum level | the preset's |
//! | `KAKASHI_LOG`, then `RUST_LOG` | level [directives]: `warn,app::db=debug` | each logger follows its pipeline |
//! | `NO_COLOR` | no colours | colours only on a terminal |
//!
//! A bad value, or one that is not valid UTF-8, is an error naming the variable.
//!
//! ## Levels
//!
//! One level system: a [`Logger`]'s own level (if set), else the [directives] for
//! its name (or, for the logger-less macros, the module path), else its pipeline's minimum
//! level. Directives can be reloaded at run time without a lock on the logging path.
//!
//! ## Tests
//!
//! [`testing::capture`] gives each test its own captured lines, parsed back into records; it
//! works with `cargo test`'s parallel threads and with `#[tokio::test]`, in every test.
//!
//! ## Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `tower` | a tower `Layer` for axum and hyper: request context and access records |
//! | `axum` | `tower`, plus axum's route template (`MatchedPath`) and client address (`ConnectInfo`) read by the layer |
//! | `tracing` | a `tracing_subscriber` `Layer` writing `tracing` events (with their spans' fields) through kakashi ([module docs](crate::tracing)) |
//! | `gzip` | gzip compression of rotated [rolling files](write::rolling) |
//! | `sighup` | [rolling files](write::rolling) reopen on SIGHUP (unix) |
//! | `log` | a `log::Log` bridge writing `log` records (with their key-values) through kakashi ([module docs](mod@crate::log)) |
//! | `syslog` | a syslog writer: RFC 5424 over UDP, TCP and RELP, RFC 3164 to `/dev/log`, with a bounded backlog and reconnects ([module docs](crate::syslog)) |
//!
//! ## Minimum Rust version
//!
//! Rust 1.82.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[cfg(any(feature = "tracing", feature = "log"))]
mod bridge;
pub mod context;
pub mod directives;
mod error;
mod field;
pub mod format;
mod global;
mod level;
mod logger;
mod macros;
mod pipeline;
mod preset;
mod record;
pub mod testing;
pub mod write;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub mod tracing;

#[cfg(feature = "log")]
#[cfg_attr(docsrs, doc(cfg(feature = "log")))]
pub mod log;

#[cfg(feature = "syslog")]
#[cfg_attr(docsrs, doc(cfg(feature = "syslog")))]
pub mod syslog;

pub use context::{LogContext, WithLogContext};
pub use error::{Error, ErrorKind};
pub use field::{Field, OwnedValue, ToValue, Value};
pub use global::{flush, init, init_from_env, install_panic_hook, try_init};
pub use level::{Level, ParseLevelError};
pub use logger::{get_logger, Logger};
pub use pipeline::{
    AsyncPipeline, Enricher, ErrorHook, Filter, Overflow, Pipeline, PipelineConfig,
    PipelineConfigBuilder, PipelineError, PipelineGuard, Stats, SyncPipeline, Worker, WriterStats,
};
pub use preset::{testing_memory, ParsePresetError, Preset};
pub use record::{Location, LogRecord, OwnedLogRecord, ThreadInfo};
pub use write::Writer;

/// Not public API: what the macros expand to.
#[doc(hidden)]
pub mod __private {
    use std::fmt;

    use crate::{Field, Level, Location};

    pub use crate::directives::Callsite;

    pub fn global_log(
        level: Level,
        logger: &str,
        message: fmt::Arguments<'_>,
        fields: &[Field<'_>],
        location: &Location,
    ) {
        crate::global::pipeline().log(level, logger, message, fields, location);
    }
}
