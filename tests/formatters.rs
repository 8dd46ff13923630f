//! Each formatter's exact output for representative records.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use bytes::BytesMut;
use kakashi::format::{ColorMode, Console, Formatter, Json, Logfmt};
use kakashi::{Field, Level, Location, LogContext, LogRecord, Value};

static HERE: Location = Location::new("app::db", "src/db.rs", 42);

fn at() -> std::time::SystemTime {
    // 2026-11-24T04:12:22.000123Z
    UNIX_EPOCH + Duration::from_secs(1_795_493_542) + Duration::from_micros(123)
}

fn render(formatter: &dyn Formatter, record: &LogRecord<'_>) -> String {
    let mut out = BytesMut::new();
    formatter.format(record, &mut out);
    String::from_utf8(out.to_vec()).unwrap()
}

#[derive(Debug)]
struct Outer(Inner);
#[derive(Debug)]
struct Inner;

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("query failed")
    }
}
impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection reset")
    }
}
impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
impl std::error::Error for Inner {}

#[test]
fn logfmt_plain_record() {
    let record =
        LogRecord::new(Level::Info, "app::db", format_args!("ready"), &HERE).with_timestamp(at());
    assert_eq!(
        render(&Logfmt::new(), &record),
        "ts=2026-11-24T04:12:22.000123Z level=info logger=app::db msg=ready\n"
    );
}

#[test]
fn logfmt_fields_context_error_and_location() {
    let err = Outer(Inner);
    let addr: std::net::IpAddr = "10.0.0.7".parse().unwrap();
    let fields = [
        Field::new("user", Value::Str("ann lee")),
        Field::new("n", Value::I64(-3)),
        Field::new("ratio", Value::F64(0.5)),
        Field::new("ok", Value::Bool(true)),
        Field::new("addr", Value::Display(&addr)),
        Field::new("opt", Value::Null),
        Field::new("err", Value::Error(&err)),
    ];
    let ctx = LogContext::new()
        .with_request_id("r-1")
        .with_ip("127.0.0.1")
        .with_field("tenant", "acme corp");
    let record = LogRecord::new(Level::Error, "app::db", format_args!("rows: 3"), &HERE)
        .with_fields(&fields)
        .with_context(Some(&ctx))
        .with_timestamp(at());
    assert_eq!(
        render(&Logfmt::new().with_location(true), &record),
        "ts=2026-11-24T04:12:22.000123Z level=error logger=app::db msg=\"rows: 3\" \
         user=\"ann lee\" n=-3 ratio=0.5 ok=true addr=10.0.0.7 opt=null \
         err=\"query failed: connection reset\" ip=127.0.0.1 request_id=r-1 \
         tenant=\"acme corp\" module=app::db file=src/db.rs line=42\n"
    );
}

#[test]
fn json_plain_and_full_records() {
    let record =
        LogRecord::new(Level::Debug, "app", format_args!("hi"), &HERE).with_timestamp(at());
    assert_eq!(
        render(&Json::new(), &record),
        "{\"timestamp\":\"2026-11-24T04:12:22.000123Z\",\"level\":\"debug\",\"logger\":\"app\",\"message\":\"hi\"}\n"
    );

    let err = Outer(Inner);
    let fields = [
        Field::new("status", Value::U64(503)),
        Field::new("ratio", Value::F64(2.0)),
        Field::new("nan", Value::F64(f64::NAN)),
        Field::new("dbg", Value::Debug(&Some("x"))),
        Field::new("err", Value::Error(&err)),
        Field::new("level", Value::Str("forged")),
    ];
    let ctx = LogContext::new()
        .with_user_id("u-9")
        .with_field("attempt", 2u32);
    let record = LogRecord::new(Level::Critical, "app", format_args!("down now"), &HERE)
        .with_fields(&fields)
        .with_context(Some(&ctx))
        .with_timestamp(at());
    let line = render(&Json::new().with_location(true), &record);
    assert_eq!(
        line,
        "{\"timestamp\":\"2026-11-24T04:12:22.000123Z\",\"level\":\"critical\",\"logger\":\"app\",\
         \"message\":\"down now\",\"status\":503,\"ratio\":2.0,\"nan\":\"NaN\",\"dbg\":\"Some(\\\"x\\\")\",\
         \"err\":{\"message\":\"query failed\",\"sources\":[\"connection reset\"]},\
         \"fields.level\":\"forged\",\"user_id\":\"u-9\",\"attempt\":2,\
         \"module\":\"app::db\",\"file\":\"src/db.rs\",\"line\":42}\n"
    );
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(parsed["level"], "critical");
    assert_eq!(parsed["fields.level"], "forged");
    assert_eq!(parsed["err"]["sources"][0], "connection reset");
}

#[test]
fn console_without_and_with_colors() {
    let fields = [Field::new("rows", Value::U64(3))];
    let ctx = LogContext::new().with_request_id("r-1");
    let record = LogRecord::new(Level::Warn, "app", format_args!("slow"), &HERE)
        .with_fields(&fields)
        .with_context(Some(&ctx))
        .with_timestamp(at());
    assert_eq!(
        render(&Console::new().colors(ColorMode::Never), &record),
        "2026-11-24T04:12:22.000123Z  WARN app: slow rows=3 request_id=r-1\n"
    );
    let colored = render(&Console::new().colors(ColorMode::Always), &record);
    assert_eq!(
        colored,
        "\x1b[2m2026-11-24T04:12:22.000123Z\x1b[0m \x1b[33m WARN\x1b[0m app: slow \
         \x1b[2mrows=\x1b[0m3 \x1b[2mrequest_id=\x1b[0mr-1\n"
    );
}

#[test]
fn console_auto_colors_follow_the_destination() {
    let record = LogRecord::new(Level::Info, "app", format_args!("x"), &HERE).with_timestamp(at());
    let auto = Console::new();
    let piped = auto.for_destination(false).expect("auto resolves");
    assert!(!render(&*piped, &record).contains('\x1b'));
    // A terminal gets colors unless NO_COLOR is set (this test does not set it; if the
    // environment does, the formatter must stay plain).
    let tty = auto.for_destination(true).expect("auto resolves");
    let has_color = render(&*tty, &record).contains('\x1b');
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    assert_eq!(has_color, !no_color);
    // Explicit modes are kept as they are.
    assert!(Console::new()
        .colors(ColorMode::Never)
        .for_destination(true)
        .is_none());
}

#[test]
fn timestamps_before_the_epoch_clamp_and_dates_roll_over() {
    let record = LogRecord::new(Level::Info, "a", format_args!("x"), &HERE).with_timestamp(
        UNIX_EPOCH + Duration::from_secs(951_782_399) + Duration::from_micros(999_999),
    );
    assert!(render(&Logfmt::new(), &record).starts_with("ts=2000-02-28T23:59:59.999999Z "));
    let record = record.with_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400));
    assert!(render(&Logfmt::new(), &record).starts_with("ts=2000-02-29T00:00:00.000000Z "));
    let record = record.with_timestamp(UNIX_EPOCH - Duration::from_secs(5));
    assert!(render(&Logfmt::new(), &record).starts_with("ts=1970-01-01T00:00:00.000000Z "));
}
