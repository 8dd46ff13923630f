//! Level directives (`RUST_LOG` syntax): one level system for named loggers and the
//! logger-less macros, reload while threads log, and clear errors. Directives are global, so
//! each test takes `SERIAL` and leaves them cleared.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kakashi::directives::{self, Directives};
use kakashi::{debug, get_logger, info, warn, Level, Preset};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn directives_decide_for_named_loggers_and_the_logger_less_macros() {
    let _serial = serial();
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let db = pipeline.logger("app::db");
    let http = pipeline.logger("app.http");
    let other = pipeline.logger("other");
    let handle = directives::handle();

    // No directives: the pipeline's level (info).
    debug!(db, "hidden");
    info!(db, "shown 1");
    handle
        .set_directives("warn,app::db=debug,app::http=off")
        .unwrap();
    debug!(db, "shown 2");
    info!(http, "hidden, off");
    info!(other, "hidden, below warn");
    warn!(other, "shown 3");
    // A level of the logger's own still wins.
    http.set_level(Some(Level::Info));
    info!(http, "shown 4");
    http.set_level(None);
    // Reload: the same call sites follow at once.
    handle.set_directives("error").unwrap();
    warn!(other, "hidden after reload");
    debug!(db, "hidden after reload");
    handle.clear();
    info!(db, "shown 5");

    let lines = memory.lines();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l.split(" msg=").nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        messages,
        [
            "\"shown 1\"",
            "\"shown 2\"",
            "\"shown 3\"",
            "\"shown 4\"",
            "\"shown 5\""
        ],
        "{lines:?}"
    );
}

#[test]
fn the_logger_less_macros_and_get_logger_follow_the_directives() {
    let _serial = serial();
    // The global pipeline before init writes warnings and worse to stderr; its loggers and
    // call sites still ask the directives, which is what is checked here.
    let handle = directives::handle();
    let log = get_logger("tests::directives::global");
    handle
        .set_directives("off,tests::directives::global=debug")
        .unwrap();
    assert!(log.enabled(Level::Debug));
    assert!(!log.enabled(Level::Trace));
    assert_eq!(log.level(), Level::Debug);
    handle.set_directives("off").unwrap();
    assert!(!log.enabled(Level::Critical));
    handle.clear();
    assert!(log.enabled(Level::Warn));

    // A logger-less call site: counted through a field that is only evaluated when enabled.
    let evaluated = AtomicU64::new(0);
    let count = || {
        evaluated.fetch_add(1, Ordering::SeqCst);
        0
    };
    handle.set_directives("off").unwrap();
    for _ in 0..3 {
        warn!("from a call site"; n = count());
    }
    assert_eq!(
        evaluated.load(Ordering::SeqCst),
        0,
        "the call site ignored `off`"
    );
    // This test's module path is `directives` (the test crate's root).
    handle.set_directives("off,directives=warn").unwrap();
    for _ in 0..3 {
        warn!("from a call site"; n = count());
    }
    assert_eq!(evaluated.load(Ordering::SeqCst), 3);
    handle.clear();
}

#[test]
fn reload_while_four_threads_log_loses_nothing_and_applies_on_the_next_call() {
    let _serial = serial();
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Trace);
    let handle = directives::handle();
    handle.set_directives("info").unwrap();
    // Even phases are stable (0: debug off, 2: on for app::db, 4: off again), odd ones are
    // changes in progress; 5 stops. A call that starts and ends in the same stable phase must
    // follow that phase's directives: the change applies on each thread's next call.
    let phase = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let log = pipeline.logger("app::db");
            let phase = Arc::clone(&phase);
            std::thread::spawn(move || {
                let mut logged = 0u64;
                let mut seen_on = 0u64;
                loop {
                    let before = phase.load(Ordering::SeqCst);
                    if before == 5 {
                        return (logged, seen_on);
                    }
                    let enabled = log.enabled(Level::Debug);
                    if phase.load(Ordering::SeqCst) == before {
                        match before {
                            0 | 4 => assert!(!enabled, "thread {t}: debug on in phase {before}"),
                            2 => assert!(enabled, "thread {t}: debug off in phase 2"),
                            _ => {}
                        }
                        seen_on += u64::from(enabled && before == 2);
                    }
                    // Field expressions run only when the macro decided to log: count there.
                    debug!(log, "record"; t = t, n = {
                        logged += 1;
                        logged
                    });
                }
            })
        })
        .collect();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(30));
    pause();
    phase.store(1, Ordering::SeqCst);
    handle.set_directives("info,app::db=debug").unwrap();
    phase.store(2, Ordering::SeqCst);
    pause();
    phase.store(3, Ordering::SeqCst);
    handle.set_directives("info").unwrap();
    phase.store(4, Ordering::SeqCst);
    pause();
    phase.store(5, Ordering::SeqCst);
    let mut expected = 0;
    for thread in threads {
        let (logged, seen_on) = thread.join().unwrap();
        assert!(seen_on > 0, "a thread never logged in phase 1");
        expected += logged;
    }
    handle.clear();
    let lines = memory.lines();
    assert_eq!(lines.len() as u64, expected, "lines lost or extra");
    assert!(pipeline.stats().is_settled());
}

#[test]
fn bad_text_changes_nothing_and_names_the_bad_part() {
    let _serial = serial();
    let handle = directives::handle();
    handle.set_directives("info,app=debug").unwrap();
    let err = handle
        .set_directives("info,app=debug,db=verbose")
        .unwrap_err();
    assert!(err.to_string().contains("\"db=verbose\""), "{err}");
    assert_eq!(
        handle.directives().unwrap(),
        "info,app=debug".parse::<Directives>().unwrap()
    );
    handle.clear();
    assert!(handle.directives().is_none());
}

#[test]
fn environment_variables_that_are_not_utf8_or_do_not_parse_are_errors() {
    let _serial = serial();
    let bad = OsStr::from_bytes(b"info,\xff=debug");
    let cases: [(&str, &OsStr, &str); 4] = [
        ("KAKASHI_LOG", OsStr::new("info,app=loud"), "app=loud"),
        ("KAKASHI_LOG", bad, "UTF-8"),
        ("KAKASHI_LEVEL", OsStr::from_bytes(b"\xffinfo"), "UTF-8"),
        ("KAKASHI_ENV", OsStr::from_bytes(b"prod\xff"), "UTF-8"),
    ];
    for (var, value, needle) in cases {
        std::env::set_var(var, value);
        let result = match var {
            "KAKASHI_LOG" => directives::from_env().map(|_| ()),
            _ => Preset::config_from_env().map(|_| ()),
        };
        std::env::remove_var(var);
        let err = result.expect_err(var).to_string();
        assert!(err.contains(var) && err.contains(needle), "{var}: {err}");
    }
    // RUST_LOG is read when KAKASHI_LOG is not set; KAKASHI_LOG wins when both are.
    std::env::set_var("RUST_LOG", "error,app=debug");
    let from_rust_log = directives::from_env().unwrap().unwrap();
    assert_eq!(from_rust_log.level_for("app::x"), Some(Level::Debug));
    std::env::set_var("KAKASHI_LOG", "warn");
    let both = directives::from_env().unwrap().unwrap();
    assert_eq!(both.level_for("app::x"), Some(Level::Warn));
    std::env::remove_var("KAKASHI_LOG");
    std::env::remove_var("RUST_LOG");
    assert!(directives::from_env().unwrap().is_none());
}

/// `tracing` keeps the layer's answer per call site; every change of the directives (and of
/// the pipeline's level) must reach the same call sites at once.
#[cfg(feature = "tracing")]
#[test]
fn tracing_call_sites_follow_each_reload_at_once() {
    use tracing_subscriber::layer::SubscriberExt as _;

    let _serial = serial();
    let (pipeline, _guard, memory) = common::memory_sync_pipeline(Level::Info);
    let handle = directives::handle();
    let subscriber = tracing_subscriber::registry().with(kakashi::tracing::layer_for(&pipeline));
    // The same two call sites every time; their target is this test crate's root module.
    let emit = |step: u32| {
        tracing::debug!(step, "debug");
        tracing::info!(step, "info");
    };
    tracing::subscriber::with_default(subscriber, || {
        emit(1); // the pipeline's level: info only
        handle.set_directives("directives=debug").unwrap();
        emit(2); // both
        handle.set_directives("off").unwrap();
        emit(3); // none
        handle.set_directives("warn,directives=info").unwrap();
        emit(4); // info only
        handle.clear();
        pipeline.set_min_level(Level::Debug);
        emit(5); // both
        pipeline.set_min_level(Level::Warn);
        emit(6); // none
    });
    let lines = memory.lines();
    let got: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            let message = l.split(" msg=").nth(1).and_then(|m| m.split(' ').next());
            let step = l.split(" step=").nth(1);
            (message.unwrap_or(""), step.unwrap_or(""))
        })
        .collect();
    assert_eq!(
        got,
        [
            ("info", "1"),
            ("debug", "2"),
            ("info", "2"),
            ("info", "4"),
            ("debug", "5"),
            ("info", "5"),
        ],
        "{lines:#?}"
    );
}
