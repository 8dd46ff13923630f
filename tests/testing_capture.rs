//! `kakashi::testing::capture`: two hundred `#[tokio::test]`s and fifty plain tests in one
//! binary, run on cargo's parallel threads, each capturing only its own lines (spawned tasks
//! included), with no `AlreadyInitialized`.

use kakashi::{get_logger, info, testing, warn, Level};

/// Logs from the test's body, a spawned task and a named logger, then checks that exactly
/// those lines (and no other test's) were captured, parsed back field by field.
async fn async_case(id: u32) {
    let capture = testing::capture().expect("capture");
    info!("start"; test = id);
    let task = tokio::spawn(async move {
        tokio::task::yield_now().await;
        warn!("from a task"; test = id, hostile = "a\nb \"c\"");
    });
    task.await.unwrap();
    get_logger("named").log_at(
        Level::Debug,
        format_args!("from a named logger"),
        &[kakashi::Field::new(
            "test",
            kakashi::Value::U64(u64::from(id)),
        )],
        &kakashi::Location::new(module_path!(), file!(), line!()),
    );
    tokio::task::yield_now().await;
    let records = capture.records();
    let id = id.to_string();
    assert_eq!(records.len(), 3, "{:?}", capture.lines());
    for record in &records {
        assert_eq!(
            record.field("test"),
            Some(id.as_str()),
            "{:?}",
            capture.lines()
        );
    }
    assert_eq!(records[0].message(), "start");
    assert_eq!(records[0].level(), Some(Level::Info));
    assert_eq!(records[1].field("hostile"), Some("a\nb \"c\""));
    assert_eq!(records[1].level(), Some(Level::Warn));
    assert_eq!(records[2].logger(), Some("named"));
    assert_eq!(records[2].level(), Some(Level::Debug));
}

fn sync_case(id: u32) {
    let capture = testing::capture().expect("capture");
    for n in 0..20u32 {
        info!("line"; test = id, n = n);
    }
    let records = capture.records();
    assert_eq!(records.len(), 20);
    let id = id.to_string();
    assert!(records.iter().all(|r| r.field("test") == Some(id.as_str())));
    capture.clear();
    assert!(capture.records().is_empty());
}

macro_rules! cases {
    ($kind:ident: $($name:ident = $id:literal),* $(,)?) => {
        $(cases!(@one $kind $name $id);)*
    };
    (@one tokio $name:ident $id:literal) => {
        #[tokio::test]
        async fn $name() {
            async_case($id).await;
        }
    };
    (@one plain $name:ident $id:literal) => {
        #[test]
        fn $name() {
            sync_case($id);
        }
    };
}

// Two hundred #[tokio::test]s: t000 .. t199.
include!("testing_capture/cases.rs");

#[test]
fn nested_captures_take_the_lines_while_they_live() {
    let outer = testing::capture().unwrap();
    info!("outer 1");
    {
        let inner = testing::capture().unwrap();
        info!("inner");
        assert_eq!(inner.records().len(), 1);
    }
    info!("outer 2");
    let messages: Vec<String> = outer
        .records()
        .iter()
        .map(|r| r.message().to_owned())
        .collect();
    assert_eq!(messages, ["outer 1", "outer 2"]);
}
