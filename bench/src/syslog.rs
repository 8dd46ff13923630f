//! The syslog writer against a real local rsyslogd: throughput over TCP and RELP against a
//! file in the same run, and the caller's latency with a normal, a slow and an absent
//! collector.
//!
//! # Setup
//!
//! One rsyslogd (Debian's `rsyslog` and `rsyslog-relp`; `scripts/install-test-deps.sh`
//! installs them) started by this binary in a temp dir: `imtcp` and `imrelp` on free loopback
//! ports, a direct main queue, `omfile` with `%msg%` per line. Every record is `request
//! handled` with four fields, formatted by the writer's `SyslogFormatter` (RFC 5424); the
//! file contender writes the same formatter's lines to a file with `Writer::file`. Each
//! contender uses `AsyncPipeline` with its defaults on a 2-worker multi-thread runtime.
//!
//! # Figures
//!
//! - **throughput**: N records logged from one task as fast as it can, then
//!   `Pipeline::flush` (which, for the syslog writer, waits until the collector has every
//!   message — on RELP, acknowledged); records / (log + flush time). For the syslog
//!   contenders the time also waits until rsyslogd's file holds all N lines.
//! - **caller latency**: one thread logs M records at a paced rate (50,000 records/s),
//!   spinning until each record's scheduled time, with `Instant` around the logging call
//!   alone: p50, p99, p99.9, max. Against (a) the normal collector over TCP, (b) a slow
//!   collector — **fault injection**: a TCP listener that accepts the connection and never
//!   reads, so the kernel buffers fill and the writer's backlog then its fallback take the
//!   rest — and (c) an absent collector (a closed port). The fallback writer here counts and
//!   discards.
//!
//! ```text
//! cargo run --release -p kakashi-bench --bin syslog
//! SYSLOG_BENCH_RECORDS=200000 SYSLOG_BENCH_PACED=100000 cargo run --release -p kakashi-bench --bin syslog
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kakashi::syslog::{SyslogFormatter, SyslogWriter, Transport};
use kakashi::write::SyncWrite;
use kakashi::{info, AsyncPipeline, Pipeline, PipelineConfig, Writer};

/// A fallback that counts lines and discards them.
#[derive(Debug, Default)]
struct CountingSink(AtomicU64);

impl SyncWrite for CountingSink {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        let n = lines.iter().filter(|&&b| b == b'\n').count() as u64;
        self.0.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

struct Rsyslogd {
    dir: PathBuf,
    child: Child,
    tcp: u16,
    relp: u16,
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn start_rsyslogd(dir: &Path) -> Result<Rsyslogd, String> {
    let modules = [
        "/usr/lib/x86_64-linux-gnu/rsyslog",
        "/usr/lib/aarch64-linux-gnu/rsyslog",
        "/usr/lib/rsyslog",
    ]
    .into_iter()
    .find(|d| Path::new(d).join("imrelp.so").exists())
    .ok_or("rsyslog with imrelp is not installed (scripts/install-test-deps.sh)")?;
    let (tcp, relp) = (free_port(), free_port());
    let work = dir.display();
    let conf = format!(
        r#"global(workDirectory="{work}" maxMessageSize="64k")
module(load="{modules}/imtcp.so")
module(load="{modules}/imrelp.so")
main_queue(queue.type="Direct")
template(name="msgonly" type="string" string="%msg%\n")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imrelp" address="127.0.0.1" port="{relp}")
action(type="omfile" file="{work}/out.log" template="msgonly")
"#
    );
    let conf_path = dir.join("rsyslog.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let child = Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&conf_path)
        .arg("-i")
        .arg(dir.join("pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start rsyslogd: {e}"))?;
    let daemon = Rsyslogd {
        dir: dir.to_owned(),
        child,
        tcp,
        relp,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    for port in [tcp, relp] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("rsyslogd does not listen on {port}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(daemon)
}

fn lines_in(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0)
}

fn log_one(pipeline: &Pipeline, i: u64) {
    info!(pipeline.logger("bench"), "request handled";
        user_id = 42u64, path = "/api/v1/items", status = 200u64, seq = i);
}

fn pipeline_config(writer: Writer, fallback: &Arc<CountingSink>) -> Result<PipelineConfig, String> {
    PipelineConfig::builder()
        .writer(writer)
        .fallback(Arc::clone(fallback) as Arc<dyn SyncWrite>)
        .error_hook(|_| {})
        .build()
        .map_err(|e| e.to_string())
}

/// Logs `n` records and flushes; returns records/s (until `arrived` says all are there).
fn throughput(
    runtime: &tokio::runtime::Runtime,
    writer: Writer,
    n: u64,
    arrived: &dyn Fn() -> u64,
) -> Result<f64, String> {
    let fallback = Arc::new(CountingSink::default());
    let config = pipeline_config(writer, &fallback)?;
    let before = arrived();
    let elapsed = runtime.block_on(async {
        let (pipeline, guard) = AsyncPipeline::start(config).map_err(|e| e.to_string())?;
        let started = Instant::now();
        for i in 0..n {
            log_one(&pipeline, i);
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
        pipeline.flush().await;
        let deadline = Instant::now() + Duration::from_secs(120);
        while arrived() - before < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = started.elapsed();
        let _ = guard.shutdown().await;
        Ok::<_, String>(elapsed)
    })?;
    let got = arrived() - before;
    if got != n {
        return Err(format!("only {got} of {n} records arrived"));
    }
    if fallback.0.load(Ordering::Relaxed) > 0 {
        return Err("records went to the fallback".to_owned());
    }
    Ok(n as f64 / elapsed.as_secs_f64())
}

struct Latency {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
    fallback: u64,
}

/// Logs `m` records at `rate` per second from one thread; per-call latency.
fn paced_latency(
    runtime: &tokio::runtime::Runtime,
    writer: Writer,
    m: u64,
    rate: u64,
) -> Result<Latency, String> {
    let fallback = Arc::new(CountingSink::default());
    let config = pipeline_config(writer, &fallback)?;
    let _entered = runtime.enter();
    let (pipeline, guard) = AsyncPipeline::start(config).map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(m as usize);
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let started = Instant::now();
    for i in 0..m {
        let due = started + interval * i as u32;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        let t = Instant::now();
        log_one(&pipeline, i);
        samples.push(t.elapsed());
    }
    drop(guard);
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Ok(Latency {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: samples[samples.len() - 1],
        fallback: fallback.0.load(Ordering::Relaxed),
    })
}

fn run() -> Result<(), String> {
    let n: u64 = std::env::var("SYSLOG_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let m: u64 = std::env::var("SYSLOG_BENCH_PACED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("kakashi-syslog-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let daemon = start_rsyslogd(&dir)?;
    let out = dir.join("out.log");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    println!("throughput: {n} records, log + flush until delivered");
    println!("| destination | records/s | vs file |");
    println!("|---|---|---|");
    let file_path = dir.join("file.log");
    let formatter = SyslogFormatter::new().app_name("bench");
    let file = throughput(
        &runtime,
        Writer::file(&file_path).formatter(formatter),
        n,
        &|| lines_in(&file_path),
    )?;
    println!("| file (`Writer::file`, same syslog lines) | {file:.0} | 1.00 |");
    let tcp = || Transport::tcp(format!("127.0.0.1:{}", daemon.tcp));
    let relp = || Transport::relp(format!("127.0.0.1:{}", daemon.relp));
    for (name, transport, window) in [
        ("rsyslogd over TCP", tcp(), 128),
        ("rsyslogd over RELP (window 128, the default)", relp(), 128),
        ("rsyslogd over RELP (window 1024)", relp(), 1024),
    ] {
        // A backlog that holds every record: this measures the sustained rate, not the
        // overflow policy.
        let syslog = SyslogWriter::builder(transport)
            .app_name("bench")
            .backlog_bytes(1 << 30)
            .relp_window(window)
            .flush_timeout(Duration::from_secs(120))
            .error_hook(|e| eprintln!("{e}"))
            .build()
            .map_err(|e| e.to_string())?;
        let rate = throughput(&runtime, Writer::syslog(&syslog), n, &|| lines_in(&out))
            .map_err(|e| format!("{name}: {e}; {:?}", syslog.stats()))?;
        println!("| {name} | {rate:.0} | {:.2} |", rate / file);
        syslog.close();
    }

    println!();
    println!("caller latency: {m} records at 50,000 records/s from one thread");
    println!("| collector | p50 | p99 | p99.9 | max | to fallback |");
    println!("|---|---|---|---|---|---|");
    // Fault injection: accepts and never reads.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let stalled_port = stalled.local_addr().map_err(|e| e.to_string())?.port();
    let keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((conn, _)) = stalled.accept() {
            held.push(conn);
            if held.len() > 16 {
                break;
            }
        }
    });
    let absent_port = free_port();
    let mib = 1024 * 1024;
    for (name, transport, backlog) in [
        (
            "normal (rsyslogd, TCP)",
            Transport::tcp(format!("127.0.0.1:{}", daemon.tcp)),
            16 * mib,
        ),
        (
            "normal (rsyslogd, RELP)",
            Transport::relp(format!("127.0.0.1:{}", daemon.relp)),
            16 * mib,
        ),
        (
            "slow (never reads; fault injection)",
            Transport::tcp(format!("127.0.0.1:{stalled_port}")),
            16 * mib,
        ),
        (
            "slow, 1 MiB backlog (overflows to the fallback)",
            Transport::tcp(format!("127.0.0.1:{stalled_port}")),
            mib,
        ),
        (
            "absent (closed port)",
            Transport::tcp(format!("127.0.0.1:{absent_port}")),
            16 * mib,
        ),
    ] {
        let syslog = SyslogWriter::builder(transport)
            .app_name("bench")
            .backlog_bytes(backlog)
            .close_timeout(Duration::from_millis(200))
            .error_hook(|_| {})
            .build()
            .map_err(|e| e.to_string())?;
        let l = paced_latency(&runtime, Writer::syslog(&syslog), m, 50_000)?;
        println!(
            "| {name} | {:?} | {:?} | {:?} | {:?} | {} |",
            l.p50, l.p99, l.p999, l.max, l.fallback
        );
        syslog.close();
    }
    let file = paced_latency(&runtime, Writer::file(dir.join("paced.log")), m, 50_000)?;
    println!(
        "| (file, for reference) | {:?} | {:?} | {:?} | {:?} | {} |",
        file.p50, file.p99, file.p999, file.max, file.fallback
    );
    drop(keep);
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("syslog bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
