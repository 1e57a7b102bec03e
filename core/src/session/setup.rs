//! Sessions at setup: the `[session]` section, the store registry, and building the runtime.

use std::sync::{Arc, OnceLock};

use minijinja::Value;
use minijinja::value::{Enumerator, Object};

use super::clock::{Clock, SystemClock};
use super::config::SessionConfig;
use super::cookie::{CookieCodec, Found};
use super::memory::MemoryStore;
use super::runtime::{RequestSession, RotateFn, SessionRuntime};
use super::store::{SessionStore, StoreContext, StoreFactory};
use super::{Session, SessionKey};
use crate::config::Profile;
use crate::error::{BoxError, SetupError};
use crate::finish::Finish;
use crate::setup::Setup;

/// The session stores extensions offer, selectable with `[session] store = "name"`
/// (a registry: see [`RegistryKind`](crate::RegistryKind)). [`Setup::session_store`] adds
/// to it.
pub struct SessionStores;

impl crate::RegistryKind for SessionStores {
    type Entry = StoreFactory;
    const KIND: &'static str = "session store";
}

/// The clock sessions read, when replaced (one per app).
struct SessionClock;

impl crate::RegistryKind for SessionClock {
    type Entry = Arc<dyn Clock>;
    const KIND: &'static str = "session clock";
}

/// What setup gathers for sessions from everyone: the rotation listeners, and the cell the
/// finish step fills with the runtime (the session request-local's init reads it).
#[derive(Default)]
pub(crate) struct SessionSlot {
    on_rotate: Vec<RotateFn>,
    runtime: Arc<OnceLock<Arc<SessionRuntime>>>,
}

impl Setup<'_> {
    /// Offers a session store under `name`, selectable with `[session] store = "name"`.
    /// The factory runs once, when the app is built, and only if the store is selected.
    /// Two stores with one name fail the build, naming both registrations.
    ///
    /// ```
    /// # use flagon::{Setup, SetupError};
    /// use std::sync::Arc;
    /// use flagon::session::MemoryStore;
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// app.session_store("tiny", |ctx| {
    ///     Ok(Arc::new(MemoryStore::with_clock(16, ctx.clock())))
    /// });
    /// # Ok(()) }
    /// ```
    pub fn session_store<F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        F: Fn(&StoreContext<'_>) -> Result<Arc<dyn SessionStore>, BoxError> + Send + Sync + 'static,
    {
        self.add_to::<SessionStores>(name, Arc::new(factory))
    }

    /// Runs `f` whenever a request's session changes identity: [`Session::rotate_id`]
    /// (login) and [`Session::delete`] (logout). Consumers that bind something to the
    /// session react here (CSRF renews its secret, so older tokens stop verifying), so that
    /// sessions need not know them. `f` gets the session, which is a
    /// [`RequestScope`](crate::RequestScope) for reaching request-scoped values.
    pub fn on_session_rotate<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(&Session) + Send + Sync + 'static,
    {
        self.slot::<SessionSlot>().on_rotate.push(Arc::new(f));
        self
    }

    /// Replaces the clock sessions and the memory store read (tests use
    /// [`ManualClock`](crate::session::ManualClock) to step over timeouts).
    pub fn session_clock(&mut self, clock: impl Clock) -> &mut Self {
        self.add_to::<SessionClock>("clock", Arc::new(clock))
    }
}

/// Reads `[session]` and offers the memory store. Core's request layer gives every request
/// a lazy session handle once the store is built (see `finish`).
pub(crate) fn init(s: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg: SessionConfig = s.config("session")?;
    if let Err((key, message)) = cfg.validate(s.profile() == Profile::Development) {
        return Err(s.config_error(key, message));
    }
    let cell = s.slot::<SessionSlot>().runtime.clone();
    s.on_finish(move |f| finish(f, cfg, &cell));
    // The loaded session is a request-scoped value: loaded on first use, saved after the
    // response by its after-response step.
    let runtime = s.slot::<SessionSlot>().runtime.clone();
    let key = s.request_local_maybe_async(move |head| {
        let rt = runtime.get().cloned();
        let cookie = match (&rt, head.headers()) {
            (Some(rt), Some(headers)) => rt.codec.find(headers),
            _ => Found::Absent,
        };
        RequestSession::load_eventually(rt, cookie)
    });
    s.after_response_maybe_async(key, |session: Arc<RequestSession>, res, outcome| {
        session.finish_eventually(res, outcome.completed)
    });
    s.provide(SessionKey(Some(key)));
    s.template_request_global("session", |req| {
        Ok(match Session::for_render(req)? {
            Some(session) => Value::from_object(SessionView(session)),
            None => Value::UNDEFINED,
        })
    });
    s.session_store("memory", |ctx| {
        let cfg = ctx.session_config();
        let store = MemoryStore::with_clock(cfg.capacity, ctx.clock())
            .max_bytes(cfg.memory_max_bytes)
            .max_record_bytes(cfg.max_record_bytes);
        Ok(Arc::new(store) as Arc<dyn SessionStore>)
    });
    Ok(())
}

/// Builds the selected store once every extension has registered.
fn finish(
    f: &mut Finish<'_>,
    cfg: SessionConfig,
    cell: &OnceLock<Arc<SessionRuntime>>,
) -> Result<(), SetupError> {
    let config = f.settings();
    let stores = f.registry::<SessionStores>();
    let error = |message: String| SetupError::Config(config.error("session.store", message));
    let Some(factory) = stores.get(&cfg.store) else {
        let names: Vec<&str> = stores.names().collect();
        return Err(error(format!(
            "unknown session store `{}`; registered stores: {} (extensions such as `db` \
             and `cache` add more)",
            cfg.store,
            names.join(", ")
        )));
    };
    let clock = match f.registry::<SessionClock>().get("clock") {
        Some(clock) => clock.clone(),
        None => Arc::new(SystemClock),
    };
    let ctx = StoreContext {
        session: &cfg,
        settings: config,
        clock: clock.clone(),
    };
    let store = factory(&ctx).map_err(|e| {
        error(format!(
            "the `{}` store could not be created: {e}",
            cfg.store
        ))
    })?;
    let key = f.derive_key("flagon.session.cookie");
    let codec = CookieCodec::new(&key, &cfg);
    let on_rotate = f
        .take_slot::<SessionSlot>()
        .map(|s| s.on_rotate)
        .unwrap_or_default();
    let rt = Arc::new(SessionRuntime {
        store,
        config: cfg,
        clock,
        codec,
        on_rotate,
    });
    let _ = cell.set(rt);
    Ok(())
}

/// `session` in templates: the session's values, read-only. Keys starting with `_`
/// (reserved, such as pending flashes) are hidden.
#[derive(Debug)]
struct SessionView(Session);

impl Object for SessionView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str().filter(|k| !k.starts_with('_'))?;
        self.0.get_value(key).map(Value::from_serialize)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys = self.0.keys().into_iter().filter(|k| !k.starts_with('_'));
        Enumerator::Values(keys.map(Value::from).collect())
    }
}
