//! Errors logged with `key = @err` are written with their `source()` chain, bounded: at most
//! 16 sources, and a source that was seen already (a cycle) ends the chain; a chain cut short
//! ends with `…`. Every formatter writes one whole line, and the owned copies agree.

mod common;

use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use kakashi::write::MemoryWriter;
use kakashi::{error, Field, Level, Location, LogRecord, OwnedValue, Value};

/// The most sources written after the error itself.
const MAX_SOURCES: usize = 16;
const MARKER: &str = "…";

/// An error in a linked chain that may loop back on itself.
///
/// `source()` stops answering after `budget` calls in all, so that an unbounded walk of a
/// cyclic chain ends (with a very long line) and the tests fail instead of running out of
/// memory.
#[derive(Debug)]
struct Node {
    msg: String,
    next: OnceLock<&'static Node>,
    budget: &'static AtomicUsize,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl Error for Node {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        let left = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        left.ok()?;
        self.next.get().map(|n| *n as &(dyn Error + 'static))
    }
}

fn node(msg: &str, budget: &'static AtomicUsize) -> &'static Node {
    Box::leak(Box::new(Node {
        msg: msg.to_owned(),
        next: OnceLock::new(),
        budget,
    }))
}

fn budget() -> &'static AtomicUsize {
    Box::leak(Box::new(AtomicUsize::new(10_000)))
}

/// An error whose `source()` is itself.
fn self_referencing() -> &'static Node {
    let e = node("loop", budget());
    e.next.set(e).unwrap();
    e
}

/// `ping` → `pong` → `ping` → …
fn two_cycle() -> &'static Node {
    let b = budget();
    let ping = node("ping", b);
    let pong = node("pong", b);
    ping.next.set(pong).unwrap();
    pong.next.set(ping).unwrap();
    ping
}

/// `e0` → `e1` → … → `e{len-1}`, all distinct.
fn linear(len: usize) -> &'static Node {
    let b = budget();
    let nodes: Vec<&'static Node> = (0..len).map(|i| node(&format!("e{i}"), b)).collect();
    for pair in nodes.windows(2) {
        pair[0].next.set(pair[1]).unwrap();
    }
    nodes[0]
}

/// A newtype whose source is its only field: the two share an address but are different
/// errors, and both must be written.
#[derive(Debug)]
struct Wrapper(Inner);

#[derive(Debug)]
struct Inner(String);

impl fmt::Display for Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapper")
    }
}

impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Wrapper {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

impl Error for Inner {}

/// The error written as an owned value (`Value::to_owned_value`).
fn owned_chain(e: &(dyn Error + 'static)) -> String {
    match Value::error(e).to_owned_value() {
        OwnedValue::Str(s) => s.to_string(),
        other => panic!("not a string: {other:?}"),
    }
}

/// The error as `OwnedLogRecord::error` has it.
fn owned_record_error(e: &(dyn Error + 'static)) -> String {
    static HERE: Location = Location::new(module_path!(), file!(), line!());
    let fields = [Field::new("err", Value::error(e))];
    let record =
        LogRecord::new(Level::Error, "app", format_args!("failed"), &HERE).with_fields(&fields);
    record.to_owned().error.expect("the record has an error")
}

/// The written bytes: exactly one whole line.
fn one_line(memory: &MemoryWriter) -> String {
    let text = String::from_utf8(memory.contents()).unwrap();
    assert!(text.ends_with('\n'), "not a whole line");
    assert_eq!(text.matches('\n').count(), 1, "not one line: {text:.300}");
    text.trim_end_matches('\n').to_owned()
}

/// The error written by the logfmt formatter.
fn logfmt_chain(e: &'static (dyn Error + 'static)) -> String {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("app");
    error!(log, "failed"; err = @*e);
    let line = one_line(&memory);
    assert!(
        line.len() < 2_000,
        "the logfmt line grew to {} bytes (is src/format/logfmt.rs walking the chain with \
         kakashi's bounded error_sources?): {line:.300}",
        line.len()
    );
    let pairs = common::parse_logfmt(&line);
    common::get(&pairs, "err").unwrap().to_owned()
}

/// The error written by the JSON formatter: its message and sources.
fn json_chain(e: &'static (dyn Error + 'static)) -> (String, Vec<String>) {
    // No runtime here: the pipeline is synchronous.
    let (memory, pipeline, _guard) = common::json_memory_pipeline();
    assert!(!pipeline.is_async());
    let log = pipeline.logger("app");
    error!(log, "failed"; err = @*e);
    let line = one_line(&memory);
    assert!(
        line.len() < 2_000,
        "the JSON line grew to {} bytes (is src/format/json.rs walking the chain with \
         kakashi's bounded error_sources?): {line:.300}",
        line.len()
    );
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let message = v["err"]["message"].as_str().unwrap().to_owned();
    let sources = v["err"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    (message, sources)
}

/// Checks a `": "`-joined chain of a cyclic error: it starts with the error, every message is
/// one of `names`, it ends with the marker and no message is repeated more than once.
fn assert_cut_cycle(chain: &str, names: &[&str]) {
    let parts: Vec<&str> = chain.split(": ").collect();
    assert_eq!(parts[0], names[0], "{chain:.300}");
    assert_eq!(parts.last(), Some(&MARKER), "{chain:.300}");
    let body = &parts[..parts.len() - 1];
    assert!(body.len() <= 2 * names.len(), "{chain:.300}");
    assert!(body.iter().all(|p| names.contains(p)), "{chain:.300}");
}

#[test]
fn owned_copies_of_a_self_referencing_error_are_bounded() {
    let e = self_referencing();
    assert_cut_cycle(&owned_chain(e), &["loop"]);
    assert_cut_cycle(&owned_record_error(e), &["loop"]);
}

#[test]
fn owned_copies_of_a_two_cycle_are_bounded() {
    let e = two_cycle();
    assert_cut_cycle(&owned_chain(e), &["ping", "pong"]);
    assert_cut_cycle(&owned_record_error(e), &["ping", "pong"]);
}

#[test]
fn owned_copies_of_a_long_chain_stop_after_16_sources() {
    let e = linear(40);
    let expected: Vec<String> = (0..=MAX_SOURCES)
        .map(|i| format!("e{i}"))
        .chain([MARKER.to_owned()])
        .collect();
    assert_eq!(owned_chain(e), expected.join(": "));
    assert_eq!(owned_record_error(e), expected.join(": "));
    // Exactly 16 sources: nothing is cut.
    let e = linear(MAX_SOURCES + 1);
    let expected: Vec<String> = (0..=MAX_SOURCES).map(|i| format!("e{i}")).collect();
    assert_eq!(owned_chain(e), expected.join(": "));
}

#[test]
fn owned_copies_keep_a_source_that_shares_its_wrappers_address() {
    let e = Wrapper(Inner("inner".to_owned()));
    let wrapper: &(dyn Error + 'static) = &e;
    assert!(std::ptr::addr_eq(wrapper, wrapper.source().unwrap()));
    assert_eq!(owned_chain(&e), "wrapper: inner");
    assert_eq!(owned_record_error(&e), "wrapper: inner");
}

#[test]
fn logfmt_writes_a_self_referencing_error_on_one_bounded_line() {
    assert_cut_cycle(&logfmt_chain(self_referencing()), &["loop"]);
}

#[test]
fn logfmt_writes_a_two_cycle_on_one_bounded_line() {
    assert_cut_cycle(&logfmt_chain(two_cycle()), &["ping", "pong"]);
}

#[test]
fn logfmt_cuts_a_long_chain_after_16_sources() {
    let expected: Vec<String> = (0..=MAX_SOURCES)
        .map(|i| format!("e{i}"))
        .chain([MARKER.to_owned()])
        .collect();
    assert_eq!(logfmt_chain(linear(40)), expected.join(": "));
}

#[test]
fn json_writes_a_self_referencing_error_on_one_bounded_line() {
    let (message, sources) = json_chain(self_referencing());
    assert_eq!(message, "loop");
    assert_eq!(
        sources.last().map(String::as_str),
        Some(MARKER),
        "{sources:?}"
    );
    assert!(sources.len() <= 2, "{sources:?}");
}

#[test]
fn json_writes_a_two_cycle_on_one_bounded_line() {
    let (message, sources) = json_chain(two_cycle());
    assert_eq!(message, "ping");
    assert_eq!(
        sources.last().map(String::as_str),
        Some(MARKER),
        "{sources:?}"
    );
    assert!(sources.len() <= 4, "{sources:?}");
    assert!(
        sources[..sources.len() - 1]
            .iter()
            .all(|s| s == "ping" || s == "pong"),
        "{sources:?}"
    );
}

#[test]
fn json_cuts_a_long_chain_after_16_sources() {
    let (message, sources) = json_chain(linear(40));
    assert_eq!(message, "e0");
    let expected: Vec<String> = (1..=MAX_SOURCES)
        .map(|i| format!("e{i}"))
        .chain([MARKER.to_owned()])
        .collect();
    assert_eq!(sources, expected);
}

#[test]
fn formatters_keep_a_source_that_shares_its_wrappers_address() {
    static E: OnceLock<Wrapper> = OnceLock::new();
    let e = E.get_or_init(|| Wrapper(Inner("inner".to_owned())));
    assert_eq!(logfmt_chain(e), "wrapper: inner");
    assert_eq!(
        json_chain(e),
        ("wrapper".to_owned(), vec!["inner".to_owned()])
    );
}
