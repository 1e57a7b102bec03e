//! Small signing helpers shared by sessions and CSRF: HMAC-SHA256 with the app's secret key,
//! constant-time verification, and hex encoding.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// A 32-byte key derived from the app's secret key for one purpose
/// ([`AppHandle::derive_key`](crate::AppHandle::derive_key),
/// [`Setup::derive_key`](crate::Setup::derive_key)).
///
/// It is `HMAC-SHA256(secret_key, "flagon key derivation\0" ‖ purpose)`: keys for different
/// purposes are independent, so a signature made with one never verifies with another, and
/// knowing one key reveals neither the secret key nor any other purpose's key. The same
/// secret key and purpose give the same key in every process and every build. `Debug` does
/// not print the bytes.
#[derive(Clone)]
pub struct DerivedKey([u8; 32]);

impl DerivedKey {
    /// The key's bytes, to key an HMAC, a cipher or a cookie jar.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedKey(..)")
    }
}

/// The secret key, absorbed once into an HMAC state, from which purpose keys are derived.
/// Core puts it in a setup slot before anything else registers; `Setup::derive_key`,
/// `AppHandle::derive_key` and core's own signers (session cookies, CSRF) all derive from it.
#[derive(Clone)]
pub(crate) struct KeyRing(HmacSha256);

impl KeyRing {
    pub(crate) fn new(secret: &[u8]) -> Self {
        KeyRing(HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length"))
    }

    /// The key for `purpose`.
    pub(crate) fn derive(&self, purpose: &str) -> DerivedKey {
        let mut mac = self.0.clone();
        mac.update(b"flagon key derivation\0");
        mac.update(purpose.as_bytes());
        DerivedKey(mac.finalize().into_bytes().into())
    }
}

/// An HMAC-SHA256 signing key for one purpose, so that a signature made for sessions never
/// verifies as a CSRF token and the reverse. It keeps the HMAC state with the key already
/// absorbed, so each signature costs two hash blocks, not four.
#[derive(Clone)]
pub(crate) struct SigningKey(HmacSha256);

impl SigningKey {
    /// A signing key keyed with `key`.
    pub(crate) fn new(key: &DerivedKey) -> Self {
        SigningKey(
            HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length"),
        )
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.0.clone();
        for p in parts {
            mac.update(&(p.len() as u32).to_be_bytes());
            mac.update(p);
        }
        mac
    }

    /// The first 16 bytes of the HMAC of `parts` (each length-prefixed).
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> [u8; 16] {
        let full = self.mac(parts).finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// Checks a 16-byte tag in constant time.
    pub(crate) fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        tag.len() == 16 && self.mac(parts).verify_truncated_left(tag).is_ok()
    }
}

/// A short-input MAC for session cookies: SipHash-2-4 with a 128-bit key derived from the
/// secret key, and a 128-bit tag. SipHash is a keyed PRF designed for authenticating short
/// messages (DNS server cookies, RFC 9018, use it the same way); a session id is 16 bytes,
/// so a tag costs a few hundred instructions where HMAC-SHA256 costs several thousand, on
/// every request that reads its session.
#[derive(Clone)]
pub(crate) struct ShortMac(siphasher::sip128::SipHasher24);

impl ShortMac {
    /// A MAC keyed from `key`.
    pub(crate) fn new(key: &DerivedKey) -> Self {
        let full = SigningKey::new(key).tag(&[b"siphash-2-4-128 key"]);
        ShortMac(siphasher::sip128::SipHasher24::new_with_key(&full))
    }

    /// The tag of `msg`.
    pub(crate) fn tag(&self, msg: &[u8]) -> [u8; 16] {
        self.0.hash(msg).as_bytes()
    }

    /// Checks a 16-byte tag in constant time (`subtle`, on two 64-bit words rather than
    /// sixteen bytes: the same guarantee, a tenth of the instructions).
    pub(crate) fn verify(&self, msg: &[u8], tag: &[u8]) -> bool {
        let Ok(tag) = <[u8; 16]>::try_from(tag) else {
            return false;
        };
        let want = self.tag(msg);
        let word =
            |b: &[u8; 16], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let equal = word(&want, 0).ct_eq(&word(&tag, 0)) & word(&want, 8).ct_eq(&word(&tag, 8));
        equal.into()
    }
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Decodes lower- or upper-case hex into `out`; `false` unless `text` is exactly
/// `2 * out.len()` hex digits.
pub(crate) fn unhex(text: &[u8], out: &mut [u8]) -> bool {
    if text.len() != out.len() * 2 {
        return false;
    }
    // Cookies and tokens are decoded on every request: one table load per digit, and one
    // check at the end (a non-digit's 0xff marks the whole text bad; `out` is then garbage).
    let mut seen = 0u8;
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (h, l) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        seen |= h | l;
        *o = (h << 4) | l;
    }
    seen <= 0x0f
}

/// The value of each hex digit (either case); 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xff_u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// 16 bytes from the operating system's CSPRNG (through `rand`'s thread-local generator,
/// a ChaCha CSPRNG seeded and periodically reseeded from the OS).
pub(crate) fn random_16() -> [u8; 16] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0xab, 0xff];
        let h = hex(&b);
        assert_eq!(h, "0001abff");
        let mut out = [0u8; 4];
        assert!(unhex(h.as_bytes(), &mut out));
        assert_eq!(out, b);
        assert!(!unhex(b"0001abf", &mut out));
        assert!(!unhex(b"0001abfg", &mut out));
        for b in 0..=255u8 {
            let mut one = [0u8; 1];
            let digit = (b as char).to_digit(16);
            assert_eq!(unhex(&[b, b'0'], &mut one), digit.is_some(), "{b}");
            assert_eq!(unhex(&[b'0', b], &mut one), digit.is_some(), "{b}");
            if let Some(d) = digit {
                assert_eq!(one[0], d as u8);
            }
        }
    }

    #[test]
    fn keys_are_separated_by_purpose() {
        let ring = KeyRing::new(b"secret");
        let a = SigningKey::new(&ring.derive("session"));
        let b = SigningKey::new(&ring.derive("csrf"));
        let tag = a.tag(&[b"x"]);
        assert!(a.verify(&[b"x"], &tag));
        assert!(!b.verify(&[b"x"], &tag));
        assert!(!a.verify(&[b"y"], &tag));
        assert!(!a.verify(&[b"x"], &tag[..8]));
    }

    #[test]
    fn derived_keys_are_hmac_of_the_purpose() {
        // The derivation is part of the format of every signed value: it must not change.
        let mut mac = HmacSha256::new_from_slice(b"secret").unwrap();
        mac.update(b"flagon key derivation\0login.remember");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(
            KeyRing::new(b"secret").derive("login.remember").as_bytes(),
            &expected
        );
        assert_eq!(
            format!("{:?}", KeyRing::new(b"secret").derive("x")),
            "DerivedKey(..)"
        );
    }
}
