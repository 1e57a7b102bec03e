//! Sessions at setup: the `[session]` section, the store registry, and building the runtime.

use std::sync::Arc;

use super::clock::{Clock, SystemClock};
use super::config::SessionConfig;
use super::cookie::CookieCodec;
use super::memory::MemoryStore;
use super::runtime::SessionRuntime;
use super::store::{SessionStore, StoreContext, StoreFactory};
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
pub(crate) fn finish(reg: &mut Registry, config: &Config) -> Result<(), SetupError> {
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
    let key = crate::crypto::derive_key(&reg.slots, "flagon.session.cookie");
    let codec = CookieCodec::new(&key, &cfg);
    reg.slots.insert(Arc::new(SessionRuntime {
        store,
        config: cfg,
        clock,
        codec,
    }));
    Ok(())
}
