//! Administration: users, posts, comments and the mail outbox. Blueprint `admin`, under
//! `/admin`, for admins (editors moderate comments).

use flagon::Blueprint;

/// The `admin` blueprint.
pub fn blueprint() -> Blueprint {
    Blueprint::new("admin").url_prefix("/admin")
}
