//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "kakashi-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The lines of a file (the file must end with a newline when non-empty).
pub fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "file does not end with a newline"
    );
    text.lines().map(str::to_owned).collect()
}

/// Parses a logfmt line into (key, value) pairs, unescaping quoted values. Panics on a line
/// that is not well-formed logfmt.
pub fn parse_logfmt(line: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            assert!(c != ' ' && c != '"', "bad key char {c:?} in {line:?}");
            key.push(c);
            chars.next();
        }
        assert_eq!(chars.next(), Some('='), "missing = in {line:?}");
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next().expect("unterminated quote") {
                    '"' => break,
                    '\\' => match chars.next().expect("dangling escape") {
                        'n' => value.push('\n'),
                        'r' => value.push('\r'),
                        't' => value.push('\t'),
                        '"' => value.push('"'),
                        '\\' => value.push('\\'),
                        'u' => {
                            let hex: String = (0..4).map(|_| chars.next().unwrap()).collect();
                            let code = u32::from_str_radix(&hex, 16).unwrap();
                            value.push(char::from_u32(code).unwrap());
                        }
                        other => panic!("unknown escape \\{other} in {line:?}"),
                    },
                    c => value.push(c),
                }
            }
            assert!(
                matches!(chars.peek(), None | Some(' ')),
                "garbage after quoted value in {line:?}"
            );
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                assert!(
                    c != '"' && c != '=',
                    "bad bare value char {c:?} in {line:?}"
                );
                value.push(c);
                chars.next();
            }
        }
        pairs.push((key, value));
    }
    pairs
}

/// The value of `key` in a parsed logfmt line.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// An async pipeline writing JSON lines to memory; call it inside a tokio runtime.
pub fn json_memory_pipeline() -> (
    kakashi::write::MemoryWriter,
    kakashi::Pipeline,
    kakashi::PipelineGuard,
) {
    let memory = kakashi::write::MemoryWriter::new();
    let config = kakashi::PipelineConfig::builder()
        .formatter(kakashi::format::Json::new())
        .writer(kakashi::Writer::memory(&memory))
        .build()
        .unwrap();
    let (pipeline, guard) = kakashi::AsyncPipeline::start(config).unwrap();
    (memory, pipeline, guard)
}

/// A synchronous logfmt pipeline at `level` writing to memory.
pub fn memory_sync_pipeline(
    level: kakashi::Level,
) -> (
    kakashi::Pipeline,
    kakashi::PipelineGuard,
    kakashi::write::MemoryWriter,
) {
    let memory = kakashi::write::MemoryWriter::new();
    let config = kakashi::PipelineConfig::builder()
        .min_level(level)
        .writer(kakashi::Writer::memory(&memory))
        .build()
        .unwrap();
    let (pipeline, guard) = kakashi::SyncPipeline::start(config).unwrap();
    (pipeline, guard, memory)
}

/// Serves `app` on a loopback port with the peer address available as `ConnectInfo`; returns
/// the address and the server task.
pub async fn serve_on_loopback(
    app: axum::Router,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, server)
}
