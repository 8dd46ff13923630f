//! The rolling file writer on real files: size and time rotation, names, retention,
//! compression, reopening and failures, on every kind of executor. Every test reads the
//! files back and accounts for each record.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::TempDir;
use kakashi::write::rolling::{Clock, Period, RollingFile};
use kakashi::write::MemoryWriter;
use kakashi::{
    info, AsyncPipeline, ErrorKind, Pipeline, PipelineConfig, PipelineError, Stats, SyncPipeline,
    Writer,
};

const PRODUCERS: u64 = 2;

/// A clock the test moves by hand.
#[derive(Debug, Clone)]
struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    fn at(seconds: u64, millis: u64) -> Self {
        ManualClock(Arc::new(Mutex::new(
            UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(millis),
        )))
    }

    fn set(&self, seconds: u64, millis: u64) {
        *self.0.lock().unwrap() =
            UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(millis);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

/// The writer's files (not the link, not partial archives), sorted by name.
fn log_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with(&format!("{prefix}."))
                && name != format!("{prefix}.log")
                && (name.ends_with(".log") || name.ends_with(".log.gz"))
                && !p.symlink_metadata().unwrap().file_type().is_symlink()
        })
        .collect();
    files.sort();
    files
}

/// The text of a log file, decompressing `.gz` with the system's gzip (after `gzip -t`).
fn read_log(path: &Path) -> String {
    if path.extension().is_some_and(|e| e == "gz") {
        let test = std::process::Command::new("gzip")
            .arg("-t")
            .arg(path)
            .status()
            .unwrap();
        assert!(test.success(), "gzip -t {}", path.display());
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    } else {
        std::fs::read_to_string(path).unwrap()
    }
}

/// The value after ` key=` in a logfmt line (fast: a million lines are read in debug builds).
fn field(line: &str, key: &str) -> u64 {
    let start = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        + key.len()
        + 2;
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("bad {key} in {line:?}"))
}

/// Reads every file in name order and checks: each is whole lines, none is above `limit`
/// unless it holds one line, and each producer's records appear exactly once, in order, with
/// `per_producer` records each. Returns the number of files.
fn check_files(dir: &Path, limit: u64, per_producer: u64) -> usize {
    let files = log_files(dir, "app");
    let mut next: HashMap<u64, u64> = HashMap::new();
    for path in &files {
        let text = read_log(path);
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            path.display()
        );
        let lines = text.lines().count();
        assert!(
            text.len() as u64 <= limit || lines == 1,
            "{} holds {} bytes in {lines} lines (limit {limit})",
            path.display(),
            text.len()
        );
        for line in text.lines() {
            let (producer, seq) = (field(line, "producer"), field(line, "seq"));
            let want = next.entry(producer).or_insert(0);
            assert_eq!(
                seq,
                *want,
                "producer {producer} in {}: lost, repeated or out of order",
                path.display()
            );
            *want += 1;
        }
    }
    assert_eq!(next.len() as u64, PRODUCERS, "{next:?}");
    for (producer, count) in next {
        assert_eq!(count, per_producer, "producer {producer}");
    }
    files.len()
}

fn check_stats(stats: &Stats, expected: u64) {
    assert!(stats.is_settled(), "{stats:?}");
    assert_eq!(stats.accepted, expected, "{stats:?}");
    assert_eq!(stats.written, expected, "{stats:?}");
}

fn log_from_threads(pipeline: &Pipeline, per_producer: u64) {
    std::thread::scope(|s| {
        for producer in 0..PRODUCERS {
            let log = pipeline.logger("app");
            s.spawn(move || {
                for seq in 0..per_producer {
                    info!(log, "record"; producer = producer, seq = seq);
                }
            });
        }
    });
}

fn size_rotating(dir: &Path, limit: u64) -> RollingFile {
    RollingFile::builder(dir, "app")
        .max_file_bytes(limit)
        .current_link()
        .build()
        .unwrap()
}

/// Size rotation with housekeeping (gzip when the feature is on; a retention limit that
/// keeps everything), so that passes run on the executor under test.
fn size_rotating_with_housekeeping(dir: &Path, limit: u64) -> RollingFile {
    let builder = RollingFile::builder(dir, "app")
        .max_file_bytes(limit)
        .max_files(100_000);
    #[cfg(feature = "gzip")]
    let builder = builder.gzip();
    builder.build().unwrap()
}

/// Every file but the current one is compressed (with the `gzip` feature).
fn check_compressed(file: &RollingFile) {
    assert!(file.wait_for_housekeeping(Duration::from_secs(30)));
    assert_eq!(file.housekeeping_errors(), (0, None));
    if cfg!(feature = "gzip") {
        let current = file.current_path().unwrap();
        for path in log_files(file.dir(), "app") {
            let compressed = path.extension().is_some_and(|e| e == "gz");
            assert_eq!(compressed, path != current, "{}", path.display());
        }
    }
}

fn config(file: &RollingFile) -> PipelineConfig {
    PipelineConfig::builder()
        .writer(Writer::rolling(file))
        .build()
        .unwrap()
}

/// The load test: a million records with a 1 MiB limit, through the async pipeline
/// on a multi-thread runtime, to two rolling files at once: one keeps every file (every
/// record must be in exactly one), the other keeps 10 (exactly 10 remain, holding the newest
/// records).
#[test]
fn a_million_records_each_in_exactly_one_file_of_at_most_1_mib() {
    const PER_PRODUCER: u64 = 500_000;
    const LIMIT: u64 = 1 << 20;
    let dir = TempDir::new("rolling-1m");
    let kept_dir = TempDir::new("rolling-1m-kept");
    let file = size_rotating(dir.path(), LIMIT);
    let kept = RollingFile::builder(kept_dir.path(), "app")
        .max_file_bytes(LIMIT)
        .max_files(10)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let stats = rt.block_on(async {
        let config = PipelineConfig::builder()
            .writer(Writer::rolling(&file))
            .writer(Writer::rolling(&kept))
            .build()
            .unwrap();
        let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
        assert!(pipeline.is_async());
        log_from_threads(&pipeline, PER_PRODUCER);
        let stats = guard.shutdown().await;
        assert!(kept.wait_for_housekeeping(Duration::from_secs(30)));
        stats
    });
    let logged = started.elapsed();
    let total = PRODUCERS * PER_PRODUCER;
    assert!(stats.is_settled(), "{stats:?}");
    for writer in &stats.writers {
        assert_eq!(writer.accepted, total, "{stats:?}");
        assert_eq!(writer.written, total, "{stats:?}");
    }
    let files = check_files(dir.path(), LIMIT, PER_PRODUCER);
    assert!(files > 50, "{files} files");
    // The link names the file being written, which is the last in name order.
    let link = std::fs::read_link(dir.file("app.log")).unwrap();
    assert_eq!(
        dir.path().join(link),
        *log_files(dir.path(), "app").last().unwrap()
    );
    assert_eq!(check_tail(kept_dir.path(), PER_PRODUCER), 10);
    assert_eq!(kept.housekeeping_errors(), (0, None));
    eprintln!(
        "1M records to two rolling files: logged and written in {logged:?}, checked in {:?}, \
         {files} files",
        started.elapsed() - logged
    );
}

/// The same rotation workload on no runtime, `current_thread`, and runtimes built without
/// the time driver.
fn rotate_on(rt: Option<tokio::runtime::Runtime>, tag: &str) {
    const PER_PRODUCER: u64 = 20_000;
    const LIMIT: u64 = 64 * 1024;
    let dir = TempDir::new(tag);
    let file = size_rotating_with_housekeeping(dir.path(), LIMIT);
    let stats = match rt {
        Some(rt) => rt.block_on(async {
            let (pipeline, guard) = AsyncPipeline::start(config(&file)).unwrap();
            assert!(pipeline.is_async());
            log_from_threads(&pipeline, PER_PRODUCER);
            pipeline.flush().await;
            let stats = guard.shutdown().await;
            // Passes ran in the runtime's blocking pool: wait for them while it is up.
            check_compressed(&file);
            stats
        }),
        None => {
            let (pipeline, guard) = AsyncPipeline::start(config(&file)).unwrap();
            assert!(!pipeline.is_async());
            log_from_threads(&pipeline, PER_PRODUCER);
            let stats = guard.close();
            check_compressed(&file);
            stats
        }
    };
    check_stats(&stats, PRODUCERS * PER_PRODUCER);
    assert!(check_files(dir.path(), LIMIT, PER_PRODUCER) > 20);
}

#[test]
fn rotation_without_a_runtime() {
    rotate_on(None, "rolling-none");
}

#[test]
fn rotation_on_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rotate_on(Some(rt), "rolling-ct");
}

#[test]
fn rotation_on_a_current_thread_runtime_without_the_time_driver() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rotate_on(Some(rt), "rolling-ct-notime");
}

#[test]
fn rotation_on_a_multi_thread_runtime_without_the_time_driver() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .unwrap();
    rotate_on(Some(rt), "rolling-mt-notime");
}

#[tokio::test]
async fn rotation_under_tokio_test() {
    const PER_PRODUCER: u64 = 5_000;
    const LIMIT: u64 = 16 * 1024;
    let dir = TempDir::new("rolling-tokio-test");
    let file = size_rotating(dir.path(), LIMIT);
    let (pipeline, guard) = AsyncPipeline::start(config(&file)).unwrap();
    for seq in 0..PER_PRODUCER {
        for producer in 0..PRODUCERS {
            info!(pipeline.logger("app"), "record"; producer = producer, seq = seq);
        }
        if seq % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let stats = guard.shutdown().await;
    check_stats(&stats, PRODUCERS * PER_PRODUCER);
    assert!(check_files(dir.path(), LIMIT, PER_PRODUCER) > 20);
}

// 2026-12-01T13:05:00Z
const T13_05: u64 = 1_796_130_300;

fn names(dir: &Path) -> Vec<String> {
    log_files(dir, "app")
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect()
}

fn lines_of(dir: &Path, name: &str) -> Vec<String> {
    common::read_lines(&dir.join(name))
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect()
}

/// Time rotation with an injected clock: one file per period, the edge exactly at the
/// period's first millisecond, a counter when the size limit also rotates within a period.
#[test]
fn time_rotation_puts_each_line_in_its_period_with_an_injected_clock() {
    let dir = TempDir::new("rolling-clock");
    let clock = ManualClock::at(T13_05 + 59, 999);
    let file = RollingFile::builder(dir.path(), "app")
        .rotate_every(Period::Minutely)
        .clock(clock.clone())
        .build()
        .unwrap();
    let (pipeline, guard) = SyncPipeline::start(config(&file)).unwrap();
    let log = pipeline.logger("app");
    info!(log, "x"; n = "a");
    clock.set(T13_05 + 60, 0);
    info!(log, "x"; n = "b");
    info!(log, "x"; n = "c");
    clock.set(T13_05 + 119, 999);
    info!(log, "x"; n = "d");
    // A jump over empty periods: the next file is the current period's.
    clock.set(T13_05 + 3600, 0);
    info!(log, "x"; n = "e");
    drop(guard);
    assert_eq!(
        names(dir.path()),
        [
            "app.2026-12-01T13-05.log",
            "app.2026-12-01T13-06.log",
            "app.2026-12-01T14-05.log"
        ]
    );
    assert_eq!(lines_of(dir.path(), "app.2026-12-01T13-05.log"), ["n=a"]);
    assert_eq!(
        lines_of(dir.path(), "app.2026-12-01T13-06.log"),
        ["n=b", "n=c", "n=d"]
    );
    assert_eq!(lines_of(dir.path(), "app.2026-12-01T14-05.log"), ["n=e"]);
}

/// The length of a `msg=x n=<digit>` line as the default formatter writes it.
fn short_line_len() -> u64 {
    let memory = MemoryWriter::new();
    let config = PipelineConfig::builder()
        .writer(Writer::memory(&memory))
        .build()
        .unwrap();
    let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    info!(pipeline.logger("app"), "x"; n = 0);
    memory.lines()[0].len() as u64 + 1
}

#[test]
fn hourly_and_daily_names_with_size_rotation_inside_a_period_and_an_offset() {
    let dir = TempDir::new("rolling-hourly");
    let clock = ManualClock::at(T13_05, 0);
    let file = RollingFile::builder(dir.path(), "app")
        .rotate_every(Period::Hourly)
        .max_file_bytes(2 * short_line_len() + 1) // two lines per file
        .clock(clock.clone())
        .build()
        .unwrap();
    let (pipeline, guard) = SyncPipeline::start(config(&file)).unwrap();
    let log = pipeline.logger("app");
    for i in 0..5 {
        info!(log, "x"; n = i);
    }
    clock.set(T13_05 + 55 * 60, 0); // 14:00
    info!(log, "x"; n = 5);
    drop(guard);
    let got = names(dir.path());
    assert_eq!(
        got,
        [
            "app.2026-12-01T13.log",
            "app.2026-12-01T13_0001.log",
            "app.2026-12-01T13_0002.log",
            "app.2026-12-01T14.log"
        ]
    );
    let all: Vec<String> = got.iter().flat_map(|n| lines_of(dir.path(), n)).collect();
    assert_eq!(all, ["n=0", "n=1", "n=2", "n=3", "n=4", "n=5"]);

    let dir = TempDir::new("rolling-daily");
    let file = RollingFile::builder(dir.path(), "app")
        .rotate_every(Period::Daily)
        .utc_offset_seconds(11 * 3600) // 13:05Z is 00:05 the next day at UTC+11
        .clock(ManualClock::at(T13_05, 0))
        .build()
        .unwrap();
    assert_eq!(file.current_path().unwrap(), dir.file("app.2026-12-02.log"));
}

/// A restart within the same period appends to that period's last file.
#[test]
fn a_restart_appends_to_the_last_file_of_the_period() {
    let dir = TempDir::new("rolling-restart");
    for round in 0..2 {
        let file = RollingFile::builder(dir.path(), "app")
            .rotate_every(Period::Hourly)
            .max_file_bytes(4 * short_line_len() + 1)
            .clock(ManualClock::at(T13_05, 0))
            .build()
            .unwrap();
        let (pipeline, guard) = SyncPipeline::start(config(&file)).unwrap();
        for i in 0..3 {
            info!(pipeline.logger("app"), "x"; n = round * 3 + i);
        }
        drop(guard);
    }
    let got = names(dir.path());
    let all: Vec<String> = got.iter().flat_map(|n| lines_of(dir.path(), n)).collect();
    assert_eq!(all, ["n=0", "n=1", "n=2", "n=3", "n=4", "n=5"], "{got:?}");
    // Four lines per file: the second run filled the first file before rotating.
    assert_eq!(got, ["app.2026-12-01T13.log", "app.2026-12-01T13_0001.log"]);
    assert_eq!(lines_of(dir.path(), &got[0]).len(), 4);
}

/// Rotates `rotations` times with small files and waits for housekeeping.
fn rotate_many(file: &RollingFile, per_producer: u64) {
    let (pipeline, guard) = SyncPipeline::start(config(file)).unwrap();
    log_from_threads(&pipeline, per_producer);
    drop(guard);
    assert!(file.wait_for_housekeeping(Duration::from_secs(30)));
    assert_eq!(file.housekeeping_errors(), (0, None));
}

/// The kept files are the newest ones: together they hold the last records, with no gap.
fn check_tail(dir: &Path, per_producer: u64) -> usize {
    let files = log_files(dir, "app");
    let mut seen: HashMap<u64, Vec<u64>> = HashMap::new();
    for path in &files {
        for line in read_log(path).lines() {
            seen.entry(field(line, "producer"))
                .or_default()
                .push(field(line, "seq"));
        }
    }
    for (producer, seqs) in seen {
        let first = seqs[0];
        let want: Vec<u64> = (first..per_producer).collect();
        assert_eq!(
            seqs, want,
            "producer {producer}: not the newest records in order"
        );
    }
    files.len()
}

#[test]
fn retention_keeps_exactly_max_files() {
    let dir = TempDir::new("rolling-keep");
    let file = RollingFile::builder(dir.path(), "app")
        .max_file_bytes(4096)
        .max_files(5)
        .build()
        .unwrap();
    rotate_many(&file, 2_000);
    assert_eq!(check_tail(dir.path(), 2_000), 5);
}

#[test]
fn retention_by_total_bytes() {
    let dir = TempDir::new("rolling-budget");
    let file = RollingFile::builder(dir.path(), "app")
        .max_file_bytes(4096)
        .max_total_bytes(5 * 4096)
        .build()
        .unwrap();
    rotate_many(&file, 2_000);
    let files = check_tail(dir.path(), 2_000);
    let total: u64 = log_files(dir.path(), "app")
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(total <= 5 * 4096, "{total}");
    assert!(files >= 5, "{files}"); // full files of ~4 KiB, and the current one
}

#[test]
fn retention_by_age_removes_old_files_at_start() {
    let dir = TempDir::new("rolling-age");
    let old = dir.file("app.2020-01-01T00.log");
    let recent = dir.file("app.2026-11-30T23.log");
    let other = dir.file("unrelated.log");
    for path in [&old, &recent, &other] {
        std::fs::write(path, "x\n").unwrap();
    }
    let file = std::fs::File::options().write(true).open(&old).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    drop(file);
    let file = RollingFile::builder(dir.path(), "app")
        .rotate_every(Period::Hourly)
        .max_age(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert!(file.wait_for_housekeeping(Duration::from_secs(10)));
    assert!(!old.exists());
    assert!(recent.exists());
    assert!(other.exists());
}

#[cfg(feature = "gzip")]
#[test]
fn compressed_files_pass_gzip_t_and_hold_whole_lines() {
    const PER_PRODUCER: u64 = 5_000;
    let dir = TempDir::new("rolling-gzip");
    let file = RollingFile::builder(dir.path(), "app")
        .max_file_bytes(32 * 1024)
        .gzip()
        .build()
        .unwrap();
    rotate_many(&file, PER_PRODUCER);
    let files = log_files(dir.path(), "app");
    let current = file.current_path().unwrap();
    for path in &files {
        let compressed = path.extension().is_some_and(|e| e == "gz");
        assert_eq!(compressed, *path != current, "{}", path.display());
    }
    assert!(files.len() > 5);
    // Every record in exactly one file, in order; read_log runs gzip -t on each archive.
    check_files(dir.path(), u64::MAX, PER_PRODUCER);
}

/// What a crash mid-compression leaves (a partial archive beside the whole file) is cleaned
/// up by the next start: the partial archive goes, the file is compressed from the start.
#[cfg(feature = "gzip")]
#[test]
fn a_partial_archive_from_a_crash_is_replaced() {
    let dir = TempDir::new("rolling-crash");
    let rotated = dir.file("app.2026-12-01T12.log");
    std::fs::write(&rotated, "level=info seq=1\nlevel=info seq=2\n").unwrap();
    std::fs::write(
        dir.file("app.2026-12-01T12.log.gz.tmp"),
        b"\x1f\x8b garbage",
    )
    .unwrap();
    let file = RollingFile::builder(dir.path(), "app")
        .rotate_every(Period::Hourly)
        .gzip()
        .clock(ManualClock::at(T13_05, 0))
        .build()
        .unwrap();
    assert!(file.wait_for_housekeeping(Duration::from_secs(10)));
    assert!(!rotated.exists());
    assert!(!dir.file("app.2026-12-01T12.log.gz.tmp").exists());
    assert_eq!(
        read_log(&dir.file("app.2026-12-01T12.log.gz")),
        "level=info seq=1\nlevel=info seq=2\n"
    );
}

fn seqs(text: &str) -> Vec<u64> {
    text.lines().map(|l| field(l, "seq")).collect()
}

/// `reopen()` after a rename (what logrotate's `create` mode does) and the path check
/// without it: no line lost, the new lines in a new file at the path.
#[test]
fn reopen_on_request_and_on_a_renamed_or_deleted_path() {
    let dir = TempDir::new("rolling-reopen");
    let file = RollingFile::builder(dir.path(), "app").build().unwrap();
    let path = dir.file("app.log");
    let (pipeline, guard) = SyncPipeline::start(config(&file)).unwrap();
    let log = pipeline.logger("app");
    info!(log, "x"; seq = 0u64);
    std::fs::rename(&path, dir.file("app.log.1")).unwrap();
    info!(log, "x"; seq = 1u64); // still the renamed file: no reopen yet
    file.reopen();
    info!(log, "x"; seq = 2u64);
    assert_eq!(
        seqs(&std::fs::read_to_string(dir.file("app.log.1")).unwrap()),
        [0, 1]
    );
    assert_eq!(seqs(&std::fs::read_to_string(&path).unwrap()), [2]);

    // Without a reopen: the path check notices within a second.
    std::fs::rename(&path, dir.file("app.log.2")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    info!(log, "x"; seq = 3u64);
    assert_eq!(
        seqs(&std::fs::read_to_string(dir.file("app.log.2")).unwrap()),
        [2]
    );
    assert_eq!(seqs(&std::fs::read_to_string(&path).unwrap()), [3]);

    // Deleted: a fresh file.
    std::fs::remove_file(&path).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    info!(log, "x"; seq = 4u64);
    assert_eq!(seqs(&std::fs::read_to_string(&path).unwrap()), [4]);
    let stats = guard.close();
    assert_eq!(stats.written, 5, "{stats:?}");
}

struct Failures {
    fallback: MemoryWriter,
    reports: Arc<Mutex<Vec<String>>>,
}

fn failing_config(file: &RollingFile) -> (PipelineConfig, Failures) {
    let fallback = MemoryWriter::new();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    let config = PipelineConfig::builder()
        .writer(Writer::rolling(file))
        .fallback(Arc::new(fallback.clone()))
        .error_hook(move |e: &PipelineError| sink.lock().unwrap().push(e.to_string()))
        .build()
        .unwrap();
    (config, Failures { fallback, reports })
}

/// The failure test: the directory is removed mid-run and recreated. No panic; while
/// it is gone, lines go to the fallback (counted, reported once); after it is back, lines are
/// in the new file. On no runtime (the caller writes) and on the async pipeline (the worker
/// writes) of a `current_thread` runtime without the time driver.
fn directory_removed_and_recreated(rt: Option<tokio::runtime::Runtime>, tag: &str) {
    let dir = TempDir::new(tag);
    let logs = dir.file("logs");
    let file = RollingFile::builder(&logs, "app")
        .max_file_bytes(1 << 20)
        .build()
        .unwrap();
    let (config, failures) = failing_config(&file);
    let phases = |pipeline: &Pipeline, phase: u64| {
        let log = pipeline.logger("app");
        match phase {
            0 => {}
            1 => {
                std::fs::remove_dir_all(&logs).unwrap();
                std::thread::sleep(Duration::from_millis(1100));
            }
            _ => {
                std::fs::create_dir(&logs).unwrap();
                std::thread::sleep(Duration::from_millis(1100));
            }
        }
        for seq in phase * 10..phase * 10 + 10 {
            info!(log, "x"; seq = seq);
        }
    };
    let stats = match rt {
        Some(rt) => rt.block_on(async {
            let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
            assert!(pipeline.is_async());
            for phase in 0..3 {
                phases(&pipeline, phase);
                pipeline.flush().await;
                if phase == 1 {
                    assert_eq!(file.current_path(), None);
                }
            }
            guard.shutdown().await
        }),
        None => {
            let (pipeline, guard) = SyncPipeline::start(config).unwrap();
            for phase in 0..3 {
                phases(&pipeline, phase);
                if phase == 1 {
                    assert_eq!(file.current_path(), None);
                }
            }
            guard.close()
        }
    };
    // Lines 0..10 went to the file that was deleted with its directory.
    assert!(stats.is_settled(), "{stats:?}");
    assert_eq!(stats.written, 20, "{stats:?}");
    assert_eq!(stats.writers[0].written_via_fallback, 10, "{stats:?}");
    assert_eq!(stats.accepted, 30, "{stats:?}");
    let fallback: Vec<u64> = failures
        .fallback
        .lines()
        .iter()
        .map(|l| field(l, "seq"))
        .collect();
    assert_eq!(fallback, (10..20).collect::<Vec<_>>());
    let files = log_files(&logs, "app");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(seqs(&read_log(&files[0])), (20..30).collect::<Vec<_>>());
    let reports = failures.reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("cannot open log file"), "{reports:?}");
}

#[test]
fn directory_removed_and_recreated_without_a_runtime() {
    directory_removed_and_recreated(None, "rolling-rmdir");
}

#[test]
fn directory_removed_and_recreated_on_a_runtime_without_the_time_driver() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    directory_removed_and_recreated(Some(rt), "rolling-rmdir-ct");
}

/// Fault injection that works as root too (permissions do not stop root): the path is made
/// a directory, so opening it fails; after a `reopen` once it is a file again, lines flow.
#[test]
fn an_unopenable_path_sends_lines_to_the_fallback_until_it_recovers() {
    let dir = TempDir::new("rolling-eisdir");
    let file = RollingFile::builder(dir.path(), "app").build().unwrap();
    let path = dir.file("app.log");
    let (config, failures) = failing_config(&file);
    let (pipeline, guard) = SyncPipeline::start(config).unwrap();
    let log = pipeline.logger("app");
    info!(log, "x"; seq = 0u64);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    file.reopen();
    for seq in 1..5u64 {
        info!(log, "x"; seq = seq);
    }
    std::fs::remove_dir(&path).unwrap();
    file.reopen();
    info!(log, "x"; seq = 5u64);
    let stats = guard.close();
    assert_eq!(stats.written, 2, "{stats:?}");
    assert_eq!(stats.writers[0].written_via_fallback, 4, "{stats:?}");
    assert_eq!(failures.fallback.lines().len(), 4);
    assert_eq!(seqs(&std::fs::read_to_string(&path).unwrap()), [5]);
    assert_eq!(failures.reports.lock().unwrap().len(), 1);
}

#[test]
fn bad_configuration_is_an_error_naming_the_setting() {
    let dir = TempDir::new("rolling-config");
    let check = |builder: kakashi::write::rolling::RollingFileBuilder, words: &str| {
        let error = builder.build().unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::InvalidConfig(_)),
            "{error:?}"
        );
        assert!(error.to_string().contains(words), "{error} lacks {words:?}");
    };
    let b = || RollingFile::builder(dir.path(), "app");
    check(b().max_file_bytes(0), "max_file_bytes is 0");
    check(b().max_file_bytes(10).max_files(0), "max_files is 0");
    check(
        b().max_file_bytes(10).max_total_bytes(0),
        "max_total_bytes is 0",
    );
    check(
        b().max_file_bytes(10).max_age(Duration::ZERO),
        "max_age is 0",
    );
    check(RollingFile::builder(dir.path(), ""), "prefix is empty");
    check(RollingFile::builder(dir.path(), "a/b"), "prefix \"a/b\"");
    check(b().suffix(".log"), "starts with a dot");
    check(b().max_files(3), "need rotation");
    check(b().utc_offset_seconds(86_400), "UTC offset");
    // A directory that cannot be created.
    let not_a_dir = dir.file("plain");
    std::fs::write(&not_a_dir, "").unwrap();
    let error = RollingFile::builder(not_a_dir.join("sub"), "app")
        .build()
        .unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::OpenFile { .. }),
        "{error:?}"
    );
}

/// SIGHUP reopens at once, before the one-second path check would.
#[cfg(all(unix, feature = "sighup"))]
#[test]
fn sighup_reopens_the_file() {
    let dir = TempDir::new("rolling-sighup");
    let file = RollingFile::builder(dir.path(), "app")
        .reopen_on_sighup()
        .build()
        .unwrap();
    let path = dir.file("app.log");
    let (pipeline, guard) = SyncPipeline::start(config(&file)).unwrap();
    let log = pipeline.logger("app");
    info!(log, "x"; seq = 0u64);
    std::fs::rename(&path, dir.file("app.log.1")).unwrap();
    let status = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(std::process::id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    // The handler runs asynchronously to `kill` returning; give it a moment.
    std::thread::sleep(Duration::from_millis(50));
    info!(log, "x"; seq = 1u64);
    drop(guard);
    assert_eq!(
        seqs(&std::fs::read_to_string(dir.file("app.log.1")).unwrap()),
        [0]
    );
    assert_eq!(seqs(&std::fs::read_to_string(&path).unwrap()), [1]);
}

/// A full disk, from a real device: `app.log` is a symbolic link to `/dev/full`, where every
/// write fails with ENOSPC. Lines go to the fallback, counted and reported once; once the
/// link is replaced and the file reopened, lines land in the file.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_sends_lines_to_the_fallback_and_reports_once() {
    let dir = TempDir::new("rolling-enospc");
    let path = dir.file("app.log");
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let file = RollingFile::builder(dir.path(), "app").build().unwrap();
    let (config, failures) = failing_config(&file);
    let (pipeline, guard) = SyncPipeline::start(config).unwrap();
    let log = pipeline.logger("app");
    for seq in 0..5u64 {
        info!(log, "x"; seq = seq);
    }
    std::fs::remove_file(&path).unwrap();
    file.reopen();
    info!(log, "x"; seq = 5u64);
    let stats = guard.close();
    assert_eq!(stats.written, 1, "{stats:?}");
    assert_eq!(stats.writers[0].written_via_fallback, 5, "{stats:?}");
    assert_eq!(stats.writers[0].write_errors, 5, "{stats:?}");
    let fallback: Vec<u64> = failures
        .fallback
        .lines()
        .iter()
        .map(|l| field(l, "seq"))
        .collect();
    assert_eq!(fallback, [0, 1, 2, 3, 4]);
    assert_eq!(seqs(&std::fs::read_to_string(&path).unwrap()), [5]);
    let reports = failures.reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("No space left"), "{reports:?}");
}
