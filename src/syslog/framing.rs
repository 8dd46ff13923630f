//! Framing on stream transports, as `tokio-util` codecs: RFC 6587 octet counting for syslog
//! over TCP, and RELP frames.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The largest message or RELP data a decoder accepts (a bad length prefix must not make it
/// buffer without end).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// RFC 6587 octet counting: each message is sent as `MSG-LEN SP SYSLOG-MSG`, so that a message
/// may hold any byte (rsyslog's `imtcp` reads this framing when a frame starts with a digit).
///
/// # Examples
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use tokio_util::codec::{Decoder, Encoder};
/// use kakashi::syslog::OctetCounting;
///
/// let mut buf = BytesMut::new();
/// OctetCounting.encode(Bytes::from_static(b"<14>1 - - - - - hi"), &mut buf).unwrap();
/// assert_eq!(&buf[..], b"18 <14>1 - - - - - hi");
/// let msg = OctetCounting.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(&msg[..], b"<14>1 - - - - - hi");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct OctetCounting;

impl Encoder<Bytes> for OctetCounting {
    type Error = io::Error;

    fn encode(&mut self, msg: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        dst.reserve(msg.len() + 12);
        crate::format::write_u64(dst, msg.len() as u64);
        dst.put_u8(b' ');
        dst.put_slice(&msg);
        Ok(())
    }
}

impl Decoder for OctetCounting {
    type Item = Bytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
        let Some(space) = src.iter().take(10).position(|&b| b == b' ') else {
            if src.len() >= 10 {
                return Err(bad_frame("octet count longer than 9 digits"));
            }
            return Ok(None);
        };
        let len = parse_number(&src[..space]).ok_or_else(|| bad_frame("bad octet count"))?;
        if len > MAX_FRAME {
            return Err(bad_frame("message too long"));
        }
        if src.len() < space + 1 + len {
            src.reserve(space + 1 + len - src.len());
            return Ok(None);
        }
        src.advance(space + 1);
        Ok(Some(src.split_to(len).freeze()))
    }
}

/// One RELP frame: `TXNR SP COMMAND SP DATALEN [SP DATA] LF`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelpFrame {
    /// The transaction number (1 to 999 999 999; 0 for `serverclose`).
    pub txnr: u32,
    /// The command: `open`, `syslog`, `close`, `rsp`, `serverclose`.
    pub command: Bytes,
    /// The data (may be empty).
    pub data: Bytes,
}

impl RelpFrame {
    /// A frame.
    pub fn new(txnr: u32, command: &'static str, data: Bytes) -> Self {
        RelpFrame {
            txnr,
            command: Bytes::from_static(command.as_bytes()),
            data,
        }
    }

    /// True for a `rsp` frame whose status is 200.
    pub fn is_ok_response(&self) -> bool {
        &self.command[..] == b"rsp" && self.data.starts_with(b"200")
    }
}

/// The RELP frame codec (rsyslog's Reliable Event Logging Protocol): both directions use the
/// same frame, `TXNR SP COMMAND SP DATALEN [SP DATA] LF`.
///
/// # Examples
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use tokio_util::codec::{Decoder, Encoder};
/// use kakashi::syslog::{RelpCodec, RelpFrame};
///
/// let mut buf = BytesMut::new();
/// RelpCodec.encode(RelpFrame::new(2, "syslog", Bytes::from_static(b"<14>1 hi")), &mut buf).unwrap();
/// assert_eq!(&buf[..], b"2 syslog 8 <14>1 hi\n");
/// buf.extend_from_slice(b"2 rsp 6 200 OK\n");
/// let _ = RelpCodec.decode(&mut buf).unwrap().unwrap();
/// let rsp = RelpCodec.decode(&mut buf).unwrap().unwrap();
/// assert!(rsp.is_ok_response());
/// assert_eq!(rsp.txnr, 2);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct RelpCodec;

impl Encoder<RelpFrame> for RelpCodec {
    type Error = io::Error;

    fn encode(&mut self, frame: RelpFrame, dst: &mut BytesMut) -> io::Result<()> {
        dst.reserve(frame.data.len() + frame.command.len() + 24);
        crate::format::write_u64(dst, u64::from(frame.txnr));
        dst.put_u8(b' ');
        dst.put_slice(&frame.command);
        dst.put_u8(b' ');
        crate::format::write_u64(dst, frame.data.len() as u64);
        if !frame.data.is_empty() {
            dst.put_u8(b' ');
            dst.put_slice(&frame.data);
        }
        dst.put_u8(b'\n');
        Ok(())
    }
}

impl Decoder for RelpCodec {
    type Item = RelpFrame;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<RelpFrame>> {
        // The header: three space-separated tokens, at most 9 + 32 + 9 bytes.
        let mut spaces = [0usize; 3];
        let mut found = 0;
        for (i, &b) in src.iter().enumerate().take(56) {
            if b == b' ' || (found == 2 && b == b'\n') {
                spaces[found] = i;
                found += 1;
                if found == 3 {
                    break;
                }
            }
        }
        if found < 3 {
            if src.len() >= 56 {
                return Err(bad_frame("RELP header too long"));
            }
            return Ok(None);
        }
        let txnr = parse_number(&src[..spaces[0]]).ok_or_else(|| bad_frame("bad RELP txnr"))?;
        let command = &src[spaces[0] + 1..spaces[1]];
        if command.is_empty() || command.len() > 32 || !command.iter().all(u8::is_ascii_alphabetic)
        {
            return Err(bad_frame("bad RELP command"));
        }
        let len = parse_number(&src[spaces[1] + 1..spaces[2]])
            .ok_or_else(|| bad_frame("bad RELP data length"))?;
        if len > MAX_FRAME {
            return Err(bad_frame("RELP data too long"));
        }
        // `DATALEN LF` when there is no data, else `DATALEN SP DATA LF`.
        let header = spaces[2] + 1;
        let total = if len == 0 && src[spaces[2]] == b'\n' {
            header
        } else {
            header + len + 1
        };
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        if src[total - 1] != b'\n' {
            return Err(bad_frame("RELP frame without its trailing LF"));
        }
        let mut frame = src.split_to(total).freeze();
        let command = frame.slice(spaces[0] + 1..spaces[1]);
        frame.advance(header);
        frame.truncate(len);
        Ok(Some(RelpFrame {
            txnr: u32::try_from(txnr).map_err(|_| bad_frame("bad RELP txnr"))?,
            command,
            data: frame,
        }))
    }
}

fn parse_number(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0')),
    )
}

fn bad_frame(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relp_frames_round_trip_and_split_anywhere() {
        let frames = [
            RelpFrame::new(
                1,
                "open",
                Bytes::from_static(b"relp_version=0\ncommands=syslog"),
            ),
            RelpFrame::new(2, "syslog", Bytes::from_static(b"a\nb ] \" 1 2 3")),
            RelpFrame::new(3, "close", Bytes::new()),
            RelpFrame::new(0, "serverclose", Bytes::new()),
        ];
        let mut wire = BytesMut::new();
        for f in frames.clone() {
            RelpCodec.encode(f, &mut wire).unwrap();
        }
        for cut in 0..wire.len() {
            let mut src = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(f) = RelpCodec.decode(&mut src).unwrap() {
                got.push(f);
            }
            src.extend_from_slice(&wire[cut..]);
            while let Some(f) = RelpCodec.decode(&mut src).unwrap() {
                got.push(f);
            }
            assert_eq!(got, frames, "cut at {cut}");
        }
    }

    #[test]
    fn bad_frames_are_errors() {
        for bad in [
            &b"x open 0\n"[..],
            b"1 op3n 0\n",
            b"1 rsp 2 okX",
            b"1234567890 rsp 0\n",
        ] {
            let mut src = BytesMut::from(bad);
            assert!(RelpCodec.decode(&mut src).is_err(), "{bad:?}");
        }
        let mut src = BytesMut::from(&b"99999999999 x"[..]);
        assert!(OctetCounting.decode(&mut src).is_err());
    }
}
