//! A syslog writer: RFC 5424 messages to rsyslog, syslog-ng or any collector over UDP, TCP
//! (RFC 6587 octet counting), RELP, or a Unix datagram socket such as `/dev/log` (RFC 3164).
//!
//! ```
//! use kakashi::syslog::{SyslogWriter, Transport};
//! use kakashi::{info, PipelineConfig, Writer};
//!
//! # fn main() -> Result<(), kakashi::Error> {
//! // RELP to a collector (nothing listens on this port here: the messages wait in the
//! // backlog, and closing gives up on them after its deadline).
//! let syslog = SyslogWriter::builder(Transport::relp("127.0.0.1:1"))
//!     .app_name("shop")
//!     .close_timeout(std::time::Duration::from_millis(100))
//!     .build()?;
//! let config = PipelineConfig::builder()
//!     .writer(Writer::syslog(&syslog))
//!     .build()?;
//! let (pipeline, _guard) = kakashi::SyncPipeline::start(config)?;
//! info!(pipeline.logger("app"), "order placed"; order_id = 42);
//! assert_eq!(syslog.stats().accepted, 1);
//! let stats = syslog.close();
//! assert_eq!(stats.abandoned, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! [`Writer::syslog`](crate::Writer::syslog) sets the writer's formatter to the writer's
//! [`SyslogFormatter`], which writes one message per line (everything that could break a line
//! is escaped). The writer's front is a [`SyncWrite`]: it splits what
//! the pipeline hands it at `\n`, so that each record is one message, and puts the messages
//! into a bounded in-memory backlog — no I/O and no waiting on the caller's side. A dedicated
//! thread runs its own `current_thread` tokio runtime that owns the connection, reconnects
//! with backoff, and sends the backlog; the writer therefore behaves the same with no runtime,
//! on a `current_thread` or multi-thread runtime, and on a runtime without the time driver.
//!
//! | transport | framing | delivered means | on a broken connection |
//! |---|---|---|---|
//! | [`Transport::udp`] | one datagram per message, cut to [`datagram_limit`](SyslogBuilder::datagram_limit) (2048 bytes by default) and ending in `[truncated]` when longer | the kernel took the datagram | loss unknown ([`LossReporting::Unknown`]) |
//! | [`Transport::tcp`] | RFC 6587 octet counting (`LEN SP MSG`) | the kernel took the whole frame | frames the kernel had not taken are sent again on the next connection; those it had taken within the last [`tcp_unconfirmed_window`](SyslogBuilder::tcp_unconfirmed_window) bytes are counted in [`SyslogStats::maybe_lost`] and reported, never sent twice |
//! | [`Transport::relp`] | RELP frames (`TXNR SP syslog SP LEN SP MSG LF`), up to [`relp_window`](SyslogBuilder::relp_window) unacknowledged | the collector answered `200 OK` | unacknowledged messages are sent again on the next session ([`SyslogStats::resent`]) |
//! | [`Transport::unix_datagram`] | one datagram per message (RFC 3164 by default), 8192 bytes by default | the kernel took the datagram | loss unknown |
//!
//! RELP's transaction numbers keep a session free of duplicates: each message gets the next
//! number and is finished by the answer with that number. Across sessions RELP promises
//! nothing more, and neither does rsyslog's `imrelp`: a message the collector took whose
//! answer was lost with the connection is sent again in the new session, so a collector
//! killed at the wrong moment can log it twice (at most [`SyslogStats::resent`] times in all),
//! but loses nothing it answered — provided the collector answers only once the message is
//! safe (rsyslog: a direct main queue, or a disk-assisted one).
//!
//! # Backlog, fallback and deadlines
//!
//! While the collector is down or slow, messages wait in the backlog (16 MiB by default,
//! [`backlog_bytes`](SyslogBuilder::backlog_bytes)). Past that, the front refuses the lines:
//! the pipeline writes them to its fallback writer (stderr by default), counts them there
//! ([`WriterStats::written_via_fallback`](crate::WriterStats::written_via_fallback)) and
//! reports through its error hook; the writer counts them in [`SyslogStats::overflowed`]. The
//! pipeline counts a line as written when the backlog takes it; the writer's own
//! [`SyslogStats`] say what became of it afterwards.
//!
//! [`SyncWrite::flush`] — which the pipeline's flushes call —
//! waits until every message accepted before it is delivered (on RELP: acknowledged), at most
//! [`flush_timeout`](SyslogBuilder::flush_timeout). Closing (the last handle and the pipeline
//! dropped, or [`SyslogWriter::close`]) sends what is left until
//! [`close_timeout`](SyslogBuilder::close_timeout), then counts the rest as
//! [`abandoned`](SyslogStats::abandoned) and reports it through the writer's
//! [error hook](SyslogBuilder::error_hook) (stderr by default), which also hears about
//! connection failures (once per stretch) and lost connections.
//!
//! # Defaults
//!
//! | setting | default |
//! |---|---|
//! | format | RFC 5424; RFC 3164 on a Unix datagram socket |
//! | facility, hostname, app-name, procid, msgid | see [`SyslogFormatter::new`] |
//! | `backlog_bytes` | 16 MiB |
//! | `reconnect_min` / `reconnect_max` | 50 ms / 5 s (doubling) |
//! | `connect_timeout` | 5 s (connecting, and RELP's `open`) |
//! | `flush_timeout` / `close_timeout` | 5 s / 2 s |
//! | `datagram_limit` | 2048 bytes (UDP), 8192 bytes (Unix) |
//! | `relp_window` | 128 messages |
//! | `tcp_unconfirmed_window` | 10 MiB: Linux's largest default socket buffers on both ends (`tcp_wmem` 4 MiB + `tcp_rmem` 6 MiB) |

mod backlog;
mod format;
mod framing;
mod transport;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Error;
use crate::write::SyncWrite;

pub use backlog::{LossReporting, SyslogError, SyslogErrorHook, SyslogStats};
pub use format::{severity, Facility, Rfc, SyslogFormatter};
pub use framing::{OctetCounting, RelpCodec, RelpFrame};
pub use transport::TRUNCATION_MARKER;

use backlog::{Front, Shared};
use transport::{Endpoint, Settings};

/// Where a [`SyslogWriter`] sends its messages.
///
/// # Examples
///
/// ```
/// use kakashi::syslog::Transport;
/// let relp = Transport::relp("logs.internal:2514");
/// let local = Transport::unix_datagram("/dev/log");
/// # let _ = (relp, local);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport(Endpoint);

impl Transport {
    /// UDP to `addr` (`host:port`), one datagram per message.
    pub fn udp(addr: impl Into<String>) -> Self {
        Transport(Endpoint::Udp(addr.into()))
    }

    /// TCP to `addr` with RFC 6587 octet counting.
    pub fn tcp(addr: impl Into<String>) -> Self {
        Transport(Endpoint::Tcp(addr.into()))
    }

    /// RELP (rsyslog's acknowledged protocol) over TCP to `addr`.
    pub fn relp(addr: impl Into<String>) -> Self {
        Transport(Endpoint::Relp(addr.into()))
    }

    /// A Unix datagram socket such as `/dev/log`.
    pub fn unix_datagram(path: impl Into<PathBuf>) -> Self {
        Transport(Endpoint::UnixDatagram(path.into()))
    }

    fn describe(&self) -> String {
        match &self.0 {
            Endpoint::Udp(a) => format!("syslog udp {a}"),
            Endpoint::Tcp(a) => format!("syslog tcp {a}"),
            Endpoint::Relp(a) => format!("syslog relp {a}"),
            Endpoint::UnixDatagram(p) => format!("syslog unix {}", p.display()),
        }
    }
}

/// Builds a [`SyslogWriter`]; see the [module docs](self) for the defaults.
#[derive(Clone)]
#[must_use]
pub struct SyslogBuilder {
    transport: Transport,
    formatter: SyslogFormatter,
    rfc: Option<Rfc>,
    backlog_bytes: usize,
    reconnect_min: Duration,
    reconnect_max: Duration,
    connect_timeout: Duration,
    flush_timeout: Duration,
    close_timeout: Duration,
    datagram_limit: Option<usize>,
    relp_window: usize,
    tcp_unconfirmed_window: u64,
    error_hook: Option<SyslogErrorHook>,
}

impl std::fmt::Debug for SyslogBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogBuilder")
            .field("transport", &self.transport)
            .field("formatter", &self.formatter)
            .field("backlog_bytes", &self.backlog_bytes)
            .finish_non_exhaustive()
    }
}

impl SyslogBuilder {
    /// The message format (default: RFC 5424, or RFC 3164 on a Unix datagram socket).
    pub fn rfc(mut self, rfc: Rfc) -> Self {
        self.rfc = Some(rfc);
        self
    }

    /// The facility (default `user`).
    pub fn facility(mut self, facility: Facility) -> Self {
        self.formatter = self.formatter.facility(facility);
        self
    }

    /// The HOSTNAME field.
    pub fn hostname(mut self, hostname: &str) -> Self {
        self.formatter = self.formatter.hostname(hostname);
        self
    }

    /// The APP-NAME field.
    pub fn app_name(mut self, app_name: &str) -> Self {
        self.formatter = self.formatter.app_name(app_name);
        self
    }

    /// The PROCID field.
    pub fn procid(mut self, procid: &str) -> Self {
        self.formatter = self.formatter.procid(procid);
        self
    }

    /// A fixed MSGID instead of the logger's name.
    pub fn msgid(mut self, msgid: &str) -> Self {
        self.formatter = self.formatter.msgid(msgid);
        self
    }

    /// The SD-ID of the structured-data element that holds the fields.
    pub fn sd_id(mut self, sd_id: &str) -> Self {
        self.formatter = self.formatter.sd_id(sd_id);
        self
    }

    /// Which fields' values are written `[redacted]` (default:
    /// [`Redaction::default`](crate::format::Redaction::default), as in every formatter).
    pub fn redaction(mut self, redaction: crate::format::Redaction) -> Self {
        self.formatter = self.formatter.redaction(redaction);
        self
    }

    /// The most bytes of messages kept while the collector is down or slow.
    pub fn backlog_bytes(mut self, bytes: usize) -> Self {
        self.backlog_bytes = bytes;
        self
    }

    /// The first and the longest wait between connection attempts.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// How long connecting (and RELP's `open`) may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long [`SyncWrite::flush`] waits for the backlog to be delivered.
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// How long closing keeps sending before it gives up on the rest.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The largest datagram (UDP, Unix); longer messages are cut and end in `[truncated]`.
    pub fn datagram_limit(mut self, bytes: usize) -> Self {
        self.datagram_limit = Some(bytes);
        self
    }

    /// RELP: how many messages may await their answer at once.
    pub fn relp_window(mut self, messages: usize) -> Self {
        self.relp_window = messages;
        self
    }

    /// TCP: how many of the last bytes written on a connection that breaks count as maybe
    /// lost.
    pub fn tcp_unconfirmed_window(mut self, bytes: u64) -> Self {
        self.tcp_unconfirmed_window = bytes;
        self
    }

    /// The function that hears about connection failures, rejected and abandoned messages
    /// (default: a line on stderr).
    pub fn error_hook(mut self, hook: impl Fn(&SyslogError) + Send + Sync + 'static) -> Self {
        self.error_hook = Some(Arc::new(hook));
        self
    }

    /// Starts the writer's transport thread.
    ///
    /// # Errors
    ///
    /// [`Error`] naming the bad setting (an empty address, a zero backlog, window or limit, a
    /// backoff whose minimum exceeds its maximum), or when the thread cannot be started.
    pub fn build(self) -> Result<SyslogWriter, Error> {
        let name = self.transport.describe();
        let endpoint = self.transport.0.clone();
        let empty_address = match &endpoint {
            Endpoint::Udp(a) | Endpoint::Tcp(a) | Endpoint::Relp(a) => a.is_empty(),
            Endpoint::UnixDatagram(p) => p.as_os_str().is_empty(),
        };
        if empty_address {
            return Err(Error::config(format!("{name}: the address is empty")));
        }
        let datagram_limit = self.datagram_limit.unwrap_or(match endpoint {
            Endpoint::UnixDatagram(_) => 8192,
            _ => 2048,
        });
        if datagram_limit <= TRUNCATION_MARKER.len() {
            return Err(Error::config(format!(
                "{name}: datagram_limit must exceed {} bytes",
                TRUNCATION_MARKER.len()
            )));
        }
        if matches!(endpoint, Endpoint::Udp(_)) && datagram_limit > 65_507 {
            return Err(Error::config(format!(
                "{name}: datagram_limit {datagram_limit} exceeds UDP's 65507 bytes"
            )));
        }
        if self.backlog_bytes == 0 {
            return Err(Error::config(format!(
                "{name}: backlog_bytes must not be 0"
            )));
        }
        if self.relp_window == 0 {
            return Err(Error::config(format!("{name}: relp_window must not be 0")));
        }
        if self.reconnect_min > self.reconnect_max || self.reconnect_min.is_zero() {
            return Err(Error::config(format!(
                "{name}: reconnect_backoff needs 0 < min <= max"
            )));
        }
        let rfc = self.rfc.unwrap_or(match endpoint {
            Endpoint::UnixDatagram(_) => Rfc::Rfc3164,
            _ => Rfc::Rfc5424,
        });
        let loss = match endpoint {
            Endpoint::Relp(_) => LossReporting::Acknowledged,
            Endpoint::Tcp(_) => LossReporting::UpperBound,
            Endpoint::Udp(_) | Endpoint::UnixDatagram(_) => LossReporting::Unknown,
        };
        let shared = Arc::new(Shared::new(
            name.clone(),
            self.backlog_bytes,
            self.flush_timeout,
            loss,
            self.error_hook.unwrap_or_else(backlog::default_error_hook),
        ));
        let settings = Settings {
            endpoint,
            reconnect_min: self.reconnect_min,
            reconnect_max: self.reconnect_max,
            connect_timeout: self.connect_timeout,
            datagram_limit,
            relp_window: self.relp_window,
            tcp_unconfirmed_window: self.tcp_unconfirmed_window,
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        transport::spawn(Arc::clone(&shared), settings, done_tx).map_err(|e| {
            Error::config(format!("{name}: cannot start the transport thread: {e}"))
        })?;
        Ok(SyslogWriter {
            front: Arc::new(Front {
                shared,
                close_timeout: self.close_timeout,
                done: Mutex::new(Some(done_rx)),
            }),
            formatter: Arc::new(self.formatter.rfc(rfc)),
        })
    }
}

/// A syslog destination: a bounded backlog in front of a transport thread. Cheap to clone;
/// the transport closes when the last clone and the pipelines using it are dropped, or at
/// [`SyslogWriter::close`]. Either waits, on the thread that drops or calls it, at most the
/// close timeout (2 s by default) while the transport sends what is left; in async code,
/// call `close` from `spawn_blocking` to keep that wait off the runtime.
///
/// Add it to a pipeline with [`Writer::syslog`](crate::Writer::syslog); see the
/// [module docs](self).
///
/// # Examples
///
/// ```
/// use kakashi::syslog::{LossReporting, SyslogWriter, Transport};
///
/// # fn main() -> Result<(), kakashi::Error> {
/// let syslog = SyslogWriter::builder(Transport::udp("127.0.0.1:9"))
///     .close_timeout(std::time::Duration::from_millis(500))
///     .build()?;
/// assert_eq!(syslog.stats().loss, Some(LossReporting::Unknown));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SyslogWriter {
    front: Arc<Front>,
    formatter: Arc<SyslogFormatter>,
}

impl SyslogWriter {
    /// A builder for a writer to `transport`.
    pub fn builder(transport: Transport) -> SyslogBuilder {
        SyslogBuilder {
            transport,
            formatter: SyslogFormatter::new(),
            rfc: None,
            backlog_bytes: 16 * 1024 * 1024,
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(2),
            datagram_limit: None,
            relp_window: 128,
            tcp_unconfirmed_window: 10 * 1024 * 1024,
            error_hook: None,
        }
    }

    /// A snapshot of the writer's counters.
    pub fn stats(&self) -> SyslogStats {
        self.front.shared.stats()
    }

    /// The formatter [`Writer::syslog`](crate::Writer::syslog) gives the pipeline's writer.
    pub fn formatter(&self) -> &SyslogFormatter {
        &self.formatter
    }

    /// The synchronous front the pipeline writes to.
    pub fn sync_writer(&self) -> Arc<dyn SyncWrite> {
        Arc::clone(&self.front) as Arc<dyn SyncWrite>
    }

    pub(crate) fn formatter_arc(&self) -> Arc<SyslogFormatter> {
        Arc::clone(&self.formatter)
    }

    /// Closes the writer: sends what is left within the close timeout, gives up on the rest
    /// (counted as abandoned), and returns the final counters. Lines written afterwards are
    /// refused (the pipeline sends them to its fallback writer).
    pub fn close(&self) -> SyslogStats {
        self.front.close(self.front.close_timeout);
        self.stats()
    }
}
