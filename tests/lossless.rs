//! Lossless delivery under stress, process exit, runtime teardown and injected faults.
//!
//! Every test reads the bytes that reached the destination (and the fallback), parses each
//! line, and checks that every record whose logging call returned is there exactly once, whole,
//! and (where stated) in order. Paths that end the process run in a child process: the test
//! binary itself, started with `KAKASHI_CHILD=<scenario>` and `--exact child_process_entry`.
//!
//! Pipeline counters are read in one place only, [`buckets`], and checked at quiet points by
//! [`assert_settled`]: `accepted == written + fallback + dropped + failed`.
//!
//! House rule: real files, pipes and sockets where users use them; mock writers only to inject
//! faults, and tests that use one say "fault injection" in their name.

mod common;

use std::collections::HashSet;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::TempDir;
use kakashi::write::{MemoryWriter, SyncWrite};
use kakashi::{
    info, AsyncPipeline, Logger, Overflow, Pipeline, PipelineConfig, PipelineConfigBuilder,
    PipelineError, Writer,
};
use tokio::io::AsyncWrite;

// ---------------------------------------------------------------------------------------------
// Counters: the only place that reads `Pipeline::stats`.
// ---------------------------------------------------------------------------------------------

/// Where the lines a pipeline took ended up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Buckets {
    /// Every line the pipeline took (dropped ones included).
    accepted: u64,
    /// Written to their destination.
    written: u64,
    /// Written to the fallback writer instead.
    fallback: u64,
    /// Dropped by the overflow policy.
    dropped: u64,
    /// Lost: not even the fallback took them.
    failed: u64,
}

/// The pipeline's counters, by bucket. (Today a dropped line is not in `Stats::accepted`, so
/// `accepted` adds `dropped` back in.)
fn buckets(p: &Pipeline) -> Buckets {
    let s = p.stats();
    Buckets {
        accepted: s.accepted,
        written: s.written,
        fallback: s.written_via_fallback,
        dropped: s.dropped,
        failed: s.failed,
    }
}

/// At a quiet point (nothing logging, pipeline flushed or stopped): every accepted line is in
/// exactly one bucket, and, when `logged` is known, every logged line was accepted.
#[track_caller]
fn assert_settled(p: &Pipeline, logged: Option<u64>) -> Buckets {
    let b = buckets(p);
    assert_eq!(
        b.accepted,
        b.written + b.fallback + b.dropped + b.failed,
        "counters do not add up: {b:?}"
    );
    if let Some(logged) = logged {
        assert_eq!(
            b.accepted, logged,
            "{logged} lines logged, but the counters say {b:?}"
        );
    }
    b
}

// ---------------------------------------------------------------------------------------------
// Reading what was written.
// ---------------------------------------------------------------------------------------------

/// A field that makes lines longer where a test needs bytes (no spaces, no quoting).
const PAD: &str = "padpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpad";

/// What a destination holds, line by line.
#[derive(Debug, Default)]
struct Scan {
    /// `(t, seq)` of each whole test record, in destination order.
    records: Vec<(u64, u64)>,
    /// Well-formed lines that are not test records (panic reports, "records dropped").
    other: Vec<String>,
    /// Complete lines (ending in `\n`) that are not well-formed: torn or interleaved.
    torn: Vec<String>,
    /// The bytes after the last newline: a line cut short.
    tail: Option<String>,
}

impl Scan {
    fn of(bytes: &[u8]) -> Scan {
        let mut scan = Scan::default();
        let body_end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let (body, tail) = bytes.split_at(body_end);
        if !tail.is_empty() {
            scan.tail = Some(String::from_utf8_lossy(tail).into_owned());
        }
        if body.is_empty() {
            return scan;
        }
        for raw in body[..body.len() - 1].split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(raw) else {
                scan.torn.push(String::from_utf8_lossy(raw).into_owned());
                continue;
            };
            match parse_line(line) {
                Ok(Some(record)) => scan.records.push(record),
                Ok(None) => scan.other.push(line.to_owned()),
                Err(()) => scan.torn.push(line.to_owned()),
            }
        }
        scan
    }

    fn file(path: &Path) -> Scan {
        Scan::of(&std::fs::read(path).unwrap_or_default())
    }

    /// Distinct records, and how many extra copies there were.
    fn distinct(&self) -> (HashSet<(u64, u64)>, u64) {
        let mut set = HashSet::with_capacity(self.records.len());
        let mut dups = 0;
        for &r in &self.records {
            if !set.insert(r) {
                dups += 1;
            }
        }
        (set, dups)
    }
}

/// A logfmt line as the default formatter writes it: `Ok(Some((t, seq)))` for a test record
/// (`msg=rec` with fields `t`, `seq` and optionally `pad`), `Ok(None)` for another well-formed
/// line, `Err` for a torn or interleaved one.
fn parse_line(line: &str) -> Result<Option<(u64, u64)>, ()> {
    if !line.starts_with("ts=")
        || line.matches("ts=").count() != 1
        || line.matches(" level=").count() != 1
    {
        return Err(());
    }
    let Some((_, rest)) = line.split_once(" msg=rec ") else {
        return Ok(None);
    };
    let (mut t, mut seq) = (None, None);
    for pair in rest.split(' ') {
        let (key, value) = pair.split_once('=').ok_or(())?;
        match key {
            "t" => t = Some(value.parse().map_err(|_| ())?),
            "seq" => seq = Some(value.parse().map_err(|_| ())?),
            "pad" if value == PAD => {}
            _ => return Err(()),
        }
    }
    match (t, seq) {
        (Some(t), Some(seq)) => Ok(Some((t, seq))),
        _ => Err(()),
    }
}

/// How many of `t`'s records `0..upto` are not in `seen`.
fn missing(seen: &HashSet<(u64, u64)>, t: u64, upto: u64) -> u64 {
    (0..upto).filter(|&seq| !seen.contains(&(t, seq))).count() as u64
}

// ---------------------------------------------------------------------------------------------
// Setup helpers.
// ---------------------------------------------------------------------------------------------

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Logfmt (the default formatter) to a real file.
fn file_config(path: &Path) -> PipelineConfigBuilder {
    PipelineConfig::builder().writer(Writer::file(path))
}

/// An error hook that keeps every report.
fn collecting_hook() -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(&PipelineError) + Send + Sync,
) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    (reports, move |e: &PipelineError| {
        sink.lock().unwrap().push(e.to_string())
    })
}

// ---------------------------------------------------------------------------------------------
// Child processes: the test binary itself, running one scenario.
// ---------------------------------------------------------------------------------------------

const CHILD_ENV: &str = "KAKASHI_CHILD";
const CHILD_DIR_ENV: &str = "KAKASHI_CHILD_DIR";

/// How a child run ended.
#[derive(Debug)]
struct ChildRun {
    /// `None`: still running at the deadline, and killed.
    status: Option<ExitStatus>,
    stderr: String,
    elapsed: Duration,
}

impl ChildRun {
    fn exited_ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `scenario` in a child process with `dir` as its working directory for files; kills it
/// after `limit`. The child's stderr goes to a file, read back here; its stdout is `stdout`
/// (kept open, and never read, until the child is gone).
fn run_child(scenario: &str, dir: &Path, stdout: Stdio, limit: Duration) -> ChildRun {
    let stderr_path = dir.join(format!("{scenario}.stderr"));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, scenario)
        .env(CHILD_DIR_ENV, dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    drop(child); // only now close our end of its stdout
    ChildRun {
        status,
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        elapsed,
    }
}

/// What a child wrote to `dir/result` before exiting (numbers separated by spaces).
fn child_result(dir: &Path) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(dir.join("result")).ok()?;
    Some(
        text.split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect(),
    )
}

fn write_result(dir: &Path, numbers: &[u64]) {
    let text: Vec<String> = numbers.iter().map(u64::to_string).collect();
    std::fs::write(dir.join("result.tmp"), text.join(" ")).unwrap();
    std::fs::rename(dir.join("result.tmp"), dir.join("result")).unwrap();
}

/// The entry point of child processes; a no-op in the parent.
#[test]
fn child_process_entry() {
    let Ok(scenario) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(CHILD_DIR_ENV).unwrap());
    match scenario.as_str() {
        "current_thread_exit_200" => child_current_thread_exit_200(&dir, false),
        "current_thread_exit_200_after_yield" => child_current_thread_exit_200(&dir, true),
        "current_thread_exit_50000_tasks" => child_current_thread_exit_50000_tasks(&dir),
        "stdout_pipe_nobody_reads" => child_stdout_pipe_nobody_reads(&dir),
        "guard_drop_while_threads_write_inline_16" => {
            child_guard_drop_while_threads_write_inline(&dir, 16)
        }
        "guard_drop_while_threads_write_inline_4096" => {
            child_guard_drop_while_threads_write_inline(&dir, 4096)
        }
        "shutdown_background" => child_runtime_shutdown_mid_stream(&dir, false),
        "shutdown_timeout_zero" => child_runtime_shutdown_mid_stream(&dir, true),
        "panic_hook" => child_panic_hook(&dir),
        "no_time_driver_multi_thread" => child_no_time_driver(&dir, true),
        "no_time_driver_current_thread" => child_no_time_driver(&dir, false),
        other => panic!("unknown child scenario {other:?}"),
    }
    // Scenarios end the process themselves; this one did not.
    std::process::exit(3);
}

// ---------------------------------------------------------------------------------------------
// 1. `flush()` returns only once the caller's lines are written.
// ---------------------------------------------------------------------------------------------

/// The whole lines appended to `path` since it was `from` bytes long.
fn appended_since(path: &Path, from: u64) -> Vec<u8> {
    use std::io::{Seek as _, SeekFrom};
    let mut file = std::fs::File::open(path).unwrap();
    file.seek(SeekFrom::Start(from.saturating_sub(1))).unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    if from == 0 {
        return bytes;
    }
    // `from` may have been read half-way through an append: skip to the next line start.
    match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => bytes.split_off(i + 1),
        None => Vec::new(),
    }
}

/// Four threads log to a real file through a small queue (writing inline when it is full)
/// while the worker runs on a multi-thread runtime. Each thread logs in rounds of 100 lines;
/// after each round it flushes and at once looks for that round's lines in what was appended to
/// the file since the round began. Trials run for about 8 s. Returns the problems found.
fn flush_trials(blocking: bool) -> Vec<String> {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 100;
    const PER_ROUND: u64 = 100;
    const N: u64 = ROUNDS * PER_ROUND;
    const BUDGET: Duration = Duration::from_secs(8);
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut trial = 0;
    while trial < 4 || started.elapsed() < BUDGET {
        trial += 1;
        let dir = TempDir::new("flush-early");
        let path = dir.file("app.log");
        let rt = multi_thread(2);
        let (pipeline, guard) = {
            let _enter = rt.enter();
            let config = file_config(&path)
                .queue_capacity(64)
                .overflow(Overflow::WriteInline)
                .build()
                .unwrap();
            AsyncPipeline::start(config).unwrap()
        };
        let barrier = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let log = pipeline.logger("lossless");
                let pipeline = pipeline.clone();
                let handle = rt.handle().clone();
                let barrier = Arc::clone(&barrier);
                let path = path.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    // (round, lines of the round missing right after the flush)
                    let mut missing_after_flush = Vec::new();
                    let mut torn = 0;
                    for round in 0..ROUNDS {
                        let from = std::fs::metadata(&path).map_or(0, |m| m.len());
                        let seqs = round * PER_ROUND..(round + 1) * PER_ROUND;
                        for seq in seqs.clone() {
                            info!(log, "rec"; t = t, seq = seq);
                        }
                        if blocking {
                            pipeline.flush_blocking(Duration::from_secs(5));
                        } else {
                            handle.block_on(pipeline.flush());
                        }
                        // Other threads are still writing: the line being appended right now
                        // may be cut short in what we read (`tail`), never a whole line.
                        let scan = Scan::of(&appended_since(&path, from));
                        torn += scan.torn.len();
                        let (seen, _) = scan.distinct();
                        let gone = seqs.filter(|&seq| !seen.contains(&(t, seq))).count();
                        if gone > 0 {
                            missing_after_flush.push((round, gone));
                        }
                    }
                    (missing_after_flush, torn)
                })
            })
            .collect();
        let results: Vec<(Vec<(u64, usize)>, usize)> =
            threads.into_iter().map(|h| h.join().unwrap()).collect();
        drop(guard);
        drop(rt);
        let scan = Scan::file(&path);
        let (seen, dups) = scan.distinct();
        let lost_at_end: u64 = (0..THREADS).map(|t| missing(&seen, t, N)).sum();
        let early: usize = results.iter().map(|r| r.0.len()).sum();
        let torn_seen: usize = results.iter().map(|r| r.1).sum();
        if early > 0
            || torn_seen > 0
            || dups > 0
            || lost_at_end > 0
            || !scan.torn.is_empty()
            || scan.tail.is_some()
        {
            let worst = results
                .iter()
                .flat_map(|r| &r.0)
                .map(|m| m.1)
                .max()
                .unwrap_or(0);
            let total: usize = results.iter().flat_map(|r| &r.0).map(|m| m.1).sum();
            failures.push(format!(
                "trial {trial}: {early} of {} flushes returned before the thread's lines were in \
                 the file ({total} lines missing in all, up to {worst} of {PER_ROUND} after one \
                 flush; per thread (round, missing): {:?}); torn lines seen by the threads: \
                 {torn_seen}; at the end: {lost_at_end} lost, {dups} duplicated, {} torn, tail \
                 {:?}",
                THREADS * ROUNDS,
                results.iter().map(|r| &r.0).collect::<Vec<_>>(),
                scan.torn.len(),
                scan.tail
            ));
        }
        assert_settled(&pipeline, Some(THREADS * N));
    }
    if !failures.is_empty() {
        failures.push(format!(
            "{} of {trial} trials failed ({} flushes in all)",
            failures.len(),
            trial as u64 * THREADS * ROUNDS
        ));
    }
    failures
}

#[test]
fn flush_await_returns_only_after_the_callers_lines_are_in_the_file() {
    let failures = flush_trials(false);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn flush_blocking_returns_only_after_the_callers_lines_are_in_the_file() {
    let failures = flush_trials(true);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Fault injection: a real file whose synchronous handle (the twin that callers writing inline
/// use) blocks every write until the test opens the gate; the worker writes to the same file
/// through `tokio::fs::File`.
#[derive(Debug)]
struct GatedFileTwin {
    file: std::fs::File,
    open: Mutex<bool>,
    opened: std::sync::Condvar,
    entered: AtomicU64,
}

impl GatedFileTwin {
    fn new(file: std::fs::File) -> Self {
        GatedFileTwin {
            file,
            open: Mutex::new(false),
            opened: std::sync::Condvar::new(),
            entered: AtomicU64::new(0),
        }
    }

    fn open_gate(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl SyncWrite for GatedFileTwin {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        use std::io::Write as _;
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        (&self.file).write_all(lines)
    }
}

/// Thread A fills the queue (8 lines; nothing runs the worker yet); thread B logs one line,
/// finds the queue full, takes A's lines to write them before its own, and blocks in the write.
/// Then the worker starts and A flushes: the flush must not return while A's lines are still
/// in B's hands (or, if it does, they must be in the file).
fn flush_while_another_caller_holds_the_lines(blocking: bool) -> Option<String> {
    const A_LINES: u64 = 8;
    let dir = TempDir::new("flush-held");
    let path = dir.file("app.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let twin = Arc::new(GatedFileTwin::new(file.try_clone().unwrap()));
    let writer = Writer::async_writer("gated file", tokio::fs::File::from_std(file))
        .with_sync_twin(Arc::clone(&twin) as Arc<dyn SyncWrite>);
    let config = PipelineConfig::builder()
        .writer(writer)
        .queue_capacity(A_LINES as usize)
        .overflow(Overflow::WriteInline)
        .build()
        .unwrap();
    let (pipeline, guard, worker) = AsyncPipeline::with_worker(config).unwrap();
    let log = pipeline.logger("lossless");
    for seq in 0..A_LINES {
        info!(log, "rec"; t = 0u64, seq = seq);
    }
    let b = {
        let log = log.clone();
        std::thread::spawn(move || info!(log, "rec"; t = 1u64, seq = 0u64))
    };
    let waited = Instant::now();
    // (The consumer-role design no longer routes inline writes to the twin: B writes through
    // the async side, so this wait ends at its limit.)
    while twin.entered.load(Ordering::SeqCst) == 0 && waited.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let b_blocked = twin.entered.load(Ordering::SeqCst) > 0;
    let rt = multi_thread(2);
    rt.spawn(worker.run());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let a = {
        let pipeline = pipeline.clone();
        let handle = rt.handle().clone();
        std::thread::spawn(move || {
            if blocking {
                pipeline.flush_blocking(Duration::from_secs(5));
            } else {
                handle.block_on(pipeline.flush());
            }
            let (seen, _) = Scan::file(&path).distinct();
            let _ = done_tx.send(missing(&seen, 0, A_LINES));
        })
    };
    let early = done_rx.recv_timeout(Duration::from_millis(300)).ok();
    twin.open_gate();
    let after = early.unwrap_or_else(|| done_rx.recv_timeout(Duration::from_secs(5)).unwrap());
    a.join().unwrap();
    b.join().unwrap();
    drop(guard);
    drop(rt);
    let scan = Scan::file(&dir.file("app.log"));
    let (seen, dups) = scan.distinct();
    let lost = missing(&seen, 0, A_LINES) + missing(&seen, 1, 1);
    assert_settled(&pipeline, Some(A_LINES + 1));
    let problem = after > 0 || lost > 0 || dups > 0 || !scan.torn.is_empty();
    problem.then(|| {
        format!(
            "{}: the flush returned {} with {after} of A's {A_LINES} lines not in the file (B \
             blocked holding them: {b_blocked}); at the end {lost} lost, {dups} duplicated, {} \
             torn",
            if blocking {
                "flush_blocking"
            } else {
                "flush().await"
            },
            if early.is_some() {
                "while B was still blocked"
            } else {
                "after B was released"
            },
            scan.torn.len()
        )
    })
}

#[test]
fn fault_injection_flush_does_not_return_while_another_caller_holds_its_lines() {
    let problems: Vec<String> = [false, true]
        .into_iter()
        .filter_map(flush_while_another_caller_holds_the_lines)
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 2. current_thread runtimes: flush + exit, guard drop, order.
// ---------------------------------------------------------------------------------------------

/// `#[tokio::main(flavor = "current_thread")]`: global pipeline to a file, 200 lines,
/// `kakashi::flush()`, `std::process::exit(0)`.
fn child_current_thread_exit_200(dir: &Path, yield_first: bool) {
    current_thread().block_on(async {
        let config = file_config(&dir.join("app.log")).build().unwrap();
        let _guard = kakashi::try_init(config).unwrap();
        let log = kakashi::get_logger("lossless");
        for seq in 0..200u64 {
            info!(log, "rec"; t = 0u64, seq = seq);
        }
        if yield_first {
            // Anything that awaits lets the worker take the lines.
            tokio::task::yield_now().await;
        }
        kakashi::flush();
        std::process::exit(0);
    });
}

/// The same with ten tasks that yield, 50,000 records.
fn child_current_thread_exit_50000_tasks(dir: &Path) {
    current_thread().block_on(async {
        let config = file_config(&dir.join("app.log")).build().unwrap();
        let _guard = kakashi::try_init(config).unwrap();
        let tasks: Vec<_> = (0..10u64)
            .map(|t| {
                tokio::spawn(async move {
                    let log = kakashi::get_logger("lossless");
                    for seq in 0..5_000u64 {
                        info!(log, "rec"; t = t, seq = seq);
                        if seq % 500 == 499 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        kakashi::flush();
        std::process::exit(0);
    });
}

/// Runs a flush-then-exit child `trials` times; every record of tasks `0..tasks` (`per_task`
/// each) must be in the file once.
fn flush_then_exit_trials(scenario: &str, tasks: u64, per_task: u64, trials: usize) {
    let mut failures = Vec::new();
    for trial in 0..trials {
        let dir = TempDir::new("ct-exit");
        let run = run_child(scenario, dir.path(), Stdio::null(), Duration::from_secs(20));
        let scan = Scan::file(&dir.path().join("app.log"));
        let (seen, dups) = scan.distinct();
        let lost: u64 = (0..tasks).map(|t| missing(&seen, t, per_task)).sum();
        if !run.exited_ok() || lost > 0 || dups > 0 || !scan.torn.is_empty() || scan.tail.is_some()
        {
            failures.push(format!(
                "trial {trial}: {lost} of {} lost, {dups} duplicated, {} torn, tail {:?}; child \
                 {:?} after {:?}, stderr: {}",
                tasks * per_task,
                scan.torn.len(),
                scan.tail,
                run.status,
                run.elapsed,
                run.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn current_thread_flush_then_process_exit_keeps_200_lines() {
    flush_then_exit_trials("current_thread_exit_200", 1, 200, 4);
}

#[test]
fn current_thread_flush_after_a_yield_then_process_exit_keeps_200_lines() {
    flush_then_exit_trials("current_thread_exit_200_after_yield", 1, 200, 4);
}

#[test]
fn current_thread_tasks_that_yield_flush_then_process_exit_keeps_50000_lines() {
    flush_then_exit_trials("current_thread_exit_50000_tasks", 10, 5_000, 12);
}

/// Dropping the guard on a current_thread runtime while the worker holds lines (it took them
/// from the queue and waits on the file): when the drop returns, every line is in the file.
#[test]
fn current_thread_guard_drop_writes_the_workers_lines_before_returning() {
    const N: u64 = 20_000;
    let mut failures = Vec::new();
    for trial in 0..4 {
        let dir = TempDir::new("ct-guard");
        let path = dir.file("app.log");
        let rt = current_thread();
        let (missing_at_drop, yields, pipeline) = rt.block_on(async {
            let (pipeline, guard) =
                AsyncPipeline::start(file_config(&path).build().unwrap()).unwrap();
            let log = pipeline.logger("lossless");
            for seq in 0..N {
                info!(log, "rec"; t = 0u64, seq = seq);
            }
            // Let the worker run until it holds lines it has not written yet.
            let mut yields = 0;
            loop {
                tokio::task::yield_now().await;
                yields += 1;
                let b = buckets(&pipeline);
                if b.accepted > b.written + b.fallback || yields == 1_000 {
                    break;
                }
            }
            drop(guard);
            let (seen, _) = Scan::file(&path).distinct();
            (missing(&seen, 0, N), yields, pipeline)
        });
        drop(rt);
        let scan = Scan::file(&path);
        let (seen, dups) = scan.distinct();
        let lost_at_end = missing(&seen, 0, N);
        if missing_at_drop > 0 || lost_at_end > 0 || dups > 0 || !scan.torn.is_empty() {
            failures.push(format!(
                "trial {trial}: {missing_at_drop} of {N} missing when the guard drop returned \
                 (dropped after {yields} yields); after the runtime went: {lost_at_end} lost, \
                 {dups} duplicated, {} torn",
                scan.torn.len()
            ));
        }
        assert_settled(&pipeline, Some(N));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One task on a current_thread runtime, a small queue: its lines reach the file in the order
/// it logged them.
#[test]
fn current_thread_lines_of_one_task_stay_in_order() {
    const N: u64 = 30_000;
    let mut failures = Vec::new();
    for trial in 0..3 {
        let dir = TempDir::new("ct-order");
        let path = dir.file("app.log");
        let pipeline = current_thread().block_on(async {
            let config = file_config(&path).queue_capacity(64).build().unwrap();
            let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
            let log = pipeline.logger("lossless");
            for seq in 0..N {
                info!(log, "rec"; t = 0u64, seq = seq);
                if seq % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            assert!(guard.shutdown().await.is_settled());
            pipeline
        });
        let scan = Scan::file(&path);
        let seqs: Vec<u64> = scan.records.iter().map(|r| r.1).collect();
        let inversions = seqs.windows(2).filter(|w| w[1] <= w[0]).count();
        let first = seqs.windows(2).position(|w| w[1] <= w[0]);
        let (seen, dups) = scan.distinct();
        let lost = missing(&seen, 0, N);
        if inversions > 0 || lost > 0 || dups > 0 || !scan.torn.is_empty() {
            failures.push(format!(
                "trial {trial}: {inversions} lines out of order (first at line {first:?}: {:?}), \
                 {lost} lost, {dups} duplicated, {} torn",
                first.map(|i| &seqs[i..(i + 2)]),
                scan.torn.len()
            ));
        }
        assert_settled(&pipeline, Some(N));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 3. A writer that fails half-way: every line once across destination and fallback.
// ---------------------------------------------------------------------------------------------

/// Fault injection: a connection reset mid-line. The first write takes the first half of its
/// buffer; every later call fails.
struct HalfThenResetWriter {
    received: Arc<Mutex<Vec<u8>>>,
    calls: u64,
}

impl AsyncWrite for HalfThenResetWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.calls += 1;
        if self.calls == 1 {
            let n = (buf.len() / 2).max(1);
            self.received.lock().unwrap().extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        } else {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "injected reset after a partial write",
            )))
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Fault injection: a disk that fills up. Takes `capacity` bytes in all (the write that reaches
/// it is short), then fails every call with ENOSPC.
struct DiskFullWriter {
    received: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl AsyncWrite for DiskFullWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut received = self.received.lock().unwrap();
        let room = self.capacity - received.len();
        if room == 0 {
            return Poll::Ready(Err(io::Error::from_raw_os_error(28)));
        }
        let n = room.min(buf.len());
        received.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Logs `n` records through `writer` (an async writer with a memory fallback) and checks that
/// every record is once in the destination's whole lines or the fallback, never in both; at most
/// one line is cut short in the destination, and the failure was reported.
fn check_failing_async_writer(
    name: &str,
    writer: impl AsyncWrite + Send + Unpin + 'static,
    received: Arc<Mutex<Vec<u8>>>,
    n: u64,
) {
    let rt = multi_thread(2);
    let fallback = MemoryWriter::new();
    let (reports, hook) = collecting_hook();
    let pipeline = rt.block_on(async {
        let config = PipelineConfig::builder()
            .writer(Writer::async_writer(name, writer))
            .fallback(Arc::new(fallback.clone()))
            .error_hook(hook)
            .build()
            .unwrap();
        let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
        let log = pipeline.logger("lossless");
        for seq in 0..n {
            info!(log, "rec"; t = 0u64, seq = seq);
            if seq % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        assert!(guard.shutdown().await.is_settled());
        pipeline
    });
    drop(rt);
    let dest = Scan::of(&received.lock().unwrap());
    let back = Scan::of(&fallback.contents());
    let (dest_seen, dest_dups) = dest.distinct();
    let (back_seen, back_dups) = back.distinct();
    let in_both = dest_seen.intersection(&back_seen).count();
    let all: HashSet<_> = dest_seen.union(&back_seen).copied().collect();
    let lost = missing(&all, 0, n);
    let reports = reports.lock().unwrap().clone();
    let reported = reports.iter().any(|r| r.contains(name));
    let mut problems = Vec::new();
    if in_both > 0 {
        problems.push(format!(
            "{in_both} lines both in the destination and in the fallback"
        ));
    }
    if lost > 0 || dest_dups > 0 || back_dups > 0 {
        problems.push(format!(
            "{lost} lost, {dest_dups} duplicated in the destination, {back_dups} in the fallback"
        ));
    }
    if !dest.torn.is_empty() || !back.torn.is_empty() || back.tail.is_some() {
        problems.push(format!(
            "torn lines: {:?} in the destination, {:?} in the fallback, fallback tail {:?}",
            dest.torn, back.torn, back.tail
        ));
    }
    if dest.tail.is_some() && !reported {
        problems.push(format!(
            "a line was cut short in the destination ({:?}) and not reported",
            dest.tail
        ));
    }
    if !reported {
        problems.push(format!("the failure was not reported: {reports:?}"));
    }
    assert!(
        problems.is_empty(),
        "{name}: destination {} whole lines + tail {:?}, fallback {} lines:\n{}",
        dest.records.len(),
        dest.tail,
        back.records.len(),
        problems.join("\n")
    );
    assert_settled(&pipeline, Some(n));
}

#[test]
fn fault_injection_partial_write_then_reset_every_line_once_across_destination_and_fallback() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let writer = HalfThenResetWriter {
        received: Arc::clone(&received),
        calls: 0,
    };
    check_failing_async_writer("half-then-reset", writer, received, 20_000);
}

#[test]
fn fault_injection_disk_full_every_line_once_across_destination_and_fallback() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let writer = DiskFullWriter {
        received: Arc::clone(&received),
        capacity: 100_003,
    };
    check_failing_async_writer("disk-full", writer, received, 20_000);
}

// ---------------------------------------------------------------------------------------------
// 4. Dropping the guard returns within `drop_timeout` even when a write blocks for good.
// ---------------------------------------------------------------------------------------------

const DROP_TIMEOUT: Duration = Duration::from_secs(1);

/// Stdout is a pipe nobody reads: 1.6 MB of lines to `Writer::stdout()`, then the guard drop.
fn child_stdout_pipe_nobody_reads(dir: &Path) {
    let rt = multi_thread(2);
    rt.block_on(async {
        let config = PipelineConfig::builder()
            .writer(Writer::stdout())
            .drop_timeout(DROP_TIMEOUT)
            .build()
            .unwrap();
        let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
        let log = pipeline.logger("lossless");
        for seq in 0..16_000u64 {
            info!(log, "rec"; pad = PAD, t = 0u64, seq = seq);
        }
        // Let the worker fill the pipe and block in a write.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        drop(guard);
        write_result(dir, &[started.elapsed().as_millis() as u64]);
        std::process::exit(0);
    });
}

#[test]
fn guard_drop_returns_within_drop_timeout_when_stdout_is_a_pipe_nobody_reads() {
    let dir = TempDir::new("stdout-pipe");
    let run = run_child(
        "stdout_pipe_nobody_reads",
        dir.path(),
        Stdio::piped(),
        Duration::from_secs(10),
    );
    let drop_ms = child_result(dir.path()).map(|r| r[0]);
    assert!(
        run.exited_ok() && drop_ms.is_some_and(|ms| ms <= DROP_TIMEOUT.as_millis() as u64 + 1_000),
        "drop_timeout {DROP_TIMEOUT:?}: the guard drop took {drop_ms:?} ms (None: never \
         returned); child {:?} after {:?} (None: killed); stderr: {}",
        run.status,
        run.elapsed,
        run.stderr.trim()
    );
}

/// Fault injection: a destination whose every write blocks until the test releases it (it
/// sleeps in a loop), then takes the lines.
#[derive(Debug, Default)]
struct BlockingForeverWriter {
    release: AtomicBool,
    entered: AtomicBool,
    taken: Mutex<Vec<u8>>,
}

impl SyncWrite for BlockingForeverWriter {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        self.entered.store(true, Ordering::SeqCst);
        while !self.release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.taken.lock().unwrap().extend_from_slice(lines);
        Ok(())
    }
}

#[test]
fn fault_injection_guard_drop_returns_within_drop_timeout_when_a_write_blocks_forever() {
    const N: u64 = 1_000;
    let writer = Arc::new(BlockingForeverWriter::default());
    let fallback = MemoryWriter::new();
    let rt = multi_thread(2);
    let (pipeline, guard) = {
        let _enter = rt.enter();
        let config = PipelineConfig::builder()
            .writer(Writer::sync(Arc::clone(&writer) as Arc<dyn SyncWrite>))
            .fallback(Arc::new(fallback.clone()))
            .drop_timeout(DROP_TIMEOUT)
            .error_hook(|_: &PipelineError| {})
            .build()
            .unwrap();
        AsyncPipeline::start(config).unwrap()
    };
    let log = pipeline.logger("lossless");
    for seq in 0..N {
        info!(log, "rec"; t = 0u64, seq = seq);
    }
    let waited = Instant::now();
    while !writer.entered.load(Ordering::SeqCst) && waited.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        writer.entered.load(Ordering::SeqCst),
        "the worker never wrote"
    );
    for seq in N..2 * N {
        info!(log, "rec"; t = 0u64, seq = seq);
    }
    // Drop the guard on a plain thread; release the writer after 3 s at the latest.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let dropper = std::thread::spawn(move || {
        let started = Instant::now();
        drop(guard);
        let _ = done_tx.send(started.elapsed());
    });
    let drop_took = done_rx
        .recv_timeout(DROP_TIMEOUT + Duration::from_secs(2))
        .ok();
    writer.release.store(true, Ordering::SeqCst);
    dropper.join().unwrap();
    drop(rt);
    let dest = Scan::of(&writer.taken.lock().unwrap());
    let back = Scan::of(&fallback.contents());
    let mut records = dest.records.clone();
    records.extend(&back.records);
    let (_, dups) = Scan {
        records,
        ..Scan::default()
    }
    .distinct();
    assert!(
        drop_took.is_some_and(|d| d <= DROP_TIMEOUT + Duration::from_millis(500)),
        "drop_timeout {DROP_TIMEOUT:?}: the guard drop took {drop_took:?} (None: still blocked \
         after {:?}, released then)",
        DROP_TIMEOUT + Duration::from_secs(2)
    );
    assert_eq!(dups, 0, "lines written twice");
    assert!(dest.torn.is_empty() && back.torn.is_empty());
    assert_settled(&pipeline, Some(2 * N));
}

// ---------------------------------------------------------------------------------------------
// 5. The guard dropped, or the runtime shut down, while others still log.
// ---------------------------------------------------------------------------------------------

/// Starts `threads` plain threads that log `rec` records forever; `returned[t]` is how many of
/// thread `t`'s calls have returned.
fn spawn_endless_loggers(log: &Logger, threads: u64) -> Arc<Vec<AtomicU64>> {
    let returned: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
    for t in 0..threads {
        let log = log.clone();
        let returned = Arc::clone(&returned);
        std::thread::spawn(move || {
            for seq in 0.. {
                info!(log, "rec"; t = t, seq = seq);
                returned[t as usize].store(seq + 1, Ordering::SeqCst);
            }
        });
    }
    returned
}

fn snapshot(returned: &[AtomicU64]) -> Vec<u64> {
    returned.iter().map(|r| r.load(Ordering::SeqCst)).collect()
}

/// Eight threads log through a small queue (writing inline when it is full, and then first the
/// queued lines, up to 4,096); the main thread drops the guard, records how many calls had
/// returned before, and exits.
fn child_guard_drop_while_threads_write_inline(dir: &Path, queue_capacity: usize) {
    let rt = multi_thread(2);
    let (pipeline, guard) = {
        let _enter = rt.enter();
        let config = file_config(&dir.join("app.log"))
            .queue_capacity(queue_capacity)
            .overflow(Overflow::WriteInline)
            .build()
            .unwrap();
        AsyncPipeline::start(config).unwrap()
    };
    let returned = spawn_endless_loggers(&pipeline.logger("lossless"), 8);
    std::thread::sleep(Duration::from_millis(60));
    let before_drop = snapshot(&returned);
    let started = Instant::now();
    drop(guard);
    eprintln!(
        "child: the guard drop took {:?}; counters then {:?}",
        started.elapsed(),
        buckets(&pipeline)
    );
    write_result(dir, &before_drop);
    std::process::exit(0);
}

/// Two threads and two runtime tasks log; the runtime is shut down without waiting
/// (`shutdown_background` or `shutdown_timeout(ZERO)`), then the guard is dropped and the
/// process exits.
fn child_runtime_shutdown_mid_stream(dir: &Path, timeout_zero: bool) {
    let rt = multi_thread(2);
    let (pipeline, guard) = {
        let _enter = rt.enter();
        AsyncPipeline::start(file_config(&dir.join("app.log")).build().unwrap()).unwrap()
    };
    let log = pipeline.logger("lossless");
    let threads = spawn_endless_loggers(&log, 2);
    let tasks: Arc<Vec<AtomicU64>> = Arc::new((0..2).map(|_| AtomicU64::new(0)).collect());
    for t in 0..2u64 {
        let log = log.clone();
        let tasks = Arc::clone(&tasks);
        rt.spawn(async move {
            for seq in 0.. {
                info!(log, "rec"; t = t + 2, seq = seq);
                tasks[t as usize].store(seq + 1, Ordering::SeqCst);
                if seq % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    std::thread::sleep(Duration::from_millis(60));
    if timeout_zero {
        rt.shutdown_timeout(Duration::ZERO);
    } else {
        rt.shutdown_background();
    }
    // The worker task is dropped on a runtime thread, which then drains the queue: drop the
    // guard at varying points of that (0 to 4 ms later, from the process id).
    std::thread::sleep(Duration::from_micros(
        u64::from(std::process::id() % 5) * 1_000,
    ));
    let mut before_drop = snapshot(&threads);
    before_drop.extend(snapshot(&tasks));
    let started = Instant::now();
    drop(guard);
    eprintln!(
        "child: the guard drop took {:?}; counters then {:?}",
        started.elapsed(),
        buckets(&pipeline)
    );
    write_result(dir, &before_drop);
    std::process::exit(0);
}

/// Runs a child that writes how many calls of each thread had returned before its guard drop;
/// all those records must be in its file, once, whole.
fn returned_before_drop_trials(scenario: &str, trials: usize) {
    let mut failures = Vec::new();
    for trial in 0..trials {
        let dir = TempDir::new("exit-mid-stream");
        let run = run_child(scenario, dir.path(), Stdio::null(), Duration::from_secs(20));
        let Some(returned) = child_result(dir.path()) else {
            failures.push(format!(
                "trial {trial}: no result; child {:?} after {:?}, stderr: {}",
                run.status,
                run.elapsed,
                run.stderr.trim()
            ));
            continue;
        };
        let scan = Scan::file(&dir.path().join("app.log"));
        let (seen, dups) = scan.distinct();
        let lost: Vec<u64> = returned
            .iter()
            .enumerate()
            .map(|(t, &upto)| missing(&seen, t as u64, upto))
            .collect();
        if !run.exited_ok() || lost.iter().any(|&l| l > 0) || dups > 0 || !scan.torn.is_empty() {
            failures.push(format!(
                "trial {trial}: lost {lost:?} of {returned:?} returned calls per thread; {dups} \
                 duplicated, {} torn {:?}, tail {:?}; child {:?}, stderr: {}",
                scan.torn.len(),
                scan.torn.first(),
                scan.tail,
                run.status,
                run.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn guard_drop_then_exit_while_threads_write_inline_tiny_queue_keeps_every_returned_record() {
    returned_before_drop_trials("guard_drop_while_threads_write_inline_16", 24);
}

#[test]
fn guard_drop_then_exit_while_threads_write_inline_keeps_every_returned_record() {
    returned_before_drop_trials("guard_drop_while_threads_write_inline_4096", 24);
}

#[test]
fn runtime_shutdown_background_mid_stream_then_guard_drop_and_exit_keeps_every_returned_record() {
    returned_before_drop_trials("shutdown_background", 12);
}

#[test]
fn runtime_shutdown_timeout_zero_mid_stream_then_guard_drop_and_exit_keeps_every_returned_record() {
    returned_before_drop_trials("shutdown_timeout_zero", 12);
}

/// A real TCP peer on loopback that accepts and never reads: the worker's write blocks; the
/// guard is dropped, then the runtime. No line may reach both the peer and the fallback.
#[test]
fn tcp_peer_that_stops_reading_no_line_both_at_the_peer_and_in_the_fallback() {
    const N: u64 = 150_000;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fallback = MemoryWriter::new();
    let rt = multi_thread(2);
    let (pipeline, guard) = rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let config = PipelineConfig::builder()
            .writer(Writer::async_writer("tcp peer", stream))
            .fallback(Arc::new(fallback.clone()))
            .error_hook(|_: &PipelineError| {})
            .queue_capacity(4096)
            .drop_timeout(DROP_TIMEOUT)
            .build()
            .unwrap();
        AsyncPipeline::start(config).unwrap()
    });
    let (mut peer, _) = listener.accept().unwrap();
    let log = pipeline.logger("lossless");
    for seq in 0..N {
        info!(log, "rec"; pad = PAD, t = 0u64, seq = seq);
    }
    let started = Instant::now();
    drop(guard);
    let drop_took = started.elapsed();
    drop(rt); // closes the connection
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut at_peer = Vec::new();
    peer.read_to_end(&mut at_peer).unwrap();
    let dest = Scan::of(&at_peer);
    let back = Scan::of(&fallback.contents());
    let (dest_seen, dest_dups) = dest.distinct();
    let (back_seen, back_dups) = back.distinct();
    let in_both = dest_seen.intersection(&back_seen).count();
    let all: HashSet<_> = dest_seen.union(&back_seen).copied().collect();
    let lost = missing(&all, 0, N);
    assert!(
        in_both == 0
            && lost == 0
            && dest_dups == 0
            && back_dups == 0
            && dest.torn.is_empty()
            && back.torn.is_empty(),
        "{in_both} lines both at the peer and in the fallback; {lost} lost; duplicates: {dest_dups} \
         at the peer, {back_dups} in the fallback; torn: {} at the peer, {} in the fallback; peer \
         {} whole lines + tail {:?}, fallback {} lines; guard drop took {drop_took:?}",
        dest.torn.len(),
        back.torn.len(),
        dest.records.len(),
        dest.tail.as_ref().map(String::len),
        back.records.len()
    );
    assert_settled(&pipeline, Some(N));
}

// ---------------------------------------------------------------------------------------------
// 7. The panic hook on a runtime thread.
// ---------------------------------------------------------------------------------------------

static PANIC_STARTED: Mutex<Option<Instant>> = Mutex::new(None);
static PREVIOUS_HOOK_REACHED: Mutex<Option<Instant>> = Mutex::new(None);

/// Global pipeline to a file, `install_panic_hook`, then five tasks that log and panic on a
/// multi-thread runtime; the hook installed before kakashi's notes when kakashi's hand it on.
fn child_panic_hook(dir: &Path) {
    let rt = multi_thread(2);
    rt.block_on(async {
        let _guard = kakashi::try_init(file_config(&dir.join("app.log")).build().unwrap()).unwrap();
        std::panic::set_hook(Box::new(|info| {
            *PREVIOUS_HOOK_REACHED.lock().unwrap() = Some(Instant::now());
            if !info.to_string().contains("injected panic") {
                eprintln!("child panic: {info}");
            }
        }));
        kakashi::install_panic_hook();
        let mut worst = Duration::ZERO;
        for i in 0..5u64 {
            let task = tokio::spawn(async move {
                let log = kakashi::get_logger("lossless");
                info!(log, "rec"; t = 0u64, seq = i);
                *PANIC_STARTED.lock().unwrap() = Some(Instant::now());
                panic!("injected panic {i}");
            });
            assert!(task.await.is_err());
            let started = PANIC_STARTED.lock().unwrap().take().unwrap();
            let reached = PREVIOUS_HOOK_REACHED.lock().unwrap().take().unwrap();
            worst = worst.max(reached - started);
            // Let the worker go idle again.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        kakashi::flush();
        write_result(dir, &[worst.as_micros() as u64]);
        std::process::exit(0);
    });
}

#[test]
fn panic_hook_on_a_runtime_thread_flushes_fast_without_timing_out() {
    let mut failures = Vec::new();
    for trial in 0..3 {
        let dir = TempDir::new("panic-hook");
        let run = run_child(
            "panic_hook",
            dir.path(),
            Stdio::null(),
            Duration::from_secs(20),
        );
        let worst_us = child_result(dir.path()).map(|r| r[0]);
        let scan = Scan::file(&dir.path().join("app.log"));
        let (seen, _) = scan.distinct();
        let panics = scan
            .other
            .iter()
            .filter(|l| l.contains("level=critical logger=panic") && l.contains("injected panic"))
            .count();
        let lost = missing(&seen, 0, 5);
        if !run.exited_ok()
            || worst_us.is_none_or(|us| us > 100_000)
            || run.stderr.contains("timed out")
            || panics != 5
            || lost > 0
        {
            failures.push(format!(
                "trial {trial}: slowest panic hook {worst_us:?} µs (limit 100,000), {panics} of 5 \
                 panic records, {lost} of 5 records lost; child {:?}; stderr: {}",
                run.status,
                run.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 8. A runtime without the time driver.
// ---------------------------------------------------------------------------------------------

/// `Builder::new_multi_thread().build()` / `new_current_thread().build()`, no `enable_time`:
/// start, log 10,000 lines, flush, shut down.
fn child_no_time_driver(dir: &Path, multi: bool) {
    let path = dir.join("app.log");
    let rt = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    };
    let (after_flush, shut_down) = rt.block_on(async {
        let (pipeline, guard) = AsyncPipeline::start(file_config(&path).build().unwrap()).unwrap();
        let log = pipeline.logger("lossless");
        for seq in 0..10_000u64 {
            info!(log, "rec"; t = 0u64, seq = seq);
            if seq % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        pipeline.flush().await;
        let after_flush = Scan::file(&path).records.len() as u64;
        (after_flush, guard.shutdown().await.is_settled())
    });
    drop(rt);
    write_result(dir, &[after_flush, u64::from(shut_down)]);
    std::process::exit(0);
}

fn no_time_driver(scenario: &str) {
    let dir = TempDir::new("no-time");
    let run = run_child(scenario, dir.path(), Stdio::null(), Duration::from_secs(20));
    let result = child_result(dir.path());
    let scan = Scan::file(&dir.path().join("app.log"));
    let (seen, dups) = scan.distinct();
    let lost = missing(&seen, 0, 10_000);
    assert!(
        run.exited_ok()
            && !run.stderr.contains("panicked")
            && result.as_deref() == Some(&[10_000, 1][..])
            && lost == 0
            && dups == 0,
        "[lines after flush, shutdown ok] = {result:?} (None: the child did not get there); \
         {lost} lost, {dups} duplicated; child {:?}; stderr: {}",
        run.status,
        run.stderr.trim()
    );
}

#[test]
fn runtime_without_time_driver_multi_thread_logs_flushes_and_shuts_down() {
    no_time_driver("no_time_driver_multi_thread");
}

#[test]
fn runtime_without_time_driver_current_thread_logs_flushes_and_shuts_down() {
    no_time_driver("no_time_driver_current_thread");
}

// ---------------------------------------------------------------------------------------------
// 11. The closing drain waits for producers that are half-way through a send.
// ---------------------------------------------------------------------------------------------

/// Pins the calling thread to `cpu` with `taskset` (Linux); false if that failed.
fn pin_this_thread(cpu: usize) -> bool {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return false;
    };
    let Some(tid) = link.file_name().and_then(|s| s.to_str()).map(str::to_owned) else {
        return false;
    };
    Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), &tid])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Checks one round's file of `closing_drain_keeps_records_of_producers_preempted_mid_send`
/// (a fast, specialised [`Scan`]): producer `p`'s records `0..returned[p]` must each be there
/// once. Returns (lost, duplicated, malformed or unexpected lines).
fn check_round_file(bytes: &[u8], returned: &[u64]) -> (u64, u64, u64) {
    let mut seen: Vec<Vec<bool>> = returned.iter().map(|&n| vec![false; n as usize]).collect();
    let (mut dups, mut bad) = (0, 0);
    let body = match bytes.last() {
        Some(b'\n') => &bytes[..bytes.len() - 1],
        Some(_) => {
            bad += 1;
            bytes
        }
        None => &bytes[..0],
    };
    for raw in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let record = std::str::from_utf8(raw).ok().and_then(|line| {
            if !line.starts_with("ts=") || line.matches("ts=").count() != 1 {
                return None;
            }
            let (_, rest) = line.split_once(" msg=rec t=")?;
            let (p, seq) = rest.split_once(" seq=")?;
            Some((p.parse::<usize>().ok()?, seq.parse::<usize>().ok()?))
        });
        match record {
            Some((p, seq)) if p < seen.len() && seq < seen[p].len() => {
                if std::mem::replace(&mut seen[p][seq], true) {
                    dups += 1;
                }
            }
            _ => bad += 1,
        }
    }
    let lost = seen.iter().flatten().filter(|&&s| !s).count() as u64;
    (lost, dups, bad)
}

/// Round after round (for about 5 s): producers log into a fresh pipeline's queue (nothing
/// runs its worker), then the worker is dropped, which closes the queue and drains it from the
/// closing thread. The producers share one CPU (with a thread that keeps waking up there), so
/// all but one are preempted at any time, now and then between taking a queue permit and
/// putting their line in the queue; the closer runs on another CPU. Every call that returned
/// must be in the round's file once, and counted.
#[test]
fn closing_drain_keeps_records_of_producers_preempted_mid_send() {
    const PRODUCERS: usize = 6;
    const MAX_ROUNDS: usize = 5_000;
    const BUDGET: Duration = Duration::from_secs(5);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = TempDir::new("close-drain");
    let current: Arc<Mutex<(u64, Option<Logger>)>> = Arc::new(Mutex::new((u64::MAX, None)));
    let round = Arc::new(AtomicU64::new(u64::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    // returned[round][producer]: how many of the producer's calls in that round returned.
    let returned = Arc::new(Mutex::new(vec![vec![0u64; PRODUCERS]; MAX_ROUNDS]));
    let pinned = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (current, round, stop, returned, pinned) = (
                Arc::clone(&current),
                Arc::clone(&round),
                Arc::clone(&stop),
                Arc::clone(&returned),
                Arc::clone(&pinned),
            );
            std::thread::spawn(move || {
                if cpus >= 2 && pin_this_thread(0) {
                    pinned.fetch_add(1, Ordering::SeqCst);
                }
                let mut mine: Option<(u64, Logger)> = None;
                let mut seq = 0u64;
                loop {
                    let r = round.load(Ordering::SeqCst);
                    if mine.as_ref().is_none_or(|m| m.0 != r) {
                        if let Some((old, _)) = mine.take() {
                            returned.lock().unwrap()[old as usize][p] = seq;
                        }
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let now = current.lock().unwrap().clone();
                        mine = now.1.map(|log| (now.0, log));
                        seq = 0;
                        if mine.is_none() {
                            std::thread::yield_now();
                            continue;
                        }
                    }
                    let (_, log) = mine.as_ref().unwrap();
                    info!(log, "rec"; t = p as u64, seq = seq);
                    seq += 1;
                }
            })
        })
        .collect();
    // Wakes up every ~50 µs on the producers' CPU, preempting whichever producer runs.
    let preempter = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let _ = cpus >= 2 && pin_this_thread(0);
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };
    let closer = {
        let dir = dir.path().to_owned();
        let (current, round, stop) = (Arc::clone(&current), Arc::clone(&round), Arc::clone(&stop));
        std::thread::spawn(move || {
            let closer_pinned = cpus >= 2 && pin_this_thread(1);
            let started = Instant::now();
            let mut pipelines = Vec::new();
            while started.elapsed() < BUDGET && pipelines.len() < MAX_ROUNDS {
                let r = pipelines.len() as u64;
                let path = dir.join(format!("round-{r}.log"));
                let config = file_config(&path).queue_capacity(1 << 16).build().unwrap();
                let (pipeline, guard, worker) = AsyncPipeline::with_worker(config).unwrap();
                *current.lock().unwrap() = (r, Some(pipeline.logger("lossless")));
                round.store(r, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
                drop(worker); // closes the queue and drains it from this thread
                pipelines.push((pipeline, guard, path));
            }
            stop.store(true, Ordering::SeqCst);
            *current.lock().unwrap() = (u64::MAX - 1, None);
            round.store(u64::MAX - 1, Ordering::SeqCst);
            (pipelines, closer_pinned)
        })
    };
    let (pipelines, closer_pinned) = closer.join().unwrap();
    preempter.join().unwrap();
    for producer in producers {
        producer.join().unwrap();
    }
    let returned = returned.lock().unwrap().clone();
    let rounds = pipelines.len();
    let mut failures = Vec::new();
    let mut total_logged = 0;
    for (r, (pipeline, guard, path)) in pipelines.into_iter().enumerate() {
        drop(guard);
        let logged: u64 = returned[r].iter().sum();
        total_logged += logged;
        let (lost, dups, bad) = check_round_file(&std::fs::read(&path).unwrap(), &returned[r]);
        let b = buckets(&pipeline);
        if lost > 0 || dups > 0 || bad > 0 || b.accepted != logged {
            failures.push(format!(
                "round {r}: {lost} of {logged} returned calls not in the file, {dups} duplicated, \
                 {bad} malformed; counters {b:?}"
            ));
        }
        assert_settled(&pipeline, None);
    }
    assert!(
        failures.is_empty(),
        "{} of {rounds} rounds lost lines ({total_logged} lines logged; {} producers and the \
         closer {} pinned):\n{}",
        failures.len(),
        pinned.load(Ordering::SeqCst),
        if closer_pinned { "were" } else { "were not" },
        failures.join("\n")
    );
}
