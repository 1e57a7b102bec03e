//! How the view cache stores a response: one flat record, so that a hit rebuilds the
//! response without a decoder and without copying the body.
//!
//! ```text
//! 0xC3                 tag: stored response, layout version 1
//! u16 status           big-endian
//! u16 n                number of headers
//! n × (u16 len, name, u32 len, value)
//! body                 the rest
//! ```
//!
//! The body of a hit is a slice of the stored `Bytes` (a reference count, no copy), and each
//! header value is one too. This is an internal record of fixed shape, read only by this
//! module, so it needs no self-describing format; like every stored value it starts with a
//! version byte, is size-capped before it is read, and is data only: a record that does not
//! parse is a miss, deleted and logged.

use flagon::axum::body::Body;
use flagon::axum::response::Response;
use flagon::bytes::Bytes;
use flagon::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::codec::Undecodable;

/// The first byte of a stored response.
pub(crate) const TAG_RESPONSE: u8 = 0xC3;

/// Encodes a response's status, headers and body. `None` when a header is too long for the
/// layout (a name over 64 KiB or a value over 4 GiB: never from a real handler).
pub(crate) fn encode(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Bytes> {
    let n = u16::try_from(headers.len()).ok()?;
    let size = 5
        + headers
            .iter()
            .map(|(k, v)| 6 + k.as_str().len() + v.len())
            .sum::<usize>()
        + body.len();
    let mut out = Vec::with_capacity(size);
    out.push(TAG_RESPONSE);
    out.extend_from_slice(&status.as_u16().to_be_bytes());
    out.extend_from_slice(&n.to_be_bytes());
    for (name, value) in headers {
        let name = name.as_str().as_bytes();
        out.extend_from_slice(&u16::try_from(name.len()).ok()?.to_be_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&u32::try_from(value.len()).ok()?.to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(body);
    Some(Bytes::from(out))
}

/// How many headers a response rebuilt from the cache can take on its way out without its
/// header map growing: the request id, `X-Cache` in development, and a couple that after
/// hooks or middleware add.
pub(crate) const SPARE_HEADERS: usize = 4;

/// A stored response's parts, sharing the record's bytes.
#[derive(Clone)]
pub(crate) struct Parts {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

fn malformed(what: &str) -> Undecodable {
    Undecodable::Malformed(format!("stored response: {what}"))
}

struct Reader<'a> {
    bytes: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, Undecodable> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| malformed("truncated"))?;
        let r = self.at..end;
        self.at = end;
        Ok(r)
    }

    fn u16(&mut self) -> Result<u16, Undecodable> {
        let r = self.take(2)?;
        Ok(u16::from_be_bytes([
            self.bytes[r.start],
            self.bytes[r.start + 1],
        ]))
    }

    fn u32(&mut self) -> Result<u32, Undecodable> {
        let r = self.take(4)?;
        let b = &self.bytes[r];
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Parses a record made by [`encode`]; `cap` is checked first.
pub(crate) fn decode(bytes: &Bytes, cap: usize) -> Result<Parts, Undecodable> {
    if bytes.len() > cap {
        return Err(Undecodable::TooLarge(bytes.len()));
    }
    if bytes.first() != Some(&TAG_RESPONSE) {
        return Err(Undecodable::Foreign);
    }
    let mut r = Reader { bytes, at: 1 };
    let status = StatusCode::from_u16(r.u16()?).map_err(|_| malformed("bad status"))?;
    let n = usize::from(r.u16()?);
    // Every header takes at least 6 bytes: a count larger than the record can hold is
    // corrupt, and is refused before anything is allocated for it.
    if n > (bytes.len() - r.at) / 6 {
        return Err(malformed("header count"));
    }
    // Room for the headers added on the way out (a Redis hit's map becomes the response's).
    let mut headers = HeaderMap::with_capacity(n + SPARE_HEADERS);
    for _ in 0..n {
        let len = usize::from(r.u16()?);
        let name = r.take(len)?;
        let name = HeaderName::from_bytes(&bytes[name]).map_err(|_| malformed("header name"))?;
        let len = r.u32()? as usize;
        let value = r.take(len)?;
        let value = HeaderValue::from_maybe_shared(bytes.slice(value))
            .map_err(|_| malformed("header value"))?;
        headers.append(name, value);
    }
    Ok(Parts {
        status,
        headers,
        body: bytes.slice(r.at..),
    })
}

impl Parts {
    /// What the parsed form adds to the record's memory (the body is shared): the header
    /// map's tables.
    pub(crate) fn weight(&self) -> u64 {
        64 + 48 * self.headers.len() as u64
    }

    /// A response with a copy of these parts (the body and header values are shared).
    ///
    /// The header map is built afresh with [`SPARE_HEADERS`] free slots rather than cloned:
    /// a clone's entries are exactly as many as it holds, so the first header added after
    /// it (the request id, always) would reallocate the map, and often rehash it.
    pub(crate) fn to_response(&self) -> Response {
        let mut headers = HeaderMap::with_capacity(self.headers.len() + SPARE_HEADERS);
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        let mut res = Response::new(Body::from(self.body.clone()));
        *res.status_mut() = self.status;
        *res.headers_mut() = headers;
        res
    }

    pub(crate) fn into_response(self) -> Response {
        let mut res = Response::new(Body::from(self.body));
        *res.status_mut() = self.status;
        *res.headers_mut() = self.headers;
        res
    }

    /// What `cache get` shows of a stored response.
    pub(crate) fn describe(&self) -> flagon::serde_json::Value {
        let headers: Vec<flagon::serde_json::Value> = self
            .headers
            .iter()
            .map(|(k, v)| {
                flagon::serde_json::json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())])
            })
            .collect();
        flagon::serde_json::json!({
            "response": {
                "status": self.status.as_u16(),
                "headers": headers,
                "body_bytes": self.body.len(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flagon::http::header;

    fn sample() -> Bytes {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        encode(StatusCode::OK, &h, b"<p>hi</p>").unwrap()
    }

    #[test]
    fn round_trip_keeps_status_headers_and_body() {
        let b = sample();
        let p = decode(&b, 1 << 20).unwrap();
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(p.headers[header::CONTENT_TYPE], "text/html");
        let xa: Vec<_> = p.headers.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"], "repeated headers keep their order");
        assert_eq!(&p.body[..], b"<p>hi</p>");
    }

    #[test]
    fn rebuilt_responses_have_room_for_the_headers_added_on_the_way_out() {
        let p = decode(&sample(), 1 << 20).unwrap();
        let res = p.to_response();
        assert_eq!(res.headers().len(), 3);
        assert!(res.headers().capacity() >= 3 + SPARE_HEADERS);
        let xa: Vec<_> = res.headers().get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"], "repeated headers keep their order");
        let res = p.into_response();
        assert!(res.headers().capacity() >= 3 + SPARE_HEADERS);
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let b = sample();
        for n in 0..b.len() - 9 {
            assert!(
                decode(&b.slice(..n), 1 << 20).is_err(),
                "prefix of {n} bytes"
            );
        }
        for i in 0..b.len() {
            for x in [0x00, 0xff, 0x0a] {
                let mut v = b.to_vec();
                v[i] = x;
                let _ = decode(&Bytes::from(v), 1 << 20);
            }
        }
        assert!(matches!(decode(&b, 10), Err(Undecodable::TooLarge(_))));
        let mut huge_count = b.to_vec();
        huge_count[3..5].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(decode(&Bytes::from(huge_count), 1 << 20).is_err());
        let mut bad_status = b.to_vec();
        bad_status[1..3].copy_from_slice(&42u16.to_be_bytes());
        assert!(decode(&Bytes::from(bad_status), 1 << 20).is_err());
        let mut bad_value = b.to_vec();
        let at = bad_value
            .windows(9)
            .position(|w| w == b"text/html")
            .unwrap();
        bad_value[at] = b'\n';
        assert!(decode(&Bytes::from(bad_value), 1 << 20).is_err());
    }
}
