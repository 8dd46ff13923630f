//! RELP failure handling against a scripted RELP server on loopback (fault injection: the
//! server drops answers, rejects a message, or ends the session on purpose). The real-daemon
//! tests are in `syslog_rsyslogd.rs`.
#![cfg(feature = "syslog")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use kakashi::syslog::{RelpCodec, RelpFrame, SyslogError, SyslogWriter, Transport};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

/// What one session of the scripted server saw: (txnr, message) per `syslog` frame.
type Sessions = Arc<Mutex<Vec<Vec<(u32, Bytes)>>>>;

/// How the server answers the `index`-th message of session `session`.
#[derive(Clone, Copy)]
enum Answer {
    Ok,
    Reject,
    /// Say nothing and end the session (without `serverclose`).
    Drop,
    /// Send `serverclose` and end the session.
    ServerClose,
}

/// Serves RELP sessions on loopback; `script(session, index)` decides each answer.
async fn scripted_server(
    script: impl Fn(usize, usize) -> Answer + Send + Sync + 'static,
) -> (String, Sessions) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let sessions = Sessions::default();
    let seen = Arc::clone(&sessions);
    tokio::spawn(async move {
        let mut session = 0;
        while let Ok((stream, _)) = listener.accept().await {
            seen.lock().unwrap().push(Vec::new());
            let mut framed = Framed::new(stream, RelpCodec);
            let mut index = 0;
            while let Some(Ok(frame)) = framed.next().await {
                let answer = match &frame.command[..] {
                    b"open" => Answer::Ok,
                    b"close" => {
                        let _ = framed
                            .send(RelpFrame::new(
                                frame.txnr,
                                "rsp",
                                Bytes::from_static(b"200 OK"),
                            ))
                            .await;
                        break;
                    }
                    _ => {
                        seen.lock().unwrap()[session].push((frame.txnr, frame.data.clone()));
                        index += 1;
                        script(session, index - 1)
                    }
                };
                let reply = match answer {
                    Answer::Ok if &frame.command[..] == b"open" => RelpFrame::new(
                        frame.txnr,
                        "rsp",
                        Bytes::from_static(b"200 OK\nrelp_version=0\ncommands=syslog"),
                    ),
                    Answer::Ok => RelpFrame::new(frame.txnr, "rsp", Bytes::from_static(b"200 OK")),
                    Answer::Reject => {
                        RelpFrame::new(frame.txnr, "rsp", Bytes::from_static(b"500 refused"))
                    }
                    Answer::Drop => break,
                    Answer::ServerClose => {
                        let _ = framed
                            .send(RelpFrame::new(0, "serverclose", Bytes::new()))
                            .await;
                        break;
                    }
                };
                if framed.send(reply).await.is_err() {
                    break;
                }
            }
            session += 1;
        }
    });
    (addr, sessions)
}

fn writer(addr: String, reports: &Arc<Mutex<Vec<String>>>) -> SyslogWriter {
    let reports = Arc::clone(reports);
    SyslogWriter::builder(Transport::relp(addr))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .relp_window(4)
        .flush_timeout(Duration::from_secs(20))
        .error_hook(move |e: &SyslogError| reports.lock().unwrap().push(e.to_string()))
        .build()
        .unwrap()
}

fn lines(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("message {i}\n").into_bytes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relp_fault_injection_unanswered_messages_are_resent_in_the_next_session() {
    // Session 0 answers three messages and then goes silent and away at the fourth.
    let (addr, sessions) = scripted_server(|session, index| match (session, index) {
        (0, 3) => Answer::Drop,
        _ => Answer::Ok,
    })
    .await;
    let reports = Arc::default();
    let syslog = writer(addr, &reports);
    let front = syslog.sync_writer();
    front.write_lines(&lines(10)).unwrap();
    tokio::task::spawn_blocking(move || front.flush())
        .await
        .unwrap()
        .unwrap();
    let stats = syslog.stats();
    assert_eq!(stats.delivered, 10, "{stats:?}");
    let sessions = sessions.lock().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    // Within a session, every message has its own transaction number, in order from 2.
    for session in &sessions {
        let txnrs: Vec<u32> = session.iter().map(|(t, _)| *t).collect();
        assert_eq!(txnrs, (2..2 + txnrs.len() as u32).collect::<Vec<_>>());
    }
    // Session 0 got messages 0..=3 (window 4) and answered 0, 1, 2; session 1 starts with 3.
    let text = |s: &[(u32, Bytes)]| -> Vec<String> {
        s.iter()
            .map(|(_, m)| String::from_utf8_lossy(m).into_owned())
            .collect()
    };
    assert_eq!(
        text(&sessions[0])[..4],
        ["message 0", "message 1", "message 2", "message 3"]
    );
    let second = text(&sessions[1]);
    assert_eq!(second[0], "message 3");
    assert_eq!(second.last().map(String::as_str), Some("message 9"));
    // Everything session 0 left unanswered was sent again, and nothing it answered was: the
    // second session holds messages 3..=9 once each. What counts as resent is what the writer
    // had sent in session 0 without an answer: at least what the server read there after its
    // three answers, at most a window (4); the server stops reading at its fourth message, so
    // it may not have seen the window's others.
    let seen_unanswered = (sessions[0].len() - 3) as u64;
    assert!(
        (seen_unanswered..=4).contains(&stats.resent),
        "resent {} with {seen_unanswered} seen unanswered: {stats:?}",
        stats.resent
    );
    assert_eq!(second.len(), 10 - 3);
    let expected: Vec<String> = (3..10).map(|i| format!("message {i}")).collect();
    assert_eq!(second, expected);
    assert!(reports
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.contains("connection lost")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relp_fault_injection_a_rejected_message_is_counted_and_reported_not_resent() {
    let (addr, sessions) = scripted_server(|_, index| {
        if index == 2 {
            Answer::Reject
        } else {
            Answer::Ok
        }
    })
    .await;
    let reports = Arc::default();
    let syslog = writer(addr, &reports);
    let front = syslog.sync_writer();
    front.write_lines(&lines(5)).unwrap();
    tokio::task::spawn_blocking(move || front.flush())
        .await
        .unwrap()
        .unwrap();
    let stats = syslog.stats();
    assert_eq!(
        (stats.delivered, stats.rejected, stats.resent),
        (4, 1, 0),
        "{stats:?}"
    );
    assert_eq!(sessions.lock().unwrap().len(), 1);
    assert!(reports
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.contains("500 refused")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relp_fault_injection_serverclose_ends_the_session_and_the_writer_reconnects() {
    let (addr, sessions) = scripted_server(|session, index| match (session, index) {
        (0, 1) => Answer::ServerClose,
        _ => Answer::Ok,
    })
    .await;
    let reports = Arc::default();
    let syslog = writer(addr, &reports);
    let front = syslog.sync_writer();
    front.write_lines(&lines(6)).unwrap();
    tokio::task::spawn_blocking(move || front.flush())
        .await
        .unwrap()
        .unwrap();
    let stats = syslog.stats();
    assert_eq!(stats.delivered, 6, "{stats:?}");
    assert_eq!(stats.connects, 2, "{stats:?}");
    assert_eq!(sessions.lock().unwrap().len(), 2);
    assert!(reports
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.contains("serverclose")));
    let closed = syslog.close();
    assert_eq!(closed.abandoned, 0);
    assert_eq!(
        closed.accepted,
        closed.delivered + closed.rejected + closed.abandoned + closed.backlog
    );
}
