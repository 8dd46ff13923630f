//! The request id: taking a well-formed one from the request, or generating one.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// The longest request id taken from a request header, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id the client sent in `header`: its one line, when well formed. `None` when
/// the header is missing, malformed, or sent more than once — then which line a handler, a
/// proxy or the log would read is anyone's guess, so none of them is believed.
pub(super) fn given_request_id<'a>(
    headers: &'a HeaderMap,
    header: &HeaderName,
) -> Option<&'a HeaderValue> {
    let mut lines = headers.get_all(header).iter();
    let first = lines.next()?;
    (lines.next().is_none() && valid_request_id(first)).then_some(first)
}

/// The request id in `value`, if it is one we are willing to log and echo.
pub(super) fn valid_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A fresh request id: 16 hex digits that identify the process (random, drawn once) and 16
/// that are a bijective scramble of a counter, so ids never repeat within a process.
pub(super) fn generate_request_id() -> String {
    static SEED: OnceLock<[u64; 2]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let seed = SEED.get_or_init(|| {
        // std seeds each RandomState's keys from the OS's randomness; the clock and pid only
        // add to it.
        let state = std::collections::hash_map::RandomState::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        [0u8, 1].map(|i| {
            let mut hasher = state.build_hasher();
            hasher.write_u8(i);
            hasher.write_u128(now);
            hasher.write_u32(std::process::id());
            hasher.finish()
        })
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 32];
    write_hex(&mut out[..16], seed[0]);
    write_hex(&mut out[16..], scramble(n.wrapping_add(seed[1])));
    out.iter().map(|&b| char::from(b)).collect()
}

/// The splitmix64 finalizer: a bijection on `u64` that spreads every input bit.
fn scramble(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn write_hex(out: &mut [u8], v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, slot) in out.iter_mut().take(16).enumerate() {
        *slot = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        let ok = |s: &str| valid_request_id(&HeaderValue::from_str(s).unwrap());
        assert!(ok("abc-DEF_1.2:3"));
        assert!(ok(&"a".repeat(MAX_REQUEST_ID_LEN)));
        assert!(!ok(&"a".repeat(MAX_REQUEST_ID_LEN + 1)));
        assert!(!ok(""));
        assert!(!ok("a b"));
        assert!(!ok("a\tb"));
        assert!(!ok("a\"b"));
        assert!(!valid_request_id(
            &HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()
        ));

        let mut headers = HeaderMap::new();
        assert!(given_request_id(&headers, &X_REQUEST_ID).is_none());
        headers.append(X_REQUEST_ID, HeaderValue::from_static("first"));
        assert_eq!(given_request_id(&headers, &X_REQUEST_ID).unwrap(), "first");
        headers.append(X_REQUEST_ID, HeaderValue::from_static("second"));
        assert!(given_request_id(&headers, &X_REQUEST_ID).is_none());

        let a = generate_request_id();
        let b = generate_request_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16]);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
