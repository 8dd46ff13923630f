//! Standard output and standard error.

use std::io::{self, IsTerminal, Write as _};

use super::SyncWrite;

/// Standard output, written through `std`'s lock (one `write` per batch; a short write is resumed).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutWriter {
    _private: (),
}

impl SyncWrite for StdoutWriter {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        io::stdout().lock().write_all(lines)
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().lock().write(buf)
    }

    fn flush(&self) -> io::Result<()> {
        io::stdout().lock().flush()
    }

    fn is_terminal(&self) -> bool {
        io::stdout().is_terminal()
    }
}

/// Standard error, written through `std`'s lock (one `write` per batch; a short write is resumed). This is the
/// default fallback writer.
#[derive(Debug, Default, Clone, Copy)]
pub struct StderrWriter {
    _private: (),
}

impl SyncWrite for StderrWriter {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        io::stderr().lock().write_all(lines)
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().lock().write(buf)
    }

    fn flush(&self) -> io::Result<()> {
        // `std`'s stderr is unbuffered: there is nothing to flush, and taking its lock could
        // wait for a write blocked on a full pipe.
        Ok(())
    }

    fn flush_may_wait(&self) -> bool {
        false
    }

    fn is_terminal(&self) -> bool {
        io::stderr().is_terminal()
    }
}
