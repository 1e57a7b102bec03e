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
use crate::config::{Config, ConfigError, Profile};
use crate::error::{BoxError, SetupError};
use crate::registry::Registry;
use crate::setup::Setup;

/// What setup gathers for sessions.
#[derive(Clone, Default)]
pub(crate) struct SessionSlot {
    config: Option<SessionConfig>,
    stores: Vec<(String, StoreFactory)>,
    clock: Option<Arc<dyn Clock>>,
    on_rotate: Vec<RotateFn>,
    /// Filled by `finish`; the session request-local's init reads it.
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
        self.claim_name("session store", name);
        self.slot::<SessionSlot>()
            .stores
            .push((name.to_owned(), Arc::new(factory)));
        self
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
        self.claim_name("session clock", "clock");
        self.slot::<SessionSlot>().clock = Some(Arc::new(clock));
        self
    }
}

/// Reads `[session]` and offers the memory store. Core's request layer gives every request
/// a lazy session handle once the store is built (see `finish`).
pub(crate) fn init(s: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg: SessionConfig = s.config("session")?;
    if let Err((key, message)) = cfg.validate(s.profile() == Profile::Development) {
        return Err(s.config_error(key, message));
    }
    s.slot::<SessionSlot>().config = Some(cfg);
    // The loaded session is a request-scoped value: loaded on first use, saved after the
    // response by its after-response step.
    let runtime = s.slot::<SessionSlot>().runtime.clone();
    let key = s.request_local_async(move |head| {
        let rt = runtime.get().cloned();
        let cookie = match (&rt, head.headers()) {
            (Some(rt), Some(headers)) => rt.codec.find(headers),
            _ => Found::Absent,
        };
        RequestSession::load(rt, cookie)
    });
    s.after_response(
        key,
        |session: Arc<RequestSession>, res, outcome| async move {
            session.finish(res, outcome.completed).await
        },
    );
    s.slot::<SessionKey>().0 = Some(key);
    s.template_request_global("session", |req| {
        Ok(match Session::for_render(req)? {
            Some(session) => Value::from_object(SessionView(session)),
            None => Value::UNDEFINED,
        })
    });
    s.session_store("memory", |ctx| {
        let store = MemoryStore::with_clock(ctx.session_config().capacity, ctx.clock());
        Ok(Arc::new(store) as Arc<dyn SessionStore>)
    });
    Ok(())
}

/// Builds the selected store once every extension has registered.
pub(crate) fn finish(reg: &mut Registry, config: &Config, secret: &[u8]) -> Result<(), SetupError> {
    let Some(slot) = reg.slots.get::<SessionSlot>().cloned() else {
        return Ok(());
    };
    let Some(cfg) = slot.config else {
        return Ok(());
    };
    let error = |message: String| {
        SetupError::Config(ConfigError::new(
            "session.store",
            config.source_of("session.store"),
            message,
        ))
    };
    let Some((_, factory)) = slot.stores.iter().find(|(n, _)| *n == cfg.store) else {
        let names: Vec<&str> = slot.stores.iter().map(|(n, _)| n.as_str()).collect();
        return Err(error(format!(
            "unknown session store `{}`; registered stores: {} (extensions such as `db` \
             and `cache` add more)",
            cfg.store,
            names.join(", ")
        )));
    };
    let clock = slot.clock.unwrap_or_else(|| Arc::new(SystemClock));
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
    let codec = CookieCodec::new(secret, &cfg);
    let rt = Arc::new(SessionRuntime {
        store,
        config: cfg,
        clock,
        codec,
        on_rotate: slot.on_rotate,
    });
    let _ = slot.runtime.set(rt);
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
