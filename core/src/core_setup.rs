//! What core itself registers: the `[server]` section, the secret key, health routes.

use crate::config::{Profile, Secret, ServerConfig};
use crate::error::SetupError;
use crate::health;
use crate::route::Route;
use crate::setup::Setup;

/// Shortest secret key accepted in production, in bytes.
const MIN_SECRET_LEN: usize = 32;

/// Core's settings; the flag says the secret key was generated for this process.
pub(crate) fn init(s: &mut Setup<'_>) -> Result<(ServerConfig, Secret, bool), SetupError> {
    let server: ServerConfig = s.config("server")?;
    s.reg.sections.push(("secret_key".into(), s.origin()));
    let configured: Option<Secret> = s.settings().value("secret_key")?;
    let generated = configured.is_none();
    let secret = match (configured, s.profile()) {
        (Some(k), Profile::Production) if k.expose().len() < MIN_SECRET_LEN => {
            return Err(s.config_error(
                "secret_key",
                format!(
                    "too short for production: use at least {MIN_SECRET_LEN} random characters"
                ),
            ));
        }
        (Some(k), _) => k,
        (None, Profile::Production) => {
            return Err(SetupError::Config(crate::config::ConfigError::new(
                "secret_key",
                "production profile",
                "required in production: set FLAGON_SECRET_KEY or secret_key in flagon.toml \
                 (at least 32 random characters)",
            )));
        }
        (None, profile) => {
            let bytes: [u8; 32] = rand::random();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let _ = profile;
            Secret::new(hex)
        }
    };
    s.route(Route::get("/healthz", health::healthz).name("healthz"));
    s.route(Route::get("/readyz", health::readyz).name("readyz"));
    init_web(s)?;
    Ok((server, secret, generated))
}

/// Core's web subsystems (sessions, templates, CSRF): their config sections. What depends
/// on every registration (the session store, the CSRF route guard, the template
/// environment) is built in [`finish`].
pub(crate) fn init_web(s: &mut Setup<'_>) -> Result<(), SetupError> {
    crate::csrf::init(s)?;
    crate::session::setup::init(s)?;
    crate::flash::init(s)?;
    crate::templates::setup::init(s)?;
    Ok(())
}

/// Runs after every extension and the app registered: builds what depends on all of
/// their registrations (the selected session store, the template environment).
pub(crate) fn finish(
    reg: &mut crate::registry::Registry,
    config: &crate::config::Config,
    secret: &Secret,
) {
    let secret = secret.expose().as_bytes();
    if let Err(e) = crate::session::setup::finish(reg, config, secret) {
        reg.errors.push(e);
    }
    crate::csrf::finish(reg, secret);
    crate::templates::setup::finish(reg, config.profile());
}
