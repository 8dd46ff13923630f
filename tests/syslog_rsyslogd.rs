//! The syslog writer against real rsyslogd daemons (Debian's `rsyslog` and `rsyslog-relp`;
//! `scripts/install-test-deps.sh` installs them). Each test starts its own unprivileged daemon
//! with a config in a temp dir, on free loopback ports, and parses every message back from the
//! daemon's output file field by field.
#![cfg(feature = "syslog")]

mod common;
#[path = "common/rsyslogd.rs"]
mod rsyslogd;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kakashi::syslog::{
    Facility, LossReporting, SyslogBuilder, SyslogError, SyslogStats, SyslogWriter, Transport,
};
use kakashi::write::{MemoryWriter, SyncWrite};
use kakashi::{info, AsyncPipeline, LogContext, Pipeline, PipelineConfig, SyncPipeline, Writer};
use rsyslogd::{Output, Rsyslogd};

const APP: &str = "kakashi-test";
const HOST: &str = "test-host";
const PROCID: &str = "4242";
/// local4 * 8 + informational.
const PRI_INFO: &str = "166";

/// How many records the bulk tests send (`KAKASHI_SYSLOG_RECORDS` overrides; the issue asks
/// for 100 000).
fn bulk_records() -> u64 {
    std::env::var("KAKASHI_SYSLOG_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Udp,
    Tcp,
    Relp,
}

fn transport(kind: Kind, daemon: &Rsyslogd) -> Transport {
    match kind {
        Kind::Udp => Transport::udp(format!("127.0.0.1:{}", daemon.udp)),
        Kind::Tcp => Transport::tcp(format!("127.0.0.1:{}", daemon.tcp)),
        Kind::Relp => Transport::relp(format!("127.0.0.1:{}", daemon.relp)),
    }
}

/// The hook's reports, kept for the test to read.
type Reports = Arc<Mutex<Vec<String>>>;

fn builder(transport: Transport, reports: &Reports) -> SyslogBuilder {
    let reports = Arc::clone(reports);
    SyslogWriter::builder(transport)
        .hostname(HOST)
        .app_name(APP)
        .procid(PROCID)
        .facility(Facility::Local4)
        .backlog_bytes(512 << 20)
        .flush_timeout(Duration::from_secs(120))
        .close_timeout(Duration::from_secs(10))
        .error_hook(move |e: &SyslogError| reports.lock().unwrap().push(e.to_string()))
}

fn config(syslog: &SyslogWriter, fallback: &MemoryWriter) -> PipelineConfig {
    PipelineConfig::builder()
        .writer(Writer::syslog(syslog))
        .fallback(Arc::new(fallback.clone()) as Arc<dyn SyncWrite>)
        .build()
        .unwrap()
}

/// Logs record `seq` with two fields and a request id from the context.
fn log_record(pipeline: &Pipeline, seq: u64) {
    let ctx = LogContext::new().with_request_id(format!("req-{}", seq % 13));
    kakashi::context::sync_scope(ctx, || {
        info!(pipeline.logger("load"), "record {} done", seq; seq = seq, user = "u x");
    });
}

/// Checks one record parsed back from rsyslog, field by field; returns its sequence number.
fn check_record(r: &serde_json::Value) -> u64 {
    assert_eq!(r["pri"], PRI_INFO, "{r}");
    let ts = r["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "timestamp {ts}"
    );
    assert_eq!(r["hostname"], HOST, "{r}");
    assert_eq!(r["app"], APP, "{r}");
    assert_eq!(r["procid"], PROCID, "{r}");
    assert_eq!(r["msgid"], "load", "{r}");
    let msg = r["msg"].as_str().unwrap();
    let seq: u64 = msg
        .strip_prefix("record ")
        .and_then(|m| m.strip_suffix(" done"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("msg {msg:?}"));
    let sd = parse_sd(r["sd"].as_str().unwrap());
    assert_eq!(
        sd,
        vec![(
            "kakashi@32473".to_owned(),
            vec![
                ("seq".to_owned(), seq.to_string()),
                ("user".to_owned(), "u x".to_owned()),
                ("request_id".to_owned(), format!("req-{}", seq % 13)),
            ]
        )],
        "{r}"
    );
    seq
}

/// Parses RFC 5424 structured data: `[ID name="value" …]…`, unescaping `\"`, `\\`, `\]`.
fn parse_sd(sd: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut elements = Vec::new();
    let mut chars = sd.chars().peekable();
    while chars.peek() == Some(&'[') {
        chars.next();
        let mut id = String::new();
        while let Some(&c) = chars.peek() {
            if c == ' ' || c == ']' {
                break;
            }
            id.push(c);
            chars.next();
        }
        let mut params = Vec::new();
        while chars.next() == Some(' ') {
            let mut name = String::new();
            for c in chars.by_ref() {
                if c == '=' {
                    break;
                }
                name.push(c);
            }
            assert_eq!(chars.next(), Some('"'), "in {sd}");
            let mut value = String::new();
            loop {
                match chars
                    .next()
                    .unwrap_or_else(|| panic!("unterminated value in {sd}"))
                {
                    '\\' => match chars.peek() {
                        Some(&c @ ('"' | '\\' | ']')) => {
                            value.push(c);
                            chars.next();
                        }
                        _ => value.push('\\'),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            params.push((name, value));
        }
        elements.push((id, params));
    }
    assert!(chars.next().is_none(), "trailing bytes in {sd}");
    elements
}

/// Sends `n` records through a multi-thread runtime's async pipeline, flushes, and returns
/// the writer's counters and the pipeline's stats.
fn send_bulk(
    syslog: &SyslogWriter,
    fallback: &MemoryWriter,
    n: u64,
) -> (SyslogStats, kakashi::Stats) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (pipeline, guard) = AsyncPipeline::start(config(syslog, fallback)).unwrap();
        for seq in 0..n {
            log_record(&pipeline, seq);
        }
        pipeline.flush().await;
        let stats = guard.shutdown().await;
        (syslog.stats(), stats)
    })
}

fn bulk(kind: Kind) {
    let n = bulk_records();
    let daemon = Rsyslogd::start(Output::File);
    let reports = Reports::default();
    let syslog = builder(transport(kind, &daemon), &reports)
        .datagram_limit(4096)
        .build()
        .unwrap();
    let fallback = MemoryWriter::new();
    let started = Instant::now();
    let (stats, pipeline_stats) = send_bulk(&syslog, &fallback, n);
    let sent_in = started.elapsed();
    assert_eq!(pipeline_stats.written, n, "{pipeline_stats:?}");
    assert_eq!(stats.accepted, n);
    assert_eq!(stats.overflowed, 0);
    assert_eq!(stats.delivered, n, "{stats:?}");
    assert_eq!(stats.backlog, 0);
    assert!(fallback.lines().is_empty());
    // UDP may drop on a busy machine (CI shares 2 cores): a quarter must arrive.
    let expected = if kind == Kind::Udp { n / 4 } else { n };
    let records = daemon.wait_for(APP, n as usize, Duration::from_secs(300));
    eprintln!(
        "{kind:?}: {n} records sent in {sent_in:?}, {} arrived after {:?}",
        records.len(),
        started.elapsed()
    );
    let mut seen = vec![false; n as usize];
    for r in &records {
        let seq = check_record(r);
        assert!(!seen[seq as usize], "record {seq} twice");
        seen[seq as usize] = true;
    }
    match kind {
        Kind::Udp => {
            // UDP may drop on a busy machine; the writer cannot know (and says so).
            assert_eq!(stats.loss, Some(LossReporting::Unknown));
            assert!(
                records.len() as u64 >= expected,
                "only {} of {n} datagrams arrived",
                records.len()
            );
        }
        _ => assert_eq!(records.len() as u64, n),
    }
    assert!(
        reports.lock().unwrap().is_empty(),
        "{:?}",
        reports.lock().unwrap()
    );
}

#[test]
fn udp_bulk_records_arrive_field_by_field() {
    bulk(Kind::Udp);
}

#[test]
fn tcp_bulk_records_arrive_field_by_field() {
    bulk(Kind::Tcp);
}

#[test]
fn relp_bulk_records_arrive_field_by_field() {
    bulk(Kind::Relp);
}

#[test]
fn unix_datagram_records_arrive_in_the_rfc3164_form() {
    let n = 2_000;
    let daemon = Rsyslogd::start(Output::File);
    let reports = Reports::default();
    let syslog = builder(Transport::unix_datagram(daemon.unix_socket()), &reports)
        .build()
        .unwrap();
    let fallback = MemoryWriter::new();
    let (stats, _) = send_bulk(&syslog, &fallback, n);
    assert_eq!((stats.accepted, stats.delivered), (n, n), "{stats:?}");
    assert_eq!(stats.loss, Some(LossReporting::Unknown));
    let records = daemon.wait_for(APP, n as usize, Duration::from_secs(60));
    assert_eq!(records.len() as u64, n);
    let mut seqs = Vec::new();
    for r in &records {
        assert_eq!(r["pri"], PRI_INFO, "{r}");
        assert_eq!(r["procid"], PROCID, "{r}");
        // rsyslog keeps the space after an RFC 3164 tag's colon in MSG.
        let msg = r["msg"].as_str().unwrap().strip_prefix(' ').unwrap();
        let seq: u64 = msg
            .strip_prefix("record ")
            .and_then(|m| m.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{r}"));
        assert_eq!(
            msg,
            format!(
                "record {seq} done seq={seq} user=\"u x\" request_id=req-{}",
                seq % 13
            )
        );
        seqs.push(seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>());
}

#[test]
fn relay_forwards_over_relp_to_the_central_collector() {
    let n = 10_000;
    let central = Rsyslogd::start(Output::File);
    let relay = Rsyslogd::start(Output::RelpTo(central.relp));
    let reports = Reports::default();
    let syslog = builder(transport(Kind::Relp, &relay), &reports)
        .build()
        .unwrap();
    let fallback = MemoryWriter::new();
    let (stats, _) = send_bulk(&syslog, &fallback, n);
    assert_eq!(stats.delivered, n);
    let records = central.wait_for(APP, n as usize, Duration::from_secs(120));
    let mut seqs: Vec<u64> = records.iter().map(check_record).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>());
}

#[test]
fn relay_chain_delivers_everything_when_the_central_collector_is_killed_and_restarted() {
    let n = 10_000;
    let mut central = Rsyslogd::start(Output::File);
    let relay = Rsyslogd::start(Output::RelpTo(central.relp));
    let reports = Reports::default();
    let syslog = builder(transport(Kind::Relp, &relay), &reports)
        .build()
        .unwrap();
    let fallback = MemoryWriter::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (pipeline, guard) = AsyncPipeline::start(config(&syslog, &fallback)).unwrap();
        for seq in 0..n {
            log_record(&pipeline, seq);
            if seq % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if seq == n / 2 {
                central.kill9();
            }
        }
        pipeline.flush().await;
        let _ = guard.shutdown().await;
    });
    // kakashi's messages are all with the relay, which holds them in its action queue while
    // the central collector is away.
    assert_eq!(syslog.stats().delivered, n);
    central.restart();
    let records = central.wait_for(APP, n as usize, Duration::from_secs(120));
    let mut seqs: Vec<u64> = records.iter().map(check_record).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "lost in the chain");
}

/// Sends `n` records at a steady pace while another thread SIGKILLs the collector a third of
/// the way through and restarts it 300 ms later. Returns how often each record arrived, the
/// counters and the error hook's reports.
fn kill_and_restart(kind: Kind, n: u64) -> (HashMap<u64, usize>, SyslogStats, Vec<String>) {
    let daemon = Arc::new(Mutex::new(Rsyslogd::start(Output::File)));
    let reports = Reports::default();
    let syslog = builder(transport(kind, &daemon.lock().unwrap()), &reports)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap();
    let fallback = MemoryWriter::new();
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let killer = {
        let daemon = Arc::clone(&daemon);
        let progress = Arc::clone(&progress);
        std::thread::spawn(move || {
            while progress.load(std::sync::atomic::Ordering::Relaxed) < n / 3 {
                std::thread::sleep(Duration::from_micros(200));
            }
            let mut daemon = daemon.lock().unwrap();
            daemon.kill9();
            std::thread::sleep(Duration::from_millis(300));
            daemon.restart();
        })
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stats = runtime.block_on(async {
        let (pipeline, guard) = AsyncPipeline::start(config(&syslog, &fallback)).unwrap();
        for seq in 0..n {
            log_record(&pipeline, seq);
            progress.store(seq, std::sync::atomic::Ordering::Relaxed);
            if seq % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        pipeline.flush().await;
        let stats = guard.shutdown().await;
        assert_eq!(stats.written, n, "{stats:?}");
        syslog.stats()
    });
    killer.join().unwrap();
    assert!(fallback.lines().is_empty());
    let records = daemon
        .lock()
        .unwrap()
        .wait_for(APP, n as usize, Duration::from_secs(60));
    let mut arrived = HashMap::new();
    for r in &records {
        *arrived.entry(check_record(r)).or_insert(0) += 1;
    }
    let reports = reports.lock().unwrap().clone();
    eprintln!(
        "{kind:?} with a SIGKILLed collector: {} of {n} arrived ({} distinct); {stats:?}; \
         reports: {reports:?}",
        records.len(),
        arrived.len()
    );
    (arrived, stats, reports)
}

#[test]
fn relp_loses_nothing_when_the_collector_is_killed_and_restarted() {
    let n = 30_000;
    let (arrived, stats, reports) = kill_and_restart(Kind::Relp, n);
    assert_eq!(stats.delivered, n, "{stats:?}");
    let missing: Vec<u64> = (0..n).filter(|s| !arrived.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{} lost: {:?}…",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // Duplicates only from messages sent again after the kill.
    let duplicates: usize = arrived.values().map(|c| c - 1).sum();
    assert!(
        duplicates as u64 <= stats.resent,
        "{duplicates} duplicates, {stats:?}"
    );
    assert!(stats.connects >= 2, "{stats:?}");
    assert!(
        reports.iter().any(|r| r.contains("connection lost")),
        "{reports:?}"
    );
}

#[test]
fn tcp_loses_no_more_than_it_reports_when_the_collector_is_killed() {
    let n = 30_000;
    let (arrived, stats, reports) = kill_and_restart(Kind::Tcp, n);
    assert_eq!(stats.delivered, n, "{stats:?}");
    let missing = (0..n).filter(|s| !arrived.contains_key(s)).count() as u64;
    assert!(missing <= stats.maybe_lost, "{missing} lost, {stats:?}");
    // Bytes the kernel took are never sent twice.
    assert!(arrived.values().all(|&c| c == 1));
    assert!(stats.connects >= 2, "{stats:?}");
    assert!(
        reports.iter().any(|r| r.contains("maybe lost")),
        "the loss was not reported: {reports:?}"
    );
}

#[test]
fn udp_loss_is_reported_as_unknown_when_the_collector_is_killed() {
    let n = 30_000;
    let (arrived, stats, _) = kill_and_restart(Kind::Udp, n);
    assert_eq!(stats.loss, Some(LossReporting::Unknown));
    assert_eq!(stats.maybe_lost, 0);
    assert!(arrived.len() as u64 <= n);
    assert!(arrived.values().all(|&c| c == 1));
}

/// What the formatter promises for a value once the RFC's escapes are undone: line breaks,
/// other controls, line separators and bidi controls written as `\n`, `\r`, `\t`, `\uXXXX`.
fn shown(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn hostile_values() -> Vec<String> {
    use std::os::unix::ffi::OsStrExt;
    let not_utf8 = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/tmp/\xff\xfe-\xc3("));
    vec![
        "line one\nline two\r\n<14>1 2026-01-01T00:00:00Z forged - - - - injected".to_owned(),
        "close] [forged@1 evil=\"yes\"]".to_owned(),
        "quote\" backslash\\ \\] \\\"".to_owned(),
        not_utf8.display().to_string(),
        "\u{202e}reversed\u{2066} \u{2028}sep\u{1b}[31m\u{85}".to_owned(),
        format!("big]{}\"end", "x".repeat(64 * 1024)),
    ]
}

fn hostile(kind: Kind) {
    let daemon = Rsyslogd::start(Output::File);
    let reports = Reports::default();
    let syslog = builder(transport(kind, &daemon), &reports)
        .datagram_limit(60_000)
        .build()
        .unwrap();
    let fallback = MemoryWriter::new();
    let values = hostile_values();
    let config = config(&syslog, &fallback);
    let (pipeline, guard) = SyncPipeline::start(config).unwrap();
    for (i, value) in values.iter().enumerate() {
        info!(pipeline.logger("load"), "hostile {} {}", i, value; i = i, "k]\"= x" = value.as_str());
    }
    drop(guard);
    assert!(syslog.sync_writer().flush().is_ok());
    let records = daemon.wait_for(APP, values.len(), Duration::from_secs(30));
    assert_eq!(records.len(), values.len(), "{records:#?}");
    for (i, (record, value)) in records.iter().zip(&values).enumerate() {
        let msg = record["msg"].as_str().unwrap();
        if kind == Kind::Udp && value.len() > 60_000 {
            // Cut to the datagram limit: still one message, marked.
            assert!(record.to_string().contains("[truncated]"), "{record}");
            continue;
        }
        assert_eq!(msg, format!("hostile {i} {}", shown(value)), "record {i}");
        let raw_sd = record["sd"].as_str().unwrap();
        let rfc_escaped: String = value
            .chars()
            .map(|c| match c {
                '"' | '\\' | ']' => format!("\\{c}"),
                c => shown(c.encode_utf8(&mut [0; 4])),
            })
            .collect();
        let expected_sd = format!("[kakashi@32473 i=\"{i}\" k____x=\"{rfc_escaped}\"]");
        if expected_sd.len() > 65_535 {
            // rsyslog 8.2302 keeps structured data's length in 16 bits: it cuts a longer one
            // (the message is still one message, and its MSG whole).
            assert!(expected_sd.starts_with(raw_sd), "record {i}");
            continue;
        }
        assert_eq!(raw_sd, expected_sd, "record {i}");
        let sd = parse_sd(raw_sd);
        assert_eq!(sd.len(), 1, "{record}");
        assert_eq!(
            sd[0].1,
            vec![
                ("i".to_owned(), i.to_string()),
                ("k____x".to_owned(), shown(value))
            ],
            "record {i}"
        );
    }
}

#[test]
fn hostile_values_stay_one_message_each_over_tcp() {
    hostile(Kind::Tcp);
}

#[test]
fn hostile_values_stay_one_message_each_over_relp() {
    hostile(Kind::Relp);
}

#[test]
fn hostile_values_stay_one_message_each_over_udp() {
    hostile(Kind::Udp);
}

/// Logs 200 records over RELP and checks they all arrive and are acknowledged.
fn check_executor_run(daemon: &Rsyslogd, syslog: &SyslogWriter) {
    let records = daemon.wait_for(APP, 200, Duration::from_secs(30));
    let mut seqs: Vec<u64> = records.iter().map(check_record).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    let stats = syslog.stats();
    assert_eq!((stats.accepted, stats.delivered), (200, 200), "{stats:?}");
}

fn relp_writer(daemon: &Rsyslogd) -> (SyslogWriter, MemoryWriter) {
    let syslog = builder(transport(Kind::Relp, daemon), &Reports::default())
        .build()
        .unwrap();
    (syslog, MemoryWriter::new())
}

#[test]
fn works_with_no_runtime() {
    let daemon = Rsyslogd::start(Output::File);
    let (syslog, fallback) = relp_writer(&daemon);
    let (pipeline, guard) = SyncPipeline::start(config(&syslog, &fallback)).unwrap();
    for seq in 0..200 {
        log_record(&pipeline, seq);
    }
    // The flush waits for the acknowledgements.
    assert!(pipeline.flush_blocking(Duration::from_secs(30)));
    assert_eq!(syslog.stats().delivered, 200);
    drop(guard);
    check_executor_run(&daemon, &syslog);
}

#[tokio::test(flavor = "current_thread")]
async fn works_on_a_current_thread_runtime() {
    let daemon = Rsyslogd::start(Output::File);
    let (syslog, fallback) = relp_writer(&daemon);
    let (pipeline, guard) = AsyncPipeline::start(config(&syslog, &fallback)).unwrap();
    for seq in 0..200 {
        log_record(&pipeline, seq);
    }
    pipeline.flush().await;
    assert_eq!(syslog.stats().delivered, 200);
    let _ = guard.shutdown().await;
    check_executor_run(&daemon, &syslog);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_a_multi_thread_runtime() {
    let daemon = Rsyslogd::start(Output::File);
    let (syslog, fallback) = relp_writer(&daemon);
    let (pipeline, guard) = AsyncPipeline::start(config(&syslog, &fallback)).unwrap();
    let mut tasks = Vec::new();
    for part in 0..4u64 {
        let pipeline = pipeline.clone();
        tasks.push(tokio::spawn(async move {
            for seq in (part * 50)..(part * 50 + 50) {
                log_record(&pipeline, seq);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    pipeline.flush().await;
    assert_eq!(syslog.stats().delivered, 200);
    let _ = guard.shutdown().await;
    check_executor_run(&daemon, &syslog);
}

#[test]
fn works_on_a_runtime_without_the_time_driver() {
    let daemon = Rsyslogd::start(Output::File);
    let (syslog, fallback) = relp_writer(&daemon);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (pipeline, guard) = AsyncPipeline::start(config(&syslog, &fallback)).unwrap();
        for seq in 0..200 {
            log_record(&pipeline, seq);
        }
        pipeline.flush().await;
        assert_eq!(syslog.stats().delivered, 200);
        let _ = guard.shutdown().await;
    });
    check_executor_run(&daemon, &syslog);
}

#[test]
fn an_absent_collector_fills_the_backlog_then_the_fallback_and_the_backlog_is_sent_later() {
    let mut daemon = Rsyslogd::start(Output::File);
    daemon.kill9();
    let reports = Reports::default();
    let syslog = builder(transport(Kind::Tcp, &daemon), &reports)
        .backlog_bytes(16 * 1024)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .flush_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let fallback = MemoryWriter::new();
    let (pipeline, guard) = SyncPipeline::start(config(&syslog, &fallback)).unwrap();
    let mut slowest = Duration::ZERO;
    for seq in 0..1000 {
        let started = Instant::now();
        log_record(&pipeline, seq);
        slowest = slowest.max(started.elapsed());
    }
    // No caller waits for the absent collector.
    assert!(
        slowest < Duration::from_millis(100),
        "a call took {slowest:?}"
    );
    let stats = syslog.stats();
    let pipeline_stats = pipeline.stats();
    assert_eq!(stats.accepted + stats.overflowed, 1000, "{stats:?}");
    assert!(stats.overflowed > 0 && stats.accepted > 0, "{stats:?}");
    assert_eq!(pipeline_stats.written, stats.accepted);
    assert_eq!(pipeline_stats.written_via_fallback, stats.overflowed);
    assert_eq!(fallback.lines().len() as u64, stats.overflowed);
    assert_eq!(stats.delivered, 0);
    let waited = Instant::now();
    while !reports
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.contains("cannot connect"))
    {
        assert!(waited.elapsed() < Duration::from_secs(5), "no report");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The flush gives up after its timeout and says how much is left.
    let error = syslog.sync_writer().flush().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    // The collector comes back: the backlog goes out.
    daemon.restart();
    let records = daemon.wait_for(APP, stats.accepted as usize, Duration::from_secs(30));
    assert_eq!(records.len() as u64, stats.accepted);
    let fallback_seqs: Vec<u64> = fallback
        .lines()
        .iter()
        .map(|l| {
            let at = l.find("record ").unwrap() + 7;
            l[at..].split(' ').next().unwrap().parse().unwrap()
        })
        .collect();
    let mut all: Vec<u64> = records
        .iter()
        .map(check_record)
        .chain(fallback_seqs)
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..1000).collect::<Vec<_>>(),
        "every record in exactly one place"
    );
    drop(guard);
    let stats = syslog.close();
    assert_eq!(stats.delivered, stats.accepted);
}
