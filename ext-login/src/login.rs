//! The front type: `Login`, the extension.

use std::future::Future;
use std::io::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use flagon::axum::response::{IntoResponse, Response};
use flagon::clap::{Arg, Command};
use flagon::http::request::Parts;
use flagon::minijinja::Value;
use flagon::minijinja::value::Object;
use flagon::session::{Clock, SystemClock};
use flagon::{AppHandle, BoxError, Extension, RequestLocal, Setup, SetupError, tracing};

use crate::apikey::{self, LookupFn, StoredApiKey};
use crate::config::LoginConfig;
use crate::passwords::Passwords;
use crate::runtime::{self, AuthMethod, BearerFn, CookieSpec, Current, Runtime};
use crate::shared::{Facts, HandlerFn, Refusal, Shared};
use crate::store::{
    MemoryRememberStore, RememberStore, RememberStores, StoreError, StoreFactory, StoreSetup,
};
use crate::user::{LoaderFn, User, UserLoader, boxed_loader};

/// Flask-Login's `LoginManager`, revocable: register it with
/// `App::builder().register(Login::new(loader))`.
///
/// `U` is the app's user type; `loader` finds a user by id (Flask-Login's `user_loader`).
pub struct Login<U> {
    loader: LoaderFn<U>,
    login_view: Option<String>,
    api_keys: Option<LookupFn>,
    handler: Option<HandlerFn>,
    clock: Option<Arc<dyn Clock>>,
}

/// The app state behind the extractors.
pub(crate) struct Handle<U> {
    pub rt: Arc<Runtime<U>>,
    pub key: RequestLocal<Current<U>>,
}

impl<U: User> Login<U> {
    /// The extension, loading users with `loader`.
    pub fn new(loader: impl UserLoader<U>) -> Login<U> {
        Login {
            loader: boxed_loader(loader),
            login_view: None,
            api_keys: None,
            handler: None,
            clock: None,
        }
    }

    /// The login page's endpoint (Flask-Login's `login_manager.login_view = "auth.login"`),
    /// used unless `[login] login_view` is set. Checked at build like the setting.
    pub fn login_view(mut self, endpoint: impl Into<String>) -> Login<U> {
        self.login_view = Some(endpoint.into());
        self
    }

    /// Accepts opaque API keys (`Authorization: Bearer flg_…`, see
    /// [`generate_api_key`](crate::generate_api_key)): `lookup` finds a key's stored hash
    /// and user by its public prefix.
    pub fn api_keys<F, Fut, E>(mut self, lookup: F) -> Login<U>
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<StoredApiKey>, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.api_keys = Some(apikey::boxed(lookup));
        self
    }

    /// Replaces the default answer to refused requests (Flask-Login's
    /// `unauthorized_handler`; it also answers `needs_refresh`, see [`Refusal::reason`]).
    pub fn unauthorized_handler<F, Fut, R>(mut self, f: F) -> Login<U>
    where
        F: Fn(Refusal) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        let f = Arc::new(f);
        self.handler = Some(Arc::new(move |r| {
            let fut = f(r);
            Box::pin(async move { fut.await.into_response() })
        }));
        self
    }

    /// Reads `clock` for token expiry and freshness (tests step it with
    /// [`ManualClock`](flagon::session::ManualClock)).
    pub fn clock(mut self, clock: impl Clock) -> Login<U> {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The app's password hasher.
    pub fn passwords(app: &AppHandle) -> Option<Arc<Passwords>> {
        app.state::<Passwords>()
    }

    /// Revokes every remember-me and refresh token of `user_id` (a password change, an
    /// admin's "log out everywhere"; the CLI's `login remember revoke --user ID`). Sessions
    /// end on their next request once the user's [`auth_hash`](User::auth_hash) changes.
    pub async fn revoke_tokens(app: &AppHandle, user_id: &str) -> Result<u64, StoreError> {
        match app.state::<Handle<U>>().and_then(|h| h.rt.store().cloned()) {
            Some(store) => store.delete_user(user_id).await,
            None => Ok(0),
        }
    }
}

/// `current_user` in templates.
#[derive(Debug)]
struct UserView {
    user: Option<ViewUser>,
    method: AuthMethod,
}

#[derive(Debug)]
struct ViewUser {
    id: String,
    name: String,
    active: bool,
    permissions: Vec<&'static str>,
}

impl Object for UserView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let u = self.user.as_ref();
        Some(match key.as_str()? {
            "is_authenticated" => Value::from(u.is_some()),
            "is_anonymous" => Value::from(u.is_none()),
            "is_active" => Value::from(u.is_some_and(|u| u.active)),
            "id" => u
                .map(|u| Value::from(u.id.clone()))
                .unwrap_or(Value::from(())),
            "name" => u
                .map(|u| Value::from(u.name.clone()))
                .unwrap_or(Value::from(())),
            "permissions" => Value::from(u.map(|u| u.permissions.clone()).unwrap_or_default()),
            "auth_method" => Value::from(format!("{:?}", self.method).to_lowercase()),
            _ => return None,
        })
    }
}

fn bearer_fn(
    label: String,
    api_keys: Option<LookupFn>,
    jwt: Option<Arc<JwtSlot>>,
) -> Option<BearerFn> {
    if api_keys.is_none() && jwt.is_none() {
        return None;
    }
    Some(Arc::new(move |token: String| {
        let (label, api_keys, jwt) = (label.clone(), api_keys.clone(), jwt.clone());
        Box::pin(async move {
            if let Some(prefix) = apikey::prefix_of(&label, &token) {
                let lookup = api_keys?;
                let stored = match lookup(prefix.to_owned()).await {
                    Ok(s) => s?,
                    Err(e) => {
                        tracing::error!(target: "flagon_login", error = %e, "the API-key lookup failed");
                        return None;
                    }
                };
                return apikey::matches(&token, &stored)
                    .then_some((stored.user_id, AuthMethod::ApiKey));
            }
            jwt_verify(jwt.as_deref()?, &token).map(|sub| (sub, AuthMethod::Jwt))
        })
    }))
}

#[cfg(feature = "jwt")]
pub(crate) type JwtSlot = crate::jwt::Jwt;
#[cfg(not(feature = "jwt"))]
pub(crate) struct JwtSlot;

#[cfg(feature = "jwt")]
fn jwt_verify(jwt: &JwtSlot, token: &str) -> Option<String> {
    jwt.verify(token)
}
#[cfg(not(feature = "jwt"))]
fn jwt_verify(_: &JwtSlot, _: &str) -> Option<String> {
    None
}

/// The JWT verifier, when configured (read by `Auth::issue_token`, feature `jwt`).
#[cfg_attr(not(feature = "jwt"), allow(dead_code))]
pub(crate) struct JwtState(pub Option<Arc<JwtSlot>>);

impl<U: User> Extension for Login<U> {
    fn name(&self) -> &'static str {
        "login"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let mut cfg: LoginConfig = app.config("login")?;
        if cfg.login_view.is_none() {
            cfg.login_view = self.login_view.clone();
        }
        if let Err((key, message)) = cfg.validate() {
            return Err(app.config_error(key, message));
        }
        let passwords = Passwords::from_config(&cfg)
            .map_err(|m| app.config_error("login.argon2_memory_kib", m))?;
        let passwords = app.provide(passwords);
        #[cfg(feature = "jwt")]
        let jwt = {
            let derived = app.derive_key("login.jwt");
            let jwt = crate::jwt::Jwt::from_config(&cfg, derived.as_bytes())
                .map_err(|(key, m)| app.config_error(key, m))?;
            Some(Arc::new(jwt))
        };
        #[cfg(not(feature = "jwt"))]
        let jwt: Option<Arc<JwtSlot>> = None;
        app.provide(JwtState(jwt.clone()));
        let bearer = bearer_fn(cfg.api_key_prefix.clone(), self.api_keys.clone(), jwt);
        let auth_mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(
            app.derive_key("login.auth").as_bytes(),
        )
        .map_err(|e| SetupError::init("login", e.to_string()))?;
        let rt = Arc::new(Runtime {
            cookie: CookieSpec::from_config(&cfg, app.settings()),
            cfg: cfg.clone(),
            loader: self.loader.clone(),
            passwords: passwords.clone(),
            store: OnceLock::new(),
            auth_mac,
            clock: self.clock.clone().unwrap_or_else(|| Arc::new(SystemClock)),
            bearer,
            key: OnceLock::new(),
            throttle: crate::throttle::Throttle::new(cfg.max_failures_per_hour),
        });
        let init_rt = rt.clone();
        let key: RequestLocal<Current<U>> =
            app.request_local_async(move |head| runtime::init(init_rt.clone(), head));
        let _ = rt.key.set(key);
        let finish_rt = rt.clone();
        app.after_response_maybe_async(
            key,
            move |current: Arc<Current<U>>, res: Response, outcome| {
                flagon::Eventually::Now(runtime::finish(
                    &finish_rt,
                    &current,
                    res,
                    outcome.completed,
                ))
            },
        );
        app.provide(Handle {
            rt: rt.clone(),
            key,
        });
        app.provide(Shared {
            cfg: cfg.clone(),
            facts: Arc::new(move |parts: &Parts| {
                let loading = key.load(parts);
                Box::pin(async move {
                    match loading.await {
                        Some(cur) => {
                            let st = cur.lock();
                            Facts {
                                user: st.user.clone().map(|u| u as Arc<dyn User>),
                                method: st.method,
                                fresh: st.fresh,
                            }
                        }
                        None => Facts {
                            user: None,
                            method: AuthMethod::Anonymous,
                            fresh: false,
                        },
                    }
                })
            }),
            handler: self.handler.clone(),
        });
        app.template_request_global("current_user", move |req| {
            let cur = req.load(key)?;
            let (user, method) = match cur {
                Some(cur) => {
                    let st = cur.lock();
                    (st.user.clone(), st.method)
                }
                None => (None, AuthMethod::Anonymous),
            };
            Ok(Value::from_object(UserView {
                user: user.map(|u| ViewUser {
                    id: u.id(),
                    name: u.display_name(),
                    active: u.is_active(),
                    permissions: u.permissions().names(),
                }),
                method,
            }))
        });

        // Remember-token stores: chosen by name once everyone has registered, made at start.
        let capacity = cfg.remember_capacity;
        app.add_to::<RememberStores>(
            "memory",
            Arc::new(move |_: &StoreSetup<'_>| {
                Ok(Arc::new(MemoryRememberStore::new(capacity)) as Arc<dyn RememberStore>)
            }) as StoreFactory,
        );
        #[cfg(feature = "db")]
        {
            app.add_to::<RememberStores>(
                "db",
                Arc::new(|s: &StoreSetup<'_>| {
                    let db = s.app().state::<flagon_db::Db>().ok_or(
                        "the `db` remember store needs the `db` extension (flagon_db::Db::extension())",
                    )?;
                    Ok(Arc::new(crate::store::SqlRememberStore::on(&db)) as Arc<dyn RememberStore>)
                }) as StoreFactory,
            );
            if cfg.remember_store == "db" {
                app.add_to::<flagon_db::Migrations>("login", crate::store::remember_migrations());
            }
        }
        #[cfg(feature = "redis")]
        app.add_to::<RememberStores>(
            "redis",
            Arc::new(|s: &StoreSetup<'_>| {
                let c = s.config();
                let store = crate::store::RedisRememberStore::new(
                    &c.redis_url,
                    &c.redis_key_prefix,
                    c.redis_timeout,
                )?;
                Ok(Arc::new(store) as Arc<dyn RememberStore>)
            }) as StoreFactory,
        );
        let factory: Arc<OnceLock<StoreFactory>> = Arc::default();
        let chosen = factory.clone();
        let fcfg = cfg.clone();
        app.on_finish(move |late| {
            let stores = late.registry::<RememberStores>();
            match stores.get(&fcfg.remember_store) {
                Some(f) => {
                    let _ = chosen.set(f.clone());
                }
                None => {
                    let names: Vec<&str> = stores.names().collect();
                    late.report(late.config_error(
                        "login.remember_store",
                        format!(
                            "unknown remember-token store `{}`; registered: {} (`db` and `redis` \
                             need flagon-login's features of those names)",
                            fcfg.remember_store,
                            names.join(", ")
                        ),
                    ));
                }
            }
            let views = fcfg
                .login_view
                .iter()
                .map(|v| ("login.login_view".to_owned(), v))
                .chain(fcfg.refresh_view.iter().map(|v| ("login.refresh_view".to_owned(), v)))
                .chain(
                    fcfg.blueprint_login_views
                        .iter()
                        .map(|(bp, v)| (format!("login.blueprint_login_views.{bp}"), v)),
                );
            let mut missing = Vec::new();
            for (key, view) in views {
                if late.routes().get(view).is_none() {
                    missing.push((key, view.clone()));
                }
            }
            for (key, view) in missing {
                late.report(late.config_error(
                    &key,
                    format!("`{view}` is not an endpoint (blueprint routes are `blueprint.endpoint`; `routes` lists them)"),
                ));
            }
            let unknown: Vec<String> = fcfg
                .blueprint_login_views
                .keys()
                .chain(fcfg.api_blueprints.iter())
                .filter(|bp| !late.blueprints().any(|b| b.name == bp.as_str()))
                .cloned()
                .collect();
            for bp in unknown {
                late.report(late.config_error(
                    "login.blueprint_login_views",
                    format!("no blueprint is named `{bp}`"),
                ));
            }
            Ok(())
        });
        let start_rt = rt.clone();
        app.on_startup(move |handle: AppHandle| {
            let (rt, factory) = (start_rt.clone(), factory.clone());
            async move {
                if rt.store.get().is_none() {
                    let make = factory.get().ok_or("no remember-token store was chosen")?;
                    let store = make(&StoreSetup {
                        app: &handle,
                        config: &rt.cfg,
                    })?;
                    let _ = rt.store.set(store);
                }
                // The dummy hash unknown users are checked against, made before the first login.
                rt.passwords.dummy_hash().await?;
                Ok(())
            }
        });
        let worker_rt = rt.clone();
        app.worker("login.remember_purge", move |ctx| {
            let rt = worker_rt.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(600));
                loop {
                    tokio::select! {
                        _ = every.tick() => {
                            if let Some(store) = rt.store() {
                                let n = store.purge_expired(rt.now()).await?;
                                if n > 0 {
                                    tracing::debug!(target: "flagon_login", n, "expired remember-me tokens purged");
                                }
                            }
                        }
                        () = ctx.stopping() => return Ok(()),
                    }
                }
            }
        });
        let cli_rt = rt.clone();
        app.command(
            Command::new("login")
                .about("Login: remember-me and refresh tokens")
                .subcommand_required(true)
                .subcommand(
                    Command::new("remember")
                        .subcommand_required(true)
                        .subcommand(
                            Command::new("revoke")
                                .about("Revoke every remember-me and refresh token of a user")
                                .arg(
                                    Arg::new("user")
                                        .long("user")
                                        .required(true)
                                        .value_name("ID"),
                                ),
                        ),
                ),
            move |ctx| {
                let rt = cli_rt.clone();
                async move {
                    let user: String = ctx
                        .matches()
                        .subcommand_matches("remember")
                        .and_then(|m| m.subcommand_matches("revoke"))
                        .and_then(|m| m.get_one::<String>("user").cloned())
                        .ok_or("usage: login remember revoke --user ID")?;
                    let store = rt.store().ok_or("the remember-token store is not open")?;
                    let n = store.delete_user(&user).await?;
                    writeln!(ctx.out(), "revoked {n} token(s) of user {user}")?;
                    Ok(())
                }
            },
        );
        if cfg.remember_store != "memory" {
            let health_rt = rt.clone();
            app.health_check("login.remember_store", Duration::from_secs(1), move |_| {
                let rt = health_rt.clone();
                async move {
                    let store = rt.store().cloned().ok_or("not open")?;
                    store.get("00000000000000000000000000000000").await?;
                    Ok::<(), BoxError>(())
                }
            });
        }
        crate::messages::register(app);
        Ok(())
    }
}
