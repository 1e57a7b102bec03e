//! The request's user: loaded at most once per request (a request-scoped value), from the
//! session, a remember-me cookie or a bearer token, in that order of preference (a bearer
//! token first: it never touches the session).

use std::sync::{Arc, Mutex, OnceLock};

use flagon::axum::response::Response;
use flagon::http::{HeaderMap, HeaderValue, header};
use flagon::session::{Clock, Session};
use flagon::{AppHandle, BoxFuture, RequestHead, RequestLocal, tracing};
use hmac::{Hmac, Mac};
use memchr::memmem;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::{LoginConfig, SessionProtection};
use crate::passwords::Passwords;
use crate::signals::{
    RememberTokenTheft, SessionProtected, UserLoadedFromCookie, UserLoadedFromRequest,
};
use crate::store::{RememberStore, hex};
use crate::tokens::{self, Checked};
use crate::user::{LoaderFn, User};

/// Session keys login keeps (reserved: they start with `_`).
pub(crate) const USER_ID: &str = "_user_id";
pub(crate) const AUTH: &str = "_auth";
pub(crate) const FRESH: &str = "_fresh";
pub(crate) const FRESH_AT: &str = "_fresh_at";
pub(crate) const FINGERPRINT: &str = "_fp";
pub(crate) const REMEMBER: &str = "_remember";
const KEYS: [&str; 6] = [USER_ID, AUTH, FRESH, FRESH_AT, FINGERPRINT, REMEMBER];

/// How the request's user was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// Nobody is logged in.
    Anonymous,
    /// The session (logged in on this session, or restored from a remember-me cookie).
    Session,
    /// A remember-me cookie in this very request.
    Remember,
    /// A bearer JWT.
    Jwt,
    /// An API key.
    ApiKey,
}

impl AuthMethod {
    /// By a bearer credential (JWT or API key): no cookie, so no CSRF token needed.
    pub fn is_bearer(self) -> bool {
        matches!(self, AuthMethod::Jwt | AuthMethod::ApiKey)
    }

    /// By the session or a remember-me cookie.
    pub fn is_session(self) -> bool {
        matches!(self, AuthMethod::Session | AuthMethod::Remember)
    }
}

/// What the after-response step does with the remember cookie.
#[derive(Clone, Debug, Default)]
pub(crate) enum CookieOp {
    #[default]
    Keep,
    /// The token and its cookie's `Max-Age` in seconds.
    Set(String, u64),
    Clear,
}

pub(crate) struct State<U> {
    pub user: Option<Arc<U>>,
    pub method: AuthMethod,
    pub fresh: bool,
    pub cookie: CookieOp,
}

/// The request-scoped value: the user and what to do with the cookie afterwards.
pub(crate) struct Current<U> {
    pub state: Mutex<State<U>>,
}

impl<U> Current<U> {
    fn new(user: Option<Arc<U>>, method: AuthMethod, fresh: bool, cookie: CookieOp) -> Self {
        Current {
            state: Mutex::new(State {
                user,
                method,
                fresh,
                cookie,
            }),
        }
    }

    fn anonymous(cookie: CookieOp) -> Self {
        Current::new(None, AuthMethod::Anonymous, false, cookie)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State<U>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn user(&self) -> Option<Arc<U>> {
        self.lock().user.clone()
    }
}

/// The remember cookie's name and attributes, as core's session cookie has them.
#[derive(Clone, Debug)]
pub(crate) struct CookieSpec {
    pub name: String,
    pub attributes: String,
    /// Finds the name's bytes in a `Cookie` header: a header without them cannot hold the
    /// cookie, so the usual request (no remember cookie) is not split pair by pair.
    finder: memmem::Finder<'static>,
}

impl CookieSpec {
    pub fn from_config(cfg: &LoginConfig, settings: &flagon::config::Config) -> CookieSpec {
        let insecure = settings
            .value::<bool>("session.insecure_plain_http")
            .ok()
            .flatten()
            .unwrap_or(false);
        let same_site = settings
            .value::<String>("session.same_site")
            .ok()
            .flatten()
            .unwrap_or_else(|| "lax".into());
        let same_site = match same_site.as_str() {
            "strict" => "Strict",
            "none" => "None",
            _ => "Lax",
        };
        let mut attributes = format!("; Path=/; HttpOnly; SameSite={same_site}");
        let name = if insecure {
            cfg.remember_cookie_name.clone()
        } else {
            attributes.push_str("; Secure");
            format!("__Host-{}", cfg.remember_cookie_name)
        };
        let finder = memmem::Finder::new(name.as_bytes()).into_owned();
        CookieSpec {
            name,
            attributes,
            finder,
        }
    }

    pub fn set(&self, value: &str, max_age: u64) -> String {
        format!(
            "{}={value}; Max-Age={max_age}{}",
            self.name, self.attributes
        )
    }

    pub fn clear(&self) -> String {
        format!("{}=; Max-Age=0{}", self.name, self.attributes)
    }

    /// The cookie's value in `headers` (a duplicated name counts as absent).
    pub fn find(&self, headers: &HeaderMap) -> Option<String> {
        let mut found = None;
        for h in headers.get_all(header::COOKIE) {
            if self.finder.find(h.as_bytes()).is_none() {
                continue;
            }
            let Ok(s) = h.to_str() else { continue };
            for pair in s.split(';') {
                let Some((k, v)) = pair.split_once('=') else {
                    continue;
                };
                if k.trim() == self.name {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(v.trim().to_owned());
                }
            }
        }
        found.filter(|v| !v.is_empty() && v.len() <= 256)
    }
}

/// A bearer credential resolver: JWTs and API keys (set up by `Login`).
pub(crate) type BearerFn =
    Arc<dyn Fn(String) -> BoxFuture<Option<(String, AuthMethod)>> + Send + Sync>;

pub(crate) struct Runtime<U> {
    pub cfg: LoginConfig,
    pub loader: LoaderFn<U>,
    pub passwords: Arc<Passwords>,
    pub store: OnceLock<Arc<dyn RememberStore>>,
    /// HMAC-SHA256 keyed with the `login.auth` key, cloned for each digest (keying pads
    /// and hashes the key: done once, not per request).
    pub auth_mac: Hmac<Sha256>,
    pub cookie: CookieSpec,
    pub clock: Arc<dyn Clock>,
    pub bearer: Option<BearerFn>,
    pub key: OnceLock<RequestLocal<Current<U>>>,
    pub throttle: crate::throttle::Throttle,
}

impl<U: User> Runtime<U> {
    pub fn now(&self) -> u64 {
        self.clock.unix_now()
    }

    pub fn store(&self) -> Option<&Arc<dyn RememberStore>> {
        self.store.get()
    }

    /// The keyed digest of a user's auth hash, raw.
    fn auth_mac(&self, user: &U) -> [u8; 32] {
        let mut mac = self.auth_mac.clone();
        mac.update(&user.auth_hash());
        mac.finalize().into_bytes().into()
    }

    /// The keyed digest of a user's auth hash kept in the session and with tokens (hex).
    pub fn auth_digest(&self, user: &U) -> String {
        hex(&self.auth_mac(user))
    }

    /// Whether `stored` (a hex digest from the session or a token record) is the user's
    /// current digest, compared in constant time. Anything but 64 lowercase hex digits, as
    /// [`Runtime::auth_digest`] writes them, never matches.
    pub fn digest_matches(&self, user: &U, stored: &[u8]) -> bool {
        digest_eq(&self.auth_mac(user), stored)
    }
    /// Loads a user, logging a loader failure (the request is then anonymous).
    pub async fn load(&self, id: String) -> Option<Arc<U>> {
        match (self.loader)(id).await {
            Ok(u) => u.map(Arc::new),
            Err(e) => {
                tracing::error!(target: "flagon_login", error = %e, "the user loader failed; the request is anonymous");
                None
            }
        }
    }

    pub fn is_fresh(&self, session: &Session) -> bool {
        if !session.get::<bool>(FRESH).unwrap_or(false) {
            return false;
        }
        let max = self.cfg.fresh_max_age.as_secs();
        max == 0
            || self
                .now()
                .saturating_sub(session.get::<u64>(FRESH_AT).unwrap_or(0))
                <= max
    }
}

/// Removes login's keys from a session (the rest stays).
pub(crate) fn forget(session: &Session) {
    for k in KEYS {
        session.remove(k);
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lowercase hex into `out` (twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (o, b) in out.chunks_exact_mut(2).zip(bytes) {
        o[0] = HEX_DIGITS[(b >> 4) as usize];
        o[1] = HEX_DIGITS[(b & 15) as usize];
    }
}

/// Whether `stored` is `digest` as 64 lowercase hex digits. The digest is written as hex
/// and the two texts compared in constant time, eight bytes a step: whatever `stored`
/// holds, only its length decides how long this takes.
fn digest_eq(digest: &[u8; 32], stored: &[u8]) -> bool {
    let Ok(stored) = <&[u8; 64]>::try_from(stored) else {
        return false;
    };
    let mut ours = [0u8; 64];
    hex_into(&mut ours, digest);
    let words = |b: &[u8; 64]| -> [u64; 8] {
        std::array::from_fn(|i| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(w)
        })
    };
    bool::from(words(&ours)[..].ct_eq(&words(stored)[..]))
}

/// A session value read without allocating: the string when it has exactly `N` bytes,
/// `None` for a string of any other length; a value that is not a string does not
/// deserialize (`Session::get` then answers `None`).
pub(crate) struct Fixed<const N: usize>(pub(crate) Option<[u8; N]>);

impl<'de, const N: usize> serde::Deserialize<'de> for Fixed<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<const N: usize> serde::de::Visitor<'_> for V<N> {
            type Value = Fixed<N>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Fixed<N>, E> {
                Ok(Fixed(<[u8; N]>::try_from(s.as_bytes()).ok()))
            }
        }
        d.deserialize_str(V::<N>)
    }
}

/// A session-protection fingerprint: 32 lowercase hex digits, kept on the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Room for the longest address `IpAddr`'s `Display` writes (an IPv6 address with an
/// embedded IPv4 one: 45 bytes).
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    /// Writes `ip` as its `Display` does (`203.0.113.7`), without the formatting machinery:
    /// most clients are IPv4 and this runs on every request that loads its user.
    fn push_v4(&mut self, ip: std::net::Ipv4Addr) {
        for (i, n) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            if n >= 100 {
                self.push(b'0' + n / 100);
            }
            if n >= 10 {
                self.push(b'0' + n / 10 % 10);
            }
            self.push(b'0' + n % 10);
        }
    }

    fn push(&mut self, b: u8) {
        // At most 15 bytes for an IPv4 address.
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The session-protection fingerprint: SHA-256 of the client IP as text (core's,
/// trusted-proxy aware), `|` and the User-Agent, its first 16 bytes in hex. The address is
/// written on the stack, not into a `String`: the fingerprint is computed for every request
/// that loads its user from the session.
pub(crate) fn fingerprint(
    ip: Option<flagon::ClientIp>,
    headers: Option<&HeaderMap>,
) -> Fingerprint {
    use sha2::Digest;
    use std::fmt::Write;
    let ua = headers
        .and_then(|h| h.get(header::USER_AGENT))
        .map(HeaderValue::as_bytes)
        .unwrap_or(b"");
    let mut text = IpText {
        buf: [0; 48],
        len: 0,
    };
    match ip.map(|ip| ip.0) {
        Some(std::net::IpAddr::V4(v4)) => text.push_v4(v4),
        Some(ip) => {
            // Cannot fail: 48 bytes hold any address.
            let _ = write!(text, "{ip}");
        }
        None => {}
    }
    let mut h = Sha256::new();
    h.update(&text.buf[..text.len]);
    h.update(b"|");
    h.update(ua);
    let mut out = [0u8; 32];
    hex_into(&mut out, &h.finalize()[..16]);
    Fingerprint(out)
}

/// The `Authorization: Bearer` credential, if any.
pub(crate) fn bearer_of(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 8192)
        .then(|| token.trim().to_owned())
}

/// The init of the request-scoped user.
pub(crate) fn init<U: User>(
    rt: Arc<Runtime<U>>,
    head: &RequestHead<'_>,
) -> impl std::future::Future<Output = Current<U>> + Send + 'static + use<U> {
    let app = head.app().clone();
    let headers = head.headers();
    let bearer = headers.and_then(bearer_of);
    let remember = headers.and_then(|h| rt.cookie.find(h));
    let fp = fingerprint(head.client_ip(), headers);
    let session = Session::load_in(head);
    async move {
        if let Some(token) = bearer {
            return from_bearer(&rt, &app, token).await;
        }
        let Ok(session) = session.await else {
            return Current::anonymous(CookieOp::Keep);
        };
        if let Some(id) = session.get::<String>(USER_ID) {
            return from_session(&rt, &app, &session, id, fp.as_str()).await;
        }
        match remember {
            Some(raw) => from_cookie(&rt, &app, &session, &raw, fp.as_str()).await,
            None => Current::anonymous(CookieOp::Keep),
        }
    }
}

async fn from_bearer<U: User>(rt: &Runtime<U>, app: &AppHandle, token: String) -> Current<U> {
    let Some(resolve) = &rt.bearer else {
        return Current::anonymous(CookieOp::Keep);
    };
    let Some((id, method)) = resolve(token).await else {
        return Current::anonymous(CookieOp::Keep);
    };
    match rt.load(id).await {
        Some(user) if user.is_active() => {
            app.signals()
                .emit(UserLoadedFromRequest { user_id: user.id() });
            Current::new(Some(user), method, false, CookieOp::Keep)
        }
        _ => Current::anonymous(CookieOp::Keep),
    }
}

async fn revoke_series<U: User>(rt: &Runtime<U>, selector: Option<String>) {
    if let (Some(store), Some(sel)) = (rt.store(), selector)
        && let Err(e) = store.delete(&sel).await
    {
        tracing::error!(target: "flagon_login", error = %e, "could not revoke a remember-me token");
    }
}

async fn from_session<U: User>(
    rt: &Runtime<U>,
    app: &AppHandle,
    session: &Session,
    id: String,
    fp: &str,
) -> Current<U> {
    // Read into fixed-size values (no allocation): a fingerprint has 32 bytes, a digest
    // 64; any other value differs from the one computed.
    let stored_fp = session.get::<Fixed<32>>(FINGERPRINT).and_then(|f| f.0);
    let moved = stored_fp.is_none_or(|s| s != fp.as_bytes());
    if moved && rt.cfg.session_protection == SessionProtection::Strong {
        revoke_series(rt, session.get(REMEMBER)).await;
        session.delete();
        app.signals().emit(SessionProtected {
            user_id: id,
            deleted: true,
        });
        return Current::anonymous(CookieOp::Clear);
    }
    let user = rt.load(id).await;
    let stored = session.get::<Fixed<64>>(AUTH).and_then(|f| f.0);
    let stored: &[u8] = stored.as_ref().map_or(&[], |s| s);
    let Some(user) = user.filter(|u| u.is_active() && rt.digest_matches(u, stored)) else {
        // Gone, deactivated, or its password changed since: this session is over. The id
        // is read again for the log (the loader took it).
        let id = session.get::<String>(USER_ID).unwrap_or_default();
        tracing::info!(target: "flagon_login", user_id = %id, "a session's user is gone, inactive or changed its credentials; logged out");
        revoke_series(rt, session.get(REMEMBER)).await;
        session.delete();
        return Current::anonymous(CookieOp::Clear);
    };
    if moved && rt.cfg.session_protection == SessionProtection::Basic {
        let _ = session.insert(FRESH, false);
        let _ = session.insert(FINGERPRINT, fp);
        app.signals().emit(SessionProtected {
            user_id: session.get::<String>(USER_ID).unwrap_or_default(),
            deleted: false,
        });
    }
    let fresh = rt.is_fresh(session);
    Current::new(Some(user), AuthMethod::Session, fresh, CookieOp::Keep)
}

async fn from_cookie<U: User>(
    rt: &Runtime<U>,
    app: &AppHandle,
    session: &Session,
    raw: &str,
    fp: &str,
) -> Current<U> {
    let Some(store) = rt.store() else {
        return Current::anonymous(CookieOp::Keep);
    };
    let now = rt.now();
    let checked = match tokens::check(store, raw, now, rt.cfg.remember_rotation_grace).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "flagon_login", error = %e, "the remember-token store failed; the request is anonymous");
            return Current::anonymous(CookieOp::Keep);
        }
    };
    let (record, replacement) = match checked {
        Checked::Valid {
            record,
            replacement,
        } => (record, replacement),
        Checked::Invalid => return Current::anonymous(CookieOp::Clear),
        Checked::Theft { user_id } => {
            app.signals().emit(RememberTokenTheft { user_id });
            return Current::anonymous(CookieOp::Clear);
        }
    };
    let user = rt.load(record.user_id.clone()).await;
    let Some(user) =
        user.filter(|u| u.is_active() && rt.digest_matches(u, record.auth_digest.as_bytes()))
    else {
        revoke_series(rt, Some(record.selector)).await;
        return Current::anonymous(CookieOp::Clear);
    };
    // A new login on this session: a fresh id (a planted session is never adopted), not
    // fresh (Flask-Login's `_fresh = False`).
    session.rotate_id();
    forget(session);
    let _ = session.insert(USER_ID, user.id());
    let _ = session.insert(AUTH, &record.auth_digest);
    let _ = session.insert(FRESH, false);
    let _ = session.insert(FINGERPRINT, fp);
    let _ = session.insert(REMEMBER, &record.selector);
    app.signals()
        .emit(UserLoadedFromCookie { user_id: user.id() });
    let cookie = match replacement {
        Some(v) => CookieOp::Set(v, record.expires_at.saturating_sub(now)),
        None => CookieOp::Keep,
    };
    Current::new(Some(user), AuthMethod::Remember, false, cookie)
}

/// The after-response step: sets or clears the remember cookie.
pub(crate) fn finish<U: User>(
    rt: &Runtime<U>,
    current: &Current<U>,
    mut res: Response,
    completed: bool,
) -> Response {
    let state = current.lock();
    if state.method.is_bearer() {
        res.headers_mut()
            .append(header::VARY, HeaderValue::from_static("authorization"));
    }
    if !completed {
        return res;
    }
    let line = match &state.cookie {
        CookieOp::Keep => return res,
        CookieOp::Set(v, max_age) => rt.cookie.set(v, *max_age),
        CookieOp::Clear => rt.cookie.clear(),
    };
    if let Ok(v) = HeaderValue::from_str(&line) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint as sessions stored it before it was computed on the stack: stored
    /// fingerprints must keep matching.
    fn fingerprint_with_strings(ip: Option<flagon::ClientIp>, ua: &str) -> String {
        use sha2::Digest;
        let mut h = Sha256::new();
        h.update(ip.map(|i| i.0.to_string()).unwrap_or_default().as_bytes());
        h.update(b"|");
        h.update(ua.as_bytes());
        hex(&h.finalize()[..16])
    }

    #[test]
    fn fingerprints_are_unchanged() {
        let ips = [
            None,
            Some("127.0.0.1"),
            Some("0.0.0.0"),
            Some("10.20.3.199"),
            Some("100.9.80.7"),
            Some("255.255.255.255"),
            Some("::1"),
            Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            Some("::ffff:192.168.100.200"),
        ];
        for ip in ips {
            let ip = ip.map(|s| flagon::ClientIp(s.parse().unwrap()));
            for ua in ["", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"] {
                let mut headers = HeaderMap::new();
                if !ua.is_empty() {
                    headers.insert(header::USER_AGENT, HeaderValue::from_static(ua));
                }
                assert_eq!(
                    fingerprint(ip, Some(&headers)).as_str(),
                    fingerprint_with_strings(ip, ua),
                    "{ip:?} {ua}"
                );
            }
        }
    }

    #[test]
    fn only_the_lowercase_hex_digest_matches() {
        let digest: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
        let text = hex(&digest);
        assert!(digest_eq(&digest, text.as_bytes()));
        assert!(!digest_eq(&digest, text.to_uppercase().as_bytes()));
        assert!(!digest_eq(&digest, &text.as_bytes()[..62]));
        assert!(!digest_eq(&digest, format!("{text}0").as_bytes()));
        assert!(!digest_eq(&digest, "g".repeat(64).as_bytes()));
        assert!(!digest_eq(&digest, b""));
        // Every position counts.
        for i in 0..64 {
            let mut other = text.clone().into_bytes();
            other[i] = if other[i] == b'0' { b'1' } else { b'0' };
            assert!(!digest_eq(&digest, &other), "{i}");
        }
        let mut other = digest;
        other[31] ^= 1;
        assert!(!digest_eq(&other, text.as_bytes()));
    }

    #[test]
    fn fixed_session_values_read_strings_of_their_length_only() {
        let read = |v: serde_json::Value| -> Option<Option<[u8; 4]>> {
            <Fixed<4> as serde::Deserialize>::deserialize(&v)
                .ok()
                .map(|f| f.0)
        };
        assert_eq!(read(serde_json::json!("abcd")), Some(Some(*b"abcd")));
        assert_eq!(read(serde_json::json!("abc")), Some(None));
        assert_eq!(read(serde_json::json!("abcde")), Some(None));
        assert_eq!(read(serde_json::json!(1234)), None);
        assert_eq!(read(serde_json::json!(null)), None);
    }
}
