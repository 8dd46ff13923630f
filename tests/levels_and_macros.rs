//! Level parsing, the macros' forms, and what a disabled call does not do.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use kakashi::{critical, debug, error, info, trace, warn, Level};

#[test]
fn levels_parse_by_name_alias_and_number() {
    let cases = [
        ("trace", Level::Trace),
        ("DEBUG", Level::Debug),
        (" Info ", Level::Info),
        ("warn", Level::Warn),
        ("Warning", Level::Warn),
        ("error", Level::Error),
        ("critical", Level::Critical),
        ("FATAL", Level::Critical),
        ("5", Level::Trace),
        ("10", Level::Debug),
        ("20", Level::Info),
        ("30", Level::Warn),
        ("40", Level::Error),
        ("50", Level::Critical),
    ];
    for (input, level) in cases {
        assert_eq!(input.parse::<Level>().unwrap(), level, "{input:?}");
    }
    for level in Level::ALL {
        assert_eq!(level.as_str().parse::<Level>().unwrap(), level);
        assert_eq!(level.number().to_string().parse::<Level>().unwrap(), level);
    }
}

#[test]
fn bad_levels_name_the_input_and_the_accepted_values() {
    for bad in ["verbose", "", "15", "-10", "infoo", "60"] {
        let err = bad.parse::<Level>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("{bad:?}")), "{text}");
        assert!(text.contains("trace, debug, info, warn"), "{text}");
        assert!(text.contains("10, 20, 30, 40, 50"), "{text}");
        assert_eq!(err.input(), bad);
    }
    let long = "x".repeat(10_000);
    assert_eq!(long.parse::<Level>().unwrap_err().input().len(), 64);
}

#[test]
fn a_disabled_call_formats_nothing_and_evaluates_no_field() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Warn);
    let log = pipeline.logger("app");
    let evaluated = AtomicUsize::new(0);
    let count = || {
        evaluated.fetch_add(1, Ordering::SeqCst);
        7
    };
    struct Loud<'a>(&'a AtomicUsize);
    impl std::fmt::Display for Loud<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fetch_add(100, Ordering::SeqCst);
            f.write_str("loud")
        }
    }
    debug!(log, "arg {}", count(); field = count(), shown = %Loud(&evaluated));
    info!(log, "arg {}", Loud(&evaluated); f = ?count());
    trace!(log, "t"; f = count());
    assert_eq!(evaluated.load(Ordering::SeqCst), 0);
    assert!(memory.lines().is_empty());

    warn!(log, "arg {}", count(); field = count(), shown = %Loud(&evaluated));
    assert_eq!(evaluated.load(Ordering::SeqCst), 102);
    assert_eq!(memory.lines().len(), 1);
    assert!(
        memory.lines()[0].ends_with("msg=\"arg 7\" field=7 shown=loud"),
        "{:?}",
        memory.lines()
    );
}

#[test]
fn macro_forms_and_typed_fields() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Trace);
    let log = pipeline.logger("svc");
    let name = String::from("ann");
    let maybe: Option<u8> = None;
    let err = std::io::Error::other("disk full");
    trace!(log, "plain");
    debug!(log, "one {}", 1);
    info!(log, "two {} {}", 1, "b"; a = 1u8, b = -2i64, c = 1.5f32, d = true, e = 'x');
    warn!(log, "fields only"; name = name, r = &name, "dotted.key" = 3usize, none = maybe, some = Some(4u16));
    error!(log, "error"; cause = @err, dbg = ?vec![1, 2]);
    critical!(&log, "by reference"; big = u128::MAX, neg = i128::MIN);
    kakashi::log!(Level::Info, log, "level as expression");
    let lines: Vec<String> = memory
        .lines()
        .into_iter()
        .map(|l| l.split_once(' ').unwrap().1.to_owned())
        .collect();
    assert_eq!(
        lines,
        [
            "level=trace logger=svc msg=plain",
            "level=debug logger=svc msg=\"one 1\"",
            "level=info logger=svc msg=\"two 1 b\" a=1 b=-2 c=1.5 d=true e=x",
            "level=warn logger=svc msg=\"fields only\" name=ann r=ann dotted.key=3 none=null some=4",
            "level=error logger=svc msg=error cause=\"disk full\" dbg=\"[1, 2]\"",
            "level=critical logger=svc msg=\"by reference\" big=340282366920938463463374607431768211455 neg=-170141183460469231731687303715884105728",
            "level=info logger=svc msg=\"level as expression\"",
        ]
    );
}

#[test]
fn logger_levels_change_at_runtime_and_are_shared_by_clones() {
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let log = pipeline.logger("db");
    let clone = log.clone();
    assert!(!log.enabled(Level::Debug));
    clone.set_level(Some(Level::Debug));
    assert!(log.enabled(Level::Debug));
    debug!(log, "now visible");
    log.set_level(None);
    assert_eq!(log.level(), Level::Info);
    debug!(log, "hidden again");
    pipeline.set_min_level(Level::Error);
    info!(log, "hidden by the pipeline level");
    error!(log, "shown");
    let lines = memory.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("msg=\"now visible\""));
    assert!(lines[1].contains("msg=shown"));
}
