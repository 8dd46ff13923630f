//! The writer's front: a bounded in-memory backlog of messages, shared with the transport
//! thread, and the counters that say where every message went.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::write::SyncWrite;

/// What the transport thread is told about how it should treat losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LossReporting {
    /// RELP: a message counts as delivered only once the collector acknowledged it; what was
    /// not acknowledged is sent again after a reconnect.
    Acknowledged,
    /// TCP: a message counts as delivered once the kernel took all of it. When a connection
    /// breaks, the messages that may still have been in socket buffers are counted in
    /// [`SyslogStats::maybe_lost`]: an upper bound of what the transport lost.
    UpperBound,
    /// UDP and Unix datagram sockets: a datagram counts as delivered once the kernel took it;
    /// whether it arrived is unknown, and nothing is counted as lost.
    Unknown,
}

/// Where a syslog writer's messages went: a snapshot of its counters.
///
/// At a quiet point (after [`SyncWrite::flush`] returned `Ok`, or after
/// [`SyslogWriter::close`](super::SyslogWriter::close)),
/// `accepted == delivered + rejected + abandoned + backlog`. `maybe_lost`, `resent` and
/// `truncated` count messages that are also in `delivered`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyslogStats {
    /// Messages the writer took into its backlog (the pipeline counts them as written).
    pub accepted: u64,
    /// Messages refused because the backlog was full: the pipeline wrote them to its fallback
    /// writer (and counts them there).
    pub overflowed: u64,
    /// Messages delivered: acknowledged by the collector (RELP), or taken whole by the kernel
    /// (TCP, UDP, Unix datagram).
    pub delivered: u64,
    /// RELP: messages sent again on a new connection because the old one broke before they
    /// were acknowledged (counted once per resend).
    pub resent: u64,
    /// TCP: delivered messages that were written on a connection that broke while they may
    /// still have been in socket buffers (see [`LossReporting::UpperBound`]).
    pub maybe_lost: u64,
    /// Datagrams cut to the size limit (they end in `[truncated]`).
    pub truncated: u64,
    /// Messages that can never go, counted and reported rather than retried: RELP messages
    /// the collector answered with an error status, and datagrams the socket refused for
    /// their size.
    pub rejected: u64,
    /// Messages still in the backlog when the writer was closed and its deadline passed.
    pub abandoned: u64,
    /// Messages accepted and not yet delivered (queued, or sent and awaiting an
    /// acknowledgement).
    pub backlog: u64,
    /// The backlog's size in bytes.
    pub backlog_bytes: u64,
    /// Connections made (the first one included).
    pub connects: u64,
    /// Failed connection attempts and connections lost.
    pub connection_errors: u64,
    /// How losses on this transport are known.
    pub loss: Option<LossReporting>,
}

/// A failure of the syslog transport, handed to the writer's error hook.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyslogError {
    /// Connecting (or opening the RELP session) failed; the writer keeps its backlog and
    /// tries again with backoff. Reported once per stretch of failures.
    Connect {
        /// The writer (`syslog tcp 127.0.0.1:514`, …).
        writer: String,
        /// The error.
        error: io::Error,
    },
    /// An established connection broke.
    ConnectionLost {
        /// The writer.
        writer: String,
        /// The error.
        error: io::Error,
        /// TCP: messages the kernel had taken that may not have reached the collector.
        maybe_lost: u64,
        /// Messages put back into the backlog, to be sent on the next connection (RELP:
        /// the unacknowledged ones; TCP: those the kernel had not taken).
        requeued: u64,
    },
    /// The collector answered a RELP message with an error status, or the socket refused a
    /// datagram for its size; the message is not sent again.
    Rejected {
        /// The writer.
        writer: String,
        /// The collector's response.
        response: String,
    },
    /// The writer was closed and its deadline passed with messages still in the backlog.
    Abandoned {
        /// The writer.
        writer: String,
        /// How many messages were not delivered.
        messages: u64,
    },
}

impl fmt::Display for SyslogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyslogError::Connect { writer, error } => write!(
                f,
                "kakashi: {writer}: cannot connect ({error}); keeping messages in the backlog \
                 and retrying"
            ),
            SyslogError::ConnectionLost {
                writer,
                error,
                maybe_lost,
                requeued,
            } => write!(
                f,
                "kakashi: {writer}: connection lost ({error}); {maybe_lost} message(s) maybe \
                 lost, {requeued} to send again"
            ),
            SyslogError::Rejected { writer, response } => {
                write!(
                    f,
                    "kakashi: {writer}: the collector rejected a message: {response}"
                )
            }
            SyslogError::Abandoned { writer, messages } => write!(
                f,
                "kakashi: {writer}: closed with {messages} message(s) not delivered"
            ),
        }
    }
}

impl std::error::Error for SyslogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SyslogError::Connect { error, .. } | SyslogError::ConnectionLost { error, .. } => {
                Some(error)
            }
            _ => None,
        }
    }
}

/// The function that hears about a syslog writer's transport failures.
pub type SyslogErrorHook = Arc<dyn Fn(&SyslogError) + Send + Sync>;

pub(crate) fn default_error_hook() -> SyslogErrorHook {
    Arc::new(|e: &SyslogError| {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), "{e}");
    })
}

/// One message in the backlog.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub(crate) bytes: Bytes,
    /// Sent before on a connection that broke (RELP).
    pub(crate) resend: bool,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Accepted, not yet taken by the transport.
    pub(crate) queue: VecDeque<Message>,
    /// Bytes of the queue and of the messages in flight.
    pub(crate) bytes: usize,
    /// Messages the transport took and has not finished.
    pub(crate) in_flight: u64,
    /// Set when the writer closes: the transport's deadline.
    pub(crate) closing: Option<Instant>,
    /// False once the transport thread has ended.
    pub(crate) transport_alive: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) overflowed: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) resent: AtomicU64,
    pub(crate) maybe_lost: AtomicU64,
    pub(crate) truncated: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) connection_errors: AtomicU64,
}

/// What the front and the transport thread share.
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) state: Mutex<State>,
    /// Flushes wait on this; the transport notifies it when messages finish.
    pub(crate) finished: Condvar,
    /// Wakes the transport: messages arrived, or the writer closes.
    pub(crate) wake: tokio::sync::Notify,
    /// Tells the transport that the writer closes.
    pub(crate) close_signal: tokio::sync::Notify,
    pub(crate) counters: Counters,
    pub(crate) backlog_limit: usize,
    pub(crate) flush_timeout: Duration,
    pub(crate) loss: LossReporting,
    pub(crate) hook: SyslogErrorHook,
    /// Set while connecting fails, so that a stretch of failures is reported once.
    pub(crate) failing: AtomicBool,
    pub(crate) last_failure: Mutex<Option<Instant>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Shared {
    pub(crate) fn new(
        name: String,
        backlog_limit: usize,
        flush_timeout: Duration,
        loss: LossReporting,
        hook: SyslogErrorHook,
    ) -> Self {
        Shared {
            name,
            state: Mutex::new(State {
                transport_alive: true,
                ..State::default()
            }),
            finished: Condvar::new(),
            wake: tokio::sync::Notify::new(),
            close_signal: tokio::sync::Notify::new(),
            counters: Counters::default(),
            backlog_limit,
            flush_timeout,
            loss,
            hook,
            failing: AtomicBool::new(false),
            last_failure: Mutex::new(None),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls the error hook, never letting a panicking hook take the transport down.
    pub(crate) fn report(&self, error: SyslogError) {
        let hook = &self.hook;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&error)));
    }

    /// Takes up to `max` messages (at least one when any is queued) of at most `max_bytes`
    /// in all, to send; they count as in flight until finished or put back.
    pub(crate) fn take(&self, max: usize, max_bytes: usize) -> Vec<Message> {
        let mut state = self.lock();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < max {
            let Some(next) = state.queue.front() else {
                break;
            };
            if !batch.is_empty() && bytes + next.bytes.len() > max_bytes {
                break;
            }
            bytes += next.bytes.len();
            if let Some(m) = state.queue.pop_front() {
                batch.push(m);
            }
        }
        state.in_flight += batch.len() as u64;
        batch
    }

    /// Puts messages in flight back at the front of the queue, in their order.
    pub(crate) fn put_back(&self, messages: impl DoubleEndedIterator<Item = Message>) {
        let mut state = self.lock();
        for m in messages.rev() {
            state.in_flight = state.in_flight.saturating_sub(1);
            state.queue.push_front(m);
        }
    }

    /// Messages in flight are done: `delivered` of them delivered, `rejected` rejected, and
    /// `bytes` leave the backlog.
    pub(crate) fn finish(&self, delivered: u64, rejected: u64, bytes: usize) {
        {
            let mut state = self.lock();
            state.in_flight = state.in_flight.saturating_sub(delivered + rejected);
            state.bytes = state.bytes.saturating_sub(bytes);
            self.counters.delivered.fetch_add(delivered, Relaxed);
            self.counters.rejected.fetch_add(rejected, Relaxed);
        }
        self.finished.notify_all();
    }

    /// Everything still in the backlog is given up (the close deadline passed, or the
    /// transport thread ends). Returns how many messages that was.
    pub(crate) fn abandon_all(&self) -> u64 {
        let abandoned = {
            let mut state = self.lock();
            let n = state.queue.len() as u64 + state.in_flight;
            state.queue.clear();
            state.in_flight = 0;
            state.bytes = 0;
            self.counters.abandoned.fetch_add(n, Relaxed);
            n
        };
        self.finished.notify_all();
        abandoned
    }

    /// The deadline the writer closes by, once it closes.
    pub(crate) fn closing(&self) -> Option<Instant> {
        self.lock().closing
    }

    /// True when the writer closes and nothing is left to send.
    pub(crate) fn closed_and_empty(&self) -> bool {
        let state = self.lock();
        state.closing.is_some() && state.queue.is_empty() && state.in_flight == 0
    }

    /// A connection was made. On a stream transport that ends a stretch of failures; a
    /// datagram socket "connects" even when nothing listens, so there only a delivery does
    /// (see [`Shared::delivered_after_failures`]).
    pub(crate) fn connected(&self, stream: bool) {
        self.counters.connects.fetch_add(1, Relaxed);
        if stream {
            self.failing.store(false, Relaxed);
        }
    }

    /// Datagrams went out: a stretch of failures ends once no send failed for a second (a
    /// refused datagram shows up as an error on a later send, so failures and successes
    /// alternate while nothing listens).
    pub(crate) fn delivered_after_failures(&self) {
        if !self.failing.load(Relaxed) {
            return;
        }
        let last = *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
            self.failing.store(false, Relaxed);
        }
    }

    /// A failed attempt to connect: reported once per stretch.
    pub(crate) fn connect_failed(&self, error: io::Error) {
        self.counters.connection_errors.fetch_add(1, Relaxed);
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        if !self.failing.swap(true, Relaxed) {
            self.report(SyslogError::Connect {
                writer: self.name.clone(),
                error,
            });
        }
    }

    pub(crate) fn stats(&self) -> SyslogStats {
        let (backlog, backlog_bytes) = {
            let state = self.lock();
            (
                state.queue.len() as u64 + state.in_flight,
                state.bytes as u64,
            )
        };
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Relaxed);
        SyslogStats {
            accepted: load(&c.accepted),
            overflowed: load(&c.overflowed),
            delivered: load(&c.delivered),
            resent: load(&c.resent),
            maybe_lost: load(&c.maybe_lost),
            truncated: load(&c.truncated),
            rejected: load(&c.rejected),
            abandoned: load(&c.abandoned),
            backlog,
            backlog_bytes,
            connects: load(&c.connects),
            connection_errors: load(&c.connection_errors),
            loss: Some(self.loss),
        }
    }

    /// Finished messages: delivered, rejected or abandoned.
    fn finished_count(&self) -> u64 {
        let c = &self.counters;
        c.delivered.load(Relaxed) + c.rejected.load(Relaxed) + c.abandoned.load(Relaxed)
    }

    /// Takes the whole lines of `buf` that fit into the backlog; returns how many bytes.
    /// `all_or_nothing` takes every line or none.
    fn accept(&self, buf: &[u8], all_or_nothing: bool) -> io::Result<usize> {
        let mut state = self.lock();
        if state.closing.is_some() || !state.transport_alive {
            let lines = count_lines(buf);
            self.counters.overflowed.fetch_add(lines, Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("{} is closed", self.name),
            ));
        }
        let mut taken = 0;
        let mut bytes = state.bytes;
        for line in buf.split_inclusive(|&b| b == b'\n') {
            let len = message_len(line);
            // An empty backlog takes one message of any size.
            if bytes + len > self.backlog_limit && (bytes > 0 || taken > 0) {
                break;
            }
            bytes += len;
            taken += line.len();
        }
        if taken == 0 || (all_or_nothing && taken < buf.len()) {
            self.counters
                .overflowed
                .fetch_add(count_lines(buf), Relaxed);
            return Err(io::Error::other(format!(
                "{}: the backlog is full ({} bytes): the collector is not keeping up",
                self.name, self.backlog_limit
            )));
        }
        let chunk = Bytes::copy_from_slice(&buf[..taken]);
        let mut start = 0;
        let mut accepted = 0;
        for line in buf[..taken].split_inclusive(|&b| b == b'\n') {
            let len = message_len(line);
            if len > 0 {
                state.queue.push_back(Message {
                    bytes: chunk.slice(start..start + len),
                    resend: false,
                });
                accepted += 1;
            }
            start += line.len();
        }
        state.bytes = bytes;
        self.counters.accepted.fetch_add(accepted, Relaxed);
        drop(state);
        self.wake.notify_one();
        Ok(taken)
    }

    /// Waits until every message accepted before the call is finished, at most `timeout`.
    fn wait_finished(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let target = self.counters.accepted.load(Relaxed);
        loop {
            if self.finished_count() >= target {
                return Ok(());
            }
            if !state.transport_alive {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    format!("{}: the transport thread has ended", self.name),
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{}: {} message(s) not delivered within {timeout:?}",
                        self.name,
                        state.queue.len() as u64 + state.in_flight
                    ),
                ));
            }
            state = self
                .finished
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A line's message: without its `\n`.
fn message_len(line: &[u8]) -> usize {
    line.len() - usize::from(line.last() == Some(&b'\n'))
}

fn count_lines(buf: &[u8]) -> u64 {
    buf.split_inclusive(|&b| b == b'\n').count() as u64
}

/// The [`SyncWrite`] side of a syslog writer: takes whole lines into the backlog without
/// blocking and without I/O; closes the transport when dropped.
pub(crate) struct Front {
    pub(crate) shared: Arc<Shared>,
    pub(crate) close_timeout: Duration,
    /// Signals the end of the transport thread.
    pub(crate) done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl fmt::Debug for Front {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shared.name)
    }
}

impl Front {
    /// Tells the transport to close by `timeout` from now and waits for it (a little longer,
    /// so that it can count what it abandons).
    pub(crate) fn close(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        {
            let mut state = self.shared.lock();
            if state.closing.is_none() {
                state.closing = Some(deadline);
            }
        }
        self.shared.wake.notify_one();
        self.shared.close_signal.notify_one();
        let done = self
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(done) = done {
            let _ = done.recv_timeout(timeout + Duration::from_millis(200));
        }
    }
}

impl SyncWrite for Front {
    fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        self.shared.accept(lines, true).map(|_| ())
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.shared.accept(buf, false)
    }

    /// Waits (at most the writer's flush timeout) until every message accepted before the
    /// call is delivered (on RELP: acknowledged).
    fn flush(&self) -> io::Result<()> {
        self.shared.wait_finished(self.shared.flush_timeout)
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.close(self.close_timeout);
    }
}
