//! Accounts: register with a verified email, log in and out, remember me, reset and change
//! the password. Blueprint `auth`, under `/auth`.

use flagon::Blueprint;

/// The `auth` blueprint.
pub fn blueprint() -> Blueprint {
    Blueprint::new("auth").url_prefix("/auth")
}
