//! Peer comparison: kakashi against tracing, slog, ftlog and a naive mutex-guarded writer.
//!
//! Every contender logs the same record to a file in a fresh temporary directory: the message
//! `request handled` with five fields (`user_id=42`, `path="/api/v1/items"`, `status=200`,
//! `latency_ms=3.25`, `trace=000000000000002a`: a `{:016x}` through `Display`, as
//! `%format_args!` gives it) and an RFC 3339 UTC timestamp, in each logger's plain-text
//! format. The field values reach the call site through [`std::hint::black_box`], so that no
//! logger gets to format them at compile time.
//!
//! # Contenders
//!
//! | key | setup |
//! |---|---|
//! | `kakashi` | `AsyncPipeline` with its defaults: logfmt, `Writer::file`, lossless overflow (`WriteInline`) |
//! | `tracing-lossless` | `tracing-subscriber` fmt (no ANSI) → `tracing-appender` `non_blocking`, `lossy(false)`, to a never-rotating file appender |
//! | `tracing-lossy` | the same with `tracing-appender`'s default (lossy) mode |
//! | `slog` | `slog-async` with its defaults (128 records, drop and report) → `slog-term` `FullFormat` on a `PlainSyncDecorator` over the file |
//! | `ftlog` | ftlog's defaults (100,000 records, drop when full) with a `FileAppender`, UTC and an RFC 3339 time format |
//! | `baseline` | `Mutex<BufWriter<File>>` and `write!`, synchronous, on the caller |
//!
//! # Isolation
//!
//! tracing, `log` (ftlog) and friends install process-global state, so each (contender,
//! scenario, run) executes in a child process: this binary re-executes itself as
//! `peers child <contender> <scenario> <records>`. The child sets its logger up, logs 1,000
//! warm-up records (with a different `path`, so they are not counted) and sleeps 100 ms, runs
//! the scenario, flushes and stops its logger, counts the measured records in the file, and
//! prints one `RESULT key=value …` line (and one `SAMPLE` line with a logged line) for the
//! parent. Every child builds the same tokio runtime (multi-thread, 2 workers, all drivers):
//! kakashi's worker task runs on it, and the task scenario runs on it for every contender.
//!
//! # Scenarios
//!
//! - `threads-1`, `threads-2`, `threads-4`: producer cost. N records split over 1, 2 or 4 OS
//!   threads, released together; the figure is the producers' wall time (release to last join)
//!   divided by N.
//! - `tasks-64`: the same with 64 tokio tasks on the 2-worker runtime, each logging N/64
//!   records and calling `tokio::task::yield_now` every 100 records.
//! - end-to-end: taken from each `threads-*` and `tasks-64` run. The clock runs from the producers' release
//!   until the logger's flush/shutdown has returned; then the lines in the file are counted.
//!   The figure is lines on disk per second; logged minus found is the loss.
//! - `paced`: latency. One thread logs N records at 200,000 records/s, spinning until each
//!   record's scheduled time; `Instant` around the logging call alone gives per-call latency
//!   (p50, p99, p99.9, max; the two `Instant::now` calls are included).
//!
//! Each child run is repeated `PEERS_RUNS` times (default 5), interleaved across contenders;
//! the tables show the median of each figure over the runs, and the ratio of that median to
//! tracing-appender lossless. `PEERS_RECORDS` sets N (default 200,000). `PEERS_CONTENDERS` and
//! `PEERS_SCENARIOS` (comma-separated keys, such as `kakashi,tracing-lossless` and
//! `threads-1,threads-2`) run only those, and the tables show only them.
//!
//! ```text
//! cargo run --release -p kakashi-bench --bin peers
//! PEERS_RECORDS=20000 PEERS_RUNS=1 cargo run --release -p kakashi-bench --bin peers
//! ```

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Runtime;

/// Records per scenario unless `PEERS_RECORDS` says otherwise.
const DEFAULT_RECORDS: u64 = 200_000;
/// Runs per (contender, scenario) unless `PEERS_RUNS` says otherwise.
const DEFAULT_RUNS: usize = 5;
/// Records logged (and not counted) before a scenario starts.
const WARMUP_RECORDS: u64 = 1_000;
/// Pause after the warm-up, so that backends start the scenario with an empty queue.
const WARMUP_PAUSE: Duration = Duration::from_millis(100);
/// Tasks in the `tasks-64` scenario.
const TASKS: u64 = 64;
/// A task yields after this many records.
const YIELD_EVERY: u64 = 100;
/// Worker threads of the tokio runtime every child builds.
const RUNTIME_WORKERS: usize = 2;
/// The paced producer's rate.
const PACED_RATE: u64 = 200_000;
/// A child that takes longer than this is killed and reported as failed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);
/// The log file's name inside a child's directory.
const LOG_FILE: &str = "peers.log";
/// The `path` field of measured records; the child counts the lines that contain it.
const MEASURED_PATH: &str = "/api/v1/items";
/// The `path` field of warm-up records.
const WARMUP_PATH: &str = "/warm-up";

// ---------------------------------------------------------------------------------------------
// What is logged
// ---------------------------------------------------------------------------------------------

/// The five fields of a record.
#[derive(Clone, Copy, Debug)]
struct Fields {
    user_id: i64,
    path: &'static str,
    status: i64,
    latency_ms: f64,
    /// Written as 16 hex digits.
    trace: u64,
}

impl Fields {
    const MEASURED: Fields = Fields {
        user_id: 42,
        path: MEASURED_PATH,
        status: 200,
        latency_ms: 3.25,
        trace: 42,
    };

    const WARMUP: Fields = Fields {
        path: WARMUP_PATH,
        ..Fields::MEASURED
    };
}

/// One contender's logging call. The message is the literal `request handled` in every
/// implementation.
trait Emit: Send + Sync + 'static {
    fn emit(&self, fields: &Fields);
}

/// Logs the measured record; `black_box` hides the values from the optimiser.
#[inline(always)]
fn emit_measured<E: Emit>(emitter: &E) {
    emitter.emit(std::hint::black_box(&Fields::MEASURED));
}

struct KakashiEmitter(kakashi::Logger, kakashi::Pipeline);

impl KakashiEmitter {
    fn pipeline(&self) -> &kakashi::Pipeline {
        &self.1
    }
}

impl Emit for KakashiEmitter {
    #[inline]
    fn emit(&self, f: &Fields) {
        kakashi::info!(self.0, "request handled"; user_id = f.user_id, path = f.path,
            status = f.status, latency_ms = f.latency_ms,
            trace = %format_args!("{:016x}", f.trace));
    }
}

/// tracing's macros go to the global subscriber.
struct TracingEmitter;

impl Emit for TracingEmitter {
    #[inline]
    fn emit(&self, f: &Fields) {
        tracing::info!(
            user_id = f.user_id,
            path = f.path,
            status = f.status,
            latency_ms = f.latency_ms,
            trace = %format_args!("{:016x}", f.trace),
            "request handled"
        );
    }
}

struct SlogEmitter(slog::Logger);

impl Emit for SlogEmitter {
    #[inline]
    fn emit(&self, f: &Fields) {
        slog::info!(self.0, "request handled"; "user_id" => f.user_id, "path" => f.path,
            "status" => f.status, "latency_ms" => f.latency_ms,
            "trace" => %format_args!("{:016x}", f.trace));
    }
}

/// ftlog's macros go to the global `log` logger. ftlog's formatter ignores `log`'s key-values,
/// so the fields are part of the message, formatted on the caller as ftlog does.
struct FtlogEmitter;

impl Emit for FtlogEmitter {
    #[inline]
    fn emit(&self, f: &Fields) {
        ftlog::info!(
            "request handled user_id={} path={} status={} latency_ms={} trace={:016x}",
            f.user_id,
            f.path,
            f.status,
            f.latency_ms,
            f.trace
        );
    }
}

/// The naive baseline: format with `write!` into a shared `BufWriter` under a mutex.
struct BaselineEmitter(Mutex<BufWriter<File>>);

impl Emit for BaselineEmitter {
    #[inline]
    fn emit(&self, f: &Fields) {
        let now = Rfc3339(SystemTime::now());
        let mut out = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A failed write shows up as lines missing from the file.
        let _ = writeln!(
            out,
            "ts={now} level=info logger=bench msg=\"request handled\" user_id={} path={} \
             status={} latency_ms={} trace={:016x}",
            f.user_id, f.path, f.status, f.latency_ms, f.trace
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------------------------

/// Displays a point in time as RFC 3339 UTC with microseconds: `2024-05-06T07:08:09.123456Z`.
struct Rfc3339(SystemTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let of_day = secs % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
            of_day / 3_600,
            of_day / 60 % 60,
            of_day % 60,
            since.subsec_micros()
        )
    }
}

/// Year, month and day of a day counted from 1970-01-01, in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days` algorithm: 400-year eras, years starting in March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// slog-term's timestamp hook, writing the same format as [`Rfc3339`].
fn slog_timestamp(out: &mut dyn io::Write) -> io::Result<()> {
    write!(out, "{}", Rfc3339(SystemTime::now()))
}

// ---------------------------------------------------------------------------------------------
// Contenders and scenarios
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Contender {
    Kakashi,
    KakashiTracing,
    TracingLossless,
    TracingLossy,
    Slog,
    Ftlog,
    Baseline,
}

impl Contender {
    const ALL: [Contender; 7] = [
        Contender::Kakashi,
        Contender::KakashiTracing,
        Contender::TracingLossless,
        Contender::TracingLossy,
        Contender::Slog,
        Contender::Ftlog,
        Contender::Baseline,
    ];

    /// Every ratio is taken against this one.
    const REFERENCE: Contender = Contender::TracingLossless;

    fn key(self) -> &'static str {
        match self {
            Contender::Kakashi => "kakashi",
            Contender::KakashiTracing => "kakashi-tracing",
            Contender::TracingLossless => "tracing-lossless",
            Contender::TracingLossy => "tracing-lossy",
            Contender::Slog => "slog",
            Contender::Ftlog => "ftlog",
            Contender::Baseline => "baseline",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Contender::Kakashi => "kakashi (AsyncPipeline, lossless)",
            Contender::KakashiTracing => "tracing macros -> kakashi Layer",
            Contender::TracingLossless => "tracing + appender (lossless)",
            Contender::TracingLossy => "tracing + appender (lossy, default)",
            Contender::Slog => "slog + slog-async (default, drops)",
            Contender::Ftlog => "ftlog (default, drops)",
            Contender::Baseline => "baseline Mutex<BufWriter<File>>",
        }
    }

    fn parse(key: &str) -> Option<Contender> {
        Contender::ALL.into_iter().find(|c| c.key() == key)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Scenario {
    Threads(u64),
    Tasks,
    Paced,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::Threads(1),
        Scenario::Threads(2),
        Scenario::Threads(4),
        Scenario::Tasks,
        Scenario::Paced,
    ];

    fn key(self) -> String {
        match self {
            Scenario::Threads(n) => format!("threads-{n}"),
            Scenario::Tasks => format!("tasks-{TASKS}"),
            Scenario::Paced => "paced".to_owned(),
        }
    }

    fn title(self) -> String {
        match self {
            Scenario::Threads(1) => "a. producer cost, 1 OS thread".to_owned(),
            Scenario::Threads(n) => format!("a. producer cost, {n} OS threads"),
            Scenario::Tasks => format!(
                "a. producer cost, {TASKS} tokio tasks on a {RUNTIME_WORKERS}-worker runtime \
                 (yield every {YIELD_EVERY} records)"
            ),
            Scenario::Paced => format!(
                "c. per-call latency, 1 thread paced at {} records/s",
                thousands(PACED_RATE)
            ),
        }
    }

    fn parse(key: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.key() == key)
    }
}

// ---------------------------------------------------------------------------------------------
// Child: one contender, one scenario
// ---------------------------------------------------------------------------------------------

/// Counters a contender reports after its flush (kakashi's stats, tracing's dropped lines).
type Extras = Vec<(&'static str, u64)>;

/// Flushes and stops a contender's logger; runs after the producers are done.
type Finish = Box<dyn FnOnce(&Runtime) -> Result<Extras, String>>;

/// A contender ready to log: the call, and how to flush and stop it.
struct Started<E> {
    emitter: Arc<E>,
    finish: Finish,
}

fn start_kakashi(path: &Path, rt: &Runtime) -> Result<Started<KakashiEmitter>, String> {
    let config = kakashi::PipelineConfig::builder()
        .writer(kakashi::Writer::file(path))
        .build()
        .map_err(|e| format!("kakashi config: {e}"))?;
    let (pipeline, guard) = {
        let _context = rt.enter();
        kakashi::AsyncPipeline::start(config).map_err(|e| format!("kakashi start: {e}"))?
    };
    if !pipeline.is_async() {
        return Err("kakashi started a synchronous pipeline (no runtime?)".to_owned());
    }
    let emitter = Arc::new(KakashiEmitter(pipeline.logger("bench"), pipeline.clone()));
    let finish = Box::new(move |rt: &Runtime| {
        let stats = rt.block_on(guard.shutdown());
        let clean = stats.is_settled();
        Ok(vec![
            ("accepted", stats.accepted),
            ("written", stats.written),
            ("inline", stats.written_inline),
            ("dropped", stats.dropped),
            ("fallback", stats.written_via_fallback),
            ("lost", stats.failed + stats.pending),
            ("shutdown_clean", u64::from(clean)),
        ])
    });
    Ok(Started { emitter, finish })
}

/// `tracing::info!` through kakashi's `tracing` Layer into an `AsyncPipeline` (lossless).
fn start_kakashi_tracing(path: &Path, rt: &Runtime) -> Result<Started<TracingEmitter>, String> {
    use tracing_subscriber::layer::SubscriberExt as _;
    let Started { emitter, finish } = start_kakashi(path, rt)?;
    let subscriber =
        tracing_subscriber::registry().with(kakashi::tracing::layer_for(emitter.pipeline()));
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| format!("installing the subscriber: {e}"))?;
    Ok(Started {
        emitter: Arc::new(TracingEmitter),
        finish,
    })
}

fn start_tracing(dir: &Path, lossy: bool) -> Result<Started<TracingEmitter>, String> {
    let appender = tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::NEVER)
        .filename_prefix(LOG_FILE)
        .build(dir)
        .map_err(|e| format!("tracing-appender file: {e}"))?;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(lossy)
        .finish(appender);
    let errors = writer.error_counter();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| format!("tracing subscriber: {e}"))?;
    let finish = Box::new(move |_: &Runtime| {
        // Sends the shutdown message and waits (at most 1 s) for the worker to write the rest.
        drop(guard);
        Ok(vec![("dropped", errors.dropped_lines() as u64)])
    });
    Ok(Started {
        emitter: Arc::new(TracingEmitter),
        finish,
    })
}

fn start_slog(path: &Path) -> Result<Started<SlogEmitter>, String> {
    use slog::Drain;

    let file = File::create(path).map_err(|e| format!("slog file {}: {e}", path.display()))?;
    let decorator = slog_term::PlainSyncDecorator::new(file);
    let format = slog_term::FullFormat::new(decorator)
        .use_custom_timestamp(slog_timestamp)
        .use_original_order()
        .build()
        .fuse();
    let (drain, guard) = slog_async::Async::new(format).build_with_guard();
    let logger = slog::Logger::root(drain.fuse(), slog::o!());
    let finish = Box::new(move |_: &Runtime| {
        // Sends the finish message behind the queued records and joins the worker thread.
        drop(guard);
        Ok(Vec::new())
    });
    Ok(Started {
        emitter: Arc::new(SlogEmitter(logger)),
        finish,
    })
}

fn start_ftlog(path: &Path) -> Result<Started<FtlogEmitter>, String> {
    let time_format = time::format_description::parse_owned::<1>(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z",
    )
    .map_err(|e| format!("ftlog time format: {e}"))?;
    let guard = ftlog::builder()
        .utc()
        .time_format(time_format)
        .root(ftlog::appender::FileAppender::new(path))
        .try_init()
        .map_err(|e| format!("ftlog init: {e}"))?;
    let finish = Box::new(move |_: &Runtime| {
        // Asks the logger thread to write what is queued and flush, and waits for it.
        drop(guard);
        Ok(Vec::new())
    });
    Ok(Started {
        emitter: Arc::new(FtlogEmitter),
        finish,
    })
}

fn start_baseline(path: &Path) -> Result<Started<BaselineEmitter>, String> {
    let file = File::create(path).map_err(|e| format!("baseline file {}: {e}", path.display()))?;
    let emitter = Arc::new(BaselineEmitter(Mutex::new(BufWriter::new(file))));
    let flusher = Arc::clone(&emitter);
    let finish = Box::new(move |_: &Runtime| {
        flusher
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
            .map_err(|e| format!("baseline flush: {e}"))?;
        Ok(Vec::new())
    });
    Ok(Started { emitter, finish })
}

/// What a scenario measured on the producer side.
struct Measured {
    /// When the producers were released.
    started: Instant,
    /// Release to the last producer's end.
    producers: Duration,
    /// Per-call latencies in nanoseconds (paced scenario only).
    latencies: Vec<u64>,
}

/// The `index`-th of `parts` shares of `total`, the remainder going to the first shares.
fn share(total: u64, parts: u64, index: u64) -> u64 {
    total / parts + u64::from(index < total % parts)
}

fn run_threads<E: Emit>(emitter: &E, threads: u64, records: u64) -> Result<Measured, String> {
    // Producers block on the read side until the write guard is released; `false` means that
    // setting the threads up failed and they must not log.
    let gate = RwLock::new(false);
    let mut held = gate.write().unwrap_or_else(PoisonError::into_inner);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for index in 0..threads {
            let count = share(records, threads, index);
            let gate = &gate;
            let spawned = std::thread::Builder::new()
                .name(format!("producer-{index}"))
                .spawn_scoped(scope, move || {
                    if !*gate.read().unwrap_or_else(PoisonError::into_inner) {
                        return;
                    }
                    for _ in 0..count {
                        emit_measured(emitter);
                    }
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    drop(held);
                    return Err(format!("spawning producer thread: {e}"));
                }
            }
        }
        *held = true;
        let started = Instant::now();
        drop(held);
        for handle in handles {
            handle
                .join()
                .map_err(|_| "a producer thread panicked".to_owned())?;
        }
        Ok(Measured {
            started,
            producers: started.elapsed(),
            latencies: Vec::new(),
        })
    })
}

fn run_tasks<E: Emit>(emitter: &Arc<E>, rt: &Runtime, records: u64) -> Result<Measured, String> {
    rt.block_on(async {
        let started = Instant::now();
        let handles: Vec<_> = (0..TASKS)
            .map(|index| {
                let emitter = Arc::clone(emitter);
                let count = share(records, TASKS, index);
                tokio::spawn(async move {
                    for i in 1..=count {
                        emit_measured(&*emitter);
                        if i % YIELD_EVERY == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle
                .await
                .map_err(|e| format!("a producer task failed: {e}"))?;
        }
        Ok(Measured {
            started,
            producers: started.elapsed(),
            latencies: Vec::new(),
        })
    })
}

fn run_paced<E: Emit>(emitter: &E, records: u64) -> Result<Measured, String> {
    let interval_ns = 1_000_000_000 / PACED_RATE;
    std::thread::scope(|scope| {
        let producer = std::thread::Builder::new()
            .name("producer-0".to_owned())
            .spawn_scoped(scope, move || {
                let mut latencies = Vec::with_capacity(records as usize);
                let started = Instant::now();
                for i in 0..records {
                    let due = started + Duration::from_nanos(i * interval_ns);
                    while Instant::now() < due {
                        std::hint::spin_loop();
                    }
                    let before = Instant::now();
                    emit_measured(emitter);
                    latencies.push(before.elapsed().as_nanos() as u64);
                }
                Measured {
                    started,
                    producers: started.elapsed(),
                    latencies,
                }
            })
            .map_err(|e| format!("spawning the paced producer: {e}"))?;
        producer
            .join()
            .map_err(|_| "the paced producer panicked".to_owned())
    })
}

/// Counts the lines of `path` holding the measured record; returns the count and one of them.
fn count_measured(path: &Path) -> Result<(u64, String), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut found = 0;
    let mut sample = None;
    for line in text.lines().filter(|l| l.contains(MEASURED_PATH)) {
        found += 1;
        sample.get_or_insert(line);
    }
    Ok((found, sample.unwrap_or("").to_owned()))
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], per_mille: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() as u64 * per_mille).div_ceil(1_000).max(1);
    sorted[(rank - 1) as usize]
}

/// A directory that is removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> Result<ScratchDir, String> {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn drive<E: Emit>(
    started: Started<E>,
    scenario: Scenario,
    records: u64,
    rt: &Runtime,
    path: &Path,
) -> Result<(), String> {
    let Started { emitter, finish } = started;
    for _ in 0..WARMUP_RECORDS {
        emitter.emit(std::hint::black_box(&Fields::WARMUP));
    }
    std::thread::sleep(WARMUP_PAUSE);

    let measured = match scenario {
        Scenario::Threads(threads) => run_threads(&*emitter, threads, records)?,
        Scenario::Tasks => run_tasks(&emitter, rt, records)?,
        Scenario::Paced => run_paced(&*emitter, records)?,
    };
    let extras = finish(rt)?;
    let end_to_end = measured.started.elapsed();
    let (found, sample) = count_measured(path)?;

    let mut latencies = measured.latencies;
    latencies.sort_unstable();
    let mut line = format!(
        "RESULT producer_ns={} e2e_ns={} logged={records} found={found} p50={} p99={} p999={} \
         max={}",
        measured.producers.as_nanos(),
        end_to_end.as_nanos(),
        percentile(&latencies, 500),
        percentile(&latencies, 990),
        percentile(&latencies, 999),
        latencies.last().copied().unwrap_or(0),
    );
    for (key, value) in extras {
        line.push_str(&format!(" x_{key}={value}"));
    }
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}\nSAMPLE {sample}").map_err(|e| format!("stdout: {e}"))
}

fn child(contender: Contender, scenario: Scenario, records: u64) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKERS)
        .enable_all()
        .build()
        .map_err(|e| format!("building the tokio runtime: {e}"))?;
    let dir = ScratchDir::new(&format!("kakashi-peers-{}", contender.key()))?;
    let path = dir.0.join(LOG_FILE);
    match contender {
        Contender::Kakashi => drive(start_kakashi(&path, &rt)?, scenario, records, &rt, &path),
        Contender::KakashiTracing => drive(
            start_kakashi_tracing(&path, &rt)?,
            scenario,
            records,
            &rt,
            &path,
        ),
        Contender::TracingLossless => {
            drive(start_tracing(&dir.0, false)?, scenario, records, &rt, &path)
        }
        Contender::TracingLossy => {
            drive(start_tracing(&dir.0, true)?, scenario, records, &rt, &path)
        }
        Contender::Slog => drive(start_slog(&path)?, scenario, records, &rt, &path),
        Contender::Ftlog => drive(start_ftlog(&path)?, scenario, records, &rt, &path),
        Contender::Baseline => drive(start_baseline(&path)?, scenario, records, &rt, &path),
    }
}

// ---------------------------------------------------------------------------------------------
// Parent: run the children, aggregate, print
// ---------------------------------------------------------------------------------------------

/// One child's `RESULT` line.
#[derive(Clone, Debug, Default)]
struct RunResult {
    producer_ns: u64,
    e2e_ns: u64,
    logged: u64,
    found: u64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    extras: Vec<(String, u64)>,
    sample: String,
    stderr: String,
}

impl RunResult {
    fn parse(stdout: &str) -> Result<RunResult, String> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .ok_or_else(|| "no RESULT line".to_owned())?;
        let mut result = RunResult {
            sample: stdout
                .lines()
                .find_map(|l| l.strip_prefix("SAMPLE "))
                .unwrap_or("")
                .to_owned(),
            ..RunResult::default()
        };
        for token in line.split_whitespace() {
            let (key, value) = token
                .split_once('=')
                .ok_or_else(|| format!("bad token {token:?}"))?;
            let value: u64 = value
                .parse()
                .map_err(|e| format!("bad value in {token:?}: {e}"))?;
            match key {
                "producer_ns" => result.producer_ns = value,
                "e2e_ns" => result.e2e_ns = value,
                "logged" => result.logged = value,
                "found" => result.found = value,
                "p50" => result.p50 = value,
                "p99" => result.p99 = value,
                "p999" => result.p999 = value,
                "max" => result.max = value,
                other => match other.strip_prefix("x_") {
                    Some(extra) => result.extras.push((extra.to_owned(), value)),
                    None => return Err(format!("unknown key {other:?}")),
                },
            }
        }
        Ok(result)
    }

    fn lost(&self) -> u64 {
        self.logged.saturating_sub(self.found)
    }

    fn extra(&self, key: &str) -> Option<u64> {
        self.extras.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
    }
}

/// Runs one child and waits for it (at most [`CHILD_TIMEOUT`]).
fn run_child(
    exe: &Path,
    scratch: &Path,
    contender: Contender,
    scenario: Scenario,
    records: u64,
) -> Result<RunResult, String> {
    let out_path = scratch.join("child.stdout");
    let err_path = scratch.join("child.stderr");
    let out = File::create(&out_path).map_err(|e| format!("creating child stdout: {e}"))?;
    let err = File::create(&err_path).map_err(|e| format!("creating child stderr: {e}"))?;
    let mut process = Command::new(exe)
        .args([
            "child",
            contender.key(),
            &scenario.key(),
            &records.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", exe.display()))?;
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        match process.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = process.kill();
                let _ = process.wait();
                return Err(format!("timed out after {CHILD_TIMEOUT:?}"));
            }
            Err(e) => return Err(format!("waiting for the child: {e}")),
        }
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    if !status.success() {
        let reason = stderr.lines().last().unwrap_or("no message");
        return Err(format!("child exited with {status}: {reason}"));
    }
    let mut result = RunResult::parse(&stdout)?;
    result.stderr = stderr;
    Ok(result)
}

fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .replace('_', "")
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{name} must be a positive integer, got {text:?}")),
        Err(_) => Ok(default),
    }
}

/// The items named in the comma-separated list in variable `name`, or all of them when it is
/// unset.
fn env_choice<T: Copy, K: AsRef<str>>(
    name: &str,
    all: &[T],
    key: impl Fn(&T) -> K,
) -> Result<Vec<T>, String> {
    let Ok(text) = std::env::var(name) else {
        return Ok(all.to_vec());
    };
    text.split(',')
        .map(str::trim)
        .filter(|word| !word.is_empty())
        .map(|word| {
            all.iter()
                .find(|item| key(item).as_ref() == word)
                .copied()
                .ok_or_else(|| format!("{name}: unknown key {word:?}"))
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let lead = (digits.len() - 1) % 3 + 1;
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    out.push_str(&digits[..lead]);
    for group in digits.as_bytes()[lead..].chunks(3) {
        out.push(',');
        out.extend(group.iter().map(|&b| char::from(b)));
    }
    out
}

/// A markdown table with padded columns; `numeric` columns are right-aligned.
struct Table {
    headers: Vec<String>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&str, bool)]) -> Table {
        Table {
            headers: columns.iter().map(|(h, _)| (*h).to_owned()).collect(),
            numeric: columns.iter().map(|&(_, n)| n).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn print(&self) {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .chain(std::iter::once(&self.headers[c]))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(3)
                    .max(3)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut out = String::from("|");
            for (c, width) in widths.iter().enumerate() {
                let cell = cells.get(c).map(String::as_str).unwrap_or("");
                if self.numeric[c] {
                    out.push_str(&format!(" {cell:>width$} |"));
                } else {
                    out.push_str(&format!(" {cell:<width$} |"));
                }
            }
            out
        };
        println!("{}", line(&self.headers));
        let mut rule = String::from("|");
        for (c, width) in widths.iter().enumerate() {
            if self.numeric[c] {
                rule.push_str(&format!(" {}: |", "-".repeat(width - 1)));
            } else {
                rule.push_str(&format!(" {} |", "-".repeat(*width)));
            }
        }
        println!("{rule}");
        for row in &self.rows {
            println!("{}", line(row));
        }
        println!();
    }
}

/// All runs, by contender and scenario.
struct Results {
    runs: HashMap<(Contender, Scenario), Vec<RunResult>>,
    failures: Vec<String>,
    /// The contenders and scenarios that ran (`PEERS_CONTENDERS`, `PEERS_SCENARIOS`): the
    /// tables have rows for these only.
    contenders: Vec<Contender>,
    scenarios: Vec<Scenario>,
}

impl Results {
    fn ok(&self, contender: Contender, scenario: Scenario) -> &[RunResult] {
        self.runs
            .get(&(contender, scenario))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn median(
        &self,
        contender: Contender,
        scenario: Scenario,
        figure: impl Fn(&RunResult) -> f64,
    ) -> Option<f64> {
        median(self.ok(contender, scenario).iter().map(figure).collect())
    }

    /// `value / reference`, as text.
    fn ratio(
        &self,
        contender: Contender,
        scenario: Scenario,
        figure: impl Fn(&RunResult) -> f64,
    ) -> String {
        let value = self.median(contender, scenario, &figure);
        let reference = self.median(Contender::REFERENCE, scenario, &figure);
        match (value, reference) {
            (Some(v), Some(r)) if r > 0.0 => format!("{:.2}x", v / r),
            _ => "n/a".to_owned(),
        }
    }

    /// Median (worst) lines lost.
    fn lost(&self, contender: Contender, scenario: Scenario) -> String {
        let runs = self.ok(contender, scenario);
        let worst = runs.iter().map(RunResult::lost).max();
        match (self.median(contender, scenario, |r| r.lost() as f64), worst) {
            (Some(m), Some(0)) => format!("{}", m as u64),
            (Some(m), Some(w)) => format!("{} (worst {})", thousands(m as u64), thousands(w)),
            _ => "n/a".to_owned(),
        }
    }
}

fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if decimals == 0 => thousands(v.round() as u64),
        Some(v) => format!("{v:.decimals$}"),
        None => "failed".to_owned(),
    }
}

fn print_machine(records: u64, runs: u64) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let clocksource =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
    let floor = timer_floor();
    println!("# kakashi peer comparison");
    println!();
    println!("- date: {}", Rfc3339(SystemTime::now()));
    println!("- nproc: {nproc} (processors in /proc/cpuinfo: {processors})");
    println!("- CPU: {model}");
    println!("- kernel: {kernel}, clocksource: {clocksource}");
    println!(
        "- timer floor (an empty call measured like the latency scenario): p50 {} ns, p99 {} ns",
        percentile(&floor, 500),
        percentile(&floor, 990)
    );
    println!(
        "- build: {}",
        if cfg!(debug_assertions) {
            "DEBUG (numbers are meaningless; use --release)"
        } else {
            "release"
        }
    );
    println!(
        "- records per scenario (PEERS_RECORDS): {}",
        thousands(records)
    );
    println!(
        "- runs per contender and scenario (PEERS_RUNS): {runs}; figures are medians over runs"
    );
    println!(
        "- every child: tokio multi-thread runtime with {RUNTIME_WORKERS} workers, \
         {WARMUP_RECORDS} warm-up records, then the scenario; the log goes to a file in a fresh \
         temp directory"
    );
    println!(
        "- ratios divide by tracing + appender (lossless) in the same scenario; lost = records \
         logged - records found in the file after flush, as median (worst run)"
    );
    println!();
}

/// Latencies of an empty call, measured like a logging call in the paced scenario: what the
/// two `Instant::now` calls add to every latency figure.
fn timer_floor() -> Vec<u64> {
    let mut samples: Vec<u64> = (0..200_000)
        .map(|_| {
            let before = Instant::now();
            std::hint::black_box(());
            before.elapsed().as_nanos() as u64
        })
        .collect();
    samples.sort_unstable();
    samples
}

fn print_producer_table(results: &Results, scenario: Scenario, records: u64) {
    println!("## {}", scenario.title());
    println!();
    let mut table = Table::new(&[
        ("contender", false),
        ("ns/record (median)", true),
        ("min-max over runs", true),
        ("vs tracing lossless (time: <1 = faster)", true),
        ("lines lost", true),
    ]);
    let per_record = move |r: &RunResult| r.producer_ns as f64 / records as f64;
    for &contender in &results.contenders {
        let runs = results.ok(contender, scenario);
        let spread = if runs.is_empty() {
            "n/a".to_owned()
        } else {
            let values: Vec<f64> = runs.iter().map(per_record).collect();
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(0.0, f64::max);
            format!("{min:.1}-{max:.1}")
        };
        table.row(vec![
            contender.label().to_owned(),
            fmt_opt(results.median(contender, scenario, per_record), 1),
            spread,
            results.ratio(contender, scenario, per_record),
            results.lost(contender, scenario),
        ]);
    }
    table.print();
}

fn print_end_to_end_table(results: &Results, scenario: Scenario) {
    println!(
        "## b. end-to-end, {} (reuses that run: clock from the producers' release until the \
         logger's flush/shutdown returned)",
        scenario.key()
    );
    println!();
    let mut table = Table::new(&[
        ("contender", false),
        ("lines logged", true),
        ("lines found", true),
        ("lines lost", true),
        ("release to flushed (ms)", true),
        ("lines on disk/s", true),
        ("vs tracing lossless (throughput: >1 = more)", true),
    ]);
    let per_second = |r: &RunResult| r.found as f64 / (r.e2e_ns.max(1) as f64 / 1e9);
    for &contender in &results.contenders {
        table.row(vec![
            contender.label().to_owned(),
            fmt_opt(results.median(contender, scenario, |r| r.logged as f64), 0),
            fmt_opt(results.median(contender, scenario, |r| r.found as f64), 0),
            results.lost(contender, scenario),
            fmt_opt(
                results.median(contender, scenario, |r| r.e2e_ns as f64 / 1e6),
                1,
            ),
            fmt_opt(results.median(contender, scenario, per_second), 0),
            results.ratio(contender, scenario, per_second),
        ]);
    }
    table.print();
}

fn print_latency_table(results: &Results) {
    let scenario = Scenario::Paced;
    println!("## {}", scenario.title());
    println!();
    println!("Nanoseconds per logging call (median over runs); ratios: <1 = faster.");
    println!();
    let mut table = Table::new(&[
        ("contender", false),
        ("p50", true),
        ("vs tracing", true),
        ("p99", true),
        ("vs tracing", true),
        ("p99.9", true),
        ("vs tracing", true),
        ("max (worst run)", true),
        ("lines lost", true),
    ]);
    for &contender in &results.contenders {
        let worst = results.ok(contender, scenario).iter().map(|r| r.max).max();
        table.row(vec![
            contender.label().to_owned(),
            fmt_opt(results.median(contender, scenario, |r| r.p50 as f64), 0),
            results.ratio(contender, scenario, |r| r.p50 as f64),
            fmt_opt(results.median(contender, scenario, |r| r.p99 as f64), 0),
            results.ratio(contender, scenario, |r| r.p99 as f64),
            fmt_opt(results.median(contender, scenario, |r| r.p999 as f64), 0),
            results.ratio(contender, scenario, |r| r.p999 as f64),
            worst.map_or_else(|| "n/a".to_owned(), thousands),
            results.lost(contender, scenario),
        ]);
    }
    table.print();
}

fn print_details(results: &Results) {
    println!("## kakashi pipeline stats (median over runs)");
    println!();
    let mut table = Table::new(&[
        ("scenario", false),
        ("accepted", true),
        ("written", true),
        ("written inline (queue full)", true),
        ("dropped", true),
        ("via fallback", true),
        ("clean shutdown", true),
    ]);
    for &scenario in &results.scenarios {
        let stat = |key: &'static str| {
            fmt_opt(
                results.median(Contender::Kakashi, scenario, |r| {
                    r.extra(key).unwrap_or(0) as f64
                }),
                0,
            )
        };
        table.row(vec![
            scenario.key(),
            stat("accepted"),
            stat("written"),
            stat("inline"),
            stat("dropped"),
            stat("fallback"),
            stat("shutdown_clean"),
        ]);
    }
    table.print();

    println!("## tracing-appender's own dropped-line counter (median over runs)");
    println!();
    let mut table = Table::new(&[("scenario", false), ("lossless", true), ("lossy", true)]);
    for &scenario in &results.scenarios {
        let dropped = |c| {
            fmt_opt(
                results.median(c, scenario, |r| r.extra("dropped").unwrap_or(0) as f64),
                0,
            )
        };
        table.row(vec![
            scenario.key(),
            dropped(Contender::TracingLossless),
            dropped(Contender::TracingLossy),
        ]);
    }
    table.print();

    println!("## one logged line per contender");
    println!();
    println!("```text");
    for &contender in &results.contenders {
        let sample = results
            .scenarios
            .iter()
            .flat_map(|&s| results.ok(contender, s))
            .map(|r| r.sample.as_str())
            .find(|s| !s.is_empty())
            .unwrap_or("(none)");
        println!("{:<17} {sample}", contender.key());
    }
    println!("```");
    println!();

    let mut notes: Vec<String> = results.failures.clone();
    for &contender in &results.contenders {
        for &scenario in &results.scenarios {
            for run in results.ok(contender, scenario) {
                if let Some(first) = run.stderr.lines().find(|l| !l.trim().is_empty()) {
                    notes.push(format!(
                        "{} {}: stderr ({} lines), first: {first}",
                        contender.key(),
                        scenario.key(),
                        run.stderr.lines().count()
                    ));
                }
            }
        }
    }
    if !notes.is_empty() {
        println!("## notes");
        println!();
        for note in notes {
            println!("- {note}");
        }
        println!();
    }
}

fn parent() -> Result<(), String> {
    let records = env_number("PEERS_RECORDS", DEFAULT_RECORDS)?;
    let runs = env_number("PEERS_RUNS", DEFAULT_RUNS as u64)?;
    let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    let scratch = ScratchDir::new("kakashi-peers-parent")?;
    let began = Instant::now();
    print_machine(records, runs);

    let contenders = env_choice("PEERS_CONTENDERS", &Contender::ALL, |c| c.key())?;
    let scenarios = env_choice("PEERS_SCENARIOS", &Scenario::ALL, |s| s.key())?;
    let mut results = Results {
        runs: HashMap::new(),
        failures: Vec::new(),
        contenders: contenders.clone(),
        scenarios: scenarios.clone(),
    };
    let total = runs as usize * scenarios.len() * contenders.len();
    let mut done = 0;
    for run in 1..=runs {
        for &scenario in &scenarios {
            for &contender in &contenders {
                done += 1;
                let started = Instant::now();
                let outcome = run_child(&exe, &scratch.0, contender, scenario, records);
                eprintln!(
                    "[{done:>3}/{total}] run {run} {:<8} {:<16} {:>6.2} s  {}",
                    scenario.key(),
                    contender.key(),
                    started.elapsed().as_secs_f64(),
                    match &outcome {
                        Ok(r) => format!("ok, lost {}", r.lost()),
                        Err(e) => format!("FAILED: {e}"),
                    }
                );
                match outcome {
                    Ok(result) => results
                        .runs
                        .entry((contender, scenario))
                        .or_default()
                        .push(result),
                    Err(e) => results.failures.push(format!(
                        "{} {} run {run} failed: {e}",
                        contender.key(),
                        scenario.key()
                    )),
                }
            }
        }
    }

    for scenario in [
        Scenario::Threads(1),
        Scenario::Threads(2),
        Scenario::Threads(4),
        Scenario::Tasks,
    ]
    .into_iter()
    .filter(|s| scenarios.contains(s))
    {
        print_producer_table(&results, scenario, records);
    }
    for scenario in [
        Scenario::Threads(1),
        Scenario::Threads(2),
        Scenario::Threads(4),
        Scenario::Tasks,
    ]
    .into_iter()
    .filter(|s| scenarios.contains(s))
    {
        print_end_to_end_table(&results, scenario);
    }
    if scenarios.contains(&Scenario::Paced) {
        print_latency_table(&results);
    }
    print_details(&results);
    println!(
        "Total wall-clock time: {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [] => parent(),
        [mode, contender, scenario, records] if mode == "child" => {
            match (
                Contender::parse(contender),
                Scenario::parse(scenario),
                records.parse::<u64>(),
            ) {
                (Some(c), Some(s), Ok(n)) if n > 0 => child(c, s, n),
                _ => Err(format!("bad child arguments: {args:?}")),
            }
        }
        _ => Err(
            "usage: peers  (or: peers child <contender> <scenario> <records>, used internally)"
                .to_owned(),
        ),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("peers: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn rfc3339() {
        let t = UNIX_EPOCH + Duration::new(1_704_067_199, 123_456_789);
        assert_eq!(Rfc3339(t).to_string(), "2023-12-31T23:59:59.123456Z");
    }

    #[test]
    fn percentiles_and_shares() {
        let values: Vec<u64> = (1..=1_000).collect();
        assert_eq!(percentile(&values, 500), 500);
        assert_eq!(percentile(&values, 990), 990);
        assert_eq!(percentile(&values, 999), 999);
        assert_eq!((0..3).map(|i| share(10, 3, i)).sum::<u64>(), 10);
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn parses_results() {
        let r = RunResult::parse(
            "RESULT producer_ns=5 e2e_ns=7 logged=10 found=8 p50=1 p99=2 p999=3 max=4 x_inline=9\n\
             SAMPLE ts=x msg=y\n",
        )
        .unwrap();
        assert_eq!(
            (r.lost(), r.extra("inline"), r.sample.as_str()),
            (2, Some(9), "ts=x msg=y")
        );
    }
}
