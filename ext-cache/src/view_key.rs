//! View cache keys: exact where they can be cheaply, a keyed 128-bit digest where a part is
//! chosen by the client, and laid out so that a route's or a path's entries share a prefix
//! (for [`CacheHandle::purge_cached`](crate::CacheHandle::purge_cached) and
//! [`CacheHandle::delete_cached`](crate::CacheHandle::delete_cached)).
//!
//! ```text
//! view:{len}:{route}:{path}:{query}:{method}[.{varies}]
//! ```
//!
//! * `route` is the matched route pattern (`/posts/{id}`), written out with its length
//!   first; it comes from the app, so it is bounded.
//! * `path` is `=` when the request path is the pattern itself (a route without
//!   parameters), otherwise the digest of the path.
//! * `query` is `-` for a view that ignores it, `e` when it is empty, otherwise the digest of
//!   the canonical query string.
//! * `method` is `GET` or `HEAD`; `varies`, present only when the view varies on something,
//!   is the digest of the identity, the locale and the named headers' values.
//!
//! A digest is SipHash-1-3 with a 128-bit output, keyed by a key derived from the app's
//! secret (`derive_key`): 32 hex digits. Each part is either a fixed marker or a digest of
//! fixed length, so the layout is unambiguous, and keys stay short whatever the client
//! sends. Keyed, the digest cannot be steered: without the secret nobody can make two
//! requests share an entry on purpose, and by chance that takes around 2^64 entries. The
//! inputs are length-prefixed, so no two different lists of values hash alike by
//! concatenation. Instances sharing a Redis cache share the secret, so they compute the
//! same keys.

use std::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher13};

/// The digest key: 128 bits derived from the app's secret.
#[derive(Clone, Copy)]
pub(crate) struct HashKey(pub(crate) [u8; 16]);

impl HashKey {
    pub(crate) fn hasher(&self) -> Digest {
        Digest(SipHasher13::new_with_key(&self.0))
    }
}

/// A keyed digest under construction.
pub(crate) struct Digest(SipHasher13);

impl Digest {
    /// Adds one length-prefixed part.
    pub(crate) fn part(&mut self, bytes: &[u8]) {
        self.0.write_u64(bytes.len() as u64);
        self.0.write(bytes);
    }

    /// Appends the digest as 32 lowercase hex digits.
    pub(crate) fn push_hex(self, out: &mut impl KeyOut) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in self.0.finish128().as_bytes() {
            out.put_char(char::from(HEX[usize::from(b >> 4)]));
            out.put_char(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// Where a key is written: a `String`, or a [`KeyBuf`] on the stack.
pub(crate) trait KeyOut {
    /// Appends `s`.
    fn put(&mut self, s: &str);
    /// Appends `c`.
    fn put_char(&mut self, c: char);
}

impl KeyOut for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
    fn put_char(&mut self, c: char) {
        self.push(c);
    }
}

/// How long a key [`KeyBuf`] holds on the stack: a route of 60 bytes with every digest.
const INLINE: usize = 192;

/// A key under construction, on the stack while it fits (it always does unless the route
/// pattern is very long), so that a view-cache hit allocates nothing for its key.
pub(crate) struct KeyBuf {
    inline: [u8; INLINE],
    len: usize,
    /// The whole key, once it no longer fits `inline`.
    heap: String,
}

impl KeyBuf {
    pub(crate) fn new() -> Self {
        KeyBuf {
            inline: [0; INLINE],
            len: 0,
            heap: String::new(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        if self.len == usize::MAX {
            return &self.heap;
        }
        // `inline` only ever receives whole `str`s and whole `char`s.
        match std::str::from_utf8(&self.inline[..self.len]) {
            Ok(s) => s,
            Err(_) => unreachable!("a key buffer holds UTF-8"),
        }
    }

    pub(crate) fn into_string(self) -> String {
        if self.len == usize::MAX {
            self.heap
        } else {
            self.as_str().to_owned()
        }
    }
}

impl KeyOut for KeyBuf {
    #[inline]
    fn put(&mut self, s: &str) {
        if self.len == usize::MAX {
            self.heap.push_str(s);
        } else if let Some(to) = self.inline.get_mut(self.len..self.len + s.len()) {
            to.copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            let mut heap = String::with_capacity(2 * INLINE + s.len());
            heap.push_str(self.as_str());
            heap.push_str(s);
            self.heap = heap;
            // From now on the key is `heap`.
            self.len = usize::MAX;
        }
    }

    #[inline]
    fn put_char(&mut self, c: char) {
        if c.is_ascii()
            && self.len != usize::MAX
            && let Some(to) = self.inline.get_mut(self.len)
        {
            *to = c as u8;
            self.len += 1;
        } else {
            self.put(c.encode_utf8(&mut [0; 4]));
        }
    }
}

/// `view:{len}:{route}:`: the prefix every entry of one route shares.
pub(crate) fn push_route(out: &mut impl KeyOut, route: &str) {
    out.put("view:");
    push_decimal(out, route.len());
    out.put_char(':');
    out.put(route);
    out.put_char(':');
}

/// `n` in decimal, without the formatting machinery (this is on every view-cache hit).
fn push_decimal(out: &mut impl KeyOut, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.put_char(char::from(d));
    }
}

/// The path part and its `:`.
pub(crate) fn push_path(out: &mut impl KeyOut, key: &HashKey, route: &str, path: &str) {
    if path == route {
        out.put_char('=');
    } else {
        let mut d = key.hasher();
        d.part(path.as_bytes());
        d.push_hex(out);
    }
    out.put_char(':');
}

/// The query part and its `:`: `canonical` is the canonical query string, `None` when the
/// view ignores the query.
pub(crate) fn push_query(out: &mut impl KeyOut, key: &HashKey, canonical: Option<&str>) {
    match canonical {
        None => out.put_char('-'),
        Some("") => out.put_char('e'),
        Some(q) => {
            let mut d = key.hasher();
            d.part(q.as_bytes());
            d.push_hex(out);
        }
    }
    out.put_char(':');
}

/// The query string with its parameters sorted by name (values of a repeated name keep
/// their order, which may matter), so `?b=1&a=2` and `?a=2&b=1` share an entry.
pub(crate) fn canonical_query(q: &str) -> String {
    if q.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: HashKey = HashKey([7; 16]);

    #[test]
    fn query_order_does_not_matter_but_repeated_values_do() {
        assert_eq!(canonical_query("b=1&a=2"), canonical_query("a=2&b=1"));
        assert_ne!(canonical_query("a=1&a=2"), canonical_query("a=2&a=1"));
        assert_ne!(canonical_query("a=1"), canonical_query("a=2"));
        assert_eq!(canonical_query("a=%20"), canonical_query("a=+"));
        assert_eq!(canonical_query(""), "");
    }

    #[test]
    fn parts_are_unambiguous() {
        let key = |route: &str, path: &str, q: Option<&str>| {
            let mut s = String::new();
            push_route(&mut s, route);
            push_path(&mut s, &K, route, path);
            push_query(&mut s, &K, q);
            s
        };
        assert_eq!(key("/a", "/a", Some("")), "view:2:/a:=:e:");
        // A route whose pattern ends like another's prefix does not share its prefix.
        let mut prefix = String::new();
        push_route(&mut prefix, "/a");
        assert!(!key("/a:b", "/a:b", None).starts_with(&prefix));
        assert!(key("/a", "/a", None).starts_with(&prefix));
        assert_ne!(key("/{x}", "/1", None), key("/{x}", "/2", None));
        assert_ne!(
            key("/{x}", "/1", Some("a=1")),
            key("/{x}", "/1", Some("a=2"))
        );
        assert_ne!(key("/{x}", "/1", Some("")), key("/{x}", "/1", None));
        let other_key = {
            let mut s = String::new();
            push_path(&mut s, &HashKey([8; 16]), "/{x}", "/1");
            s
        };
        let mut mine = String::new();
        push_path(&mut mine, &K, "/{x}", "/1");
        assert_ne!(mine, other_key, "the digest depends on the secret");
        assert_eq!(mine.len(), 33);
    }

    #[test]
    fn a_key_buffer_spills_to_the_heap_unchanged() {
        for route in ["/a", "/é/{x}", &"/long".repeat(60)] {
            let (mut buf, mut s) = (KeyBuf::new(), String::new());
            push_route(&mut buf, route);
            push_route(&mut s, route);
            push_path(&mut buf, &K, route, "/other");
            push_path(&mut s, &K, route, "/other");
            push_query(&mut buf, &K, Some("a=1"));
            push_query(&mut s, &K, Some("a=1"));
            buf.put("GET");
            s.push_str("GET");
            assert_eq!(buf.as_str(), s);
            assert_eq!(buf.into_string(), s);
        }
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 99, 1234, usize::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    #[test]
    fn length_prefixes_separate_concatenations() {
        let one = |parts: &[&[u8]]| {
            let mut d = K.hasher();
            for p in parts {
                d.part(p);
            }
            let mut s = String::new();
            d.push_hex(&mut s);
            s
        };
        assert_ne!(one(&[b"ab", b"c"]), one(&[b"a", b"bc"]));
        assert_ne!(one(&[b"abc"]), one(&[b"abc", b""]));
    }
}
