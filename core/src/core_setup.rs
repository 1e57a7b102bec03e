//! What core itself registers: the `[server]` section, the secret key, health routes.

use crate::config::{Profile, Secret, ServerConfig, weakness};
use crate::error::SetupError;
use crate::health;
use crate::setup::Setup;

/// Shortest secret key accepted in production, in bytes.
const MIN_SECRET_LEN: usize = 32;

/// Core's settings; the flag says the secret key was generated for this process. The secret
/// key itself goes into the key ring, for [`Setup::derive_key`] and `AppHandle::derive_key`.
pub(crate) fn init(s: &mut Setup<'_>) -> Result<(ServerConfig, bool), SetupError> {
    let server: ServerConfig = s.config("server")?;
    s.reg.sections.push(("secret_key".into(), s.origin()));
    let configured: Option<Secret> = s.settings().value("secret_key")?;
    let generated = configured.is_none();
    let secret = match (configured, s.profile()) {
        (Some(k), Profile::Production) if k.expose().len() < MIN_SECRET_LEN => {
            return Err(s.config_error(
                "secret_key",
                format!(
                    "too short for production: use at least {MIN_SECRET_LEN} random characters; \
                     {}",
                    crate::command::secret_key_hint()
                ),
            ));
        }
        (Some(k), Profile::Production) if let Some(why) = weakness(k.expose()) => {
            return Err(s.config_error(
                "secret_key",
                format!(
                    "too easy to guess for production ({why}); {}",
                    crate::command::secret_key_hint()
                ),
            ));
        }
        (Some(k), _) => k,
        (None, Profile::Production) => {
            return Err(SetupError::Config(crate::config::ConfigError::new(
                "secret_key",
                "production profile",
                format!(
                    "required in production: set FLAGON_SECRET_KEY or secret_key in flagon.toml \
                     (at least {MIN_SECRET_LEN} random characters); {}",
                    crate::command::secret_key_hint()
                ),
            )));
        }
        (None, _) => Secret::new(crate::command::fresh_secret_key()),
    };
    s.reg
        .slots
        .insert(crate::crypto::KeyRing::new(secret.expose().as_bytes()));
    health::init(s)?;
    init_web(s)?;
    Ok((server, generated))
}

/// Core's web subsystems (sessions, templates, CSRF), registered as an extension registers
/// itself: each reads its config section and adds a finish step for what depends on every
/// registration (the selected session store, the CSRF route guard, the template environment).
pub(crate) fn init_web(s: &mut Setup<'_>) -> Result<(), SetupError> {
    crate::csrf::init(s)?;
    crate::session::setup::init(s)?;
    crate::flash::init(s)?;
    crate::templates::setup::init(s)?;
    Ok(())
}
