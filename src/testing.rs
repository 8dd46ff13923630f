//! Capturing what a test logs: each test sees its own lines, with `cargo test`'s parallel
//! threads and with `#[tokio::test]`.
//!
//! [`capture`] installs, the first time it is called in a process, a synchronous global
//! pipeline (logfmt, every level) whose writer hands each line to the capture of the thread
//! that logged it; each call then starts a capture for the calling thread, until the returned
//! [`Capture`] is dropped. It can be called in every test: it never fails with
//! `AlreadyInitialized` (the pipeline is installed once and shared).
//!
//! What is captured: records logged on the test's thread through the global pipeline (the
//! logger-less macros and [`get_logger`](crate::get_logger) loggers), including those of tasks
//! that run on that thread — everything a `#[tokio::test]` spawns, since its runtime is a
//! `current_thread` one. Records logged on other threads with no capture of their own go to
//! stderr. A program that installed its own global pipeline first cannot be captured this
//! way; [`capture`] then returns an error.
//!
//! # Examples
//!
//! ```
//! use kakashi::{info, testing};
//!
//! let capture = testing::capture().unwrap();
//! info!("order placed"; order_id = 7, total = 12.5);
//! let records = capture.records();
//! assert_eq!(records.len(), 1);
//! assert_eq!(records[0].message(), "order placed");
//! assert_eq!(records[0].field("order_id"), Some("7"));
//! assert_eq!(records[0].level(), Some(kakashi::Level::Info));
//! ```

use std::cell::RefCell;
use std::io;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::error::Error;
use crate::format::Logfmt;
use crate::level::Level;
use crate::pipeline::{PipelineConfig, SyncPipeline};
use crate::write::{StderrWriter, SyncWrite, Writer};

thread_local! {
    /// The captures of this thread, innermost last.
    static CAPTURES: RefCell<Vec<Arc<Mutex<Vec<u8>>>>> = const { RefCell::new(Vec::new()) };
}

/// Hands each line to the capture of the thread that logged it (the pipeline is synchronous,
/// so the writer runs on that thread).
#[derive(Debug, Default)]
struct CaptureRouter {
    stderr: StderrWriter,
}

impl SyncWrite for CaptureRouter {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        let routed = CAPTURES
            .try_with(|captures| {
                let captures = captures.try_borrow().ok()?;
                let capture = captures.last()?;
                capture
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(lines);
                Some(())
            })
            .ok()
            .flatten();
        match routed {
            Some(()) => Ok(()),
            None => self.stderr.write_lines(lines),
        }
    }

    fn flush_may_wait(&self) -> bool {
        false
    }
}

/// Installs the capturing global pipeline once; an error if another global pipeline was
/// installed first.
fn install() -> Result<(), Error> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        let config = PipelineConfig::builder()
            .min_level(Level::Trace)
            .formatter(Logfmt::new())
            .writer(Writer::sync(Arc::new(CaptureRouter::default())))
            .build()
            .map_err(|e| e.to_string())?;
        let (pipeline, guard) = SyncPipeline::start(config).map_err(|e| e.to_string())?;
        crate::global::install(pipeline).map_err(|e| e.to_string())?;
        // A synchronous pipeline has nothing to flush at exit: the guard may go.
        std::mem::forget(guard);
        Ok(())
    });
    result
        .clone()
        .map_err(|e| Error::config(format!("kakashi::testing::capture: {e}")))
}

/// Starts capturing what this thread logs through the global pipeline; see the
/// [module docs](self).
///
/// # Errors
///
/// [`Error`] when the program installed its own global pipeline before the first capture.
pub fn capture() -> Result<Capture, Error> {
    install()?;
    let buffer = Arc::new(Mutex::new(Vec::new()));
    CAPTURES
        .try_with(|captures| captures.borrow_mut().push(Arc::clone(&buffer)))
        .map_err(|_| Error::config("kakashi::testing::capture: the thread is exiting"))?;
    Ok(Capture {
        buffer,
        _not_send: std::marker::PhantomData,
    })
}

/// The lines one test logged; capturing stops when it is dropped.
#[must_use = "capturing stops when the capture is dropped"]
#[derive(Debug)]
pub struct Capture {
    buffer: Arc<Mutex<Vec<u8>>>,
    /// Captures belong to the thread that started them.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Capture {
    /// The captured lines, as written (logfmt), without their newlines.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self
            .buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The captured records, parsed back into their fields.
    pub fn records(&self) -> Vec<CapturedRecord> {
        self.lines()
            .iter()
            .map(|line| CapturedRecord {
                fields: parse_logfmt(line),
            })
            .collect()
    }

    /// Forgets what was captured so far.
    pub fn clear(&self) {
        self.buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = CAPTURES.try_with(|captures| {
            if let Ok(mut captures) = captures.try_borrow_mut() {
                captures.retain(|c| !Arc::ptr_eq(c, &self.buffer));
            }
        });
    }
}

/// One captured record: its keys and values, in the order they were written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedRecord {
    fields: Vec<(String, String)>,
}

impl CapturedRecord {
    /// The value of `key` (the last one, if written twice), unescaped.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The message (`msg`), or "" when there is none.
    pub fn message(&self) -> &str {
        self.field("msg").unwrap_or("")
    }

    /// The level.
    pub fn level(&self) -> Option<Level> {
        self.field("level").and_then(|l| l.parse().ok())
    }

    /// The logger's name.
    pub fn logger(&self) -> Option<&str> {
        self.field("logger")
    }

    /// Every key and value, in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }
}

/// Parses one logfmt line as kakashi writes it: `key=value` pairs separated by spaces, values
/// quoted (with `\"`, `\\`, `\n`, `\r`, `\t` and `\uXXXX` escapes) when they need it.
fn parse_logfmt(line: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return pairs;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some('r') => value.push('\r'),
                            Some('t') => value.push('\t'),
                            Some('u') => {
                                let hex: String = chars.by_ref().take(4).collect();
                                if let Some(c) =
                                    u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                                {
                                    value.push(c);
                                }
                            }
                            Some(other) => value.push(other),
                            None => break,
                        },
                        other => value.push(other),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ' ' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        pairs.push((key, value));
    }
}
