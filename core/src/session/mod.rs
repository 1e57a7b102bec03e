//! Server-side sessions: a signed random id in a cookie, the data in a store.
//!
//! A handler takes a [`Session`] extractor and reads and writes typed values; Flagon loads
//! the record on first use (a request that never touches the session costs no store call
//! and gets no cookie), saves it after the response, and sets the cookie.
//!
//! ```
//! use flagon::session::Session;
//!
//! async fn counter(session: Session) -> Result<String, flagon::HttpError> {
//!     let visits: u64 = session.get("visits").unwrap_or(0) + 1;
//!     session.insert("visits", visits)?;
//!     Ok(format!("visit number {visits}"))
//! }
//! ```
//!
//! * Ids are 128 random bits, signed with the app's secret key in the cookie, so a forged
//!   id is refused without a store lookup. A tampered, truncated, oversized, duplicated or
//!   unknown cookie is an empty session; writing to it issues a fresh id, never the
//!   client's.
//! * [`Session::rotate_id`] moves the data to a fresh id and deletes the old record (call
//!   it on login); [`Session::delete`] deletes the record (logout).
//! * Idle and absolute timeouts (`session.idle_timeout`, `session.absolute_timeout`); use
//!   refreshes the idle deadline but never past the absolute one.
//! * The cookie is `HttpOnly`, `SameSite=Lax`, `Secure` and `__Host-`-prefixed unless the
//!   development-only `session.insecure_plain_http` is on. Every response to a request that
//!   read the session carries `Vary: Cookie` and `Cache-Control: private` (a handler's
//!   `no-store` or `private` stays).
//! * Store calls are bounded by `session.store_timeout`; a failure gives an empty session
//!   (`on_store_error = "empty"`, logged) or a 503 with `Retry-After` (`"unavailable"`).
//!   A failure to save after the handler ran is logged; in `unavailable` mode the response
//!   becomes that 503 too (the handler's other effects have happened).
//! * Saving hands the store only the keys the request changed, applied atomically
//!   ([`SessionStore::update`]): concurrent requests of one visitor keep each other's
//!   changes. A session over `session.max_record_bytes` is not saved (logged; the previous
//!   state stays, and the response goes out).
//! * Keys starting with `_` are Flagon's own (`_flashes`, `_csrf_secret`); templates do
//!   not see them.
//!
//! Stores are chosen by name (`[session] store = "memory"`); extensions add more with
//! [`Setup::session_store`](crate::Setup::session_store). See [`SessionConfig`] for the
//! settings.

mod clock;
mod config;
pub mod conformance;
mod cookie;
mod memory;
mod runtime;
pub(crate) mod setup;
mod store;

use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use clock::{Clock, ManualClock, SystemClock, unix_secs};
pub use config::{OnStoreError, SameSite, SessionConfig};
pub use memory::MemoryStore;
pub use setup::SessionStores;
pub use store::{
    Changes, Id, Record, SessionStore, StoreContext, StoreError, StoreFactory, StoreFuture,
    Updated, encoded_size,
};

pub(crate) use runtime::{Loaded, RequestSession, SessionRuntime};

use crate::http_error::HttpError;
use crate::request::RequestMeta;

/// The request's session, loaded. An axum extractor; cheap to clone (clones share state).
///
/// Values are serde JSON: anything `Serialize` goes in, anything `Deserialize` comes out.
/// Changes are saved after the handler returns.
#[derive(Clone)]
pub struct Session(pub(crate) SessionRef);

/// The request's session handle, reached through the request's core metadata.
#[derive(Clone)]
pub(crate) struct SessionRef(RequestMeta);

impl std::ops::Deref for SessionRef {
    type Target = RequestSession;

    fn deref(&self) -> &RequestSession {
        self.0
            .session()
            .expect("a SessionRef is only made for a request with sessions set up")
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

/// A value could not be stored in the session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The value does not serialise to JSON (for example a map with non-string keys).
    #[error("the value for session key `{key}` cannot be stored as JSON: {source}")]
    Serialize {
        /// The key.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl Session {
    /// The session of a request that passed through a Flagon app, loaded (for
    /// `before_request` hooks). Errs with the response to send when the store is
    /// unavailable (`on_store_error = "unavailable"`) or sessions are not set up.
    pub fn from_request(
        req: &Request,
    ) -> impl std::future::Future<Output = Result<Session, Response>> + Send + 'static {
        Session::from_parts(req.extensions(), req.headers())
    }

    pub(crate) fn from_parts(
        ext: &http::Extensions,
        headers: &http::HeaderMap,
    ) -> impl std::future::Future<Output = Result<Session, Response>> + Send + 'static {
        let handle = ext
            .get::<RequestMeta>()
            .filter(|m| m.session.is_some())
            .cloned()
            .map(SessionRef);
        let cookie = handle.as_ref().and_then(|h| h.cookie(headers));
        Session::load(handle, cookie)
    }

    async fn load(
        handle: Option<SessionRef>,
        cookie: Option<cookie::Found>,
    ) -> Result<Session, Response> {
        let Some(handle) = handle else {
            return Err(HttpError::internal(
                "no session on this request: it did not pass through a Flagon app with sessions set up",
            )
            .into_response());
        };
        match handle.load(cookie).await {
            Loaded::Ok => Ok(Session(handle)),
            Loaded::Unavailable => Err(handle.rt.unavailable()),
        }
    }

    /// The value under `key`, if present and of type `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let st = self.0.lock();
        let v = st.data.get(key)?;
        T::deserialize(v).ok()
    }

    /// The raw JSON value under `key`.
    pub fn get_value(&self, key: &str) -> Option<serde_json::Value> {
        self.0.lock().data.get(key).cloned()
    }

    /// Stores `value` under `key`.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let v = serde_json::to_value(value).map_err(|source| SessionError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        let mut st = self.0.lock();
        st.note(key, Some(v.clone()));
        st.data.insert(key.to_owned(), v);
        Ok(())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &str) -> Option<serde_json::Value> {
        let mut st = self.0.lock();
        let old = st.data.remove(key);
        if old.is_some() {
            st.note(key, None);
        }
        old
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.lock().data.contains_key(key)
    }

    /// Whether the session holds no values.
    pub fn is_empty(&self) -> bool {
        self.0.lock().data.is_empty()
    }

    /// The keys present.
    pub fn keys(&self) -> Vec<String> {
        self.0.lock().data.keys().cloned().collect()
    }

    /// Removes every value (the record is deleted when the response is sent).
    pub fn clear(&self) {
        let mut st = self.0.lock();
        st.modified |= !st.data.is_empty();
        st.cleared = true;
        st.changed.clear();
        st.data.clear();
    }

    /// Whether this session has no stored record yet (first visit, expired or refused
    /// cookie).
    pub fn is_new(&self) -> bool {
        self.0.lock().stored.is_none()
    }

    /// Moves the data to a fresh id and deletes the old record when the response is sent
    /// (anti-fixation: call it on login, re-login and user switch). The new record starts
    /// a new absolute lifetime, and the session's CSRF secret is replaced, so a token handed
    /// out before the switch is refused after it.
    pub fn rotate_id(&self) {
        let mut st = self.0.lock();
        st.data.remove(crate::csrf::SECRET_KEY);
        st.rotate = true;
        st.modified = true;
    }

    /// Deletes the session (logout): the record is deleted and the cookie removed. Values
    /// inserted afterwards in the same request start a new session with a fresh id.
    pub fn delete(&self) {
        let mut st = self.0.lock();
        st.data.clear();
        st.cleared = true;
        st.changed.clear();
        st.deleted = true;
        st.modified = true;
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Session::from_parts(&parts.extensions, &parts.headers).await
    }
}
