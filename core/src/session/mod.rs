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
//! * Keys starting with `_` are reserved for Flagon and extensions (`_flashes`); templates
//!   do not see them.
//! * The session knows none of its consumers: code that must react when the session's
//!   identity changes (CSRF renews its secret) registers
//!   [`Setup::on_session_rotate`](crate::Setup::on_session_rotate).
//!
//! Sessions are built on the public request-scoped values ([`crate::RequestLocal`]): the
//! loaded session is an async request-local whose init loads the record and whose
//! after-response step saves it and sets the cookie. Templates reach it the same way, so a
//! render loads the session only if the template (or a context processor) uses it.
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

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use clock::{Clock, ManualClock, SystemClock, unix_secs};
pub use config::{OnStoreError, SameSite, SessionConfig};
pub use memory::MemoryStore;
pub use setup::SessionStores;
pub use store::{
    Changes, Id, Record, SessionStore, SharedRecord, StoreContext, StoreError, StoreFactory,
    StoreFuture, Updated, encoded_size,
};

pub(crate) use runtime::{Loaded, RequestSession, add_vary_cookie};

use crate::request::RequestMeta;
use crate::request_local::{RequestHead, RequestLocal, RequestScope, request_scope};
use crate::templates::RenderRequest;

/// The request's session, loaded. An axum extractor; cheap to clone (clones share state).
///
/// Values are serde JSON: anything `Serialize` goes in, anything `Deserialize` comes out.
/// Changes are saved after the handler returns.
#[derive(Clone)]
pub struct Session {
    inner: Arc<RequestSession>,
    meta: RequestMeta,
}

request_scope!(Session, |s| Some(RequestHead::meta_only(&s.meta)));

/// Where the app keeps its session key (set when sessions are set up).
#[derive(Clone, Copy, Default)]
pub(crate) struct SessionKey(pub(crate) Option<RequestLocal<RequestSession>>);

/// Why a [`Session`] could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionRejection {
    /// The request did not pass through a Flagon app with sessions set up.
    #[error(
        "no session on this request: it did not pass through a Flagon app with sessions set up"
    )]
    NotSetUp,
    /// The store failed and `session.on_store_error = "unavailable"`.
    #[error("sessions are temporarily unavailable; try again shortly")]
    Unavailable {
        /// Seconds for `Retry-After`.
        retry_after: u64,
    },
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        match self {
            SessionRejection::NotSetUp => {
                crate::HttpError::internal(self.to_string()).into_response()
            }
            SessionRejection::Unavailable { retry_after } => {
                let mut res = crate::HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sessions are temporarily unavailable; try again shortly.",
                )
                .into_response();
                res.headers_mut()
                    .insert(http::header::RETRY_AFTER, retry_after.max(1).into());
                res
            }
        }
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

/// `?` on a session write: a 500, its cause logged.
impl From<SessionError> for crate::HttpError {
    fn from(e: SessionError) -> Self {
        crate::HttpError::internal(e)
    }
}

impl Session {
    /// The session of a request that passed through a Flagon app, loaded (for
    /// `before_request` hooks). The future borrows nothing from `req`.
    /// Errs with the response to send (see [`SessionRejection`]).
    pub fn from_request(
        req: &Request,
    ) -> impl std::future::Future<Output = Result<Session, Response>> + Send + 'static {
        let loading = Session::load(req);
        async move { loading.await.map_err(IntoResponse::into_response) }
    }

    /// The session of any [`RequestScope`] (request parts, a request, a render), loaded.
    pub fn load<S: RequestScope>(
        scope: &S,
    ) -> impl std::future::Future<Output = Result<Session, SessionRejection>> + Send + use<S> {
        Session::load_head(scope.request_head())
    }

    /// [`Session::load`] from a request head: for the init of another request-scoped value
    /// (which gets a borrowed [`RequestHead`] and returns a `'static` future), such as
    /// login's user. The future's type names no lifetime of the head.
    pub fn load_in(
        head: &RequestHead<'_>,
    ) -> impl std::future::Future<Output = Result<Session, SessionRejection>> + Send + use<> {
        Session::load_head(head.request_head())
    }

    fn load_head(
        head: Option<RequestHead<'_>>,
    ) -> impl std::future::Future<Output = Result<Session, SessionRejection>> + Send + use<> {
        let meta = head.as_ref().map(|h| h.meta().clone());
        let key = head.as_ref().and_then(|h| key_of(h.app()));
        let loading = key.map(|k| k.load_in(head));
        async move {
            let (Some(meta), Some(loading)) = (meta, loading) else {
                return Err(SessionRejection::NotSetUp);
            };
            let inner = loading.await.ok_or(SessionRejection::NotSetUp)?;
            Session::checked(inner, meta)
        }
    }

    /// The session for a template function or context processor: `Ok(None)` outside a
    /// request; an error asking the render to load the session first when it is not loaded
    /// yet (the render then loads it and runs again; see [`RenderRequest::load`]).
    pub fn for_render(req: &RenderRequest) -> Result<Option<Session>, minijinja::Error> {
        let Some(head) = req.request_head() else {
            return Ok(None);
        };
        let Some(key) = key_of(head.app()) else {
            return Ok(None);
        };
        let Some(inner) = req.load(key)? else {
            return Ok(None);
        };
        match Session::checked(inner, head.meta().clone()) {
            Ok(s) => Ok(Some(s)),
            // A failed store shows templates an empty session; the handler decides on 503s.
            Err(_) => Ok(None),
        }
    }

    fn checked(inner: Arc<RequestSession>, meta: RequestMeta) -> Result<Session, SessionRejection> {
        match inner.loaded {
            Loaded::Ok => Ok(Session { inner, meta }),
            Loaded::Unavailable => Err(SessionRejection::Unavailable {
                retry_after: inner.retry_after_secs(),
            }),
        }
    }

    /// The value under `key`, if present and of type `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let st = self.inner.lock();
        let v = st.data.get(key)?;
        T::deserialize(v).ok()
    }

    /// The raw JSON value under `key`.
    pub fn get_value(&self, key: &str) -> Option<serde_json::Value> {
        self.inner.lock().data.get(key).cloned()
    }

    /// Stores `value` under `key`.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let v = serde_json::to_value(value).map_err(|source| SessionError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        let mut st = self.inner.lock();
        st.note(key, Some(v.clone()));
        st.data.to_mut().insert(key.to_owned(), v);
        Ok(())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &str) -> Option<serde_json::Value> {
        let mut st = self.inner.lock();
        // A key that is not there copies nothing.
        if !st.data.contains_key(key) {
            return None;
        }
        let old = st.data.to_mut().remove(key);
        if old.is_some() {
            st.note(key, None);
        }
        old
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.inner.lock().data.contains_key(key)
    }

    /// Whether the session holds no values.
    pub fn is_empty(&self) -> bool {
        self.inner.lock().data.is_empty()
    }

    /// The keys present.
    pub fn keys(&self) -> Vec<String> {
        self.inner.lock().data.keys().cloned().collect()
    }

    /// Removes every value (the record is deleted when the response is sent).
    pub fn clear(&self) {
        let mut st = self.inner.lock();
        st.modified |= !st.data.is_empty();
        st.cleared = true;
        st.changed.clear();
        st.data = Default::default();
    }

    /// Whether this session has no stored record yet (first visit, expired or refused
    /// cookie).
    pub fn is_new(&self) -> bool {
        self.inner.lock().stored.is_none()
    }

    /// Moves the data to a fresh id and deletes the old record when the response is sent
    /// (anti-fixation: call it on login, re-login and user switch). The new record starts
    /// a new absolute lifetime. Listeners registered with
    /// [`Setup::on_session_rotate`](crate::Setup::on_session_rotate) run (CSRF renews its
    /// secret, so a token handed out before the switch is refused after it).
    pub fn rotate_id(&self) {
        {
            let mut st = self.inner.lock();
            st.rotate = true;
            st.modified = true;
        }
        self.inner.notify_rotation(self);
    }

    /// Deletes the session (logout): the record is deleted and the cookie removed. Values
    /// inserted afterwards in the same request start a new session with a fresh id.
    pub fn delete(&self) {
        let mut st = self.inner.lock();
        st.data = Default::default();
        st.cleared = true;
        st.changed.clear();
        st.deleted = true;
        st.modified = true;
        drop(st);
        self.inner.notify_rotation(self);
    }
}

/// The app's session key, if sessions are set up.
fn key_of(app: &crate::AppHandle) -> Option<RequestLocal<RequestSession>> {
    app.state::<SessionKey>().and_then(|k| k.0)
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Session::load(parts).await
    }
}
