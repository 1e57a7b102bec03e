//! The `[login]` section.

use std::collections::BTreeMap;
use std::time::Duration;

use flagon::serde::{Deserialize, Serialize};

/// Session protection (Flask-Login's `SESSION_PROTECTION`): what happens when a logged-in
/// session is used from another client IP or User-Agent than the one it logged in from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(crate = "flagon::serde", rename_all = "lowercase")]
pub enum SessionProtection {
    /// No check.
    Off,
    /// The session stays logged in but is no longer fresh (default).
    Basic,
    /// The session is deleted and the remember cookie revoked: the user is anonymous.
    Strong,
}

/// `[login]` in `flagon.toml` (every duration is humantime: `"30d"`, `"10m"`).
///
/// | key | default | meaning |
/// |---|---|---|
/// | `login_view` | none | endpoint unauthorized browsers are redirected to (`auth.login`); none answers 401 |
/// | `blueprint_login_views` | `{}` | per blueprint: `{ admin = "admin.login" }` |
/// | `api_blueprints` | `[]` | blueprints whose refusals are 401 JSON problems whatever the `Accept` |
/// | `login_message` | `"Please log in to access this page."` | flashed on the redirect (`""`: no flash); localized as message `login-required` |
/// | `login_message_category` | `"message"` | its flash category |
/// | `refresh_view` | none | endpoint for stale sessions on `fresh_login_required` (none: `login_view`) |
/// | `needs_refresh_message` | `"Please reauthenticate to access this page."` | flashed there (`login-needs-refresh`) |
/// | `needs_refresh_message_category` | `"message"` | its category |
/// | `session_protection` | `"basic"` | `off`, `basic` or `strong` |
/// | `fresh_max_age` | `"0s"` | a fresh login stops being fresh after this (`0s`: until the session ends) |
/// | `remember_cookie_name` | `"remember_token"` | `__Host-` is prefixed like the session cookie's |
/// | `remember_duration` | `"30d"` | lifetime of a remember-me token |
/// | `refresh_duration` | `"30d"` | lifetime of a refresh-token series |
/// | `remember_rotation_grace` | `"10s"` | a just-rotated validator still works this long (parallel requests); `0s`: never |
/// | `remember_store` | `"memory"` | `memory`, `db` (feature `db`), `redis` (feature `redis`) |
/// | `remember_capacity` | `100000` | most tokens the memory store keeps |
/// | `redis_url` | `"redis://127.0.0.1:6379"` | the Redis store's server |
/// | `redis_key_prefix` | `"flagon:login:"` | its key prefix |
/// | `redis_timeout` | `"500ms"` | bound on each Redis call |
/// | `password_max_bytes` | `4096` | longer passwords are refused before hashing |
/// | `max_failures_per_hour` | `100` | failed logins per account per hour before [`Auth::authenticate`](crate::Auth::authenticate) answers 429 (a bucket refilling at that rate; `0`: off) |
/// | `password_min_chars` | `8` | the policy helper's minimum |
/// | `hash_concurrency` | cores (≥ 1) | Argon2 computations at once |
/// | `hash_queue_timeout` | `"2s"` | a login waiting longer for a hashing slot gets a 503 |
/// | `argon2_memory_kib` | `19456` | Argon2id m (OWASP: 19 MiB) |
/// | `argon2_iterations` | `2` | Argon2id t |
/// | `argon2_parallelism` | `1` | Argon2id p |
/// | `jwt_secret` | none | HS256 key; none derives one from the app's secret (`derive_key("login.jwt")`) |
/// | `jwt_public_key_pem` | none | RS256 or Ed25519 public key (PEM) for verifying |
/// | `jwt_private_key_pem` | none | its private key (PEM), to issue tokens |
/// | `jwt_algorithm` | `"HS256"` | `HS256`, `RS256` or `EdDSA`: the only one accepted |
/// | `jwt_issuer` | none | required `iss` |
/// | `jwt_audience` | none | required `aud` |
/// | `jwt_leeway` | `"30s"` | clock skew allowed on `exp`/`nbf` |
/// | `api_key_prefix` | `"flg"` | leading label of generated API keys |
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(crate = "flagon::serde", default, deny_unknown_fields)]
pub struct LoginConfig {
    /// Endpoint of the login page.
    pub login_view: Option<String>,
    /// Per-blueprint login endpoints.
    pub blueprint_login_views: BTreeMap<String, String>,
    /// Blueprints answered with 401 JSON problems, whatever the `Accept`.
    pub api_blueprints: Vec<String>,
    /// Flashed on the redirect to the login view.
    pub login_message: String,
    /// Its category.
    pub login_message_category: String,
    /// Endpoint for re-authentication.
    pub refresh_view: Option<String>,
    /// Flashed on the redirect to the refresh view.
    pub needs_refresh_message: String,
    /// Its category.
    pub needs_refresh_message_category: String,
    /// Session protection mode.
    pub session_protection: SessionProtection,
    /// How long a fresh login stays fresh (`0s`: for the session's life).
    #[serde(with = "humantime_serde")]
    pub fresh_max_age: Duration,
    /// Remember cookie name (before any `__Host-` prefix).
    pub remember_cookie_name: String,
    /// Remember-me token lifetime.
    #[serde(with = "humantime_serde")]
    pub remember_duration: Duration,
    /// Refresh-token series lifetime.
    #[serde(with = "humantime_serde")]
    pub refresh_duration: Duration,
    /// How long a just-replaced validator is still accepted.
    #[serde(with = "humantime_serde")]
    pub remember_rotation_grace: Duration,
    /// Remember-token store name.
    pub remember_store: String,
    /// Most tokens in the memory store.
    pub remember_capacity: usize,
    /// Redis store URL.
    pub redis_url: String,
    /// Redis key prefix.
    pub redis_key_prefix: String,
    /// Bound on each Redis call.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// Longest password accepted, in bytes.
    pub password_max_bytes: usize,
    /// Failed logins per account per hour (0: no throttle).
    pub max_failures_per_hour: u32,
    /// Shortest password the policy helper accepts, in characters.
    pub password_min_chars: usize,
    /// Argon2 computations at once (0: the number of cores).
    pub hash_concurrency: usize,
    /// Longest wait for a hashing slot.
    #[serde(with = "humantime_serde")]
    pub hash_queue_timeout: Duration,
    /// Argon2 memory in KiB.
    pub argon2_memory_kib: u32,
    /// Argon2 iterations.
    pub argon2_iterations: u32,
    /// Argon2 lanes.
    pub argon2_parallelism: u32,
    /// HS256 secret (else derived from the app's secret key).
    pub jwt_secret: Option<flagon::config::Secret>,
    /// PEM public key for RS256 / EdDSA.
    pub jwt_public_key_pem: Option<String>,
    /// PEM private key for RS256 / EdDSA issuing.
    pub jwt_private_key_pem: Option<flagon::config::Secret>,
    /// The accepted algorithm.
    pub jwt_algorithm: String,
    /// Required issuer.
    pub jwt_issuer: Option<String>,
    /// Required audience.
    pub jwt_audience: Option<String>,
    /// Clock leeway.
    #[serde(with = "humantime_serde")]
    pub jwt_leeway: Duration,
    /// API key label.
    pub api_key_prefix: String,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            login_view: None,
            blueprint_login_views: BTreeMap::new(),
            api_blueprints: Vec::new(),
            login_message: "Please log in to access this page.".into(),
            login_message_category: "message".into(),
            refresh_view: None,
            needs_refresh_message: "Please reauthenticate to access this page.".into(),
            needs_refresh_message_category: "message".into(),
            session_protection: SessionProtection::Basic,
            fresh_max_age: Duration::ZERO,
            remember_cookie_name: "remember_token".into(),
            remember_duration: Duration::from_secs(30 * 24 * 3600),
            remember_rotation_grace: Duration::from_secs(10),
            refresh_duration: Duration::from_secs(30 * 24 * 3600),
            remember_store: "memory".into(),
            remember_capacity: 100_000,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_key_prefix: "flagon:login:".into(),
            redis_timeout: Duration::from_millis(500),
            password_max_bytes: 4096,
            password_min_chars: 8,
            max_failures_per_hour: 100,
            hash_concurrency: 0,
            hash_queue_timeout: Duration::from_secs(2),
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            jwt_secret: None,
            jwt_public_key_pem: None,
            jwt_private_key_pem: None,
            jwt_algorithm: "HS256".into(),
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway: Duration::from_secs(30),
            api_key_prefix: "flg".into(),
        }
    }
}

impl LoginConfig {
    /// The first value serde cannot check: `(key, message)`.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        let cookie_ok = !self.remember_cookie_name.is_empty()
            && self
                .remember_cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !cookie_ok {
            return Err((
                "login.remember_cookie_name",
                "must be 1+ ASCII letters, digits, `_` or `-`".into(),
            ));
        }
        if self.remember_duration.is_zero() {
            return Err(("login.remember_duration", "must be longer than 0s".into()));
        }
        if self.remember_capacity == 0 {
            return Err(("login.remember_capacity", "must be at least 1".into()));
        }
        if self.password_max_bytes < 64 {
            return Err((
                "login.password_max_bytes",
                "must be at least 64 (ASVS: allow 64-character passwords)".into(),
            ));
        }
        if self.argon2_memory_kib < 8 * 1024 {
            return Err((
                "login.argon2_memory_kib",
                "must be at least 8192 (8 MiB); OWASP recommends 19456".into(),
            ));
        }
        if self.argon2_iterations == 0 || self.argon2_parallelism == 0 {
            return Err((
                "login.argon2_iterations",
                "iterations and parallelism must be at least 1".into(),
            ));
        }
        if !matches!(self.jwt_algorithm.as_str(), "HS256" | "RS256" | "EdDSA") {
            return Err((
                "login.jwt_algorithm",
                format!(
                    "unknown algorithm `{}`; use HS256, RS256 or EdDSA",
                    self.jwt_algorithm
                ),
            ));
        }
        if self.jwt_algorithm != "HS256" && self.jwt_public_key_pem.is_none() {
            return Err((
                "login.jwt_public_key_pem",
                format!("{} needs a public key", self.jwt_algorithm),
            ));
        }
        if self.api_key_prefix.is_empty()
            || !self
                .api_key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Err((
                "login.api_key_prefix",
                "must be 1+ ASCII letters or digits".into(),
            ));
        }
        Ok(())
    }
}
