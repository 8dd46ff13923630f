//! The syslog writer's datagram transports against plain sockets on loopback and in a temp
//! dir: one datagram per record, the size limit and its marker, a datagram the socket refuses.
#![cfg(feature = "syslog")]

mod common;

use std::time::Duration;

use kakashi::syslog::{SyslogWriter, Transport, TRUNCATION_MARKER};

#[test]
fn udp_sends_one_datagram_per_line_and_cuts_long_ones_with_the_marker() {
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let addr = receiver.local_addr().unwrap().to_string();
    let syslog = SyslogWriter::builder(Transport::udp(addr))
        .datagram_limit(100)
        .build()
        .unwrap();
    let long = "é".repeat(80); // 160 bytes
    let lines = format!("short one\n{long}\nlast\n");
    syslog.sync_writer().write_lines(lines.as_bytes()).unwrap();
    syslog.sync_writer().flush().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    for _ in 0..3 {
        let n = receiver.recv(&mut buf).unwrap();
        got.push(buf[..n].to_vec());
    }
    assert_eq!(got[0], b"short one");
    assert!(got[1].len() <= 100, "{}", got[1].len());
    assert!(got[1].ends_with(TRUNCATION_MARKER));
    let text = std::str::from_utf8(&got[1]).expect("cut at a character boundary");
    assert!(long.starts_with(text.strip_suffix("[truncated]").unwrap()));
    assert_eq!(got[2], b"last");
    let stats = syslog.close();
    assert_eq!((stats.delivered, stats.truncated), (3, 1), "{stats:?}");
}

#[test]
fn a_datagram_the_socket_refuses_is_counted_as_rejected_and_the_rest_go_on() {
    let dir = common::TempDir::new("syslog-unix");
    let path = dir.file("log");
    let receiver = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let syslog = SyslogWriter::builder(Transport::unix_datagram(&path))
        .datagram_limit(16 << 20)
        .error_hook(|_| {})
        .build()
        .unwrap();
    // Larger than any Unix datagram socket takes by default (net.core.wmem_max).
    let huge = "x".repeat(8 << 20);
    let lines = format!("before\n{huge}\nafter\n");
    syslog.sync_writer().write_lines(lines.as_bytes()).unwrap();
    syslog.sync_writer().flush().unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let n = receiver.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"before");
    let n = receiver.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after");
    let stats = syslog.close();
    assert_eq!((stats.delivered, stats.rejected), (2, 1), "{stats:?}");
    assert_eq!(stats.accepted, stats.delivered + stats.rejected);
}

#[test]
fn bad_settings_are_errors_that_name_them() {
    let err = SyslogWriter::builder(Transport::udp("127.0.0.1:514"))
        .datagram_limit(70_000)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("datagram_limit"), "{err}");
    let err = SyslogWriter::builder(Transport::tcp(""))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("address is empty"), "{err}");
    let err = SyslogWriter::builder(Transport::relp("127.0.0.1:1"))
        .relp_window(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("relp_window"), "{err}");
}
