//! How values are stored: a version byte, then MessagePack with field names.
//!
//! MessagePack (rmp-serde's `to_vec_named`) is self-describing like JSON, so a value written
//! by an older or different type fails to decode instead of misdecoding, and it is about a
//! third smaller than JSON. It carries data only: decoding never runs code. Counters written
//! by `incr`/`decr` are plain ASCII integers (what Redis `INCRBY` keeps), read back as any
//! integer type.

use flagon::bytes::Bytes;
use flagon::serde::Serialize;
use flagon::serde::de::{DeserializeOwned, IntoDeserializer};

use crate::CacheError;

/// The first byte of every encoded value: format MessagePack, layout version 1.
pub(crate) const TAG_V1: u8 = 0xC1;

/// The first byte of a value written with its refresh facts
/// ([`CacheHandle::get_or_set_early`](crate::CacheHandle::get_or_set_early)): the tag, the
/// expiry (Unix milliseconds, 0 for none) and the load's duration (microseconds), both
/// big-endian `u64`, then a [`TAG_V1`] value. Plain reads skip the header.
pub(crate) const TAG_EARLY: u8 = 0xC2;

/// The length of the [`TAG_EARLY`] header.
const EARLY_HEADER: usize = 17;

/// The refresh facts of an early-refresh entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fresh {
    /// Unix milliseconds; 0 for no expiry.
    pub(crate) expires_ms: u64,
    /// How long the load took, in microseconds.
    pub(crate) load_us: u64,
}

/// Encodes `value` behind the [`TAG_EARLY`] header.
pub(crate) fn encode_early<T: Serialize + ?Sized>(
    value: &T,
    fresh: Fresh,
    cap: usize,
) -> Result<Bytes, CacheError> {
    let mut out = Vec::with_capacity(64);
    out.push(TAG_EARLY);
    out.extend_from_slice(&fresh.expires_ms.to_be_bytes());
    out.extend_from_slice(&fresh.load_us.to_be_bytes());
    out.push(TAG_V1);
    rmp_serde::encode::write_named(&mut out, value).map_err(|e| CacheError::Encode(Box::new(e)))?;
    if out.len() > cap {
        return Err(CacheError::TooLarge {
            size: out.len(),
            max: cap,
        });
    }
    Ok(Bytes::from(out))
}

/// Decodes a value with its refresh facts: `None` for an entry written without them.
pub(crate) fn decode_early<T: DeserializeOwned>(
    bytes: &[u8],
    cap: usize,
) -> Result<(T, Option<Fresh>), Undecodable> {
    if bytes.len() > cap {
        return Err(Undecodable::TooLarge(bytes.len()));
    }
    if bytes.first() != Some(&TAG_EARLY) {
        return decode(bytes, cap).map(|v| (v, None));
    }
    if bytes.len() < EARLY_HEADER + 1 {
        return Err(Undecodable::Malformed("truncated refresh header".into()));
    }
    let u64_at = |i: usize| {
        let mut b = [0; 8];
        b.copy_from_slice(&bytes[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let fresh = Fresh {
        expires_ms: u64_at(1),
        load_us: u64_at(9),
    };
    let rest = &bytes[EARLY_HEADER..];
    if rest.first() != Some(&TAG_V1) {
        return Err(Undecodable::Malformed(
            "no value after the refresh header".into(),
        ));
    }
    decode(rest, cap).map(|v| (v, Some(fresh)))
}

/// The deepest nesting a stored value may have.
pub(crate) const MAX_DEPTH: usize = 128;

/// Why stored bytes are not a value of the asked type.
#[derive(Debug)]
pub(crate) enum Undecodable {
    /// Longer than `max_value_bytes`.
    TooLarge(usize),
    /// Not written by this crate (no version byte, or another version).
    Foreign,
    /// The version byte is right but the payload does not decode as the asked type.
    Malformed(String),
}

impl std::fmt::Display for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undecodable::TooLarge(n) => write!(f, "{n} bytes, over the size cap"),
            Undecodable::Foreign => {
                f.write_str("not written by flagon-cache (unknown version byte)")
            }
            Undecodable::Malformed(e) => write!(f, "does not decode as the asked type: {e}"),
        }
    }
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, cap: usize) -> Result<Bytes, CacheError> {
    let mut out = Vec::with_capacity(64);
    out.push(TAG_V1);
    rmp_serde::encode::write_named(&mut out, value).map_err(|e| CacheError::Encode(Box::new(e)))?;
    if out.len() > cap {
        return Err(CacheError::TooLarge {
            size: out.len(),
            max: cap,
        });
    }
    Ok(Bytes::from(out))
}

/// Parses a counter: an optional `-` and ASCII digits, as Redis stores `INCRBY` results.
pub(crate) fn parse_counter(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], cap: usize) -> Result<T, Undecodable> {
    // The cap comes first: nothing is parsed from an oversized entry.
    if bytes.len() > cap {
        return Err(Undecodable::TooLarge(bytes.len()));
    }
    match bytes.first() {
        Some(&TAG_EARLY) => decode_early(bytes, cap).map(|(v, _)| v),
        Some(&TAG_V1) => {
            let mut rest = &bytes[1..];
            let mut de = rmp_serde::Deserializer::new(&mut rest);
            // Nesting is bounded well below what a 2 MiB worker stack survives in a debug
            // build (rmp-serde's own limit, 1024, is not).
            de.set_max_depth(MAX_DEPTH);
            let v = T::deserialize(&mut de).map_err(|e| Undecodable::Malformed(e.to_string()))?;
            drop(de);
            if !rest.is_empty() {
                return Err(Undecodable::Malformed("trailing bytes".into()));
            }
            Ok(v)
        }
        _ => match parse_counter(bytes) {
            Some(n) => T::deserialize(n.into_deserializer()).map_err(
                |e: flagon::serde::de::value::Error| Undecodable::Malformed(e.to_string()),
            ),
            None => Err(Undecodable::Foreign),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flagon::serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(crate = "flagon::serde")]
    struct Page {
        title: String,
        views: u32,
    }

    #[test]
    fn round_trip_and_tag() {
        let p = Page {
            title: "hi".into(),
            views: 3,
        };
        let b = encode(&p, 1024).unwrap();
        assert_eq!(b[0], TAG_V1);
        assert_eq!(decode::<Page>(&b, 1024).unwrap(), p);
    }

    #[test]
    fn counters_read_as_integers() {
        assert_eq!(decode::<i64>(b"-42", 64).unwrap(), -42);
        assert_eq!(decode::<u8>(b"7", 64).unwrap(), 7);
        assert!(matches!(
            decode::<u8>(b"-1", 64),
            Err(Undecodable::Malformed(_))
        ));
        assert!(matches!(
            decode::<Page>(b"12", 64),
            Err(Undecodable::Malformed(_))
        ));
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        let p = encode(
            &Page {
                title: "x".repeat(100),
                views: 1,
            },
            1024,
        )
        .unwrap();
        assert!(matches!(
            decode::<Page>(&p, 50),
            Err(Undecodable::TooLarge(_))
        ));
        assert!(matches!(
            decode::<Page>(b"\x80\x04pickle", 64),
            Err(Undecodable::Foreign)
        ));
        assert!(matches!(decode::<Page>(b"", 64), Err(Undecodable::Foreign)));
        assert!(matches!(
            decode::<Page>(&p[..p.len() - 3], 1024),
            Err(Undecodable::Malformed(_))
        ));
        let mut extra = p.to_vec();
        extra.push(0);
        assert!(matches!(
            decode::<Page>(&extra, 1024),
            Err(Undecodable::Malformed(_))
        ));
        assert!(matches!(
            decode::<String>(&p, 1024),
            Err(Undecodable::Malformed(_))
        ));
        // Deep nesting is refused by the decoder's depth limit, not a stack overflow.
        let deep = [vec![TAG_V1], vec![0x91; 100_000]].concat();
        assert!(decode::<flagon::serde_json::Value>(&deep, 1 << 20).is_err());
    }

    #[test]
    fn early_entries_carry_their_facts_and_read_as_plain_values() {
        let fresh = Fresh {
            expires_ms: 1_700_000_000_000,
            load_us: 2500,
        };
        let b = encode_early(&"v", fresh, 1024).unwrap();
        assert_eq!(b[0], TAG_EARLY);
        assert_eq!(
            decode_early::<String>(&b, 1024).unwrap(),
            ("v".to_owned(), Some(fresh))
        );
        assert_eq!(decode::<String>(&b, 1024).unwrap(), "v");
        let plain = encode(&"v", 1024).unwrap();
        assert_eq!(decode_early::<String>(&plain, 1024).unwrap().1, None);
        for n in 0..b.len() {
            assert!(decode_early::<String>(&b[..n], 1024).is_err(), "{n}");
        }
        assert!(matches!(
            decode_early::<String>(&b, 10),
            Err(Undecodable::TooLarge(_))
        ));
    }

    #[test]
    fn oversized_values_are_refused_on_write() {
        let err = encode(&"x".repeat(100), 50).unwrap_err();
        assert!(matches!(err, CacheError::TooLarge { max: 50, .. }), "{err}");
    }
}
