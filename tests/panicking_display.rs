//! A `Display` impl that panics half-way through a record leaves the thread's line buffer
//! usable: the next record logged on the same thread comes out whole, and nothing of the
//! half-written line is ever written.

mod common;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use kakashi::write::MemoryWriter;
use kakashi::{info, Level};

/// Writes a recognisable half value, then panics.
struct Boom;

impl fmt::Display for Boom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HALF-WRITTEN")?;
        panic!("display failed half-way");
    }
}

/// The written bytes, checked to hold nothing of the panicked record.
fn written_text(memory: &MemoryWriter) -> String {
    let text = String::from_utf8(memory.contents()).expect("UTF-8");
    assert!(!text.contains("HALF"), "a half line was written: {text:?}");
    assert!(!text.contains("panicked"), "{text:?}");
    assert!(text.ends_with('\n'), "not whole lines: {text:?}");
    text
}

#[test]
fn logfmt_the_record_after_a_panicking_field_is_whole() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("app");
    let caught = catch_unwind(AssertUnwindSafe(|| {
        info!(log, "panicked"; before = 1, bad = %Boom, after = 2);
    }));
    assert!(caught.is_err(), "the Display impl panics");
    info!(log, "second"; n = 2, s = "x y");

    let text = written_text(&memory);
    assert_eq!(text.matches('\n').count(), 1, "{text:?}");
    let pairs = common::parse_logfmt(text.trim_end_matches('\n'));
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["ts", "level", "logger", "msg", "n", "s"], "{text:?}");
    assert_eq!(common::get(&pairs, "msg"), Some("second"));
    assert_eq!(common::get(&pairs, "n"), Some("2"));
    assert_eq!(common::get(&pairs, "s"), Some("x y"));
}

#[test]
fn json_the_record_after_a_panicking_message_or_field_is_whole() {
    // No runtime here: the pipeline is synchronous.
    let (memory, pipeline, _guard) = common::json_memory_pipeline();
    assert!(!pipeline.is_async());
    let log = pipeline.logger("app");
    for round in 0..2 {
        let caught = catch_unwind(AssertUnwindSafe(|| {
            if round == 0 {
                info!(log, "panicked {}", Boom; before = 1);
            } else {
                info!(log, "panicked"; before = 1, bad = %Boom);
            }
        }));
        assert!(caught.is_err());
        info!(log, "after"; round = round);
    }

    let text = written_text(&memory);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    for (round, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("one whole JSON object");
        assert_eq!(v["message"], "after");
        assert_eq!(v["round"], round);
        assert!(v.get("before").is_none(), "{line}");
    }
}

#[tokio::test]
async fn async_pipeline_the_record_after_a_panicking_field_is_whole() {
    let (memory, pipeline, _guard) = common::json_memory_pipeline();
    let log = pipeline.logger("app");
    // A line handed off before the panic, still sharing the thread's chunk.
    info!(log, "zeroth");
    let caught = catch_unwind(AssertUnwindSafe(|| {
        info!(log, "panicked"; bad = %Boom);
    }));
    assert!(caught.is_err());
    info!(log, "second");
    pipeline.flush().await;

    let text = written_text(&memory);
    let messages: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one whole JSON object");
            v["message"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(messages, ["zeroth", "second"]);
}
