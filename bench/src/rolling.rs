//! Rolling files end to end: kakashi's [`RollingFile`] rotating every 10 MiB against
//! kakashi's plain file, and against tracing-appender's `rolling::hourly` and logroller's
//! 10 MiB size rotation, in the same run.
//!
//! Every contender logs the same record (`request handled` with four fields) `N` times from
//! two OS threads, each contender in a fresh temporary directory. The clock runs from the
//! producers' start until the logger has shut down (its lines are in the files); then every
//! line in the directory is counted, so a contender that lost lines shows it.
//!
//! | key | setup |
//! |---|---|
//! | `kakashi-file` | `AsyncPipeline`, logfmt, `Writer::file` (the baseline) |
//! | `kakashi-rolling` | the same with `Writer::rolling`: `RollingFile` rotating every 10 MiB |
//! | `kakashi-rolling-gzip` | the same, keeping 5 files, gzip on the housekeeping task |
//! | `tracing-never` | `tracing-subscriber` fmt (no ANSI) → `non_blocking` (lossless) → never-rotating appender |
//! | `tracing-hourly` | the same with `tracing_appender::rolling::hourly` |
//! | `logroller` | the same with logroller rotating every 10 MiB |
//!
//! Runs are interleaved across contenders, `ROLLING_RUNS` times (default 3); the table shows
//! the median time and its ratio to `kakashi-file`. `ROLLING_RECORDS` sets N (default
//! 1,000,000, about 150 MB of lines); `ROLLING_ONLY=kakashi-file,kakashi-rolling` runs a
//! subset (the first listed is the ratios' base). `kakashi-rolling-gzip` keeps 5 files, so
//! its line count is only checked against what those files can hold.
//!
//! ```text
//! cargo run --release -p kakashi-bench --bin rolling
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kakashi::write::rolling::RollingFile;
use kakashi::{AsyncPipeline, PipelineConfig, Writer};

const PRODUCERS: u64 = 2;
const ROTATE_BYTES: u64 = 10 * 1024 * 1024;

const CONTENDERS: &[&str] = &[
    "kakashi-file",
    "kakashi-rolling",
    "kakashi-rolling-gzip",
    "tracing-never",
    "tracing-hourly",
    "logroller",
];

struct Fields {
    user_id: u64,
    path: &'static str,
    status: i64,
    latency_ms: f64,
}

const FIELDS: Fields = Fields {
    user_id: 42,
    path: "/api/v1/items",
    status: 200,
    latency_ms: 3.25,
};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fresh_dir(key: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kakashi-bench-rolling-{}-{key}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Lines in every file under `dir` (gzip archives through `gzip -dc`), and the file count.
fn count_lines(dir: &Path) -> (u64, usize) {
    let mut lines = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.symlink_metadata().unwrap().file_type().is_symlink() {
            continue;
        }
        files += 1;
        let bytes = if path.extension().is_some_and(|e| e == "gz") {
            std::process::Command::new("gzip")
                .arg("-dc")
                .arg(&path)
                .output()
                .unwrap()
                .stdout
        } else {
            std::fs::read(&path).unwrap()
        };
        lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    (lines, files)
}

/// Runs `per_thread` calls of `emit` on each of the producer threads.
fn produce(per_thread: u64, emit: impl Fn(&Fields) + Sync) {
    std::thread::scope(|s| {
        for _ in 0..PRODUCERS {
            s.spawn(|| {
                for _ in 0..per_thread {
                    emit(std::hint::black_box(&FIELDS));
                }
            });
        }
    });
}

fn run_kakashi(dir: &Path, writer: Writer, per_thread: u64) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = PipelineConfig::builder().writer(writer).build().unwrap();
        let started = Instant::now();
        let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
        let log = pipeline.logger("app");
        produce(per_thread, |f| {
            kakashi::info!(log, "request handled"; user_id = f.user_id, path = f.path,
                status = f.status, latency_ms = f.latency_ms);
        });
        let stats = guard.shutdown().await;
        let elapsed = started.elapsed();
        assert!(stats.is_settled(), "{stats:?} in {}", dir.display());
        elapsed
    })
}

fn run_tracing<W>(writer: W, per_thread: u64) -> Duration
where
    W: std::io::Write + Send + 'static,
{
    let started = Instant::now();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(writer);
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    produce(per_thread, |f| {
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(
                user_id = f.user_id,
                path = f.path,
                status = f.status,
                latency_ms = f.latency_ms,
                "request handled"
            );
        });
    });
    drop(dispatch);
    // Waits for the worker to write what is queued (tracing-appender waits at most 1 s; the
    // line count shows anything cut off).
    drop(guard);
    started.elapsed()
}

fn run(key: &str, dir: &Path, per_thread: u64) -> Duration {
    match key {
        "kakashi-file" => run_kakashi(dir, Writer::file(dir.join("app.log")), per_thread),
        "kakashi-rolling" => {
            let file = RollingFile::builder(dir, "app")
                .max_file_bytes(ROTATE_BYTES)
                .build()
                .unwrap();
            run_kakashi(dir, Writer::rolling(&file), per_thread)
        }
        "kakashi-rolling-gzip" => {
            let file = RollingFile::builder(dir, "app")
                .max_file_bytes(ROTATE_BYTES)
                .max_files(5)
                .gzip()
                .build()
                .unwrap();
            let elapsed = run_kakashi(dir, Writer::rolling(&file), per_thread);
            // Not timed: compression runs beside the logging, and its tail after shutdown
            // is not part of the logging cost. Waited for so the count can read the files.
            let _ = file.wait_for_housekeeping(Duration::from_secs(60));
            elapsed
        }
        "tracing-never" => {
            run_tracing(tracing_appender::rolling::never(dir, "app.log"), per_thread)
        }
        "tracing-hourly" => run_tracing(
            tracing_appender::rolling::hourly(dir, "app.log"),
            per_thread,
        ),
        "logroller" => {
            let appender = logroller::LogRollerBuilder::new(dir, Path::new("app.log"))
                .rotation(logroller::Rotation::SizeBased(logroller::RotationSize::MB(
                    10,
                )))
                .build()
                .unwrap();
            run_tracing(appender, per_thread)
        }
        other => panic!("unknown contender {other}"),
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let records = env_number("ROLLING_RECORDS", 1_000_000);
    let runs = env_number("ROLLING_RUNS", 3).max(1);
    let per_thread = records / PRODUCERS;
    let total = per_thread * PRODUCERS;
    let only = std::env::var("ROLLING_ONLY").ok();
    let contenders: Vec<&str> = match &only {
        Some(list) => list.split(',').map(str::trim).collect(),
        None => CONTENDERS.to_vec(),
    };
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    let mut notes: Vec<String> = vec![String::new(); contenders.len()];
    for run_index in 0..runs {
        for (i, key) in contenders.iter().enumerate() {
            let dir = fresh_dir(key);
            let elapsed = run(key, &dir, per_thread);
            let (lines, files) = count_lines(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!(
                "run {run_index} {key:22} {:8.1} ms  {lines} lines in {files} files",
                elapsed.as_secs_f64() * 1e3
            );
            times[i].push(elapsed.as_secs_f64());
            notes[i] = if lines == total {
                format!("{files} files")
            } else if *key == "kakashi-rolling-gzip" {
                format!("{files} files kept (retention), {lines} lines in them")
            } else {
                format!(
                    "{files} files, {} lines missing",
                    total.saturating_sub(lines)
                )
            };
        }
    }
    let medians: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
    println!("\n{total} records from {PRODUCERS} threads, median of {runs} runs, end to end\n");
    println!(
        "| contender | time (ms) | records/s | vs {} | files (last run) |",
        contenders[0]
    );
    println!("|---|---:|---:|---:|---|");
    for (i, key) in contenders.iter().enumerate() {
        println!(
            "| {key} | {:.1} | {:.0} | {:.2}x | {} |",
            medians[i] * 1e3,
            total as f64 / medians[i],
            medians[i] / medians[0],
            notes[i]
        );
    }
}
