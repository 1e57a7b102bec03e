//! Our own `Accept-Language` parser (RFC 9110 §12.5.4) and RFC 4647 matching against the
//! available locales.
//!
//! fluent-langneg's parser ignores q-weights, keeps `q=0` ranges and puts no bound on its
//! input, so it is not used. This one reads at most `max_len` bytes of the header (cut at
//! the last `,` before the limit, as Django does since CVE-2023-23969) and keeps at most
//! `max_ranges` ranges (never more than [`MAX_RANGES`]), in a fixed array on the stack:
//! parsing allocates nothing and takes time linear in the bytes read. Invalid items
//! (`q=1.0001`, `q=.5`, a 9-letter subtag) are skipped; the rest still count.

use flagon::Locale;

/// The most ranges ever kept from one header, whatever the configuration says.
pub const MAX_RANGES: usize = 32;

/// One language range and its weight in thousandths (`q=0.5` is 500).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range<'a> {
    /// The range as written (`en-US`, `en_US`, `*`).
    pub tag: &'a str,
    /// The weight, 0–1000.
    pub q: u16,
}

/// The ranges of one header, highest weight first, header order kept among equal weights.
/// Kept as offsets into the header in a fixed array (6 bytes a range), so parsing touches
/// no heap and little stack.
#[derive(Clone, Debug)]
pub struct Ranges<'a> {
    header: &'a str,
    items: [Slot; MAX_RANGES],
    len: usize,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    start: u16,
    len: u16,
    q: u16,
}

impl<'a> Ranges<'a> {
    /// The ranges, highest weight first.
    pub fn iter(&self) -> impl Iterator<Item = Range<'a>> + '_ {
        self.items[..self.len].iter().map(|s| Range {
            tag: self
                .header
                .get(s.start as usize..(s.start + s.len) as usize)
                .unwrap_or(""),
            q: s.q,
        })
    }

    /// How many ranges were kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no valid range was found.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The most bytes of a header ever read, whatever the configuration says.
pub const MAX_LEN: usize = 8192;

/// Parses an `Accept-Language` value: at most `max_len` bytes (capped at [`MAX_LEN`]) and
/// `max_ranges` ranges (capped at [`MAX_RANGES`]).
///
/// ```
/// let r = flagon_i18n::accept::parse("fr;q=0, en;q=0.5, de", 500, 32);
/// let tags: Vec<(&str, u16)> = r.iter().map(|r| (r.tag, r.q)).collect();
/// assert_eq!(tags, [("de", 1000), ("en", 500), ("fr", 0)]);
/// ```
pub fn parse(header: &str, max_len: usize, max_ranges: usize) -> Ranges<'_> {
    let mut out = Ranges {
        header,
        items: [Slot::default(); MAX_RANGES],
        len: 0,
    };
    let cap = max_ranges.min(MAX_RANGES);
    let max_len = max_len.min(MAX_LEN);
    let mut input = header.as_bytes();
    if input.len() > max_len {
        input = &input[..max_len];
        // The cut item is likely incomplete: drop it.
        match memrchr(b',', input) {
            Some(i) => input = &input[..i],
            None => return out,
        }
    }
    let mut offset = 0usize;
    for item in input.split(|&b| b == b',') {
        let at = offset;
        offset += item.len() + 1;
        if out.len == cap {
            break;
        }
        if let Some((start, len, q)) = parse_item(item) {
            let slot = Slot {
                start: (at + start) as u16,
                len: len as u16,
                q,
            };
            // Stable insertion by weight, highest first.
            let mut i = out.len;
            while i > 0 && out.items[i - 1].q < q {
                out.items[i] = out.items[i - 1];
                i -= 1;
            }
            out.items[i] = slot;
            out.len += 1;
        }
    }
    out
}

fn memrchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().rposition(|&b| b == needle)
}

/// One item, in one pass: the range's offset and length within `item`, and its weight.
/// `language-range = (1*8ALPHA *("-" 1*8alphanum)) / "*"`, also admitting `_` as the
/// separator (`en_US`, common from POSIX locales; matched as `en-US`).
fn parse_item(item: &[u8]) -> Option<(usize, usize, u16)> {
    let ows = |i: &mut usize| {
        while *i < item.len() && (item[*i] == b' ' || item[*i] == b'\t') {
            *i += 1;
        }
    };
    let mut i = 0;
    ows(&mut i);
    let start = i;
    if item.get(i) == Some(&b'*') {
        i += 1;
    } else {
        // `1*8ALPHA *( ("-" / "_") 1*8alphanum )`
        let mut first = true;
        loop {
            let sub = i;
            while i < item.len()
                && i - sub < 9
                && (if first {
                    item[i].is_ascii_alphabetic()
                } else {
                    item[i].is_ascii_alphanumeric()
                })
            {
                i += 1;
            }
            if !(1..=8).contains(&(i - sub)) {
                return None;
            }
            first = false;
            match item.get(i) {
                Some(b'-' | b'_') => i += 1,
                _ => break,
            }
        }
    }
    let end = i;
    ows(&mut i);
    if i == item.len() {
        return (end > start).then_some((start, end - start, 1000));
    }
    if item[i] != b';' {
        return None;
    }
    i += 1;
    ows(&mut i);
    // Only one parameter is defined: the weight, `q=` with no space inside.
    if item.len() < i + 2 || !(item[i] == b'q' || item[i] == b'Q') || item[i + 1] != b'=' {
        return None;
    }
    i += 2;
    let v = i;
    while i < item.len() && item[i] != b' ' && item[i] != b'\t' {
        i += 1;
    }
    let q = parse_qvalue(&item[v..i])?;
    ows(&mut i);
    (i == item.len()).then_some((start, end - start, q))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let frac = frac.unwrap_or(b"");
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match int {
        b"0" => {
            let mut n: u16 = 0;
            for i in 0..3 {
                n = n * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
            }
            Some(n)
        }
        b"1" if frac.iter().all(|&d| d == b'0') => Some(1000),
        _ => None,
    }
}

fn norm(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

/// Whether tags `a` and `b` are the same, ignoring case and reading `_` as `-`.
pub fn tag_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

/// RFC 4647 §3.3.1 basic filtering: `range` matches `tag` when equal to it or a prefix of it
/// ending at a `-`; `*` matches everything.
pub fn filter_matches(range: &str, tag: &str) -> bool {
    if range == "*" {
        return true;
    }
    let (r, t) = (range.as_bytes(), tag.as_bytes());
    r.len() <= t.len()
        && r.iter().zip(t).all(|(x, y)| norm(*x) == norm(*y))
        && (t.len() == r.len() || norm(t[r.len()]) == b'-')
}

/// The RFC 4647 §3.4 lookup of one range among `available`: the range, then the range
/// truncated from the right (`zh-Hant-TW` → `zh-Hant` → `zh`), a trailing singleton
/// (`x`, `u`) removed with the subtag after it. When no truncation is available, the first
/// available locale the range matches by basic filtering (`zh` → `zh-Hant`) is taken.
/// `allowed` excludes locales (those a `q=0` range refused).
pub fn lookup(range: &str, available: &[Locale], allowed: impl Fn(usize) -> bool) -> Option<usize> {
    let mut candidate = range;
    loop {
        if let Some(i) = available.iter().position(|a| tag_eq(a.as_str(), candidate))
            && allowed(i)
        {
            return Some(i);
        }
        let Some(cut) = candidate.rfind(['-', '_']) else {
            break;
        };
        candidate = &candidate[..cut];
        if let Some(cut) = candidate.rfind(['-', '_'])
            && candidate.len() - cut == 2
        {
            candidate = &candidate[..cut];
        }
    }
    available
        .iter()
        .enumerate()
        .position(|(i, a)| allowed(i) && filter_matches(range, a.as_str()))
}

/// The available locale (an index into `available`) the ranges pick: each range with a
/// weight above 0 in turn, through [`lookup`]; `*` picks the first available locale no
/// range refused. A locale a `q=0` range matches is never picked. `None` when nothing
/// matches (the caller then uses its default).
pub fn negotiate(ranges: &Ranges<'_>, available: &[Locale]) -> Option<usize> {
    let any_refusal = ranges.iter().any(|r| r.q == 0);
    let refused = |i: usize| {
        any_refusal
            && ranges
                .iter()
                .any(|r| r.q == 0 && r.tag != "*" && filter_matches(r.tag, available[i].as_str()))
    };
    for r in ranges.iter().take_while(|r| r.q > 0) {
        let found = if r.tag == "*" {
            (0..available.len()).find(|&i| !refused(i))
        } else {
            lookup(r.tag, available, |i| !refused(i))
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags<'a>(r: &Ranges<'a>) -> Vec<(&'a str, u16)> {
        r.iter().map(|r| (r.tag, r.q)).collect()
    }

    #[test]
    fn weights_follow_the_grammar() {
        let r = parse(
            "a;q=1.0001, b;q=-1, c;q=abc, d;q=.5, e;q=0.5000, f;q=, g;q=0.5, h;q=1.000, i ; q=0.25, j;q = 0.5, k;Q=0.125",
            500,
            32,
        );
        assert_eq!(tags(&r), [("h", 1000), ("g", 500), ("i", 250), ("k", 125)]);
    }

    #[test]
    fn ties_keep_header_order() {
        let r = parse("b;q=0.5, a, c;q=0.5, d", 500, 32);
        assert_eq!(tags(&r), [("a", 1000), ("d", 1000), ("b", 500), ("c", 500)]);
    }

    #[test]
    fn long_headers_are_cut_at_a_comma() {
        let r = parse("en, fr, deutschland", 12, 32);
        assert_eq!(tags(&r), [("en", 1000), ("fr", 1000)]);
        let r = parse("abcdefgh-abcdefgh", 5, 32);
        assert!(r.is_empty());
    }

    #[test]
    fn item_count_is_capped() {
        let header = "en,".repeat(100);
        assert_eq!(parse(&header, 10_000, 32).len(), 32);
        assert_eq!(parse(&header, 10_000, 4).len(), 4);
        assert_eq!(parse(&header, 10_000, 1000).len(), 32);
    }

    #[test]
    fn ranges_are_checked() {
        for bad in [
            "abcdefghi",
            "en-",
            "-en",
            "1en",
            "en--us",
            "e n",
            "en/us",
            "",
        ] {
            assert!(parse(bad, 500, 32).is_empty(), "{bad}");
        }
        for ok in [
            "*",
            "EN-us",
            "zh-Hant-TW",
            "es-419",
            "en_US",
            "i-klingon",
            "x-foo",
        ] {
            assert_eq!(tags(&parse(ok, 500, 32)), [(ok, 1000)]);
        }
    }

    #[test]
    fn lookup_truncates_and_drops_singletons() {
        let avail: Vec<Locale> = ["en", "zh-Hant", "zh"]
            .iter()
            .map(|t| Locale::parse(t).unwrap())
            .collect();
        assert_eq!(lookup("zh-Hant-CN-x-private1", &avail, |_| true), Some(1));
        assert_eq!(lookup("zh-Hans-CN", &avail, |_| true), Some(2));
        assert_eq!(lookup("ZH-hant", &avail, |_| true), Some(1));
        assert_eq!(lookup("fr", &avail, |_| true), None);
        let only_script: Vec<Locale> = ["en", "zh-Hant"]
            .iter()
            .map(|t| Locale::parse(t).unwrap())
            .collect();
        assert_eq!(lookup("zh", &only_script, |_| true), Some(1));
    }
}
