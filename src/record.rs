//! Log records: what one logging call produced.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use crate::context::LogContext;
use crate::field::{error_chain_string, Field, OwnedValue, Value};
use crate::level::Level;

/// Where a logging call is in the source: filled in by the macros at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    module: &'static str,
    file: &'static str,
    line: u32,
}

impl Location {
    /// A location; the macros build one with `module_path!()`, `file!()` and `line!()`.
    pub const fn new(module: &'static str, file: &'static str, line: u32) -> Self {
        Location { module, file, line }
    }

    /// The module path of the call (`my_app::db`).
    pub const fn module(&self) -> &'static str {
        self.module
    }

    /// The source file of the call.
    pub const fn file(&self) -> &'static str {
        self.file
    }

    /// The line of the call.
    pub const fn line(&self) -> u32 {
        self.line
    }
}

/// The calling thread: a small process-unique number and the thread's name, if it has one.
///
/// The number is kakashi's own (assigned the first time a thread logs, from 1), because
/// `std::thread::ThreadId` has no stable numeric form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadInfo {
    id: u64,
    name: Option<Arc<str>>,
}

impl ThreadInfo {
    /// The thread's number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The thread's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Calls `f` with the current thread's info (cached per thread).
    pub fn with_current<R>(mut f: impl FnMut(&ThreadInfo) -> R) -> R {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            static CURRENT: RefCell<Option<ThreadInfo>> = const { RefCell::new(None) };
        }
        fn make() -> ThreadInfo {
            ThreadInfo {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                name: std::thread::current().name().map(Arc::from),
            }
        }
        let cached = CURRENT.try_with(|slot| {
            let mut slot = slot.try_borrow_mut().ok()?;
            Some(f(slot.get_or_insert_with(make)))
        });
        match cached {
            Ok(Some(result)) => result,
            // Thread-locals gone (thread exit) or borrowed (re-entrancy): a one-off info.
            _ => f(&make()),
        }
    }
}

/// This process's id (cached).
pub(crate) fn process_id() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// One log record, borrowed: what a logging call hands to the pipeline.
///
/// A `LogRecord` lives on the caller's stack for the duration of the call; nothing in it is
/// copied. Use [`LogRecord::to_owned`] to keep one.
#[derive(Clone, Copy)]
pub struct LogRecord<'a> {
    pub(crate) timestamp: SystemTime,
    pub(crate) level: Level,
    pub(crate) logger: &'a str,
    pub(crate) message: fmt::Arguments<'a>,
    /// The message as one string when a bridge copied it out (see [`LogRecord::message_str`]).
    pub(crate) message_text: Option<&'a str>,
    pub(crate) fields: &'a [Field<'a>],
    pub(crate) enriched: &'a [Field<'a>],
    pub(crate) context: Option<&'a LogContext>,
    pub(crate) location: &'a Location,
}

impl fmt::Debug for LogRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogRecord")
            .field("timestamp", &self.timestamp)
            .field("level", &self.level)
            .field("logger", &self.logger)
            .field("message", &self.message)
            .field("fields", &self.fields)
            .field("enriched", &self.enriched)
            .field("context", &self.context)
            .field("location", &self.location)
            .finish()
    }
}

impl<'a> LogRecord<'a> {
    /// A record stamped now, with no fields and no context.
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::{Level, Location, LogRecord};
    ///
    /// static HERE: Location = Location::new(module_path!(), file!(), line!());
    /// let record = LogRecord::new(Level::Info, "app", format_args!("hello {}", 1), &HERE);
    /// assert_eq!(record.message().to_string(), "hello 1");
    /// ```
    pub fn new(
        level: Level,
        logger: &'a str,
        message: fmt::Arguments<'a>,
        location: &'a Location,
    ) -> Self {
        LogRecord {
            timestamp: SystemTime::now(),
            level,
            logger,
            message,
            message_text: None,
            fields: &[],
            enriched: &[],
            context: None,
            location,
        }
    }

    /// The same record with these fields.
    #[must_use]
    pub fn with_fields(mut self, fields: &'a [Field<'a>]) -> Self {
        self.fields = fields;
        self
    }

    /// The same record with this context.
    #[must_use]
    pub fn with_context(mut self, context: Option<&'a LogContext>) -> Self {
        self.context = context;
        self
    }

    /// The same record with this timestamp (tests and replay use it).
    #[must_use]
    pub fn with_timestamp(mut self, timestamp: SystemTime) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// When the call was made.
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }

    /// The record's level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// The logger's name (`app::db`).
    pub fn logger(&self) -> &'a str {
        self.logger
    }

    /// The message, not yet formatted.
    pub fn message(&self) -> fmt::Arguments<'a> {
        self.message
    }

    /// The message when it is one string, which a formatter writes without going through
    /// `fmt`: a message without arguments (`format_args!("text")`), or the message text of a
    /// record from the `tracing` bridge. Else `None`: write [`message`](Self::message).
    #[inline]
    pub(crate) fn message_str(&self) -> Option<&'a str> {
        match self.message.as_str() {
            Some(text) => Some(text),
            None => self.message_text,
        }
    }

    /// The fields given at the call site.
    pub fn fields(&self) -> &'a [Field<'a>] {
        self.fields
    }

    /// Fields added by the pipeline's enrichers (service name, host, pid, thread, …).
    pub fn enriched(&self) -> &'a [Field<'a>] {
        self.enriched
    }

    /// The context current when the call was made.
    pub fn context(&self) -> Option<&'a LogContext> {
        self.context
    }

    /// Where the call was made.
    pub fn location(&self) -> &'a Location {
        self.location
    }

    /// The first field holding an error (captured with `@`), if any.
    pub fn error(&self) -> Option<&'a (dyn std::error::Error + 'static)> {
        self.fields.iter().find_map(|f| match f.value() {
            Value::Error(e) => Some(*e),
            _ => None,
        })
    }

    /// Looks up a field by key: call-site fields first, then enriched fields, then context.
    pub fn field(&self, key: &str) -> Option<Value<'a>> {
        self.fields
            .iter()
            .chain(self.enriched)
            .find(|f| f.key() == key)
            .map(|f| *f.value())
    }

    /// An owned copy of this record, with its thread and process info.
    pub fn to_owned(&self) -> OwnedLogRecord {
        let (thread_id, thread_name) =
            ThreadInfo::with_current(|t| (t.id(), t.name().map(str::to_owned)));
        OwnedLogRecord {
            timestamp: self.timestamp,
            level: self.level,
            logger: self.logger.to_owned(),
            message: self.message.to_string(),
            fields: self
                .fields
                .iter()
                .chain(self.enriched)
                .map(|f| (f.key().to_owned(), f.value().to_owned_value()))
                .collect(),
            context: self.context.cloned(),
            error: self.error().map(error_chain_string),
            location: *self.location,
            thread_id,
            thread_name,
            process_id: process_id(),
        }
    }
}

/// An owned log record, for keeping records beyond the logging call (tests, replay, queues).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OwnedLogRecord {
    /// When the call was made.
    pub timestamp: SystemTime,
    /// The record's level.
    pub level: Level,
    /// The logger's name.
    pub logger: String,
    /// The formatted message.
    pub message: String,
    /// Call-site and enriched fields, in order.
    pub fields: Vec<(String, OwnedValue)>,
    /// The context current at the call.
    pub context: Option<LogContext>,
    /// The first error field with its `source()` chain, joined by `": "`.
    pub error: Option<String>,
    /// Where the call was made.
    pub location: Location,
    /// kakashi's number for the calling thread.
    pub thread_id: u64,
    /// The calling thread's name.
    pub thread_name: Option<String>,
    /// The process id.
    pub process_id: u32,
}
