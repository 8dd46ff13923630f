//! The transport thread: its own `current_thread` runtime owns the connection, reconnects with
//! backoff and sends the backlog, so that the writer works the same under any executor (or
//! none) and never blocks a caller.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::backlog::{Message, Shared, SyslogError};
use super::framing::{OctetCounting, RelpCodec, RelpFrame};

/// Where messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Udp(String),
    Tcp(String),
    Relp(String),
    UnixDatagram(PathBuf),
}

/// The transport's settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) endpoint: Endpoint,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) datagram_limit: usize,
    pub(crate) relp_window: usize,
    pub(crate) tcp_unconfirmed_window: u64,
}

/// The marker that ends a datagram cut to the size limit.
pub const TRUNCATION_MARKER: &[u8] = b"[truncated]";

/// How much one write takes from the backlog on stream transports.
const BATCH_MESSAGES: usize = 1024;
const BATCH_BYTES: usize = 256 * 1024;

/// Why a session ended.
enum Ended {
    /// The writer closed and everything was sent.
    Closed,
}

/// Starts the transport thread. `done` is sent when it ends.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    settings: Settings,
    done: std::sync::mpsc::Sender<()>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("kakashi-syslog".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => {
                    // A bug here must still end in the accounting below, not in a flush that
                    // waits for a thread that is gone.
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        runtime.block_on(run(&shared, &settings));
                    }));
                    if ran.is_err() {
                        shared.connect_failed(io::Error::other("the transport thread panicked"));
                    }
                }
                Err(error) => shared.connect_failed(error),
            }
            let abandoned = shared.abandon_all();
            if abandoned > 0 {
                shared.report(SyslogError::Abandoned {
                    writer: shared.name.clone(),
                    messages: abandoned,
                });
            }
            shared.lock().transport_alive = false;
            shared.finished.notify_all();
            let _ = done.send(());
        })
        .map(|_| ())
}

/// Sends until the writer closes and its backlog is empty, or its close deadline passes.
async fn run(shared: &Shared, settings: &Settings) {
    tokio::select! {
        () = sessions(shared, settings) => {}
        () = close_deadline(shared) => {}
    }
}

/// Waits until the writer closes, then until its deadline.
async fn close_deadline(shared: &Shared) {
    loop {
        let notified = shared.close_signal.notified();
        if let Some(deadline) = shared.closing() {
            tokio::time::sleep_until(deadline.into()).await;
            return;
        }
        notified.await;
    }
}

/// Connects, sends, and on failure waits and connects again.
async fn sessions(shared: &Shared, settings: &Settings) {
    let mut backoff = settings.reconnect_min;
    loop {
        if shared.closed_and_empty() {
            return;
        }
        if shared.lock().queue.is_empty() {
            // Connect when there is something to send.
            let notified = shared.wake.notified();
            if shared.lock().queue.is_empty() && !shared.closed_and_empty() {
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
                continue;
            }
        }
        let result = match &settings.endpoint {
            Endpoint::Udp(addr) => udp(shared, settings, addr).await,
            Endpoint::UnixDatagram(path) => unix_datagram(shared, settings, path).await,
            Endpoint::Tcp(addr) => tcp(shared, settings, addr, &mut backoff).await,
            Endpoint::Relp(addr) => relp(shared, settings, addr, &mut backoff).await,
        };
        match result {
            Ok(Ended::Closed) => return,
            Err(()) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(settings.reconnect_max);
            }
        }
    }
}

/// Cuts a datagram to `limit` bytes (at a UTF-8 character boundary), ending it with the
/// truncation marker.
pub(crate) fn truncate_datagram(message: &Bytes, limit: usize) -> Option<Bytes> {
    if message.len() <= limit {
        return None;
    }
    let mut cut = limit.saturating_sub(TRUNCATION_MARKER.len());
    while cut > 0 && message[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    let mut out = BytesMut::with_capacity(cut + TRUNCATION_MARKER.len());
    out.put_slice(&message[..cut]);
    out.put_slice(TRUNCATION_MARKER);
    Some(out.freeze())
}

/// Sends datagrams with `send` until the writer closes; on an error the failed message and the
/// rest go back to the backlog.
async fn datagrams<F, Fut>(shared: &Shared, settings: &Settings, mut send: F) -> Result<Ended, ()>
where
    F: FnMut(Bytes) -> Fut,
    Fut: std::future::Future<Output = io::Result<usize>>,
{
    loop {
        let notified = shared.wake.notified();
        let batch = shared.take(BATCH_MESSAGES, BATCH_BYTES);
        if batch.is_empty() {
            if shared.closed_and_empty() {
                return Ok(Ended::Closed);
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            continue;
        }
        let mut sent = 0;
        let mut bytes = 0;
        for (i, message) in batch.iter().enumerate() {
            let datagram = match truncate_datagram(&message.bytes, settings.datagram_limit) {
                Some(cut) => {
                    shared.counters.truncated.fetch_add(1, Relaxed);
                    cut
                }
                None => message.bytes.clone(),
            };
            let result = send(datagram).await;
            if let Err(error) = &result {
                if is_message_error(error) {
                    // This datagram can never go (too large for the socket): count it and go
                    // on with the next rather than retry it for ever.
                    shared.finish(sent, 1, bytes + message.bytes.len());
                    sent = 0;
                    bytes = 0;
                    shared.report(SyslogError::Rejected {
                        writer: shared.name.clone(),
                        response: format!("the socket refused a datagram: {error}"),
                    });
                    continue;
                }
            }
            if let Err(error) = result {
                shared.finish(sent, 0, bytes);
                // Not counted as truncated twice when sent again.
                if message.bytes.len() > settings.datagram_limit {
                    shared.counters.truncated.fetch_sub(1, Relaxed);
                }
                shared.put_back(batch.into_iter().skip(i));
                shared.connect_failed(error);
                return Err(());
            }
            sent += 1;
            bytes += message.bytes.len();
        }
        shared.delivered_after_failures();
        shared.finish(sent, 0, bytes);
    }
}

/// Errors that are about one datagram (its size), not about the destination.
fn is_message_error(error: &io::Error) -> bool {
    // EMSGSIZE on Linux and the BSDs.
    error.kind() == io::ErrorKind::InvalidInput || matches!(error.raw_os_error(), Some(90 | 40))
}

async fn udp(shared: &Shared, settings: &Settings, addr: &str) -> Result<Ended, ()> {
    let socket = async {
        let target = tokio::net::lookup_host(addr)
            .await?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
        let local = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(target).await?;
        io::Result::Ok(socket)
    }
    .await;
    let socket = match socket {
        Ok(s) => s,
        Err(e) => {
            shared.connect_failed(e);
            return Err(());
        }
    };
    shared.connected(false);
    let socket = &socket;
    datagrams(shared, settings, |d| async move { socket.send(&d).await }).await
}

async fn unix_datagram(shared: &Shared, settings: &Settings, path: &PathBuf) -> Result<Ended, ()> {
    let socket = tokio::net::UnixDatagram::unbound().and_then(|s| s.connect(path).map(|()| s));
    let socket = match socket {
        Ok(s) => s,
        Err(e) => {
            shared.connect_failed(e);
            return Err(());
        }
    };
    shared.connected(false);
    let socket = &socket;
    datagrams(shared, settings, |d| async move { socket.send(&d).await }).await
}

async fn connect(shared: &Shared, settings: &Settings, addr: &str) -> Option<TcpStream> {
    let stream = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr)).await;
    let stream = match stream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            shared.connect_failed(e);
            return None;
        }
        Err(_) => {
            shared.connect_failed(io::Error::new(
                io::ErrorKind::TimedOut,
                "connecting timed out",
            ));
            return None;
        }
    };
    let _ = stream.set_nodelay(true);
    Some(stream)
}

/// Resolves when the peer closes its side or the connection fails (data it sends is
/// ignored).
async fn peer_gone(read: &mut tokio::net::tcp::OwnedReadHalf) -> io::Error {
    let mut scratch = [0u8; 256];
    loop {
        match read.read(&mut scratch).await {
            Ok(0) => {
                return io::Error::new(io::ErrorKind::ConnectionAborted, "the collector closed")
            }
            Ok(_) => {}
            Err(e) => return e,
        }
    }
}

/// The messages recently written on a TCP connection, as end offsets in its byte stream:
/// those within the window may still sit in socket buffers when the connection breaks.
struct Unconfirmed {
    ends: VecDeque<u64>,
    written: u64,
    window: u64,
}

impl Unconfirmed {
    fn push(&mut self, frame_len: usize) {
        self.written += frame_len as u64;
        self.ends.push_back(self.written);
        while self
            .ends
            .front()
            .is_some_and(|&end| end + self.window <= self.written)
        {
            self.ends.pop_front();
        }
    }
}

async fn tcp(
    shared: &Shared,
    settings: &Settings,
    addr: &str,
    backoff: &mut Duration,
) -> Result<Ended, ()> {
    let stream = connect(shared, settings, addr).await.ok_or(())?;
    shared.connected(true);
    *backoff = settings.reconnect_min;
    let (mut read, write) = stream.into_split();
    let mut out = FramedWrite::new(write, OctetCounting);
    out.set_backpressure_boundary(usize::MAX);
    let mut unconfirmed = Unconfirmed {
        ends: VecDeque::new(),
        written: 0,
        window: settings.tcp_unconfirmed_window,
    };
    loop {
        let notified = shared.wake.notified();
        let batch = shared.take(BATCH_MESSAGES, BATCH_BYTES);
        if batch.is_empty() {
            if shared.closed_and_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(1), out.close()).await;
                return Ok(Ended::Closed);
            }
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_millis(50), notified) => continue,
                error = peer_gone(&mut read) => {
                    lost_connection(shared, error, unconfirmed.ends.len() as u64, 0);
                    return Err(());
                }
            }
        }
        let mut frames = Vec::with_capacity(batch.len());
        for message in &batch {
            let before = out.write_buffer().len();
            // With no backpressure boundary, `feed` only encodes into the buffer.
            let _ = out.feed(message.bytes.clone()).await;
            frames.push(out.write_buffer().len() - before);
        }
        let flushed = tokio::select! {
            result = out.flush() => result,
            error = peer_gone(&mut read) => Err(error),
        };
        let bytes: usize = batch.iter().map(|m| m.bytes.len()).sum();
        match flushed {
            Ok(()) => {
                for &len in &frames {
                    unconfirmed.push(len);
                }
                shared.failing.store(false, Relaxed);
                shared.finish(batch.len() as u64, 0, bytes);
            }
            Err(error) => {
                // The kernel did not take the buffer's tail: frames wholly in it never left and
                // go back to the backlog; the others (a torn one too) were taken.
                let mut left = out.write_buffer().len();
                let mut unsent = 0;
                for &len in frames.iter().rev() {
                    if left < len {
                        break;
                    }
                    left -= len;
                    unsent += 1;
                }
                let taken = batch.len() - unsent;
                for &len in &frames[..taken] {
                    unconfirmed.push(len);
                }
                let taken_bytes: usize = batch[..taken].iter().map(|m| m.bytes.len()).sum();
                shared.finish(taken as u64, 0, taken_bytes);
                let requeued = unsent as u64;
                shared.put_back(batch.into_iter().skip(taken));
                lost_connection(shared, error, unconfirmed.ends.len() as u64, requeued);
                return Err(());
            }
        }
    }
}

fn lost_connection(shared: &Shared, error: io::Error, maybe_lost: u64, requeued: u64) {
    shared.counters.connection_errors.fetch_add(1, Relaxed);
    shared.counters.maybe_lost.fetch_add(maybe_lost, Relaxed);
    shared.failing.store(true, Relaxed);
    shared.report(SyslogError::ConnectionLost {
        writer: shared.name.clone(),
        error,
        maybe_lost,
        requeued,
    });
}

/// RELP's largest transaction number; the next one after it is 1.
const MAX_TXNR: u32 = 999_999_999;

fn next_txnr(txnr: u32) -> u32 {
    if txnr >= MAX_TXNR {
        1
    } else {
        txnr + 1
    }
}

async fn relp(
    shared: &Shared,
    settings: &Settings,
    addr: &str,
    backoff: &mut Duration,
) -> Result<Ended, ()> {
    let stream = connect(shared, settings, addr).await.ok_or(())?;
    let (read, write) = stream.into_split();
    let mut input = FramedRead::new(read, RelpCodec);
    let mut out = FramedWrite::new(write, RelpCodec);
    out.set_backpressure_boundary(usize::MAX);
    // The session starts with `open`, whose answer must be 200 and offer `syslog`.
    let offer = Bytes::from_static(b"relp_version=0\nrelp_software=kakashi\ncommands=syslog");
    let opened = async {
        out.send(RelpFrame::new(1, "open", offer)).await?;
        match input.next().await {
            Some(Ok(rsp)) if rsp.txnr == 1 && rsp.is_ok_response() => {
                let offers_syslog = rsp
                    .data
                    .split(|&b| b == b'\n')
                    .any(|l| l.starts_with(b"commands=") && l.windows(6).any(|w| w == b"syslog"));
                if offers_syslog {
                    Ok(())
                } else {
                    Err(io::Error::other("the RELP server does not offer `syslog`"))
                }
            }
            Some(Ok(rsp)) => Err(io::Error::other(format!(
                "RELP open refused: {}",
                String::from_utf8_lossy(&rsp.data)
            ))),
            Some(Err(e)) => Err(e),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the RELP server closed during open",
            )),
        }
    };
    match tokio::time::timeout(settings.connect_timeout, opened).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            shared.connect_failed(e);
            return Err(());
        }
        Err(_) => {
            shared.connect_failed(io::Error::new(
                io::ErrorKind::TimedOut,
                "RELP open timed out",
            ));
            return Err(());
        }
    }
    shared.connected(true);
    *backoff = settings.reconnect_min;
    let mut txnr = 1;
    let mut unacked: VecDeque<(u32, Message)> = VecDeque::new();
    let result = relp_session(
        shared,
        settings,
        &mut input,
        &mut out,
        &mut txnr,
        &mut unacked,
    )
    .await;
    match result {
        Ok(()) => {
            // Closing: `close`, and its answer (briefly).
            txnr = next_txnr(txnr);
            let close = async {
                out.send(RelpFrame::new(txnr, "close", Bytes::new()))
                    .await?;
                let _ = input.next().await;
                io::Result::Ok(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
            Ok(Ended::Closed)
        }
        Err(error) => {
            let requeued = unacked.len() as u64;
            shared.put_back(unacked.into_iter().map(|(_, mut m)| {
                m.resend = true;
                m
            }));
            lost_connection(shared, error, 0, requeued);
            Err(())
        }
    }
}

async fn relp_session(
    shared: &Shared,
    settings: &Settings,
    input: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, RelpCodec>,
    out: &mut FramedWrite<tokio::net::tcp::OwnedWriteHalf, RelpCodec>,
    txnr: &mut u32,
    unacked: &mut VecDeque<(u32, Message)>,
) -> io::Result<()> {
    loop {
        let notified = shared.wake.notified();
        let room = settings.relp_window.saturating_sub(unacked.len());
        let batch = if room > 0 {
            shared.take(room, BATCH_BYTES)
        } else {
            Vec::new()
        };
        if !batch.is_empty() {
            for message in batch {
                *txnr = next_txnr(*txnr);
                if message.resend {
                    shared.counters.resent.fetch_add(1, Relaxed);
                }
                out.feed(RelpFrame::new(*txnr, "syslog", message.bytes.clone()))
                    .await?;
                unacked.push_back((*txnr, message));
            }
            // Answers keep coming while the flush waits: read them so that neither side
            // stalls on a full buffer.
            let mut flush = std::pin::pin!(async { out.flush().await });
            loop {
                tokio::select! {
                    result = &mut flush => { result?; break; }
                    frame = input.next() => handle_answers(shared, frame, input, unacked)?,
                }
            }
            continue;
        }
        if unacked.is_empty() && shared.closed_and_empty() {
            return Ok(());
        }
        tokio::select! {
            frame = input.next() => handle_answers(shared, frame, input, unacked)?,
            _ = tokio::time::timeout(Duration::from_millis(50), notified) => {}
        }
    }
}

/// Answers finished since the last report to the backlog.
#[derive(Default)]
struct Answered {
    delivered: u64,
    rejected: u64,
    bytes: usize,
}

/// Handles `first` and every further frame already readable, then tells the backlog once.
fn handle_answers(
    shared: &Shared,
    first: Option<io::Result<RelpFrame>>,
    input: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, RelpCodec>,
    unacked: &mut VecDeque<(u32, Message)>,
) -> io::Result<()> {
    let mut answered = Answered::default();
    let mut frame = first;
    let result = loop {
        if let Err(e) = handle_answer(shared, frame, unacked, &mut answered) {
            break Err(e);
        }
        match input.next().now_or_never() {
            Some(next) => frame = next,
            None => break Ok(()),
        }
    };
    if answered.delivered + answered.rejected > 0 {
        shared.finish(answered.delivered, answered.rejected, answered.bytes);
    }
    result
}

/// Handles one frame from the server: an answer to a message, or `serverclose`.
fn handle_answer(
    shared: &Shared,
    frame: Option<io::Result<RelpFrame>>,
    unacked: &mut VecDeque<(u32, Message)>,
    answered: &mut Answered,
) -> io::Result<()> {
    let frame = match frame {
        Some(Ok(f)) => f,
        Some(Err(e)) => return Err(e),
        None => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the RELP server closed the connection",
            ))
        }
    };
    if &frame.command[..] == b"serverclose" {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the RELP server closed the session (serverclose)",
        ));
    }
    if &frame.command[..] != b"rsp" {
        return Ok(());
    }
    // Answers come in order, so the match is nearly always the first.
    let Some(index) = unacked.iter().position(|(t, _)| *t == frame.txnr) else {
        // An answer to nothing we wait for (a duplicate): ignore it.
        return Ok(());
    };
    let Some((_, message)) = unacked.remove(index) else {
        return Ok(());
    };
    answered.bytes += message.bytes.len();
    if frame.is_ok_response() {
        answered.delivered += 1;
    } else {
        answered.rejected += 1;
        shared.report(SyslogError::Rejected {
            writer: shared.name.clone(),
            response: String::from_utf8_lossy(&frame.data).into_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_are_cut_at_a_character_boundary_with_the_marker() {
        let message = Bytes::from("é".repeat(100));
        let cut = truncate_datagram(&message, 64).unwrap();
        assert!(cut.len() <= 64);
        assert!(cut.ends_with(TRUNCATION_MARKER));
        assert!(std::str::from_utf8(&cut).is_ok());
        assert!(truncate_datagram(&Bytes::from_static(b"short"), 64).is_none());
    }
}
