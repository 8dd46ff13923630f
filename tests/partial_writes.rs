//! Fault injection (mock writers): destinations that take part of a write and then fail.
//! Bytes a destination accepted are never written to it again; a cut line gets one more try,
//! then the unfinished lines go whole to the fallback writer; every line ends in exactly one
//! bucket, on the sync pipeline, the async pipeline and a `current_thread` runtime alike.

mod common;

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};

use kakashi::write::{MemoryWriter, SyncWrite};
use kakashi::{info, AsyncPipeline, Pipeline, PipelineConfig, PipelineGuard, Stats, SyncPipeline};
use kakashi::{PipelineError, Writer};

/// Mock: takes at most half of each write (at least one byte) until `capacity` bytes in all,
/// then fails with ENOSPC, like a disk that fills up.
#[derive(Debug)]
struct FillingDiskMock {
    taken: Mutex<Vec<u8>>,
    capacity: usize,
}

impl SyncWrite for FillingDiskMock {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        let n = self.write(lines)?;
        if n == lines.len() {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(28))
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut taken = self.taken.lock().unwrap();
        let room = self.capacity.saturating_sub(taken.len());
        if room == 0 {
            return Err(io::Error::from_raw_os_error(28));
        }
        let n = buf.len().div_ceil(2).min(room);
        taken.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Mock: every write takes at most 7 bytes, and every 5th call fails with EIO (so a line of
/// ~60 bytes is often cut by two failures).
#[derive(Debug, Default)]
struct FlakyShortWriterMock {
    taken: Mutex<Vec<u8>>,
    calls: Mutex<u64>,
}

impl SyncWrite for FlakyShortWriterMock {
    fn write_lines(&self, _: &[u8]) -> io::Result<()> {
        Err(io::Error::other("not used"))
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        if *calls % 5 == 0 {
            return Err(io::Error::other("flaky"));
        }
        let n = buf.len().min(7);
        self.taken.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn seq_of(line: &str) -> Option<u64> {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix("seq="))
        .and_then(|v| v.parse().ok())
}

/// Splits a destination's bytes into whole lines and at most one torn tail.
fn whole_lines(bytes: &[u8]) -> (Vec<String>, Option<String>) {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_owned).collect();
    let torn = match lines.last() {
        Some(last) if !last.ends_with('\n') => lines.pop(),
        _ => None,
    };
    let whole = lines
        .into_iter()
        .map(|l| l.trim_end_matches('\n').to_owned())
        .collect();
    (whole, torn)
}

fn config(dest: Arc<dyn SyncWrite>, fallback: &MemoryWriter) -> PipelineConfig {
    PipelineConfig::builder()
        .writer(Writer::sync(dest))
        .fallback(Arc::new(fallback.clone()))
        .error_hook(|_: &PipelineError| {})
        .queue_capacity(64)
        .build()
        .unwrap()
}

const LINES: u64 = 3_000;

fn log_all(pipeline: &Pipeline) {
    let log = pipeline.logger("app");
    for seq in 0..LINES {
        info!(log, "record"; seq = seq);
    }
}

/// Every seq exactly once across the destination's whole lines and the fallback; a torn tail
/// (the disk filled mid-line) only at the very end, and its line whole in the fallback.
fn check_filling_disk(dest: &FillingDiskMock, fallback: &MemoryWriter, stats: &Stats) {
    let (whole, torn) = whole_lines(&dest.taken.lock().unwrap());
    let fallen = fallback.lines();
    let mut seen = HashSet::new();
    for line in whole.iter().chain(&fallen) {
        let seq = seq_of(line).unwrap_or_else(|| panic!("not a whole record: {line:?}"));
        assert!(seen.insert(seq), "seq {seq} twice");
    }
    assert_eq!(seen.len() as u64, LINES, "missing lines");
    if let Some(torn) = torn {
        // The cut line's start is at the destination; the whole line is in the fallback.
        let in_fallback = fallen.iter().any(|l| format!("{l}\n").starts_with(&torn));
        assert!(in_fallback, "torn {torn:?} is nowhere whole");
    }
    assert!(stats.is_settled(), "{stats:?}");
    assert_eq!(stats.written, whole.len() as u64, "{stats:?}");
    assert_eq!(stats.written_via_fallback, fallen.len() as u64, "{stats:?}");
    assert!(
        stats.written > 0 && stats.written_via_fallback > 0,
        "{stats:?}"
    );
}

fn filling_disk(start: impl FnOnce(PipelineConfig) -> (Pipeline, PipelineGuard)) {
    let dest = Arc::new(FillingDiskMock {
        taken: Mutex::new(Vec::new()),
        capacity: 50_000,
    });
    let fallback = MemoryWriter::new();
    let (pipeline, guard) = start(config(dest.clone(), &fallback));
    log_all(&pipeline);
    let stats = guard.close();
    check_filling_disk(&dest, &fallback, &stats);
}

#[test]
fn mock_disk_filling_up_sync_pipeline_no_duplicate_no_loss() {
    filling_disk(|c| SyncPipeline::start(c).unwrap());
}

#[test]
fn mock_disk_filling_up_async_multi_thread_no_duplicate_no_loss() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    filling_disk(|c| AsyncPipeline::start(c).unwrap());
}

#[test]
fn mock_disk_filling_up_async_current_thread_no_duplicate_no_loss() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    filling_disk(|c| AsyncPipeline::start(c).unwrap());
}

/// Short writes with an error now and then: a cut line gets one retry; if that fails too, the
/// line goes whole to the fallback and its tail is written to the destination before anything
/// else, so the destination never holds a torn line. Lines the errors hit before they were
/// begun go to the fallback. Each line is counted once.
fn flaky(start: impl FnOnce(PipelineConfig) -> (Pipeline, PipelineGuard)) {
    let dest = Arc::new(FlakyShortWriterMock::default());
    let fallback = MemoryWriter::new();
    let (pipeline, guard) = start(config(dest.clone(), &fallback));
    log_all(&pipeline);
    let stats = guard.close();
    let (whole, torn) = whole_lines(&dest.taken.lock().unwrap());
    assert_eq!(torn, None, "a torn line although the writer recovered");
    let fallen = fallback.lines();
    let in_dest = seqs_once(&whole, "destination");
    let in_fallback = seqs_once(&fallen, "fallback");
    // Lines in both: cut at the destination, then completed there after going whole to the
    // fallback (counted in the fallback only).
    let repaired = in_dest.intersection(&in_fallback).count() as u64;
    let all: HashSet<u64> = in_dest.union(&in_fallback).copied().collect();
    assert_eq!(all.len() as u64, LINES, "missing lines");
    assert!(stats.is_settled(), "{stats:?}");
    assert_eq!(stats.written, whole.len() as u64 - repaired, "{stats:?}");
    assert_eq!(stats.written_via_fallback, fallen.len() as u64, "{stats:?}");
    assert_eq!(stats.accepted, LINES);
    assert!(stats.write_errors > 0);
}

/// The seqs of `lines`, each a whole record, none twice.
fn seqs_once(lines: &[String], place: &str) -> HashSet<u64> {
    let mut seen = HashSet::new();
    for line in lines {
        let seq = seq_of(line).unwrap_or_else(|| panic!("not a whole record in {place}: {line:?}"));
        assert!(seen.insert(seq), "seq {seq} twice in {place}");
    }
    seen
}

#[test]
fn mock_flaky_short_writer_sync_pipeline() {
    flaky(|c| SyncPipeline::start(c).unwrap());
}

#[test]
fn mock_flaky_short_writer_async_pipeline() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    flaky(|c| AsyncPipeline::start(c).unwrap());
}
