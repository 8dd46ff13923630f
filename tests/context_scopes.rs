//! Context in records: the thread-local scope for sync code, the task-local scope for async
//! code, merging, and every formatter writing the fields.

use kakashi::context::{self, LogContext, WithLogContext};
use kakashi::format::Json;
use kakashi::write::MemoryWriter;
use kakashi::{info, AsyncPipeline, PipelineConfig, SyncPipeline, Writer};

#[test]
fn thread_scopes_nest_merge_and_restore() {
    let memory = MemoryWriter::new();
    let config = PipelineConfig::builder()
        .formatter(Json::new())
        .writer(Writer::memory(&memory))
        .build()
        .unwrap();
    let (pipeline, _guard) = SyncPipeline::start(config).unwrap();
    let log = pipeline.logger("app");
    info!(log, "none");
    {
        let _outer = LogContext::new()
            .with_service_name("billing")
            .with_request_id("outer")
            .with_field("tenant", "acme")
            .enter();
        {
            let _inner = LogContext::new()
                .with_request_id("inner")
                .with_field("tenant", "globex")
                .with_field("attempt", 2)
                .enter();
            info!(log, "inner");
        }
        info!(log, "outer");
    }
    info!(log, "after");
    let parsed: Vec<serde_json::Value> = memory
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed.len(), 4);
    assert!(parsed[0].get("request_id").is_none());
    assert_eq!(parsed[1]["request_id"], "inner");
    assert_eq!(parsed[1]["service_name"], "billing");
    assert_eq!(parsed[1]["tenant"], "globex");
    assert_eq!(parsed[1]["attempt"], 2);
    assert_eq!(parsed[2]["request_id"], "outer");
    assert_eq!(parsed[2]["tenant"], "acme");
    assert!(parsed[2].get("attempt").is_none());
    assert!(parsed[3].get("service_name").is_none());
}

#[test]
fn task_scopes_follow_awaits_spawns_and_blocking_work() {
    let memory = MemoryWriter::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = PipelineConfig::builder()
            .formatter(Json::new())
            .writer(Writer::memory(&memory))
            .build()
            .unwrap();
        let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
        let mut handles = Vec::new();
        for r in 0..50 {
            let log = pipeline.logger("req");
            let ctx = LogContext::new().with_request_id(format!("r-{r}"));
            handles.push(tokio::spawn(
                async move {
                    info!(log, "start");
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    let child_log = log.clone();
                    context::spawn(async move { info!(child_log, "child") })
                        .await
                        .unwrap();
                    let blocking_log = log.clone();
                    context::spawn_blocking(move || info!(blocking_log, "blocking"))
                        .await
                        .unwrap();
                    // Not carried: a plain tokio::spawn starts without a context.
                    let plain_log = log.clone();
                    tokio::spawn(async move { info!(plain_log, "plain") })
                        .await
                        .unwrap();
                    async { info!(log, "nested") }
                        .with_log_context(LogContext::new().with_user_id("u"))
                        .await;
                }
                .with_log_context(ctx),
            ));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert!(guard.shutdown().await.is_settled());
    });
    let mut per_request = std::collections::HashMap::<String, Vec<String>>::new();
    let mut plain = 0;
    for line in memory.lines() {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let msg = v["message"].as_str().unwrap().to_owned();
        match v.get("request_id").and_then(|r| r.as_str()) {
            Some(id) => {
                if msg == "nested" {
                    assert_eq!(v["user_id"], "u");
                } else {
                    assert!(v.get("user_id").is_none());
                }
                per_request.entry(id.to_owned()).or_default().push(msg)
            }
            None => {
                assert_eq!(msg, "plain");
                plain += 1;
            }
        }
    }
    assert_eq!(plain, 50);
    assert_eq!(per_request.len(), 50);
    for (id, mut msgs) in per_request {
        msgs.sort();
        assert_eq!(msgs, ["blocking", "child", "nested", "start"], "{id}");
    }
}
