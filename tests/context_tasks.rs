//! Task-local context on a multi-thread runtime: it follows a task from worker thread to worker
//! thread across `.await` points, and nested scopes merge with the inner one winning, in the
//! records the pipeline writes.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kakashi::{context, info, LogContext, WithLogContext};

fn thread_id() -> String {
    format!("{:?}", std::thread::current().id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn context_follows_tasks_across_worker_threads() {
    const TASKS: usize = 64;
    const STEPS: usize = 40;

    let (memory, pipeline, guard) = common::json_memory_pipeline();

    let mut handles = Vec::new();
    for t in 0..TASKS {
        let log = pipeline.logger("hop");
        let id = format!("task-{t}");
        let ctx = LogContext::new().with_request_id(id.clone());
        handles.push(tokio::spawn(context::scope(ctx, async move {
            let mut threads = Vec::new();
            for step in 0..STEPS {
                // Timers and yields hand the task back to the scheduler, which may resume it
                // on any worker.
                if step % 2 == 0 {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                } else {
                    tokio::task::yield_now().await;
                }
                let seen = context::try_current().and_then(|c| c.request_id().map(str::to_owned));
                assert_eq!(seen.as_deref(), Some(id.as_str()), "step {step}");
                let thread = thread_id();
                info!(log, "step"; step = step, thread = %thread);
                threads.push(thread);
            }
            threads
        })));
    }
    let mut hops = 0;
    for handle in handles {
        let threads = handle.await.unwrap();
        hops += threads.windows(2).filter(|w| w[0] != w[1]).count();
    }
    assert!(guard.shutdown().await.is_settled());
    assert!(
        hops > 0,
        "no task ever changed threads: the test proves nothing"
    );

    let mut steps: HashMap<String, HashSet<u64>> = HashMap::new();
    let mut threads = HashSet::new();
    for line in memory.lines() {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let id = v["request_id"]
            .as_str()
            .expect("every record has its task's id");
        assert!(steps
            .entry(id.to_owned())
            .or_default()
            .insert(v["step"].as_u64().unwrap()));
        threads.insert(v["thread"].as_str().unwrap().to_owned());
    }
    assert_eq!(steps.len(), TASKS);
    assert!(steps.values().all(|s| s.len() == STEPS));
    assert!(threads.len() > 1, "all records came from one thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_scopes_merge_inner_wins_and_spawned_tasks_inherit_the_merge() {
    let (memory, pipeline, guard) = common::json_memory_pipeline();
    let log = pipeline.logger("nest");

    let outer = LogContext::new()
        .with_service_name("svc")
        .with_request_id("outer-id")
        .with_field("tenant", "acme")
        .with_field("shard", 1u64);
    let inner = LogContext::new()
        .with_request_id("inner-id")
        .with_user_id("u-1")
        .with_field("shard", 2u64);
    let log2 = log.clone();
    context::scope(outer, async move {
        info!(log2, "outer before");
        let log3 = log2.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            info!(log3, "inner");
            let log4 = log3.clone();
            context::spawn(async move {
                tokio::task::yield_now().await;
                info!(log4, "inner child");
            })
            .await
            .unwrap();
        }
        .with_log_context(inner)
        .await;
        info!(log2, "outer after");
    })
    .await;
    assert!(guard.shutdown().await.is_settled());

    let records: HashMap<String, serde_json::Value> = memory
        .lines()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["message"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert_eq!(records.len(), 4);
    for name in ["inner", "inner child"] {
        let r = &records[name];
        assert_eq!(r["request_id"], "inner-id", "{r}");
        assert_eq!(r["user_id"], "u-1", "{r}");
        assert_eq!(r["service_name"], "svc", "{r}");
        assert_eq!(r["tenant"], "acme", "{r}");
        assert_eq!(r["shard"], 2, "{r}");
    }
    for name in ["outer before", "outer after"] {
        let r = &records[name];
        assert_eq!(r["request_id"], "outer-id", "{r}");
        assert!(r.get("user_id").is_none(), "{r}");
        assert_eq!(r["shard"], 1, "{r}");
    }
}
