//! Attacker-controlled text never forges a line: one line per record, JSON parses, logfmt
//! round-trips, and no raw control character or escape sequence reaches the output.

mod common;

use std::fmt;

use bytes::BytesMut;
use kakashi::format::{ColorMode, Console, Formatter, Json, Logfmt};
use kakashi::{Field, Level, Location, LogContext, LogRecord, Value};

static HERE: Location = Location::new("app", "src/main.rs", 1);

fn hostile_strings() -> Vec<String> {
    vec![
        "line one\nlevel=error msg=forged".to_owned(),
        "carriage\rreturn".to_owned(),
        "\x1b[31mred\x1b[0m and \x1b]0;title\x07".to_owned(),
        "nul\u{0}byte".to_owned(),
        "quote \" and backslash \\ and \\\" both".to_owned(),
        "tab\there".to_owned(),
        "del\u{7f}".to_owned(),
        "c1 \u{85} nel and \u{9b}31m csi".to_owned(),
        "sep\u{2028}line\u{2029}para".to_owned(),
        "bidi \u{202e}txt.exe\u{202c} \u{2066}iso\u{2069} \u{200f}".to_owned(),
        // Every bidi control and separator, alone and next to its neighbours, which stay raw.
        "\u{061c}alm \u{061b}\u{061c}\u{061d} \u{200e}\u{200f} \u{202a}\u{202b}\u{202c}\u{202d}\u{202e}".to_owned(),
        "\u{2066}\u{2067}\u{2068}\u{2069} \u{2028}\u{2029} عربي\u{061c}123".to_owned(),
        "non-ascii: żółć 日本語 🚀".to_owned(),
        "key=value other=\"x\"".to_owned(),
        "".to_owned(),
        " ".to_owned(),
        "x".repeat(100_000) + "\n",
        "\\u000a not a real escape".to_owned(),
    ]
}

fn render(formatter: &dyn Formatter, record: &LogRecord<'_>) -> String {
    let mut out = BytesMut::new();
    formatter.format(record, &mut out);
    String::from_utf8(out.to_vec()).expect("formatters write UTF-8")
}

/// Characters that must never appear raw in output: they end lines, start escape sequences or
/// reorder what a reader sees.
fn forbidden(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn assert_one_clean_line(line: &str, colored: bool) {
    assert!(line.ends_with('\n'), "no final newline: {line:?}");
    assert_eq!(
        line.matches('\n').count(),
        1,
        "more than one line: {line:?}"
    );
    assert!(!line.contains('\r'));
    let stripped = if colored {
        // Remove the formatter's own SGR sequences; any other ESC is a failure.
        let mut s = line.to_owned();
        for seq in [
            "\x1b[2m",
            "\x1b[0m",
            "\x1b[33m",
            "\x1b[32m",
            "\x1b[31m",
            "\x1b[1;31m",
            "\x1b[34m",
            "\x1b[35m",
        ] {
            s = s.replace(seq, "");
        }
        s
    } else {
        line.to_owned()
    };
    if let Some(c) = stripped.chars().find(|&c| forbidden(c)) {
        panic!("raw {c:?} in {line:?}");
    }
}

struct Hostile<'a>(&'a str);
impl fmt::Display for Hostile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

fn for_each_record(mut check: impl FnMut(&str, &LogRecord<'_>)) {
    for s in hostile_strings() {
        let display = Hostile(&s);
        let fields = [
            Field::new(&s, Value::Str(&s)),
            Field::new("display", Value::Display(&display)),
            Field::new("debug", Value::Debug(&s)),
        ];
        let ctx = LogContext::new()
            .with_request_id(s.as_str())
            .with_field(s.as_str(), s.as_str());
        check(
            &s,
            &LogRecord::new(Level::Warn, &s, format_args!("{}", s), &HERE)
                .with_fields(&fields)
                .with_context(Some(&ctx)),
        );
        // The message also as a static string (the as_str fast path).
        check(
            "static \n\x1b[2J",
            &LogRecord::new(Level::Warn, "app", format_args!("static \n\x1b[2J"), &HERE),
        );
    }
}

#[test]
fn json_is_one_line_that_parses_back_to_the_input() {
    for_each_record(|s, record| {
        let line = render(&Json::new(), record);
        assert_one_clean_line(&line, false);
        let parsed: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("invalid JSON {e}: {line:?}"));
        assert_eq!(parsed["message"], *record.message().to_string());
        if record.fields().len() == 3 {
            assert_eq!(parsed["logger"], *s);
            assert_eq!(parsed["display"], *s);
            assert_eq!(parsed["request_id"], *s);
            assert_eq!(parsed["debug"], format!("{s:?}"));
        }
    });
}

#[test]
fn logfmt_is_one_line_that_round_trips() {
    for_each_record(|s, record| {
        let line = render(&Logfmt::new(), record);
        assert_one_clean_line(&line, false);
        let pairs = common::parse_logfmt(line.trim_end_matches('\n'));
        assert_eq!(
            common::get(&pairs, "msg").unwrap(),
            record.message().to_string()
        );
        if record.fields().len() == 3 {
            assert_eq!(common::get(&pairs, "logger"), Some(s));
            assert_eq!(common::get(&pairs, "display"), Some(s));
            assert_eq!(common::get(&pairs, "request_id"), Some(s));
            assert_eq!(
                common::get(&pairs, "debug"),
                Some(format!("{s:?}").as_str())
            );
            // Keys are sanitized, never quoted: every key is a plain token.
            for (key, _) in &pairs {
                assert!(!key.is_empty());
                assert!(
                    key.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b)),
                    "{key:?}"
                );
            }
            // 3 own keys + ts, 3 fields, 1 context field: the context's custom field is named
            // like the first field, which hides it (one key per name).
            assert_eq!(pairs.len(), 4 + 3 + 1, "{line:?}");
        }
    });
}

#[test]
fn console_is_one_line_without_foreign_escape_sequences() {
    for_each_record(|_, record| {
        for colored in [false, true] {
            let mode = if colored {
                ColorMode::Always
            } else {
                ColorMode::Never
            };
            let line = render(&Console::new().colors(mode), record);
            assert_one_clean_line(&line, colored);
        }
    });
}

#[test]
fn a_display_impl_that_fails_does_not_panic() {
    struct Failing;
    impl fmt::Display for Failing {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("partial\n")?;
            Err(fmt::Error)
        }
    }
    let fields = [Field::new("bad", Value::Display(&Failing))];
    let check = |record: &LogRecord<'_>| {
        let plain = Console::new().colors(ColorMode::Never);
        for formatter in [&Json::new() as &dyn Formatter, &Logfmt::new(), &plain] {
            let line = render(formatter, record);
            assert_one_clean_line(&line, false);
            assert!(line.contains("<formatting error>"), "{line:?}");
        }
        let line = render(&Json::new(), record);
        serde_json::from_str::<serde_json::Value>(&line).unwrap();
    };
    check(
        &LogRecord::new(Level::Info, "app", format_args!("m {}", Failing), &HERE)
            .with_fields(&fields),
    );
}
