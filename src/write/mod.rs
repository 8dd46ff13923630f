//! Writers: where lines go.
//!
//! A [`Writer`] in a [`PipelineConfig`](crate::PipelineConfig) names a destination and may carry
//! its own minimum level and formatter:
//!
//! | constructor | async pipeline writes with | synchronous path (no runtime, overflow, shutdown) |
//! |---|---|---|
//! | [`Writer::stdout`] / [`Writer::stderr`] | `std::io::stdout()` / `stderr()` | the same |
//! | [`Writer::file`] | the open file (`O_APPEND`), one `write` per batch | the same |
//! | [`Writer::rolling`] | the [`rolling::RollingFile`] (rotation, retention, compression, reopen), one `write` per batch or less | the same |
//! | [`Writer::memory`] | the in-memory buffer | the in-memory buffer |
//! | [`Writer::sync`] | your [`SyncWrite`] | your [`SyncWrite`] |
//! | [`Writer::async_writer`] | your `AsyncWrite` (TCP, Unix socket, …) | its sync twin if given, else the fallback writer |
//! | `Writer::syslog` (feature `syslog`) | the syslog writer's backlog (no I/O; its own thread sends over UDP, TCP, RELP or a Unix socket) | the same |
//!
//! Lines are written whole: a batch only ever holds complete lines, and one party at a time
//! (the consumer role) writes a destination's queued lines. When a destination takes only part
//! of a batch, the next write starts at the first byte it did not take: bytes a destination
//! accepted are never written to it twice.
//!
//! Files and standard streams are written with plain `write` calls by whoever holds the
//! consumer role (normally the worker task): a write to a file lands in the page cache, and
//! `tokio::fs::File` would only move the same call to another thread while reporting the bytes
//! as written before the OS has them, which would make exact accounting impossible. `AsyncWrite`
//! destinations (sockets) are polled, and their `Ready(Ok(n))` is the count that matters.

mod memory;
pub mod rolling;
mod stdio;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWrite;

use crate::error::Error;
use crate::format::Formatter;
use crate::level::Level;

pub use memory::MemoryWriter;
pub use stdio::{StderrWriter, StdoutWriter};

/// A destination that takes whole lines synchronously.
///
/// `write_lines` receives one or more complete lines and writes all of them or fails. Writers
/// that can say how much a single call took (files, pipes, sockets) also implement
/// [`write`](SyncWrite::write), so that a short write is resumed from its offset instead of
/// rewritten. Errors are returned, never panicked on; the pipeline counts them, reports them
/// through the error hook and sends the unfinished lines to the fallback writer.
///
/// # Examples
///
/// ```
/// use std::io;
/// use std::sync::{Arc, Mutex};
/// use kakashi::write::SyncWrite;
///
/// /// Collects line counts, for example.
/// #[derive(Debug, Default)]
/// struct Counter(Mutex<usize>);
///
/// impl SyncWrite for Counter {
///     fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
///         *self.0.lock().unwrap() += lines.iter().filter(|&&b| b == b'\n').count();
///         Ok(())
///     }
/// }
/// let counter = Arc::new(Counter::default());
/// counter.write_lines(b"a\nb\n").unwrap();
/// assert_eq!(*counter.0.lock().unwrap(), 2);
/// ```
pub trait SyncWrite: Send + Sync + fmt::Debug + 'static {
    /// Writes complete lines.
    ///
    /// # Errors
    ///
    /// Any I/O error of the destination.
    fn write_lines(&self, lines: &[u8]) -> io::Result<()>;

    /// Writes a prefix of `buf` (ideally with one system call) and returns its length, like
    /// [`std::io::Write::write`]. After `Ok(n)`, the pipeline's next call starts at `buf[n..]`.
    ///
    /// The default calls [`write_lines`](SyncWrite::write_lines): all of `buf` or an error
    /// (after which the pipeline assumes nothing was written).
    ///
    /// # Errors
    ///
    /// Any I/O error of the destination.
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_lines(buf).map(|()| buf.len())
    }

    /// Flushes buffered lines, if the writer buffers.
    ///
    /// # Errors
    ///
    /// Any I/O error of the destination.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    /// True (the default) if [`flush`](SyncWrite::flush) may wait: for a peer's
    /// acknowledgement, a lock that a blocked write holds, a disk. The pipeline then calls it
    /// on a helper thread, so that an async flush does not hold up the runtime's thread and a
    /// teardown keeps its deadline. Writers whose flush returns at once (files, memory)
    /// return false and are flushed in place.
    fn flush_may_wait(&self) -> bool {
        true
    }

    /// True if the destination is a terminal (the console formatter colors only then).
    fn is_terminal(&self) -> bool {
        false
    }
}

/// A file opened for appending, written synchronously with one `write` call per batch.
#[derive(Debug)]
pub struct FileWriter {
    path: PathBuf,
    file: File,
}

impl FileWriter {
    /// Opens (creating it and its parent directories if needed) `path` for appending.
    ///
    /// # Errors
    ///
    /// [`Error`] naming the path when a directory cannot be created or the file cannot be
    /// opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::open_file(&path, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::open_file(&path, e))?;
        Ok(FileWriter { path, file })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SyncWrite for FileWriter {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        (&self.file).write_all(lines)
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        (&self.file).write(buf)
    }

    fn flush_may_wait(&self) -> bool {
        false
    }
}

pub(crate) type BoxAsyncWrite = Box<dyn AsyncWrite + Send + Unpin>;

#[derive(Clone)]
pub(crate) enum Target {
    Stdout,
    Stderr,
    File(PathBuf),
    Sync(Arc<dyn SyncWrite>),
    Async {
        writer: Arc<Mutex<Option<BoxAsyncWrite>>>,
        twin: Option<Arc<dyn SyncWrite>>,
        name: Arc<str>,
    },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Stdout => f.write_str("stdout"),
            Target::Stderr => f.write_str("stderr"),
            Target::File(p) => write!(f, "file {}", p.display()),
            Target::Sync(w) => write!(f, "{w:?}"),
            Target::Async { name, .. } => write!(f, "async writer {name}"),
        }
    }
}

/// A destination for lines, with an optional minimum level and formatter of its own.
///
/// # Examples
///
/// Errors to stderr as logfmt, everything to a file as JSON:
///
/// ```
/// use kakashi::format::{Json, Logfmt};
/// use kakashi::{Level, PipelineConfig, Writer};
///
/// # let dir = std::env::temp_dir().join("kakashi-doc-writer");
/// let config = PipelineConfig::builder()
///     .min_level(Level::Debug)
///     .formatter(Json::new())
///     .writer(Writer::stderr().min_level(Level::Error).formatter(Logfmt::new()))
///     .writer(Writer::file(dir.join("app.log")))
///     .build()
///     .unwrap();
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct Writer {
    pub(crate) target: Target,
    pub(crate) min_level: Option<Level>,
    pub(crate) formatter: Option<Arc<dyn Formatter>>,
}

impl Writer {
    fn new(target: Target) -> Self {
        Writer {
            target,
            min_level: None,
            formatter: None,
        }
    }

    /// Standard output.
    pub fn stdout() -> Self {
        Writer::new(Target::Stdout)
    }

    /// Standard error.
    pub fn stderr() -> Self {
        Writer::new(Target::Stderr)
    }

    /// A file, appended to; it and its parent directories are created when the pipeline is
    /// built (an error then names the path if that fails).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Writer::new(Target::File(path.into()))
    }

    /// A [`rolling::RollingFile`]: files that rotate by size or time, with retention,
    /// compression and reopening (see the [`rolling`] module).
    pub fn rolling(file: &rolling::RollingFile) -> Self {
        Writer::new(Target::Sync(Arc::new(file.clone())))
    }

    /// An in-memory buffer, for tests.
    pub fn memory(buffer: &MemoryWriter) -> Self {
        Writer::new(Target::Sync(Arc::new(buffer.clone())))
    }

    /// Any synchronous writer. On the async pipeline the worker calls it directly, so it should
    /// not block for long.
    pub fn sync(writer: Arc<dyn SyncWrite>) -> Self {
        Writer::new(Target::Sync(writer))
    }

    /// Any `AsyncWrite` (a `tokio::net::TcpStream`, a `UnixStream`, …), used by the async
    /// pipeline's worker. A config holding one can build one pipeline only: the writer moves
    /// into it.
    ///
    /// Where a line must be written synchronously (the queue is full with the default overflow
    /// policy, or no runtime is running), it goes to `twin` if one is set with
    /// [`Writer::with_sync_twin`], else to the pipeline's fallback writer (and is counted as
    /// written via fallback).
    pub fn async_writer(name: &str, writer: impl AsyncWrite + Send + Unpin + 'static) -> Self {
        Writer::new(Target::Async {
            writer: Arc::new(Mutex::new(Some(Box::new(writer)))),
            twin: None,
            name: Arc::from(name),
        })
    }

    /// A [syslog writer](crate::syslog), with its [`SyslogFormatter`](crate::syslog::SyslogFormatter)
    /// as this writer's formatter: each record becomes one syslog message.
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::syslog::{SyslogWriter, Transport};
    /// use kakashi::{PipelineConfig, Writer};
    ///
    /// # fn main() -> Result<(), kakashi::Error> {
    /// let syslog = SyslogWriter::builder(Transport::tcp("127.0.0.1:514")).build()?;
    /// let config = PipelineConfig::builder().writer(Writer::syslog(&syslog)).build()?;
    /// # let _ = config;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "syslog")]
    #[cfg_attr(docsrs, doc(cfg(feature = "syslog")))]
    pub fn syslog(writer: &crate::syslog::SyslogWriter) -> Self {
        Writer::sync(writer.sync_writer()).formatter_arc(writer.formatter_arc())
    }

    /// Sets the synchronous writer for an [`async_writer`](Writer::async_writer)'s destination.
    #[must_use]
    pub fn with_sync_twin(mut self, twin: Arc<dyn SyncWrite>) -> Self {
        if let Target::Async { twin: slot, .. } = &mut self.target {
            *slot = Some(twin);
        }
        self
    }

    /// Only records at `level` or above reach this writer.
    #[must_use]
    pub fn min_level(mut self, level: Level) -> Self {
        self.min_level = Some(level);
        self
    }

    /// This writer's own formatter (else the pipeline's).
    #[must_use]
    pub fn formatter(mut self, formatter: impl Formatter) -> Self {
        self.formatter = Some(Arc::new(formatter));
        self
    }

    /// This writer's own formatter, shared.
    #[must_use]
    pub fn formatter_arc(mut self, formatter: Arc<dyn Formatter>) -> Self {
        self.formatter = Some(formatter);
        self
    }
}

/// A writer opened for a pipeline: its synchronous side, and the async side the worker uses.
pub(crate) struct Opened {
    pub(crate) name: String,
    pub(crate) sync: Arc<dyn SyncWrite>,
    /// True when `sync` is the pipeline's fallback rather than the destination itself.
    pub(crate) sync_is_fallback: bool,
    pub(crate) is_terminal: bool,
    pub(crate) async_writer: AsyncSide,
}

pub(crate) enum AsyncSide {
    /// The worker writes through this.
    Async(BoxAsyncWrite),
    /// The worker calls the synchronous writer (files, standard streams, in-memory and custom
    /// sync writers).
    UseSync,
    /// Only the synchronous pipeline will use this writer.
    None,
}

impl Target {
    pub(crate) fn open(
        &self,
        with_async: bool,
        fallback: &Arc<dyn SyncWrite>,
    ) -> Result<Opened, Error> {
        let name = format!("{self:?}");
        let opened = match self {
            Target::Stdout => {
                let sync = StdoutWriter::default();
                Opened {
                    is_terminal: sync.is_terminal(),
                    sync: Arc::new(sync),
                    sync_is_fallback: false,
                    async_writer: AsyncSide::UseSync,
                    name,
                }
            }
            Target::Stderr => {
                let sync = StderrWriter::default();
                Opened {
                    is_terminal: sync.is_terminal(),
                    sync: Arc::new(sync),
                    sync_is_fallback: false,
                    async_writer: AsyncSide::UseSync,
                    name,
                }
            }
            Target::File(path) => {
                let file = FileWriter::open(path)?;
                Opened {
                    is_terminal: false,
                    sync: Arc::new(file),
                    sync_is_fallback: false,
                    async_writer: AsyncSide::UseSync,
                    name,
                }
            }
            Target::Sync(w) => Opened {
                is_terminal: w.is_terminal(),
                sync: Arc::clone(w),
                sync_is_fallback: false,
                async_writer: AsyncSide::UseSync,
                name,
            },
            Target::Async { writer, twin, .. } => {
                let async_writer = if with_async {
                    let taken = writer.lock().ok().and_then(|mut slot| slot.take());
                    match taken {
                        Some(w) => AsyncSide::Async(w),
                        None => {
                            return Err(Error::config(format!(
                                "{name} is already used by another pipeline (an async writer \
                                 moves into the first pipeline built from the config)"
                            )))
                        }
                    }
                } else {
                    AsyncSide::None
                };
                Opened {
                    is_terminal: false,
                    sync: twin.clone().unwrap_or_else(|| Arc::clone(fallback)),
                    sync_is_fallback: twin.is_none(),
                    async_writer,
                    name,
                }
            }
        };
        Ok(opened)
    }
}
