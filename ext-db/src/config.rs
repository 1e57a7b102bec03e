//! `[db]` in `flagon.toml`: the main database, its pool, and the named binds.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, redact_url};

/// The URL used when `[db] url` is not set: a SQLite file in the app's instance directory
/// (`instance/` beside the working directory), created on first use.
pub const DEFAULT_URL: &str = "sqlite://instance/app.db";

/// `[db]`: the main database and its pool, plus `[db.binds.NAME]` for the others.
///
/// Every duration is written the humantime way (`"3s"`, `"250ms"`, `"10m"`). See the crate
/// docs for the table of keys and defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbConfig {
    /// The database URL: `sqlite://path`, `postgres://…`, `mysql://…` (default
    /// [`DEFAULT_URL`]). Its password never appears in a log line or error.
    pub url: Option<String>,
    /// The most connections the pool opens (default 10).
    pub max_connections: u32,
    /// Connections kept open even when idle (default 0).
    pub min_connections: u32,
    /// How long a request waits for a connection before it is answered 503 (default 3 s).
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// An idle connection is closed after this long (default 10 min; `0s` never).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A connection is replaced after this long (default 30 min; `0s` never).
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// The server cancels a statement running longer than this (default 30 s; `0s` off).
    /// PostgreSQL `statement_timeout`, MySQL/MariaDB `max_execution_time` (MariaDB:
    /// `max_statement_time`). SQLite has no such limit; `busy_timeout` bounds its lock waits.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// SQLite only: how long a statement waits for another connection's lock (default 5 s).
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// Statements taking longer are logged at WARN with their text (never their parameters),
    /// duration and route (default 500 ms; `0s` off).
    #[serde(with = "humantime_serde")]
    pub slow_query: Duration,
    /// Log every statement at INFO (Flask's `SQLALCHEMY_ECHO`; default off in every
    /// profile: set `[development.db] echo = true` to see them while developing).
    pub echo: bool,
    /// How long the `/readyz` check waits for a connection and a ping (default 2 s).
    #[serde(with = "humantime_serde")]
    pub health_timeout: Duration,
    /// Other databases by name (Flask's `SQLALCHEMY_BINDS`), reached with `db.bind(name)`.
    pub binds: BTreeMap<String, BindConfig>,
    /// Apply pending migrations when the app starts serving, before the first request
    /// (default off: run `db upgrade` as a deploy step; handy in development).
    pub auto_upgrade: bool,
    /// Where `db new` writes the app's next migration pair (default `migrations`, relative to
    /// the working directory; the app embeds the same directory with
    /// [`migrations!`](crate::migrations)).
    pub migrations_dir: std::path::PathBuf,
    /// How long `db upgrade`, `db downgrade` and `auto_upgrade` wait for another instance's
    /// migration lock before failing (default 60 s).
    #[serde(with = "humantime_serde")]
    pub migrate_lock_timeout: Duration,
    /// How often expired rows of the SQL session store are deleted, when `[session] store =
    /// "db"` (default 5 min).
    #[serde(with = "humantime_serde")]
    pub session_sweep: Duration,
}

/// `[db.binds.NAME]`: another database, with the same pool options as `[db]` (each with the
/// same default; nothing is inherited from `[db]`) and a required `url`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BindConfig {
    /// The database URL (required).
    pub url: Option<String>,
    /// See [`DbConfig::max_connections`].
    pub max_connections: u32,
    /// See [`DbConfig::min_connections`].
    pub min_connections: u32,
    /// See [`DbConfig::acquire_timeout`].
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// See [`DbConfig::idle_timeout`].
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// See [`DbConfig::max_lifetime`].
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// See [`DbConfig::statement_timeout`].
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// See [`DbConfig::busy_timeout`].
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// See [`DbConfig::slow_query`].
    #[serde(with = "humantime_serde")]
    pub slow_query: Duration,
    /// See [`DbConfig::echo`].
    pub echo: bool,
    /// See [`DbConfig::health_timeout`].
    #[serde(with = "humantime_serde")]
    pub health_timeout: Duration,
}

/// One pool's settings once checked: what [`Db`](crate::Db) builds a pool from.
#[derive(Clone, Debug)]
pub(crate) struct PoolSettings {
    /// The config key prefix (`db` or `db.binds.NAME`), for errors.
    pub key: String,
    /// The URL, with `mode=rwc` added for a SQLite file.
    pub url: String,
    /// The backend the URL names.
    pub backend: Backend,
    /// See [`DbConfig::max_connections`].
    pub max_connections: u32,
    /// See [`DbConfig::min_connections`].
    pub min_connections: u32,
    /// See [`DbConfig::acquire_timeout`].
    pub acquire_timeout: Duration,
    /// `None`: never.
    pub idle_timeout: Option<Duration>,
    /// `None`: never.
    pub max_lifetime: Option<Duration>,
    /// `None`: off.
    pub statement_timeout: Option<Duration>,
    /// See [`DbConfig::busy_timeout`].
    pub busy_timeout: Duration,
    /// `None`: off.
    pub slow_query: Option<Duration>,
    /// See [`DbConfig::echo`].
    pub echo: bool,
    /// See [`DbConfig::health_timeout`].
    pub health_timeout: Duration,
    /// The SQLite file to create the directory of, if any.
    pub sqlite_file: Option<std::path::PathBuf>,
}

macro_rules! defaults {
    ($ty:ident, $url:expr, $($extra:tt)*) => {
        impl Default for $ty {
            fn default() -> Self {
                $ty {
                    url: $url,
                    max_connections: 10,
                    min_connections: 0,
                    acquire_timeout: Duration::from_secs(3),
                    idle_timeout: Duration::from_secs(600),
                    max_lifetime: Duration::from_secs(1800),
                    statement_timeout: Duration::from_secs(30),
                    busy_timeout: Duration::from_secs(5),
                    slow_query: Duration::from_millis(500),
                    echo: false,
                    health_timeout: Duration::from_secs(2),
                    $($extra)*
                }
            }
        }
    };
}

defaults!(
    DbConfig,
    None,
    binds: BTreeMap::new(),
    auto_upgrade: false,
    migrations_dir: std::path::PathBuf::from("migrations"),
    migrate_lock_timeout: crate::migrate::DEFAULT_LOCK_TIMEOUT,
    session_sweep: Duration::from_secs(300),
);
defaults!(BindConfig, None,);

/// A problem with one key: the key's full path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyProblem {
    /// The key, such as `db.url` or `db.binds.analytics.max_connections`.
    pub key: String,
    /// What is wrong with its value (never containing a password).
    pub message: String,
}

impl DbConfig {
    /// The main pool's settings, checked.
    pub(crate) fn main(&self) -> Result<PoolSettings, KeyProblem> {
        let url = self.url.clone().unwrap_or_else(|| DEFAULT_URL.to_owned());
        settings(
            "db",
            &url,
            Raw {
                max_connections: self.max_connections,
                min_connections: self.min_connections,
                acquire_timeout: self.acquire_timeout,
                idle_timeout: self.idle_timeout,
                max_lifetime: self.max_lifetime,
                statement_timeout: self.statement_timeout,
                busy_timeout: self.busy_timeout,
                slow_query: self.slow_query,
                echo: self.echo,
                health_timeout: self.health_timeout,
            },
        )
    }

    /// Each bind's settings, checked, by name.
    pub(crate) fn binds(&self) -> Result<Vec<(String, PoolSettings)>, KeyProblem> {
        self.binds
            .iter()
            .map(|(name, b)| {
                let key = format!("db.binds.{name}");
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(KeyProblem {
                        key,
                        message: "a bind name takes letters, digits, `_` and `-`".into(),
                    });
                }
                let Some(url) = &b.url else {
                    return Err(KeyProblem {
                        key: format!("{key}.url"),
                        message: "required: the URL of the bind's database".into(),
                    });
                };
                let raw = Raw {
                    max_connections: b.max_connections,
                    min_connections: b.min_connections,
                    acquire_timeout: b.acquire_timeout,
                    idle_timeout: b.idle_timeout,
                    max_lifetime: b.max_lifetime,
                    statement_timeout: b.statement_timeout,
                    busy_timeout: b.busy_timeout,
                    slow_query: b.slow_query,
                    echo: b.echo,
                    health_timeout: b.health_timeout,
                };
                settings(&key, url, raw).map(|s| (name.clone(), s))
            })
            .collect()
    }
}

struct Raw {
    max_connections: u32,
    min_connections: u32,
    acquire_timeout: Duration,
    idle_timeout: Duration,
    max_lifetime: Duration,
    statement_timeout: Duration,
    busy_timeout: Duration,
    slow_query: Duration,
    echo: bool,
    health_timeout: Duration,
}

fn settings(prefix: &str, url: &str, raw: Raw) -> Result<PoolSettings, KeyProblem> {
    let problem = |key: &str, message: String| KeyProblem {
        key: format!("{prefix}.{key}"),
        message,
    };
    let backend = Backend::from_url(url).ok_or_else(|| {
        problem(
            "url",
            format!(
                "`{}`: unknown scheme; use sqlite://, postgres:// or mysql://",
                redact_url(url)
            ),
        )
    })?;
    if !backend.is_compiled_in() {
        return Err(problem(
            "url",
            format!(
                "`{}` needs the `{}` feature of flagon-db, which this build does not have \
                 (flagon-db = {{ features = [\"{}\"] }})",
                redact_url(url),
                backend.feature(),
                backend.feature()
            ),
        ));
    }
    if raw.max_connections == 0 {
        return Err(problem("max_connections", "must be at least 1".into()));
    }
    if raw.min_connections > raw.max_connections {
        return Err(problem(
            "min_connections",
            format!(
                "{} is more than max_connections ({})",
                raw.min_connections, raw.max_connections
            ),
        ));
    }
    if raw.acquire_timeout.is_zero() {
        return Err(problem(
            "acquire_timeout",
            "must be more than 0s: requests would never get a connection".into(),
        ));
    }
    if raw.health_timeout.is_zero() {
        return Err(problem("health_timeout", "must be more than 0s".into()));
    }
    let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
    let mut s = PoolSettings {
        key: prefix.to_owned(),
        url: url.to_owned(),
        backend,
        max_connections: raw.max_connections,
        min_connections: raw.min_connections,
        acquire_timeout: raw.acquire_timeout,
        idle_timeout: nonzero(raw.idle_timeout),
        max_lifetime: nonzero(raw.max_lifetime),
        statement_timeout: nonzero(raw.statement_timeout),
        busy_timeout: raw.busy_timeout,
        slow_query: nonzero(raw.slow_query),
        echo: raw.echo,
        health_timeout: raw.health_timeout,
        sqlite_file: None,
    };
    if backend == Backend::Sqlite {
        sqlite_url(&mut s).map_err(|m| problem("url", m))?;
    } else if let Err(e) = check_server_url(backend, url) {
        return Err(problem(
            "url",
            format!("`{}` is not a valid {backend} URL: {e}", redact_url(url)),
        ));
    }
    Ok(s)
}

/// Parses a server URL the way its driver will, so a bad port or option stops the build
/// rather than the first request. The driver's message is returned with any password masked.
fn check_server_url(backend: Backend, url: &str) -> Result<(), String> {
    let parsed: Result<(), sqlx::Error> = match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => url.parse::<sqlx::postgres::PgConnectOptions>().map(drop),
        #[cfg(feature = "mysql")]
        Backend::MySql => url.parse::<sqlx::mysql::MySqlConnectOptions>().map(drop),
        _ => url.parse::<sqlx::any::AnyConnectOptions>().map(drop),
    };
    parsed.map_err(|e| mask_password(url, &e.to_string()))
}

/// `text` with the password of `url` (if any) replaced by `***`.
fn mask_password(url: &str, text: &str) -> String {
    let password = url
        .split_once("://")
        .map(|(_, rest)| &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())])
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, pw)| pw)
        .filter(|pw| !pw.is_empty());
    match password {
        Some(pw) => text.replace(pw, "***"),
        None => text.to_owned(),
    }
}

/// Adds `mode=rwc` to a SQLite file URL (unless a mode is given), finds the file, and keeps an
/// in-memory database on one connection that never expires (each connection would otherwise
/// see a database of its own, and lose it when recycled).
fn sqlite_url(s: &mut PoolSettings) -> Result<(), String> {
    let rest = s
        .url
        .split_once(':')
        .map(|(_, r)| r)
        .unwrap_or_default()
        .to_owned();
    let rest = rest.strip_prefix("//").unwrap_or(&rest);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let memory = path == ":memory:"
        || path.is_empty()
        || query.is_some_and(|q| q.split('&').any(|kv| kv == "mode=memory"));
    if memory {
        s.max_connections = 1;
        s.min_connections = 0;
        s.idle_timeout = None;
        s.max_lifetime = None;
        return Ok(());
    }
    s.sqlite_file = Some(std::path::PathBuf::from(path));
    let has_mode = query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("mode=")));
    if !has_mode {
        let sep = if query.is_some() { '&' } else { '?' };
        s.url = format!("{}{sep}mode=rwc", s.url);
    }
    s.url
        .parse::<sqlx::any::AnyConnectOptions>()
        .map_err(|_| format!("`{}` is not a valid SQLite URL", s.url))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_a_sqlite_file_under_instance_created_if_missing() {
        let s = DbConfig::default().main().unwrap();
        assert_eq!(s.backend, Backend::Sqlite);
        assert_eq!(s.url, "sqlite://instance/app.db?mode=rwc");
        assert_eq!(
            s.sqlite_file.as_deref(),
            Some(std::path::Path::new("instance/app.db"))
        );
        assert_eq!(s.acquire_timeout, Duration::from_secs(3));
    }

    #[test]
    fn an_explicit_mode_is_kept_and_memory_is_one_connection() {
        let cfg = DbConfig {
            url: Some("sqlite://data.db?mode=ro".into()),
            ..DbConfig::default()
        };
        assert_eq!(cfg.main().unwrap().url, "sqlite://data.db?mode=ro");
        let cfg = DbConfig {
            url: Some("sqlite::memory:".into()),
            ..DbConfig::default()
        };
        let s = cfg.main().unwrap();
        assert_eq!((s.max_connections, s.max_lifetime), (1, None));
    }

    #[test]
    fn unknown_scheme_names_the_key_without_the_password() {
        let cfg = DbConfig {
            url: Some("oracle://app:hunter2@db/app".into()),
            ..DbConfig::default()
        };
        let p = cfg.main().unwrap_err();
        assert_eq!(p.key, "db.url");
        assert!(!p.message.contains("hunter2"), "{}", p.message);
        assert!(p.message.contains("app:***@db"), "{}", p.message);
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn driver_messages_never_carry_the_password() {
        assert_eq!(
            mask_password("postgres://u:s3cret@h/d", "bad s3cret here"),
            "bad *** here"
        );
        let cfg = DbConfig {
            url: Some("postgres://u:s3cret@h/d?sslmode=sometimes".into()),
            ..DbConfig::default()
        };
        let p = cfg.main().unwrap_err();
        assert_eq!(p.key, "db.url");
        assert!(!p.message.contains("s3cret"), "{}", p.message);
    }

    #[test]
    fn bad_pool_values_name_their_key() {
        let cfg = DbConfig {
            max_connections: 0,
            ..DbConfig::default()
        };
        assert_eq!(cfg.main().unwrap_err().key, "db.max_connections");
        let cfg = DbConfig {
            min_connections: 11,
            ..DbConfig::default()
        };
        assert_eq!(cfg.main().unwrap_err().key, "db.min_connections");
        let mut cfg = DbConfig::default();
        cfg.binds.insert("stats".into(), BindConfig::default());
        assert_eq!(cfg.binds().unwrap_err().key, "db.binds.stats.url");
    }
}
