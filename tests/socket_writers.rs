//! The async pipeline writing to real sockets on loopback: a TCP connection and a Unix stream.

mod common;

use kakashi::format::Json;
use kakashi::{info, AsyncPipeline, PipelineConfig, Writer};
use tokio::io::{AsyncRead, AsyncReadExt};

async fn read_all(mut stream: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await.unwrap();
    all
}

fn check_lines(bytes: &[u8], expected: u64) {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut seqs: Vec<u64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["seq"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(seqs.len() as u64, expected);
    seqs.sort_unstable();
    assert!(seqs.iter().enumerate().all(|(i, &s)| s == i as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_reach_a_tcp_peer_on_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        read_all(stream).await
    });
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let config = PipelineConfig::builder()
        .formatter(Json::new())
        .writer(Writer::async_writer("tcp", stream))
        .queue_capacity(1 << 16)
        .build()
        .unwrap();
    let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
    let log = pipeline.logger("net");
    for seq in 0..20_000u64 {
        info!(log, "over tcp"; seq = seq);
        if seq % 1000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    assert!(guard.shutdown().await.is_settled());
    let stats = pipeline.stats();
    assert_eq!(stats.written, 20_000, "{stats:?}");
    // The worker owned the stream; shutting down dropped it, closing the connection.
    check_lines(&server.await.unwrap(), 20_000);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_reach_a_unix_socket_peer() {
    let dir = common::TempDir::new("unix");
    let path = dir.file("log.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        read_all(stream).await
    });
    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let config = PipelineConfig::builder()
        .formatter(Json::new())
        .writer(Writer::async_writer("unix", stream))
        .queue_capacity(1 << 16)
        .build()
        .unwrap();
    let (pipeline, guard) = AsyncPipeline::start(config).unwrap();
    let log = pipeline.logger("net");
    for seq in 0..5_000u64 {
        info!(log, "over a unix socket"; seq = seq);
    }
    assert!(guard.shutdown().await.is_settled());
    check_lines(&server.await.unwrap(), 5_000);
}
