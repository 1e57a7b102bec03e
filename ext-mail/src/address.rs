//! Addresses and header text that cannot inject headers: [`Address`], [`Mailbox`] and the
//! checks on free text (subjects, display names, extra headers).

use std::fmt;
use std::str::FromStr;

use crate::error::{AddressError, HeaderProblem};

/// Characters that must never reach a header: CR, LF, NUL and the other C0/C1 controls, and
/// the Unicode bidi controls (LRM, RLM, ALM, LRE…RLO, LRI…PDI) that make a header read
/// differently from what it is (a translated template can carry FSI/PDI marks).
pub(crate) fn forbidden_char(c: char) -> Option<HeaderProblem> {
    match c {
        '\r' | '\n' => Some(HeaderProblem::LineBreak),
        '\u{2028}' | '\u{2029}' | '\u{0085}' => Some(HeaderProblem::LineBreak),
        '\t' => None,
        c if c.is_control() => Some(HeaderProblem::Control(c)),
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => Some(HeaderProblem::Bidi(c)),
        _ => None,
    }
}

/// Checks free text bound for a header (a subject, a display name, an extra header's value):
/// no line breaks, no controls, no bidi marks, no percent-encoded line breaks, and no
/// pre-encoded RFC 2047 words (Flagon encodes non-ASCII itself; a pre-encoded word is how a
/// line break hides from a check like this one).
pub(crate) fn check_text(text: &str) -> Result<(), HeaderProblem> {
    if let Some(p) = text.chars().find_map(forbidden_char) {
        return Err(p);
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("%0d") || lower.contains("%0a") {
        return Err(HeaderProblem::EncodedLineBreak);
    }
    if text.contains("=?") {
        return Err(HeaderProblem::PreEncoded);
    }
    Ok(())
}

/// An email address (`local@domain`), checked: no whitespace, controls, bidi marks or
/// encoded line breaks, and valid by lettre's address rules.
///
/// ```
/// use flagon_mail::Address;
///
/// let a: Address = "bob@example.com".parse().unwrap();
/// assert_eq!(a.domain(), "example.com");
/// assert!("bob@example.com\r\nBcc: evil@example.net".parse::<Address>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(lettre::Address);

impl Address {
    /// Parses and checks `s`.
    pub fn new(s: &str) -> Result<Address, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Some(p) = s.chars().find_map(forbidden_char) {
            return Err(AddressError::Header(p));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(AddressError::Invalid(s.to_owned()));
        }
        let lower = s.to_ascii_lowercase();
        if lower.contains("%0d") || lower.contains("%0a") {
            return Err(AddressError::Header(HeaderProblem::EncodedLineBreak));
        }
        if s.contains("=?") {
            return Err(AddressError::Header(HeaderProblem::PreEncoded));
        }
        // An address beginning with `-` would be an option to a sendmail binary; Flagon has
        // no sendmail transport, but a relay might: refuse it everywhere.
        if s.starts_with('-') {
            return Err(AddressError::Invalid(s.to_owned()));
        }
        // One form for every domain: IDNA (UTS 46) to ASCII, so `bücher.example` and
        // `xn--bcher-kva.example` are the same address and no SMTPUTF8 is needed for it.
        let (user, domain) = s
            .rsplit_once('@')
            .ok_or_else(|| AddressError::Invalid(s.to_owned()))?;
        let domain =
            idna::domain_to_ascii(domain).map_err(|_| AddressError::Invalid(s.to_owned()))?;
        format!("{user}@{domain}")
            .parse::<lettre::Address>()
            .map(Address)
            .map_err(|_| AddressError::Invalid(s.to_owned()))
    }

    /// The whole address.
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The part after `@`.
    pub fn domain(&self) -> &str {
        self.0.domain()
    }

    /// The part before `@`.
    pub fn user(&self) -> &str {
        self.0.user()
    }

    pub(crate) fn lettre(&self) -> &lettre::Address {
        &self.0
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::new(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.as_str())
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Address::new(&s).map_err(serde::de::Error::custom)
    }
}

/// An address with an optional display name (`"Ann Example" <ann@example.com>`), both
/// checked. The name is free text: non-ASCII is RFC 2047-encoded when the message is
/// written.
///
/// ```
/// use flagon_mail::Mailbox;
///
/// let m: Mailbox = "Ann Example <ann@example.com>".parse().unwrap();
/// assert_eq!(m.name(), Some("Ann Example"));
/// let m = Mailbox::new(Some("Zoë"), "zoe@example.com").unwrap();
/// assert_eq!(m.address().as_str(), "zoe@example.com");
/// assert!(Mailbox::new(Some("Ann\r\nBcc: evil@example.net"), "ann@example.com").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    name: Option<String>,
    address: Address,
}

impl Mailbox {
    /// A mailbox from a display name (or `None`) and an address.
    pub fn new(name: Option<&str>, address: &str) -> Result<Mailbox, AddressError> {
        let address = Address::new(address)?;
        let name = match name.map(str::trim) {
            None | Some("") => None,
            Some(n) => {
                check_text(n).map_err(AddressError::Name)?;
                Some(n.to_owned())
            }
        };
        Ok(Mailbox { name, address })
    }

    /// The display name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    pub(crate) fn lettre(&self) -> lettre::message::Mailbox {
        lettre::message::Mailbox::new(self.name.clone(), self.address.lettre().clone())
    }
}

impl From<Address> for Mailbox {
    fn from(address: Address) -> Self {
        Mailbox {
            name: None,
            address,
        }
    }
}

impl FromStr for Mailbox {
    type Err = AddressError;

    /// `addr@example.com`, `<addr@example.com>` or `Name <addr@example.com>` (the name may
    /// be in double quotes).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = s.chars().find_map(forbidden_char) {
            return Err(AddressError::Header(p));
        }
        let s = s.trim();
        match s.rfind('<') {
            Some(open) if s.ends_with('>') => {
                let name = s[..open].trim();
                let name = name
                    .strip_prefix('"')
                    .and_then(|n| n.strip_suffix('"'))
                    .unwrap_or(name);
                Mailbox::new(Some(name), &s[open + 1..s.len() - 1])
            }
            _ => Mailbox::new(None, s),
        }
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "\"{}\" <{}>", n.replace('"', "\\\""), self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailbox({self})")
    }
}

impl serde::Serialize for Mailbox {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mailbox {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_reject_every_way_of_smuggling_a_header() {
        for bad in [
            "bob@example.com\r\nBcc: evil@example.net",
            "bob@example.com\nBcc: evil@example.net",
            "bob@example.com\rBcc: evil@example.net",
            "bob@example.com%0d%0aBcc:evil@example.net",
            "bob@example.com%0ABcc:evil@example.net",
            "=?utf-8?q?bob=0D=0A?=@example.com",
            "bob\u{2068}@example.com",
            "bob@exa\u{202E}mple.com",
            "bob@example.com\0",
            "-oQ/tmp/x@example.com",
            "bob example@example.com",
            "",
            "no-at-sign",
        ] {
            assert!(Address::new(bad).is_err(), "{bad:?} was accepted");
            assert!(bad.parse::<Mailbox>().is_err(), "{bad:?} was accepted");
        }
        assert!(Address::new("o'brien+tag@example.co.uk").is_ok());
    }

    #[test]
    fn international_domains_are_normalised_to_one_ascii_form() {
        let a = Address::new("ann@Bücher.Example").unwrap();
        assert_eq!(a.as_str(), "ann@xn--bcher-kva.example");
        assert_eq!(a, Address::new("ann@xn--bcher-kva.example").unwrap());
        assert_eq!(
            Address::new("ann@EXAMPLE.com").unwrap().domain(),
            "example.com"
        );
        assert!(Address::new("ann@exa mple.com").is_err());
    }

    #[test]
    fn display_names_are_free_text_without_line_breaks_or_bidi_marks() {
        for bad in [
            "Ann\r\nBcc: evil@example.net",
            "Ann\nX",
            "Ann\u{2068}Admin\u{2069}",
            "Ann\u{200F}",
            "=?utf-8?b?QW5uDQpCY2M6IGV2aWw=?=",
            "Ann%0d%0aBcc: x",
        ] {
            let e = Mailbox::new(Some(bad), "ann@example.com").unwrap_err();
            assert!(matches!(e, AddressError::Name(_)), "{bad:?}: {e}");
        }
        let m: Mailbox = "\"Zoë Ü\" <zoe@example.com>".parse().unwrap();
        assert_eq!(m.name(), Some("Zoë Ü"));
        let m: Mailbox = "<zoe@example.com>".parse().unwrap();
        assert_eq!(m.name(), None);
    }
}
