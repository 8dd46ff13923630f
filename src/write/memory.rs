//! An in-memory writer for tests.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use super::SyncWrite;

/// Collects lines in memory; clones share the same buffer. Meant for tests, yours included.
///
/// # Examples
///
/// ```
/// use kakashi::write::{MemoryWriter, SyncWrite};
///
/// let memory = MemoryWriter::new();
/// memory.write_lines(b"one\ntwo\n").unwrap();
/// assert_eq!(memory.lines(), vec!["one", "two"]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryWriter {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl MemoryWriter {
    /// An empty buffer.
    pub fn new() -> Self {
        MemoryWriter::default()
    }

    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Everything written so far, as lines (invalid UTF-8 is replaced).
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.contents())
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Empties the buffer.
    pub fn clear(&self) {
        self.buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl SyncWrite for MemoryWriter {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        self.buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(lines);
        Ok(())
    }

    fn flush_may_wait(&self) -> bool {
        false
    }
}
