//! `seed --posts N`: demo accounts, posts and comments for trying the blog out.

use flagon::Setup;

/// Registers the command.
pub fn install(app: &mut Setup<'_>) {
    let _ = app;
}
