//! The immutable pipeline configuration and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::field::{Field, OwnedValue, Value};
use crate::format::{Formatter, Logfmt};
use crate::level::Level;
use crate::record::{process_id, LogRecord, ThreadInfo};
use crate::write::{StderrWriter, SyncWrite, Writer};

/// What the async pipeline does when its queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// The caller writes its own line synchronously to the same destination (the default):
    /// nothing is lost, memory stays bounded, and nobody waits on the worker, so it cannot
    /// deadlock, not even on a `current_thread` runtime. The caller pays the I/O. If no other
    /// thread is taking from the queue at that moment, it first writes the queued lines (up to
    /// 4,096, in one batch per writer) so that they precede its own; otherwise its line can
    /// reach the destination before older queued lines (each line stays whole). With an
    /// [`async_writer`](crate::Writer::async_writer) that has no sync twin, the caller's own
    /// line goes to the fallback writer instead, and queued lines are left to the worker.
    #[default]
    WriteInline,
    /// The line is dropped and counted per level; the worker then writes an in-band
    /// `"N records dropped"` line, in the active format, to each writer.
    Drop,
}

/// A predicate on records: only records for which every filter returns true are written.
///
/// # Examples
///
/// ```
/// use kakashi::{Filter, Level, PipelineConfig};
///
/// let config = PipelineConfig::builder()
///     .filter(Filter::logger_prefix("app"))
///     .filter(Filter::new("not noisy", |r| r.field("noisy").is_none()))
///     .build()
///     .unwrap();
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct Filter {
    name: Arc<str>,
    predicate: Arc<dyn Fn(&LogRecord<'_>) -> bool + Send + Sync>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Filter({})", self.name)
    }
}

impl Filter {
    /// A filter from a closure; `name` appears in `Debug` output.
    pub fn new(
        name: &str,
        predicate: impl Fn(&LogRecord<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        Filter {
            name: Arc::from(name),
            predicate: Arc::new(predicate),
        }
    }

    /// Keeps records at `level` or above.
    pub fn min_level(level: Level) -> Self {
        Filter::new(&format!("level >= {level}"), move |r| r.level() >= level)
    }

    /// Keeps records whose logger name is `prefix` or starts with `prefix::`.
    pub fn logger_prefix(prefix: &str) -> Self {
        let prefix: Arc<str> = Arc::from(prefix);
        let name = format!("logger in {prefix}");
        Filter::new(&name, move |r| logger_in(r.logger(), &prefix))
    }

    /// Drops records whose logger name is `prefix` or starts with `prefix::`.
    pub fn deny_logger_prefix(prefix: &str) -> Self {
        let prefix: Arc<str> = Arc::from(prefix);
        let name = format!("logger not in {prefix}");
        Filter::new(&name, move |r| !logger_in(r.logger(), &prefix))
    }

    /// Keeps records that have a call-site field `key` whose value, written as text, is `value`.
    pub fn field_equals(key: &str, value: impl Into<OwnedValue>) -> Self {
        let key: Arc<str> = Arc::from(key);
        let value: OwnedValue = value.into();
        let name = format!("{key} == {value:?}");
        Filter::new(&name, move |r| {
            r.field(&key)
                .is_some_and(|v| values_equal(&v, &value.as_value()))
        })
    }

    pub(crate) fn allows(&self, record: &LogRecord<'_>) -> bool {
        (self.predicate)(record)
    }
}

fn logger_in(logger: &str, prefix: &str) -> bool {
    logger == prefix
        || (logger.starts_with(prefix) && logger[prefix.len()..].starts_with("::"))
        || prefix.is_empty()
}

/// Equal when both values write the same text (so `200u16` equals `200i64`), and a string
/// only ever equals a string.
fn values_equal(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Str(_), _) | (_, Value::Str(_)) => false,
        _ => a.to_owned_value() == b.to_owned_value() || value_text(a) == value_text(b),
    }
}

fn value_text(v: &Value<'_>) -> String {
    match v.to_owned_value() {
        OwnedValue::Str(s) => s.to_string(),
        OwnedValue::I64(n) => n.to_string(),
        OwnedValue::U64(n) => n.to_string(),
        OwnedValue::I128(n) => n.to_string(),
        OwnedValue::U128(n) => n.to_string(),
        OwnedValue::F64(n) => n.to_string(),
        OwnedValue::Bool(b) => b.to_string(),
        OwnedValue::Null => "null".to_owned(),
    }
}

/// Adds fields to every record: the service name, host, process id, thread, or a constant.
///
/// # Examples
///
/// ```
/// use kakashi::{Enricher, PipelineConfig};
///
/// let config = PipelineConfig::builder()
///     .enricher(Enricher::service_name("billing"))
///     .enricher(Enricher::pid())
///     .enricher(Enricher::thread())
///     .build()
///     .unwrap();
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct Enricher {
    kind: EnricherKind,
}

#[derive(Clone, Debug)]
enum EnricherKind {
    Constant(Arc<str>, OwnedValue),
    Pid,
    Thread,
}

impl Enricher {
    /// A constant field.
    pub fn field(key: &str, value: impl Into<OwnedValue>) -> Self {
        Enricher {
            kind: EnricherKind::Constant(Arc::from(key), value.into()),
        }
    }

    /// `service=<name>`.
    pub fn service_name(name: &str) -> Self {
        Enricher::field("service", name)
    }

    /// `host=<hostname>`, read once from `/proc/sys/kernel/hostname` or `$HOSTNAME`
    /// (`unknown` when neither is there).
    pub fn hostname() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".to_owned());
        Enricher::field("host", host)
    }

    /// `pid=<process id>`.
    pub fn pid() -> Self {
        Enricher {
            kind: EnricherKind::Pid,
        }
    }

    /// `thread_id=<n>` and, when the thread has a name, `thread=<name>`.
    pub fn thread() -> Self {
        Enricher {
            kind: EnricherKind::Thread,
        }
    }
}

/// The most fields enrichers may add to one record.
pub(crate) const MAX_ENRICHED: usize = 16;

/// Enrichers, resolved so that the logging path does no work beyond filling a stack array.
#[derive(Clone, Debug, Default)]
pub(crate) struct Enrichment {
    constants: Vec<(Arc<str>, OwnedValue)>,
    pid: bool,
    thread: bool,
}

impl Enrichment {
    /// Calls `f` with the enriched fields for a record logged on this thread.
    pub(crate) fn with_fields<R>(&self, mut f: impl FnMut(&[Field<'_>]) -> R) -> R {
        if self.constants.is_empty() && !self.pid && !self.thread {
            return f(&[]);
        }
        let mut fields = [Field::new("", Value::Null); MAX_ENRICHED];
        let mut n = 0;
        for (key, value) in &self.constants {
            fields[n] = Field::new(key, value.as_value());
            n += 1;
        }
        if self.pid {
            fields[n] = Field::new("pid", Value::U64(u64::from(process_id())));
            n += 1;
        }
        if self.thread {
            // Borrow the thread's name where it lives instead of copying it per record.
            return ThreadInfo::with_current(|t| {
                let mut fields = fields;
                let mut n = n;
                fields[n] = Field::new("thread_id", Value::U64(t.id()));
                n += 1;
                if let Some(name) = t.name() {
                    fields[n] = Field::new("thread", Value::Str(name));
                    n += 1;
                }
                f(&fields[..n])
            });
        }
        f(&fields[..n])
    }
}

/// Something that went wrong in the background, handed to the error hook.
#[derive(Debug)]
#[non_exhaustive]
pub enum PipelineError {
    /// Writing to a destination failed; the lines went to the fallback writer.
    Write {
        /// The destination (`file /var/log/app.log`, `stdout`, …).
        writer: String,
        /// The I/O error.
        error: std::io::Error,
        /// How many lines were affected by this failure.
        lines: u64,
    },
    /// The fallback writer failed too: these lines are lost.
    Fallback {
        /// The I/O error.
        error: std::io::Error,
        /// How many lines were lost.
        lines: u64,
    },
    /// A flush or shutdown did not finish within its deadline.
    Timeout {
        /// What timed out.
        what: &'static str,
        /// The deadline, counted from the start of the call.
        deadline: Duration,
        /// Lines not finished when it passed (lost if the process exits now).
        lines: u64,
    },
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Write {
                writer,
                error,
                lines,
            } => write!(
                f,
                "kakashi: writing {lines} line(s) to {writer} failed: {error}; \
                 they went to the fallback writer"
            ),
            PipelineError::Fallback { error, lines } => write!(
                f,
                "kakashi: the fallback writer failed too ({error}); {lines} line(s) lost"
            ),
            PipelineError::Timeout {
                what,
                deadline,
                lines,
            } => write!(
                f,
                "kakashi: {what} did not finish within {deadline:?}: \
                 {lines} line(s) not written"
            ),
        }
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PipelineError::Write { error, .. } | PipelineError::Fallback { error, .. } => {
                Some(error)
            }
            PipelineError::Timeout { .. } => None,
        }
    }
}

/// The function that hears about background failures.
pub type ErrorHook = Arc<dyn Fn(&PipelineError) + Send + Sync>;

pub(crate) fn default_error_hook() -> ErrorHook {
    Arc::new(|e: &PipelineError| {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), "{e}");
    })
}

/// An immutable pipeline configuration. Build it with [`PipelineConfig::builder`].
///
/// Defaults:
///
/// | setting | default |
/// |---|---|
/// | `min_level` | [`Level::Info`] |
/// | `formatter` | [`Logfmt`] |
/// | `writers` | stdout |
/// | `fallback` | stderr |
/// | `error_hook` | one line on stderr |
/// | `queue_capacity` | 32,768 lines (rounded up to a power of two; the ring is allocated once, about 56 bytes a line) |
/// | `overflow` | [`Overflow::WriteInline`] (lossless) |
/// | `batch_bytes` | 64 KiB: a batch is written once it is this large |
/// | `flush_interval` | 1 ms: while records keep coming, the worker drains the queue and writes a batch this often, instead of being woken for each record |
/// | `drop_timeout` | 2 s: the deadline of dropping (or [`close`](crate::PipelineGuard::close)-ing) the guard, and of a worker dropped with its runtime; it holds even when a write blocks |
///
/// The longest a line waits: when the worker is idle it is woken and writes the line at once;
/// while it is busy, a line waits at most one `flush_interval` plus the time it takes to write
/// the batch before it. A batch is also written as soon as it reaches `batch_bytes`. Every batch
/// is flushed to the destination (and its errors seen) before the next one is written.
///
/// # Examples
///
/// ```
/// use kakashi::format::Json;
/// use kakashi::{Level, PipelineConfig, Writer};
///
/// let config = PipelineConfig::builder()
///     .min_level(Level::Debug)
///     .formatter(Json::new())
///     .writer(Writer::stdout())
///     .build()
///     .expect("valid config");
/// assert_eq!(config.min_level(), Level::Debug);
/// ```
#[derive(Clone)]
pub struct PipelineConfig {
    pub(crate) min_level: Level,
    pub(crate) filters: Vec<Filter>,
    pub(crate) enrichment: Enrichment,
    pub(crate) formatter: Arc<dyn Formatter>,
    pub(crate) writers: Vec<Writer>,
    pub(crate) fallback: Arc<dyn SyncWrite>,
    pub(crate) error_hook: ErrorHook,
    pub(crate) queue_capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) batch_bytes: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) drop_timeout: Duration,
}

impl fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineConfig")
            .field("min_level", &self.min_level)
            .field("filters", &self.filters)
            .field("enrichment", &self.enrichment)
            .field("formatter", &self.formatter)
            .field("writers", &self.writers)
            .field("fallback", &self.fallback)
            .field("queue_capacity", &self.queue_capacity)
            .field("overflow", &self.overflow)
            .field("batch_bytes", &self.batch_bytes)
            .field("flush_interval", &self.flush_interval)
            .field("drop_timeout", &self.drop_timeout)
            .finish_non_exhaustive()
    }
}

impl PipelineConfig {
    /// A builder with the defaults in the table above.
    pub fn builder() -> PipelineConfigBuilder {
        PipelineConfigBuilder::default()
    }

    /// The pipeline's minimum level.
    pub fn min_level(&self) -> Level {
        self.min_level
    }

    /// The default formatter.
    pub fn formatter(&self) -> &Arc<dyn Formatter> {
        &self.formatter
    }

    /// The writers.
    pub fn writers(&self) -> &[Writer] {
        &self.writers
    }

    /// The overflow policy.
    pub fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// The queue's capacity, in lines.
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }
}

/// Builds a [`PipelineConfig`]; every setter takes and returns the builder by value.
#[derive(Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct PipelineConfigBuilder {
    min_level: Option<Level>,
    filters: Vec<Filter>,
    enrichers: Vec<Enricher>,
    formatter: Option<Arc<dyn Formatter>>,
    writers: Vec<Writer>,
    fallback: Option<Arc<dyn SyncWrite>>,
    error_hook: Option<ErrorHook>,
    queue_capacity: Option<usize>,
    overflow: Option<Overflow>,
    batch_bytes: Option<usize>,
    flush_interval: Option<Duration>,
    drop_timeout: Option<Duration>,
}

impl fmt::Debug for PipelineConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineConfigBuilder")
            .field("min_level", &self.min_level)
            .field("writers", &self.writers)
            .finish_non_exhaustive()
    }
}

impl PipelineConfigBuilder {
    /// Records below this level are not logged (default [`Level::Info`]).
    pub fn min_level(mut self, level: Level) -> Self {
        self.min_level = Some(level);
        self
    }

    /// Adds a filter; a record must pass every filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filters.push(filter);
        self
    }

    /// Adds an enricher.
    pub fn enricher(mut self, enricher: Enricher) -> Self {
        self.enrichers.push(enricher);
        self
    }

    /// The formatter for writers that have none of their own (default [`Logfmt`]).
    pub fn formatter(mut self, formatter: impl Formatter) -> Self {
        self.formatter = Some(Arc::new(formatter));
        self
    }

    /// The default formatter, shared.
    pub fn formatter_arc(mut self, formatter: Arc<dyn Formatter>) -> Self {
        self.formatter = Some(formatter);
        self
    }

    /// Adds a writer (default: stdout when none is added).
    pub fn writer(mut self, writer: Writer) -> Self {
        self.writers.push(writer);
        self
    }

    /// Where lines go when their writer fails (default: stderr).
    pub fn fallback(mut self, fallback: Arc<dyn SyncWrite>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Called for each background failure (default: one line on stderr). It must not log
    /// through the same pipeline.
    pub fn error_hook(mut self, hook: impl Fn(&PipelineError) + Send + Sync + 'static) -> Self {
        self.error_hook = Some(Arc::new(hook));
        self
    }

    /// The async queue's capacity in lines (default 32,768; at least 1).
    pub fn queue_capacity(mut self, lines: usize) -> Self {
        self.queue_capacity = Some(lines);
        self
    }

    /// What happens when the queue is full (default [`Overflow::WriteInline`]).
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.overflow = Some(policy);
        self
    }

    /// The batch size at which the worker writes (default 64 KiB; 1 KiB to 1 MiB).
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = Some(bytes);
        self
    }

    /// How often a busy worker drains the queue and writes a batch (default 1 ms; more than
    /// zero and at most 1 s).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = Some(interval);
        self
    }

    /// The deadline of dropping or closing the guard (default 2 s): past it, what is not
    /// written is reported once and left as `pending` in the final stats.
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = Some(timeout);
        self
    }

    /// Checks the settings and builds the configuration.
    ///
    /// # Errors
    ///
    /// [`Error`] when a setting is out of range (a zero queue capacity, a batch size outside
    /// 1 KiB..=1 MiB, a flush interval of zero or above 1 s) or when
    /// enrichers would add more than 16 fields.
    pub fn build(self) -> Result<PipelineConfig, Error> {
        let queue_capacity = self.queue_capacity.unwrap_or(32_768);
        if queue_capacity == 0 {
            return Err(Error::config("queue_capacity must be at least 1"));
        }
        // tokio's bounded channel accepts at most this many permits.
        if queue_capacity > (usize::MAX >> 3) {
            return Err(Error::config("queue_capacity is too large"));
        }
        let batch_bytes = self.batch_bytes.unwrap_or(64 * 1024);
        if !(1024..=1024 * 1024).contains(&batch_bytes) {
            return Err(Error::config(format!(
                "batch_bytes must be between 1024 and 1048576, got {batch_bytes}"
            )));
        }
        let flush_interval = self.flush_interval.unwrap_or(Duration::from_millis(1));
        if flush_interval.is_zero() || flush_interval > Duration::from_secs(1) {
            return Err(Error::config(format!(
                "flush_interval must be more than 0 and at most 1s, got {flush_interval:?}"
            )));
        }
        let mut enrichment = Enrichment::default();
        let mut count = 0;
        for e in self.enrichers {
            match e.kind {
                EnricherKind::Constant(k, v) => {
                    enrichment.constants.push((k, v));
                    count += 1;
                }
                EnricherKind::Pid => {
                    count += usize::from(!enrichment.pid);
                    enrichment.pid = true;
                }
                EnricherKind::Thread => {
                    count += if enrichment.thread { 0 } else { 2 };
                    enrichment.thread = true;
                }
            }
        }
        if count > MAX_ENRICHED {
            return Err(Error::config(format!(
                "enrichers add {count} fields; at most {MAX_ENRICHED} are supported"
            )));
        }
        let mut writers = self.writers;
        if writers.is_empty() {
            writers.push(Writer::stdout());
        }
        Ok(PipelineConfig {
            min_level: self.min_level.unwrap_or(Level::Info),
            filters: self.filters,
            enrichment,
            formatter: self.formatter.unwrap_or_else(|| Arc::new(Logfmt::new())),
            writers,
            fallback: self
                .fallback
                .unwrap_or_else(|| Arc::new(StderrWriter::default())),
            error_hook: self.error_hook.unwrap_or_else(default_error_hook),
            queue_capacity,
            overflow: self.overflow.unwrap_or_default(),
            batch_bytes,
            flush_interval,
            drop_timeout: self.drop_timeout.unwrap_or(Duration::from_secs(2)),
        })
    }
}
