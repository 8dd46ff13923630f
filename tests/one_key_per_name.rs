//! One key per name: every formatter writes each key at most once per line. A call-site field
//! hides an enriched or context field with its name, an enriched field hides a context field,
//! within one source the last field wins (at its own place), and a field named like one of the
//! formatter's own keys is renamed `fields.<name>`. JSON lines are checked with a parser that
//! rejects repeated keys, logfmt and console lines with `common::parse_logfmt`.

mod common;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use bytes::BytesMut;
use kakashi::format::{ColorMode, Console, Formatter, Json, Logfmt};
use kakashi::write::{MemoryWriter, SyncWrite};
use kakashi::{
    Enricher, Field, Level, Location, LogContext, LogRecord, PipelineConfig, SyncPipeline, Value,
    Writer,
};

static HERE: Location = Location::new("app", "src/main.rs", 1);

// ---------------------------------------------------------------------------------------------
// A JSON parser that rejects repeated keys.

/// The top-level keys of a JSON object line, in order. Fails if the line is not one JSON
/// object, or if any object in it (at any depth) has a key twice.
fn strict_json_keys(line: &str) -> Result<Vec<String>, String> {
    serde_json::from_str::<serde_json::Value>(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut i = 0;
    if line.as_bytes().first() != Some(&b'{') {
        return Err("not an object".to_owned());
    }
    let keys = json_value(line, &mut i)?;
    skip_ws(line.as_bytes(), &mut i);
    if i != line.len() {
        return Err(format!("trailing text at {i}"));
    }
    Ok(keys)
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while matches!(b.get(*i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        *i += 1;
    }
}

/// Skips one JSON value at `*i`; for an object, returns its keys (and fails on a repeat).
fn json_value(s: &str, i: &mut usize) -> Result<Vec<String>, String> {
    let b = s.as_bytes();
    skip_ws(b, i);
    match b.get(*i) {
        Some(b'{') => {
            *i += 1;
            let mut keys: Vec<String> = Vec::new();
            skip_ws(b, i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return Ok(keys);
            }
            loop {
                skip_ws(b, i);
                let key = json_string(s, i)?;
                if keys.contains(&key) {
                    return Err(format!("repeated key {key:?}"));
                }
                keys.push(key);
                skip_ws(b, i);
                if b.get(*i) != Some(&b':') {
                    return Err(format!("expected ':' at {i}"));
                }
                *i += 1;
                json_value(s, i)?;
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return Ok(keys);
                    }
                    _ => return Err(format!("expected ',' or '}}' at {i}")),
                }
            }
        }
        Some(b'[') => {
            *i += 1;
            skip_ws(b, i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Ok(Vec::new());
            }
            loop {
                json_value(s, i)?;
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return Ok(Vec::new());
                    }
                    _ => return Err(format!("expected ',' or ']' at {i}")),
                }
            }
        }
        Some(b'"') => json_string(s, i).map(|_| Vec::new()),
        Some(_) => {
            let start = *i;
            while !matches!(
                b.get(*i),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            ) {
                *i += 1;
            }
            if start == *i {
                return Err(format!("expected a value at {start}"));
            }
            Ok(Vec::new())
        }
        None => Err("unexpected end".to_owned()),
    }
}

/// A JSON string at `*i`, decoded.
fn json_string(s: &str, i: &mut usize) -> Result<String, String> {
    let b = s.as_bytes();
    let start = *i;
    if b.get(*i) != Some(&b'"') {
        return Err(format!("expected a string at {start}"));
    }
    *i += 1;
    loop {
        match b.get(*i) {
            None => return Err("unterminated string".to_owned()),
            Some(b'\\') => *i += 2,
            Some(b'"') => {
                *i += 1;
                break;
            }
            Some(_) => *i += 1,
        }
    }
    serde_json::from_str(&s[start..*i]).map_err(|e| format!("bad string: {e}"))
}

/// The members of a JSON object line, in order, with their values; panics on a repeated key.
fn json_members(line: &str) -> Vec<(String, serde_json::Value)> {
    let keys = strict_json_keys(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    keys.into_iter()
        .map(|k| {
            let v = value[&k].clone();
            (k, v)
        })
        .collect()
}

#[test]
fn the_strict_parser_rejects_repeated_keys_at_any_depth() {
    assert_eq!(
        strict_json_keys(r#"{"a":1,"b":{"a":[{"a":null}],"c":"\u0061"},"c":"x,}"}"#).unwrap(),
        ["a", "b", "c"]
    );
    assert!(strict_json_keys(r#"{"a":1,"a":2}"#).is_err());
    assert!(strict_json_keys(r#"{"a":1,"\u0061":2}"#).is_err());
    assert!(strict_json_keys(r#"{"x":{"b":1,"b":2}}"#).is_err());
    assert!(strict_json_keys(r#"{"x":[{"b":1,"b":2}]}"#).is_err());
    assert!(strict_json_keys(r#"{"a":1"#).is_err());
}

// ---------------------------------------------------------------------------------------------
// Rendering and parsing lines.

fn render(formatter: &dyn Formatter, record: &LogRecord<'_>) -> String {
    let mut out = BytesMut::new();
    formatter.format(record, &mut out);
    String::from_utf8(out.to_vec()).unwrap()
}

/// The pairs of a logfmt line; panics if a key repeats.
fn logfmt_pairs(line: &str) -> Vec<(String, String)> {
    let pairs = common::parse_logfmt(line.trim_end_matches('\n'));
    assert_unique(pairs.iter().map(|(k, _)| k.as_str()), line);
    pairs
}

/// The field pairs of a console line (colors off) with logger `logger`, message `msg`
/// without spaces, and `location` if it was written; panics if a key repeats.
fn console_pairs(line: &str, logger: &str, msg: &str, location: bool) -> Vec<(String, String)> {
    let mut line = line.trim_end_matches('\n');
    if location {
        line = line
            .strip_suffix(" at app (src/main.rs:1)")
            .unwrap_or_else(|| panic!("no location: {line:?}"));
    }
    let head = format!(" {logger}: {msg}");
    let at = line.find(&head).unwrap_or_else(|| panic!("{line:?}")) + head.len();
    let pairs = common::parse_logfmt(&line[at..]);
    assert_unique(pairs.iter().map(|(k, _)| k.as_str()), line);
    pairs
}

fn assert_unique<'a>(keys: impl Iterator<Item = &'a str>, line: &str) {
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        assert!(seen.insert(key), "repeated key {key:?} in {line:?}");
    }
}

/// The members of a JSON line after `message` (and before `module` when `location`).
fn json_fields(line: &str, location: bool) -> Vec<(String, serde_json::Value)> {
    let members = json_members(line);
    let names: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names[..4],
        ["timestamp", "level", "logger", "message"],
        "{line}"
    );
    let end = if location {
        assert_eq!(
            names[names.len() - 3..],
            ["module", "file", "line"],
            "{line}"
        );
        members.len() - 3
    } else {
        members.len()
    };
    members[4..end].to_vec()
}

/// The pairs of a logfmt line after `msg` (and before `module` when `location`).
fn logfmt_fields(line: &str, location: bool) -> Vec<(String, String)> {
    let pairs = logfmt_pairs(line);
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names[..4], ["ts", "level", "logger", "msg"], "{line}");
    let end = if location {
        assert_eq!(
            names[names.len() - 3..],
            ["module", "file", "line"],
            "{line}"
        );
        pairs.len() - 3
    } else {
        pairs.len()
    };
    pairs[4..end].to_vec()
}

fn json_strs(members: &[(String, serde_json::Value)]) -> Vec<(&str, String)> {
    members
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.as_str(), text)
        })
        .collect()
}

/// The fields of `record` as each formatter writes them: (JSON, logfmt, console).
#[allow(clippy::type_complexity)]
fn all_fields(
    record: &LogRecord<'_>,
    location: bool,
) -> (
    Vec<(String, String)>,
    Vec<(String, String)>,
    Vec<(String, String)>,
) {
    let json = render(&Json::new().with_location(location), record);
    let logfmt = render(&Logfmt::new().with_location(location), record);
    let console = render(
        &Console::new()
            .colors(ColorMode::Never)
            .with_location(location),
        record,
    );
    let json = json_strs(&json_fields(&json, location))
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let msg = record.message().to_string();
    (
        json,
        logfmt_fields(&logfmt, location),
        console_pairs(&console, record.logger(), &msg, location),
    )
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn record<'a>(fields: &'a [Field<'a>], ctx: Option<&'a LogContext>) -> LogRecord<'a> {
    LogRecord::new(Level::Info, "app", format_args!("m"), &HERE)
        .with_fields(fields)
        .with_context(ctx)
        .with_timestamp(UNIX_EPOCH)
}

// ---------------------------------------------------------------------------------------------
// Each kind of collision.

#[test]
fn a_call_site_field_hides_the_context_field_of_its_name() {
    let ctx = LogContext::new()
        .with_ip("10.0.0.1")
        .with_request_id("ctx-rid")
        .with_user_id("ctx-uid")
        .with_field("tenant", "ctx-tenant");
    let fields = [
        Field::new("user_id", Value::U64(7)),
        Field::new("request_id", Value::Str("call-rid")),
        Field::new("tenant", Value::Str("call-tenant")),
    ];
    let record = record(&fields, Some(&ctx));
    let expected = owned(&[
        ("user_id", "7"),
        ("request_id", "call-rid"),
        ("tenant", "call-tenant"),
        ("ip", "10.0.0.1"),
    ]);
    for location in [false, true] {
        let (json, logfmt, console) = all_fields(&record, location);
        assert_eq!(json, expected);
        assert_eq!(logfmt, expected);
        assert_eq!(console, expected);
    }
    assert_eq!(
        render(&Json::new(), &record),
        "{\"timestamp\":\"1970-01-01T00:00:00.000000Z\",\"level\":\"info\",\"logger\":\"app\",\
         \"message\":\"m\",\"user_id\":7,\"request_id\":\"call-rid\",\"tenant\":\"call-tenant\",\
         \"ip\":\"10.0.0.1\"}\n"
    );
    assert_eq!(
        render(&Logfmt::new(), &record),
        "ts=1970-01-01T00:00:00.000000Z level=info logger=app msg=m user_id=7 \
         request_id=call-rid tenant=call-tenant ip=10.0.0.1\n"
    );
}

#[test]
fn a_field_given_twice_keeps_the_last_at_its_place() {
    let fields = [
        Field::new("a", Value::U64(1)),
        Field::new("b", Value::U64(2)),
        Field::new("a", Value::U64(3)),
        Field::new("c", Value::U64(4)),
        Field::new("a", Value::Str("last")),
    ];
    let record = record(&fields, None);
    let expected = owned(&[("b", "2"), ("c", "4"), ("a", "last")]);
    for location in [false, true] {
        let (json, logfmt, console) = all_fields(&record, location);
        assert_eq!(json, expected);
        assert_eq!(logfmt, expected);
        assert_eq!(console, expected);
    }
    assert_eq!(
        render(&Console::new().colors(ColorMode::Never), &record),
        "1970-01-01T00:00:00.000000Z  INFO app: m b=2 c=4 a=last\n"
    );
    // More fields than the quick check keeps, with the repeat far apart.
    let names: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let mut many: Vec<Field<'_>> = names.iter().map(|n| Field::new(n, Value::Str(n))).collect();
    many.push(Field::new("k0", Value::Str("again")));
    let (json, logfmt, console) = all_fields(&record_many(&many), false);
    for pairs in [json, logfmt, console] {
        assert_eq!(pairs.len(), 40);
        assert_eq!(pairs[0], ("k1".to_owned(), "k1".to_owned()));
        assert_eq!(pairs[39], ("k0".to_owned(), "again".to_owned()));
    }
}

fn record_many<'a>(fields: &'a [Field<'a>]) -> LogRecord<'a> {
    record(fields, None)
}

/// A synchronous pipeline writing `formatter`'s lines to memory, with `enrichers`.
fn enriched_pipeline(
    formatter: Arc<dyn Formatter>,
    enrichers: &[Enricher],
) -> (kakashi::Pipeline, kakashi::PipelineGuard, MemoryWriter) {
    let memory = MemoryWriter::new();
    let mut builder = PipelineConfig::builder()
        .formatter_arc(formatter)
        .writer(Writer::memory(&memory));
    for enricher in enrichers {
        builder = builder.enricher(enricher.clone());
    }
    let (pipeline, guard) = SyncPipeline::start(builder.build().unwrap()).unwrap();
    (pipeline, guard, memory)
}

/// Logs one record with `fields` inside `ctx` through a pipeline with `enrichers`, and
/// returns its fields as (JSON, logfmt, console) write them.
#[allow(clippy::type_complexity)]
fn through_pipeline(
    enrichers: &[Enricher],
    fields: &[Field<'_>],
    ctx: &LogContext,
) -> (
    Vec<(String, String)>,
    Vec<(String, String)>,
    Vec<(String, String)>,
) {
    let mut lines = Vec::new();
    let formatters: [Arc<dyn Formatter>; 3] = [
        Arc::new(Json::new()),
        Arc::new(Logfmt::new()),
        Arc::new(Console::new().colors(ColorMode::Never)),
    ];
    for formatter in formatters {
        let (pipeline, _guard, memory) = enriched_pipeline(formatter, enrichers);
        let _ctx = ctx.clone().enter();
        pipeline
            .logger("app")
            .log_at(Level::Info, format_args!("m"), fields, &HERE);
        let mut written = memory.lines();
        assert_eq!(written.len(), 1);
        lines.push(written.remove(0));
    }
    let json = json_strs(&json_fields(&lines[0], false))
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    (
        json,
        logfmt_fields(&lines[1], false),
        console_pairs(&lines[2], "app", "m", false),
    )
}

#[test]
fn a_call_site_field_hides_an_enriched_one_which_hides_a_context_one() {
    let enrichers = [
        Enricher::field("service", "enr-svc"),
        Enricher::field("request_id", "enr-rid"),
        Enricher::field("region", "enr-region"),
    ];
    let fields = [Field::new("service", Value::Str("call-svc"))];
    let ctx = LogContext::new()
        .with_request_id("ctx-rid")
        .with_session_id("ctx-sid")
        .with_field("region", "ctx-region");
    let expected = owned(&[
        ("service", "call-svc"),
        ("request_id", "enr-rid"),
        ("region", "enr-region"),
        ("session_id", "ctx-sid"),
    ]);
    let (json, logfmt, console) = through_pipeline(&enrichers, &fields, &ctx);
    assert_eq!(json, expected);
    assert_eq!(logfmt, expected);
    assert_eq!(console, expected);
}

#[test]
fn an_enricher_given_twice_keeps_the_last() {
    let enrichers = [
        Enricher::field("service", "first"),
        Enricher::field("pid", "constant"),
        Enricher::field("service", "second"),
        Enricher::pid(),
    ];
    let pid = std::process::id().to_string();
    let expected = owned(&[("service", "second"), ("pid", &pid)]);
    let (json, logfmt, console) = through_pipeline(&enrichers, &[], &LogContext::new());
    assert_eq!(json, expected);
    assert_eq!(logfmt, expected);
    assert_eq!(console, expected);
}

#[test]
fn a_custom_context_field_hides_the_standard_one_of_its_name() {
    let ctx = LogContext::new()
        .with_request_id("standard")
        .with_ip("10.0.0.1")
        .with_field("request_id", "custom")
        .with_field("zone", "z1");
    let record = record(&[], Some(&ctx));
    let expected = owned(&[("ip", "10.0.0.1"), ("request_id", "custom"), ("zone", "z1")]);
    let (json, logfmt, console) = all_fields(&record, false);
    assert_eq!(json, expected);
    assert_eq!(logfmt, expected);
    assert_eq!(console, expected);
}

#[test]
fn fields_named_like_the_formatters_own_keys_are_renamed() {
    let names = [
        "ts",
        "timestamp",
        "level",
        "logger",
        "msg",
        "message",
        "module",
        "file",
        "line",
        "fields.level",
        "fields.fields.level",
        "fields.file",
        "fields.x",
    ];
    let fields: Vec<Field<'_>> = names.iter().map(|n| Field::new(n, Value::Str(n))).collect();
    let record = record(&fields, None);
    let renamed = |location: bool| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| {
                let mut base = *n;
                while let Some(rest) = base.strip_prefix("fields.") {
                    base = rest;
                }
                let reserved = ["ts", "timestamp", "level", "logger", "msg", "message"]
                    .contains(&base)
                    || (location && ["module", "file", "line"].contains(&base));
                let key = if reserved {
                    format!("fields.{n}")
                } else {
                    (*n).to_owned()
                };
                (key, (*n).to_owned())
            })
            .collect()
    };
    for location in [false, true] {
        let (json, logfmt, console) = all_fields(&record, location);
        assert_eq!(json, renamed(location), "location {location}");
        assert_eq!(logfmt, renamed(location), "location {location}");
        // The console writes no keys of its own: nothing to rename.
        assert_eq!(console, owned(&names.map(|n| (n, n))));
    }
    let line = render(&Json::new().with_location(true), &record);
    assert!(line.contains(
        "\"fields.line\":\"line\",\"fields.fields.level\":\"fields.level\",\
         \"fields.fields.fields.level\":\"fields.fields.level\",\
         \"fields.fields.file\":\"fields.file\",\"fields.x\":\"fields.x\""
    ));
    assert!(line.ends_with(",\"module\":\"app\",\"file\":\"src/main.rs\",\"line\":1}\n"));
}

#[test]
fn logfmt_and_console_compare_keys_as_written() {
    let fields = [
        Field::new("a b", Value::U64(1)),
        Field::new("a_b", Value::U64(2)),
        Field::new("", Value::U64(3)),
        Field::new("é", Value::U64(4)),
        Field::new("a\nb", Value::U64(5)),
    ];
    // "request id" is written `request_id`: in logfmt it is the same key as the standard field,
    // and the later (custom) one wins; in JSON they are different keys.
    let ctx = LogContext::new()
        .with_request_id("standard")
        .with_field("request id", "custom");
    let record = record(&fields, Some(&ctx));
    let (json, logfmt, console) = all_fields(&record, false);
    assert_eq!(
        json,
        owned(&[
            ("a b", "1"),
            ("a_b", "2"),
            ("", "3"),
            ("é", "4"),
            ("a\nb", "5"),
            ("request_id", "standard"),
            ("request id", "custom"),
        ])
    );
    let expected = owned(&[("_", "4"), ("a_b", "5"), ("request_id", "custom")]);
    assert_eq!(logfmt, expected);
    assert_eq!(console, expected);
}

// ---------------------------------------------------------------------------------------------
// Random records.

/// Every standard context key, every enriched key, every reserved key, renamed names, and keys
/// that logfmt writes alike.
const POOL: &[&str] = &[
    "ip",
    "access",
    "request_id",
    "user_id",
    "session_id",
    "service_name",
    "version",
    "environment",
    "service",
    "host",
    "pid",
    "thread_id",
    "thread",
    "ts",
    "timestamp",
    "level",
    "logger",
    "msg",
    "message",
    "module",
    "file",
    "line",
    "fields.level",
    "fields.fields.level",
    "fields.msg",
    "fields.file",
    "fields.",
    "a b",
    "a_b",
    "a\nb",
    "",
    "_",
    "é",
    "ü",
    "request id",
    "status",
    "x",
];

fn spec_reserved(key: &str, location: bool) -> bool {
    let mut base = key;
    while let Some(rest) = base.strip_prefix("fields.") {
        base = rest;
    }
    ["ts", "timestamp", "level", "logger", "msg", "message"].contains(&base)
        || (location && ["module", "file", "line"].contains(&base))
}

fn spec_renamed(key: &str, location: bool) -> String {
    if spec_reserved(key, location) {
        format!("fields.{key}")
    } else {
        key.to_owned()
    }
}

fn spec_sanitized(key: &str) -> String {
    if key.is_empty() {
        return "_".to_owned();
    }
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.:/-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One field of a record as the model sees it: its source (0 call site, 1 enriched,
/// 2 context), its key, its JSON value and its logfmt text.
#[derive(Clone, Debug)]
struct Item {
    source: u8,
    key: String,
    json: serde_json::Value,
    text: String,
}

fn item(source: u8, key: &str, value: &Value<'_>) -> Item {
    let (json, text) = match *value {
        Value::Str(s) => (serde_json::Value::from(s), s.to_owned()),
        Value::U64(v) => (serde_json::Value::from(v), v.to_string()),
        Value::I64(v) => (serde_json::Value::from(v), v.to_string()),
        Value::Bool(v) => (serde_json::Value::from(v), v.to_string()),
        Value::Null => (serde_json::Value::Null, "null".to_owned()),
        other => panic!("no model for {other:?}"),
    };
    Item {
        source,
        key: key.to_owned(),
        json,
        text,
    }
}

/// The rule, stated on written keys: an item is written unless another item with the same
/// written key comes from a source that wins (a lower number), or from the same source later.
fn expected(items: &[Item], written_key: impl Fn(&str) -> String) -> Vec<(String, &Item)> {
    let keys: Vec<String> = items.iter().map(|it| written_key(&it.key)).collect();
    (0..items.len())
        .filter(|&i| {
            !(0..items.len()).any(|j| {
                j != i
                    && keys[j] == keys[i]
                    && (items[j].source < items[i].source
                        || (items[j].source == items[i].source && j > i))
            })
        })
        .map(|i| (keys[i].clone(), &items[i]))
        .collect()
}

/// A formatter that checks what the three formatters write for each record against the model,
/// and writes a short line of its own.
#[derive(Debug, Default)]
struct Checker {
    state: Mutex<(u64, Vec<String>)>,
}

impl Checker {
    fn check(&self, record: &LogRecord<'_>) -> Result<(), String> {
        let location = record.logger() == "loc";
        let mut items = Vec::new();
        for f in record.fields() {
            items.push(item(0, f.key(), f.value()));
        }
        for f in record.enriched() {
            items.push(item(1, f.key(), f.value()));
        }
        if let Some(ctx) = record.context() {
            ctx.for_each_field(|k, v| items.push(item(2, k, &v)));
        }

        let json_line = render(&Json::new().with_location(location), record);
        strict_json_keys(&json_line).map_err(|e| format!("{e}: {json_line}"))?;
        let got = json_fields(&json_line, location);
        let want = expected(&items, |k| spec_renamed(k, location));
        let want: Vec<(String, serde_json::Value)> = want
            .into_iter()
            .map(|(k, it)| (k, it.json.clone()))
            .collect();
        if got != want {
            return Err(format!("JSON {json_line:?}: got {got:?}, want {want:?}"));
        }
        let parsed: serde_json::Value = serde_json::from_str(&json_line).unwrap();
        if parsed["level"] != "info"
            || parsed["logger"] != record.logger()
            || parsed["message"] != "m"
        {
            return Err(format!("JSON own keys: {json_line:?}"));
        }

        let logfmt_line = render(&Logfmt::new().with_location(location), record);
        let got = logfmt_fields(&logfmt_line, location);
        let want: Vec<(String, String)> =
            expected(&items, |k| spec_sanitized(&spec_renamed(k, location)))
                .into_iter()
                .map(|(k, it)| (k, it.text.clone()))
                .collect();
        if got != want {
            return Err(format!(
                "logfmt {logfmt_line:?}: got {got:?}, want {want:?}"
            ));
        }
        let pairs = logfmt_pairs(&logfmt_line);
        if common::get(&pairs, "level") != Some("info")
            || common::get(&pairs, "logger") != Some(record.logger())
            || common::get(&pairs, "msg") != Some("m")
        {
            return Err(format!("logfmt own keys: {logfmt_line:?}"));
        }

        let console = Console::new()
            .colors(ColorMode::Never)
            .with_location(location);
        let console_line = render(&console, record);
        let got = console_pairs(&console_line, record.logger(), "m", location);
        let want: Vec<(String, String)> = expected(&items, spec_sanitized)
            .into_iter()
            .map(|(k, it)| (k, it.text.clone()))
            .collect();
        if got != want {
            return Err(format!(
                "console {console_line:?}: got {got:?}, want {want:?}"
            ));
        }
        Ok(())
    }
}

impl Formatter for Checker {
    fn format(&self, record: &LogRecord<'_>, out: &mut BytesMut) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.check(record)))
            .unwrap_or_else(|_| Err(format!("panicked on {record:?}")));
        let mut state = self.state.lock().unwrap();
        state.0 += 1;
        if let Err(e) = result {
            if state.1.len() < 5 {
                state.1.push(e);
            }
        }
        out.extend_from_slice(b"checked\n");
    }
}

#[derive(Debug)]
struct Discard;

impl SyncWrite for Discard {
    fn write_lines(&self, _lines: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn key(&mut self) -> &'static str {
        POOL[self.below(POOL.len())]
    }
}

#[test]
fn random_records_write_each_key_once_and_the_winner_s_value() {
    let checker = Arc::new(Checker::default());
    let enricher_sets: Vec<Vec<Enricher>> = vec![
        vec![],
        vec![
            Enricher::service_name("svc"),
            Enricher::hostname(),
            Enricher::pid(),
            Enricher::thread(),
        ],
        vec![
            Enricher::field("request_id", "E-rid"),
            Enricher::field("level", "E-level"),
            Enricher::field("service", "E-svc1"),
            Enricher::field("service", "E-svc2"),
            Enricher::field("a b", "E-ab"),
            Enricher::field("a_b", 7u64),
            Enricher::field("fields.level", "E-fl"),
            Enricher::field("line", "E-line"),
            Enricher::field("", "E-empty"),
        ],
        vec![
            Enricher::field("pid", "E-pid"),
            Enricher::pid(),
            Enricher::field("user_id", "E-uid"),
            Enricher::field("msg", "E-msg"),
            Enricher::field("é", "E-e"),
            Enricher::thread(),
        ],
    ];
    let pipelines: Vec<_> = enricher_sets
        .iter()
        .map(|enrichers| {
            let mut builder = PipelineConfig::builder()
                .formatter_arc(checker.clone())
                .writer(Writer::sync(Arc::new(Discard)));
            for e in enrichers {
                builder = builder.enricher(e.clone());
            }
            SyncPipeline::start(builder.build().unwrap()).unwrap()
        })
        .collect();
    let loggers: Vec<[kakashi::Logger; 2]> = pipelines
        .iter()
        .map(|(p, _)| [p.logger("app"), p.logger("loc")])
        .collect();

    let values: Vec<String> = (0..16).map(|i| format!("F{i}")).collect();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    const RECORDS: u64 = 100_000;
    for _ in 0..RECORDS {
        let n = rng.below(9);
        let fields: Vec<Field<'_>> = (0..n)
            .map(|i| {
                let value = match rng.below(4) {
                    0 => Value::U64(i as u64),
                    1 => Value::Null,
                    _ => Value::Str(&values[i]),
                };
                Field::new(rng.key(), value)
            })
            .collect();
        let ctx = match rng.below(3) {
            0 => None,
            _ => {
                let mut ctx = LogContext::new();
                let setters: [fn(LogContext, &'static str) -> LogContext; 8] = [
                    |c, v| c.with_ip(v),
                    |c, v| c.with_access(v),
                    |c, v| c.with_request_id(v),
                    |c, v| c.with_user_id(v),
                    |c, v| c.with_session_id(v),
                    |c, v| c.with_service_name(v),
                    |c, v| c.with_version(v),
                    |c, v| c.with_environment(v),
                ];
                for (i, set) in setters.iter().enumerate() {
                    if rng.below(3) == 0 {
                        ctx = set(ctx, ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7"][i]);
                    }
                }
                for i in 0..rng.below(4) {
                    ctx = ctx.with_field(rng.key(), format!("K{i}"));
                }
                Some(ctx)
            }
        };
        let log = &loggers[rng.below(loggers.len())][rng.below(2)];
        let _guard = ctx.map(LogContext::enter);
        log.log_at(Level::Info, format_args!("m"), &fields, &HERE);
    }
    let state = checker.state.lock().unwrap();
    assert!(state.1.is_empty(), "{:#?}", state.1);
    assert_eq!(state.0, RECORDS);
}
