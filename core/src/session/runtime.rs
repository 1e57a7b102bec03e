//! The per-request session state: loaded lazily on first use, persisted after the response.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, Entry, RETRY_AFTER, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::Session;
use super::clock::Clock;
use super::config::{OnStoreError, SessionConfig};
use super::cookie::{CookieCodec, Found};
use super::store::{Changes, Id, Record, SessionStore, SharedRecord, StoreError, encoded_size};
use crate::future::Eventually;
use crate::http_error::HttpError;
use crate::timeout::Deadline;

/// A reaction to a session's identity changing ([`Session::rotate_id`], [`Session::delete`]).
pub(crate) type RotateFn = Arc<dyn Fn(&Session) + Send + Sync>;

/// Everything sessions need, built once with the app.
pub(crate) struct SessionRuntime {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) config: SessionConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) codec: CookieCodec,
    pub(crate) on_rotate: Vec<RotateFn>,
}

impl SessionRuntime {
    async fn call<T>(
        &self,
        what: &'static str,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut deadline = Deadline::after(self.config.store_timeout);
        self.call_by(what, &mut deadline, fut).await
    }

    /// A store call that must finish by `deadline` (several calls can share one budget).
    async fn call_by<T>(
        &self,
        what: &'static str,
        deadline: &mut Deadline,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let bound = self.config.store_timeout;
        let res = match crate::timeout::ready_or_by(deadline, fut).await {
            Some(r) => r,
            None => Err(StoreError::Timeout(bound)),
        };
        if let Err(e) = &res {
            tracing::warn!(target: "flagon::session", operation = what, error = %e, "session store call failed");
        }
        res
    }

    fn idle_deadline(&self, now: u64, created_at: u64) -> u64 {
        let idle = now.saturating_add(self.config.idle_timeout.as_secs());
        idle.min(self.absolute_deadline(created_at))
    }

    /// Whether an unchanged session's expiry has moved far enough to be written (a touch):
    /// by a tenth of the idle timeout, so that a session read on every request is not
    /// written on every request.
    fn touch_due(&self, s: Stored) -> bool {
        self.touch_due_at(self.clock.unix_now(), s)
    }

    fn touch_due_at(&self, now: u64, s: Stored) -> bool {
        let granularity = (self.config.idle_timeout.as_secs() / 10).max(1);
        self.idle_deadline(now, s.created_at) >= s.expires_at.saturating_add(granularity)
    }

    fn absolute_deadline(&self, created_at: u64) -> u64 {
        created_at.saturating_add(self.config.absolute_timeout.as_secs())
    }

    /// Loads the record the cookie names into `st` (expired or unknown: left empty).
    async fn load_into(&self, st: &mut State, cookie: Found) -> Loaded {
        let Some(id) = self.wanted(st, cookie) else {
            return Loaded::Ok;
        };
        let got = self.call("load", self.store.load_shared(&id)).await;
        match self.settle(st, id, got) {
            Settled::Done(loaded) => loaded,
            Settled::Expired => {
                let _ = self.call("delete", self.store.delete(&id)).await;
                Loaded::Ok
            }
        }
    }

    /// The id to load, if the cookie names a well-signed one.
    fn wanted(&self, st: &mut State, cookie: Found) -> Option<Id> {
        st.had_cookie = cookie != Found::Absent;
        match cookie {
            Found::Absent => None,
            Found::Invalid(why) => {
                tracing::debug!(target: "flagon::session", reason = why, "ignoring an unusable session cookie");
                None
            }
            Found::Valid(id) => Some(id),
        }
    }

    /// Takes what the store answered for `id` into `st`.
    fn settle(
        &self,
        st: &mut State,
        id: Id,
        got: Result<Option<SharedRecord>, StoreError>,
    ) -> Settled {
        match got {
            Ok(Some(record)) => {
                let now = self.clock.unix_now();
                let expired = record.id != id
                    || record.expires_at <= now
                    || self.absolute_deadline(record.created_at) <= now;
                if expired {
                    return Settled::Expired;
                }
                st.stored = Some(Stored {
                    id,
                    created_at: record.created_at,
                    expires_at: record.expires_at,
                });
                st.data = Data::shared(record.data);
                Settled::Done(Loaded::Ok)
            }
            Ok(None) => Settled::Done(Loaded::Ok),
            Err(_) => {
                st.load_failed = true;
                Settled::Done(match self.config.on_store_error {
                    OnStoreError::Empty => Loaded::Ok,
                    OnStoreError::Unavailable => Loaded::Unavailable,
                })
            }
        }
    }

    /// The 503 a failed store gives in `unavailable` mode.
    pub(crate) fn unavailable(&self) -> Response {
        let mut res = HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sessions are temporarily unavailable; try again shortly.",
        )
        .into_response();
        let secs = self.config.retry_after.as_secs().max(1);
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
        res
    }
}

/// The session as held during one request.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) data: Data,
    /// The record this session was loaded from, if any.
    pub(crate) stored: Option<Stored>,
    pub(crate) modified: bool,
    pub(crate) rotate: bool,
    pub(crate) deleted: bool,
    /// Whether the request carried a session cookie (even an unusable one).
    pub(crate) had_cookie: bool,
    /// The store failed to load the session: it is empty for this request and never
    /// persisted, so a store blip cannot replace the user's cookie with a new session.
    pub(crate) load_failed: bool,
    /// The keys this request set (`Some`) or removed (`None`). Saving hands only these to
    /// the store's atomic [`SessionStore::update`], so concurrent requests changing other
    /// keys do not lose each other's changes.
    pub(crate) changed: BTreeMap<String, Option<serde_json::Value>>,
    /// This request cleared the session: its data replaces the stored data whole.
    pub(crate) cleared: bool,
}

impl State {
    /// Records that `key` now holds `value` (`None`: removed).
    pub(crate) fn note(&mut self, key: &str, value: Option<serde_json::Value>) {
        self.modified = true;
        if !self.cleared {
            self.changed.insert(key.to_owned(), value);
        }
    }
}

/// A session's values: shared with the store's copy until the request first writes to
/// them, then the request's own. A request that only reads its session copies nothing, and
/// dropping it frees nothing.
#[derive(Default)]
pub(crate) struct Data {
    shared: Option<Arc<BTreeMap<String, serde_json::Value>>>,
    owned: BTreeMap<String, serde_json::Value>,
}

impl Data {
    fn shared(data: Arc<BTreeMap<String, serde_json::Value>>) -> Self {
        Data {
            shared: Some(data),
            owned: BTreeMap::new(),
        }
    }

    /// The values, to change (copied first if they are shared).
    pub(crate) fn to_mut(&mut self) -> &mut BTreeMap<String, serde_json::Value> {
        if let Some(shared) = self.shared.take() {
            self.owned = Arc::unwrap_or_clone(shared);
        }
        &mut self.owned
    }

    pub(crate) fn into_owned(self) -> BTreeMap<String, serde_json::Value> {
        match self.shared {
            Some(shared) => Arc::unwrap_or_clone(shared),
            None => self.owned,
        }
    }
}

impl std::ops::Deref for Data {
    type Target = BTreeMap<String, serde_json::Value>;

    fn deref(&self) -> &Self::Target {
        self.shared.as_deref().unwrap_or(&self.owned)
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Stored {
    pub(crate) id: Id,
    pub(crate) created_at: u64,
    pub(crate) expires_at: u64,
}

/// How the load went.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loaded {
    Ok,
    /// The store failed and the mode is `unavailable`.
    Unavailable,
}

/// What a store's answer left to do.
enum Settled {
    Done(Loaded),
    /// The record had expired: it is deleted, and the session starts empty.
    Expired,
}

/// One request's session, loaded on first use (the value of sessions' request-local).
pub(crate) struct RequestSession {
    /// `None` only if the app was built without a session runtime (never after a
    /// successful build); the session is then empty and never saved.
    pub(crate) rt: Option<Arc<SessionRuntime>>,
    pub(crate) loaded: Loaded,
    pub(crate) state: Mutex<State>,
}

impl RequestSession {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads the session from what the request's `Cookie` headers hold.
    pub(crate) async fn load(rt: Option<Arc<SessionRuntime>>, cookie: Found) -> RequestSession {
        let mut state = State::default();
        let loaded = match &rt {
            Some(rt) => rt.load_into(&mut state, cookie).await,
            None => Loaded::Ok,
        };
        RequestSession {
            rt,
            loaded,
            state: Mutex::new(state),
        }
    }

    /// Loads the session, without a future when no store call has to wait: no cookie, an
    /// unusable one, or a store that answers from memory ([`SessionStore::load_now`]).
    pub(crate) fn load_eventually(
        rt: Option<Arc<SessionRuntime>>,
        cookie: Found,
    ) -> Eventually<RequestSession> {
        let Some(runtime) = &rt else {
            return Eventually::Now(RequestSession::new(rt, Loaded::Ok, State::default()));
        };
        let mut state = State::default();
        let Some(id) = runtime.wanted(&mut state, cookie) else {
            return Eventually::Now(RequestSession::new(rt, Loaded::Ok, state));
        };
        let Some(got) = runtime.store.load_now(&id) else {
            return Eventually::later(RequestSession::load(rt, Found::Valid(id)));
        };
        if let Err(e) = &got {
            tracing::warn!(target: "flagon::session", operation = "load", error = %e, "session store call failed");
        }
        match runtime.settle(&mut state, id, got) {
            Settled::Done(loaded) => Eventually::Now(RequestSession::new(rt, loaded, state)),
            Settled::Expired => Eventually::later(async move {
                if let Some(runtime) = &rt {
                    let _ = runtime.call("delete", runtime.store.delete(&id)).await;
                }
                RequestSession::new(rt, Loaded::Ok, state)
            }),
        }
    }

    fn new(rt: Option<Arc<SessionRuntime>>, loaded: Loaded, state: State) -> RequestSession {
        RequestSession {
            rt,
            loaded,
            state: Mutex::new(state),
        }
    }

    /// Tells the rotation listeners that `session`'s identity changed.
    pub(crate) fn notify_rotation(&self, session: &Session) {
        for f in self.rt.iter().flat_map(|rt| rt.on_rotate.iter()) {
            f(session);
        }
    }

    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.rt
            .as_ref()
            .map_or(1, |rt| rt.config.retry_after.as_secs())
    }

    /// [`finish`](Self::finish) without a future when there is nothing to store: the
    /// session was only read (and its expiry need not move yet), was never created, or the
    /// request did not complete. Only the headers are set then.
    pub(crate) fn finish_eventually(
        self: Arc<Self>,
        mut res: Response,
        completed: bool,
    ) -> Eventually<Response> {
        let Some(rt) = &self.rt else {
            return Eventually::Now(res);
        };
        let quiet = self.loaded == Loaded::Unavailable || {
            let st = self.lock();
            !completed
                || st.load_failed
                || (!st.deleted
                    && !st.modified
                    && !st.rotate
                    && match st.stored {
                        None => st.data.is_empty(),
                        Some(s) => !rt.touch_due(s),
                    })
        };
        if !quiet {
            return Eventually::later(self.finish(res, completed));
        }
        // The response depends on who asked: caches key on the cookie, shared ones keep none.
        add_vary_cookie(res.headers_mut());
        private(res.headers_mut());
        Eventually::Now(res)
    }

    /// Persists the session after the handler ran and sets the cookie headers. A request
    /// that did not complete (`completed` false: a panic or a timeout) persists nothing.
    pub(crate) async fn finish(self: Arc<Self>, mut res: Response, completed: bool) -> Response {
        let Some(rt) = &self.rt else {
            return res;
        };
        if self.loaded == Loaded::Unavailable {
            add_vary_cookie(res.headers_mut());
            private(res.headers_mut());
            return res;
        }
        // The response depends on who asked: caches key on the cookie, shared ones keep none.
        add_vary_cookie(res.headers_mut());
        private(res.headers_mut());
        let (data, stored, modified, rotate, deleted, had_cookie, changed) = {
            let mut st = self.lock();
            if !completed || st.load_failed {
                return res;
            }
            let changed = (!st.cleared).then(|| std::mem::take(&mut st.changed));
            (
                std::mem::take(&mut st.data),
                st.stored,
                st.modified,
                st.rotate,
                st.deleted,
                st.had_cookie,
                changed,
            )
        };
        // Every store call of this save shares one `store_timeout`.
        let mut deadline = Deadline::after(rt.config.store_timeout);
        let now = rt.clock.unix_now();
        let mut failed = false;
        let mut stored = stored;
        // A session over the size bound is not written at all: the stored record (if any)
        // stays as it was, and the response goes out.
        let oversized = modified && over_limit(&data, rt.config.max_record_bytes);

        if deleted || (stored.is_some() && modified && data.is_empty()) {
            if let Some(s) = stored.take() {
                failed |= rt
                    .call_by("delete", &mut deadline, rt.store.delete(&s.id))
                    .await
                    .is_err();
            }
            if data.is_empty() && had_cookie {
                res.headers_mut().append(SET_COOKIE, rt.codec.removal());
            }
        }
        match stored {
            _ if oversized => {}
            Some(s) if !rotate => {
                let expires_at = rt.idle_deadline(now, s.created_at);
                if modified || rt.touch_due_at(now, s) {
                    // One atomic store call: the store applies this request's changes to the
                    // record as it is now (another request may have changed other keys
                    // meanwhile); a record that is gone (a logout elsewhere) stays gone. An
                    // unchanged session only moves its expiry (a touch).
                    let changes = match changed {
                        Some(keys) => Changes {
                            keys,
                            replace: false,
                            expires_at,
                        },
                        None => Changes {
                            keys: data
                                .into_owned()
                                .into_iter()
                                .map(|(k, v)| (k, Some(v)))
                                .collect(),
                            replace: true,
                            expires_at,
                        },
                    };
                    let res = rt
                        .call_by("update", &mut deadline, rt.store.update(&s.id, &changes))
                        .await;
                    failed |= res.as_ref().err().is_some_and(is_outage);
                }
            }
            _ if data.is_empty() => {}
            old => {
                if let Some(s) = old {
                    failed |= rt
                        .call_by("delete", &mut deadline, rt.store.delete(&s.id))
                        .await
                        .is_err();
                }
                let mut record = Record {
                    id: Id::random(),
                    data: data.into_owned(),
                    created_at: now,
                    expires_at: rt.idle_deadline(now, now),
                };
                match rt
                    .call_by("create", &mut deadline, rt.store.create(&mut record))
                    .await
                {
                    Ok(()) => {
                        res.headers_mut()
                            .append(SET_COOKIE, rt.codec.set_cookie(&record.id));
                    }
                    Err(e) => failed |= is_outage(&e),
                }
            }
        }

        if failed && rt.config.on_store_error == OnStoreError::Unavailable {
            let mut unavailable = rt.unavailable();
            add_vary_cookie(unavailable.headers_mut());
            private(unavailable.headers_mut());
            return unavailable;
        }
        res
    }
}

/// Adds `Vary: Cookie` unless the response already varies on cookies (or on everything).
/// (The entry API: one hashed lookup whether or not the header is there.)
pub(crate) fn add_vary_cookie(headers: &mut HeaderMap) {
    let cookie = HeaderValue::from_static("Cookie");
    match headers.entry(VARY) {
        Entry::Vacant(e) => {
            e.insert(cookie);
        }
        Entry::Occupied(mut e) => {
            let present = e.iter().any(|v| {
                v.to_str().is_ok_and(|s| {
                    s.split(',')
                        .any(|p| p.trim().eq_ignore_ascii_case("cookie") || p.trim() == "*")
                })
            });
            if !present {
                e.append(cookie);
            }
        }
    }
}

/// A response that read the session is for this user alone: shared caches must not keep
/// it. A handler's `private` or `no-store` stays as it is; otherwise `private` is added,
/// replacing `public` and `s-maxage` and keeping the other directives (`max-age=60` becomes
/// `private, max-age=60`).
fn private(headers: &mut HeaderMap) {
    // The usual response has no `Cache-Control`: one hashed lookup inserts it.
    let mut entry = match headers.entry(CACHE_CONTROL) {
        Entry::Vacant(e) => {
            e.insert(HeaderValue::from_static("private"));
            return;
        }
        Entry::Occupied(e) => e,
    };
    let mut kept = Vec::new();
    for value in entry.iter() {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let name = directive.split('=').next().unwrap_or("").trim();
            if name.eq_ignore_ascii_case("private") || name.eq_ignore_ascii_case("no-store") {
                return;
            }
            if !name.eq_ignore_ascii_case("public") && !name.eq_ignore_ascii_case("s-maxage") {
                kept.push(directive.to_owned());
            }
        }
    }
    let value = if kept.is_empty() {
        HeaderValue::from_static("private")
    } else {
        HeaderValue::from_str(&format!("private, {}", kept.join(", ")))
            .unwrap_or(HeaderValue::from_static("private"))
    };
    // Replaces every `Cache-Control` line, as `HeaderMap::insert` does.
    entry.insert(value);
}

/// Whether `data` is over `session.max_record_bytes` (logged when it is).
fn over_limit(data: &BTreeMap<String, serde_json::Value>, limit: usize) -> bool {
    let size = encoded_size(data);
    if size > limit {
        tracing::error!(
            target: "flagon::session",
            size,
            limit,
            "session not saved: its data is over session.max_record_bytes; the previous state is kept"
        );
    }
    size > limit
}

/// Whether a store error counts as a failed save (a 503 in `unavailable` mode). A
/// record the store refused for its size is not an outage: it is logged, the stored record
/// is unchanged, and the response goes out.
fn is_outage(e: &StoreError) -> bool {
    !matches!(e, StoreError::TooLarge { .. })
}
