//! The global pipeline, presets and environment configuration. One test touches the global
//! state (it can be installed once per process); the others only build configurations.

use kakashi::{critical, get_logger, info, ErrorKind, Level, Preset};

#[test]
fn global_init_logs_flushes_and_refuses_a_second_init() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = Preset::Testing.builder().build().unwrap();
        let guard = kakashi::try_init(config).unwrap();
        assert!(guard.pipeline().unwrap().is_async());
        let memory = kakashi::testing_memory();

        info!("without a logger"; answer = 42);
        let log = get_logger("app::db");
        assert!(log.enabled(Level::Trace));
        kakashi::debug!(log, "with a logger");
        // Same name, same logger: levels are shared.
        get_logger("app::db").set_level(Some(Level::Error));
        kakashi::debug!(log, "now filtered");
        critical!(log, "still shown");
        kakashi::flush();
        let lines = memory.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].ends_with("level=info logger=global_setup msg=\"without a logger\" answer=42")
        );
        assert!(lines[1].ends_with("level=debug logger=app::db msg=\"with a logger\""));
        assert!(lines[2].ends_with("level=critical logger=app::db msg=\"still shown\""));

        let second = kakashi::try_init(Preset::Testing.builder().build().unwrap());
        assert!(matches!(
            second.unwrap_err().kind(),
            ErrorKind::AlreadyInitialized
        ));

        // The panic hook logs the panic and flushes before the previous hook runs.
        kakashi::install_panic_hook();
        let joined = std::thread::Builder::new()
            .name("doomed".into())
            .spawn(|| panic!("boom at line\nforged=1"))
            .unwrap()
            .join();
        assert!(joined.is_err());
        let lines = memory.lines();
        let panic_line = lines.last().unwrap();
        assert!(
            panic_line.contains("level=critical logger=panic"),
            "{panic_line}"
        );
        assert!(
            panic_line.contains("boom at line\\nforged=1"),
            "{panic_line}"
        );
        assert_eq!(lines.len(), 4);

        assert!(guard.shutdown().await.is_settled());
        // After shutdown, records are written synchronously.
        info!("after shutdown");
        assert_eq!(memory.lines().len(), 5);
    });
}

#[test]
fn presets_parse_and_build() {
    for (name, preset) in [
        ("development", Preset::Development),
        ("DEV", Preset::Development),
        ("production", Preset::Production),
        ("prod", Preset::Production),
        ("testing", Preset::Testing),
        ("test", Preset::Testing),
    ] {
        assert_eq!(name.parse::<Preset>().unwrap(), preset);
        preset.builder().build().unwrap();
    }
    assert_eq!(
        Preset::Development.builder().build().unwrap().min_level(),
        Level::Debug
    );
    assert_eq!(
        Preset::Production.builder().build().unwrap().min_level(),
        Level::Info
    );
    let err = "staging".parse::<Preset>().unwrap_err().to_string();
    assert!(
        err.contains("\"staging\"") && err.contains("production"),
        "{err}"
    );
}

#[test]
fn environment_variables_choose_the_preset_and_level_with_clear_errors() {
    // This is the only test that touches these variables.
    std::env::set_var("KAKASHI_ENV", "production");
    std::env::set_var("KAKASHI_LEVEL", "WARNING");
    let config = Preset::config_from_env().unwrap().build().unwrap();
    assert_eq!(config.min_level(), Level::Warn);

    std::env::set_var("KAKASHI_LEVEL", "loud");
    let err = Preset::config_from_env().unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::InvalidEnv {
            var: "KAKASHI_LEVEL",
            ..
        }
    ));
    let text = err.to_string();
    assert!(
        text.contains("KAKASHI_LEVEL=\"loud\"") && text.contains("warn"),
        "{text}"
    );

    std::env::set_var("KAKASHI_LEVEL", "");
    std::env::set_var("KAKASHI_ENV", "staging");
    let text = Preset::config_from_env().unwrap_err().to_string();
    assert!(
        text.contains("KAKASHI_ENV=\"staging\"") && text.contains("testing"),
        "{text}"
    );

    std::env::remove_var("KAKASHI_ENV");
    std::env::remove_var("KAKASHI_LEVEL");
    // No preset named, and NO_COLOR (so that the answer does not depend on whether the tests
    // run in a terminal): info and logfmt.
    std::env::set_var("NO_COLOR", "1");
    let config = Preset::config_from_env().unwrap().build().unwrap();
    std::env::remove_var("NO_COLOR");
    assert_eq!(config.min_level(), Level::Info);
    assert!(
        format!("{:?}", config.formatter()).contains("Logfmt"),
        "{:?}",
        config.formatter()
    );
}
