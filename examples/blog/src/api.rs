//! The JSON API: posts with bearer-token authentication. Blueprint `api`, under `/api/v1`.

use flagon::Blueprint;

/// The `api` blueprint.
pub fn blueprint() -> Blueprint {
    Blueprint::new("api").url_prefix("/api/v1")
}
