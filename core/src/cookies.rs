//! Reading one cookie out of a request's `Cookie` headers, shared by every part of core
//! that keeps a cookie (sessions, CSRF).
//!
//! Pairs are read one by one, as bytes: a foreign cookie holding non-ASCII bytes
//! (`lang=français`, planted on a parent domain) is skipped alone and does not hide the
//! cookie next to it. A name sent twice is reported, so that a planted duplicate (cookie
//! tossing) is refused rather than guessed between.

use http::HeaderMap;
use http::header::COOKIE;

/// What the request's `Cookie` headers hold under one name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup<'a> {
    /// No cookie of that name.
    Absent,
    /// Exactly one, with its value (trimmed, quotes kept).
    One(&'a [u8]),
    /// The name appears more than once.
    Duplicated,
}

/// The cookie named `name` in every `Cookie` header of `headers`.
pub(crate) fn lookup<'a>(headers: &'a HeaderMap, name: &[u8]) -> Lookup<'a> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        for pair in pairs(header.as_bytes()) {
            let Some(eq) = memchr::memchr(b'=', pair) else {
                continue;
            };
            if pair[..eq].trim_ascii() != name {
                continue;
            }
            if found.is_some() {
                return Lookup::Duplicated;
            }
            found = Some(pair[eq + 1..].trim_ascii());
        }
    }
    found.map_or(Lookup::Absent, Lookup::One)
}

/// The `;`-separated pairs of one header, as `split` gives them, found with `memchr` (the
/// header is scanned on every request that reads a cookie).
fn pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b';', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn raw(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_bytes(v).unwrap());
        h
    }

    #[test]
    fn pairs_split_as_split_does() {
        for h in ["", "a=1", "a=1;", ";a=1; b=2;;c", "a=1; b"] {
            let want: Vec<&[u8]> = h.as_bytes().split(|&b| b == b';').collect();
            assert_eq!(pairs(h.as_bytes()).collect::<Vec<_>>(), want, "{h:?}");
        }
    }

    #[test]
    fn one_pair_is_found_among_foreign_and_non_ascii_ones() {
        let h = raw("lang=fran\u{e7}ais; a=1; theme=dark".as_bytes());
        assert_eq!(lookup(&h, b"a"), Lookup::One(b"1"));
        assert_eq!(lookup(&h, b"b"), Lookup::Absent);
        let mut two = raw(b"a=1");
        two.append(COOKIE, HeaderValue::from_static("a=2"));
        assert_eq!(lookup(&two, b"a"), Lookup::Duplicated);
    }
}
