//! One settings tree: `flagon.toml`, profile tables, `FLAGON_*` environment variables and `.env`.
//!
//! The file is flat: top-level keys are the base settings, and a table named after a profile
//! (`[production.server]`) overrides them in that profile. `FLAGON_ENV` selects the profile
//! (`development` by default), `FLAGON_CONFIG` the file (`flagon.toml` by default). Environment
//! variables `FLAGON_SECTION__KEY=value` override both; values parse as TOML scalars (`8080`,
//! `true`) and otherwise stay strings. In development, a `.env` file in the working directory
//! is read too; variables already set in the environment win over it.
//!
//! Each extension reads its own section into a typed serde struct
//! ([`Setup::config`](crate::Setup::config)). An unknown key, a wrong type or a failed
//! validation is a [`ConfigError`] naming the key path, where the value came from (file and
//! line, or the variable's name) and what was expected.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile as FigProfile, Provider, Source};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The environment variables Flagon reads for itself and never treats as settings.
const RESERVED_ENV: &[&str] = &["FLAGON_ENV", "FLAGON_CONFIG", "FLAGON_LOG"];
/// Prefix of variables reserved for test harnesses (never settings).
const RESERVED_ENV_PREFIX: &str = "FLAGON_TEST_";

/// The three profiles, chosen by `FLAGON_ENV`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Local work: throwaway secret key, `.env` loaded, template reloading, helpful error pages.
    Development,
    /// Automated tests.
    Testing,
    /// Deployed: the secret key is required.
    Production,
}

impl Profile {
    /// All profiles, in the order they are documented.
    pub const ALL: [Profile; 3] = [Profile::Development, Profile::Testing, Profile::Production];

    /// The profile's name as written in `FLAGON_ENV` and in `flagon.toml` tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Development => "development",
            Profile::Testing => "testing",
            Profile::Production => "production",
        }
    }

    /// Parses a profile name.
    pub fn parse(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configuration problem: which key, where its value came from, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    key: String,
    source: String,
    message: String,
}

impl ConfigError {
    /// A problem with `key` whose value came from `source`.
    pub fn new(
        key: impl Into<String>,
        source: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            key: key.into(),
            source: source.into(),
            message: message.into(),
        }
    }

    /// The dotted key path, e.g. `server.port`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Where the value came from: `flagon.toml line 3`, `environment variable FLAGON_X`, …
    pub fn source_desc(&self) -> &str {
        &self.source
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config key `{}` ({}): {}",
            self.key, self.source, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// The loaded settings tree for one profile. Cheap to clone.
#[derive(Clone)]
pub struct Config {
    inner: Arc<Inner>,
}

struct Inner {
    figment: Figment,
    profile: Profile,
    file: Option<(String, String)>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("profile", &self.inner.profile)
            .field("file", &self.inner.file.as_ref().map(|(n, _)| n))
            .finish_non_exhaustive()
    }
}

/// Builds a [`Config`] from explicit parts; [`Config::load`] is the usual way in.
///
/// ```
/// use flagon::config::{Config, Profile};
/// let config = Config::builder()
///     .profile(Profile::Testing)
///     .toml("[server]\nport = 8080")
///     .env([("FLAGON_SERVER__HOST", "0.0.0.0")])
///     .build()
///     .unwrap();
/// assert_eq!(config.profile(), Profile::Testing);
/// ```
#[derive(Default)]
pub struct ConfigBuilder {
    profile: Option<Profile>,
    file: Option<(String, String)>,
    env: Vec<(String, String)>,
}

impl ConfigBuilder {
    /// Selects the profile (default: development).
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// Uses `text` as the contents of `flagon.toml`.
    pub fn toml(mut self, text: impl Into<String>) -> Self {
        self.file = Some(("flagon.toml".into(), text.into()));
        self
    }

    /// Reads the settings file at `path`; a missing or unreadable file is an error.
    pub fn file(mut self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                "FLAGON_CONFIG",
                path.display().to_string(),
                format!("cannot read the settings file: {e}"),
            )
        })?;
        self.file = Some((path.display().to_string(), text));
        Ok(self)
    }

    /// Adds environment variables (only `FLAGON_*` ones are read).
    pub fn env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Assembles the settings tree.
    pub fn build(self) -> Result<Config, ConfigError> {
        let profile = self.profile.unwrap_or(Profile::Development);
        let mut figment = Figment::new();
        if let Some((name, text)) = &self.file {
            let provider = FileProvider::parse(name, text)?;
            figment = figment.merge(provider);
        }
        let env: Vec<(String, String)> = self
            .env
            .into_iter()
            .filter(|(k, _)| {
                k.starts_with("FLAGON_")
                    && !RESERVED_ENV.contains(&k.as_str())
                    && !k.starts_with(RESERVED_ENV_PREFIX)
            })
            .collect();
        for (k, _) in &env {
            if k.len() == "FLAGON_".len() || k.split("__").any(|p| p.is_empty()) {
                return Err(ConfigError::new(
                    k.clone(),
                    format!("environment variable {k}"),
                    "malformed name: use FLAGON_SECTION__KEY",
                ));
            }
        }
        figment = figment.merge(EnvProvider { vars: env });
        let figment = figment.select(profile.as_str());
        Ok(Config {
            inner: Arc::new(Inner {
                figment,
                profile,
                file: self.file,
            }),
        })
    }
}

impl Config {
    /// Starts an explicit configuration (tests, embedding).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Loads the process's configuration: `FLAGON_ENV`, `FLAGON_CONFIG` (or `./flagon.toml`
    /// when present), `FLAGON_*` variables, and `.env` in development.
    pub fn load() -> Result<Config, ConfigError> {
        Config::load_from(std::env::vars().collect(), Path::new("."))
    }

    /// [`Config::load`] over an explicit environment and working directory.
    pub fn load_from(vars: Vec<(String, String)>, dir: &Path) -> Result<Config, ConfigError> {
        let lookup = |vars: &[(String, String)], name: &str| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        };
        let mut vars = vars;
        let profile_of = |vars: &[(String, String)]| -> Result<Profile, ConfigError> {
            match lookup(vars, "FLAGON_ENV") {
                None => Ok(Profile::Development),
                Some(v) => Profile::parse(v.trim()).ok_or_else(|| {
                    ConfigError::new(
                        "FLAGON_ENV",
                        "environment variable FLAGON_ENV",
                        format!(
                            "unknown profile `{v}`; expected development, testing or production"
                        ),
                    )
                }),
            }
        };
        if profile_of(&vars)? == Profile::Development {
            let dotenv = dir.join(".env");
            if dotenv.is_file() {
                let iter = dotenvy::from_path_iter(&dotenv).map_err(|e| {
                    ConfigError::new(".env", dotenv.display().to_string(), e.to_string())
                })?;
                for item in iter {
                    let (k, v) = item.map_err(|e| {
                        ConfigError::new(".env", dotenv.display().to_string(), e.to_string())
                    })?;
                    if lookup(&vars, &k).is_none() {
                        vars.push((k, v));
                    }
                }
            }
        }
        let profile = profile_of(&vars)?;
        let mut builder = Config::builder().profile(profile);
        match lookup(&vars, "FLAGON_CONFIG") {
            Some(path) => builder = builder.file(dir.join(path))?,
            None => {
                let default = dir.join("flagon.toml");
                if default.is_file() {
                    builder = builder.file(default)?;
                }
            }
        }
        builder.env(vars).build()
    }

    /// The selected profile.
    pub fn profile(&self) -> Profile {
        self.inner.profile
    }

    /// Reads section `name` into `T`; absent keys take `T`'s serde defaults.
    ///
    /// Prefer [`Setup::config`](crate::Setup::config) inside an extension: it also claims
    /// the section so that two extensions cannot read the same one.
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T, Vec<ConfigError>> {
        let figment = &self.inner.figment;
        let focused = match figment.find_value(name) {
            Ok(Value::Dict(..)) => figment.focus(name),
            Ok(other) => {
                return Err(vec![ConfigError::new(
                    name,
                    self.source_of(name),
                    format!("expected a table, found {}", describe(&other)),
                )]);
            }
            Err(_) => Figment::new(),
        };
        focused
            .extract::<T>()
            .map_err(|e| e.into_iter().map(|e| self.convert(Some(name), e)).collect())
    }

    /// Reads the top-level key `key` into `T` (`None` when absent).
    pub fn value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        if !self.inner.figment.contains(key) {
            return Ok(None);
        }
        self.inner
            .figment
            .extract_inner::<T>(key)
            .map(Some)
            .map_err(|e| self.convert(None, e))
    }

    /// The top-level keys present after merging file, profile and environment.
    pub fn top_level_keys(&self) -> Vec<String> {
        self.inner
            .figment
            .extract::<Dict>()
            .map(|d| d.into_keys().collect())
            .unwrap_or_default()
    }

    /// Where the value at dotted `key` came from: `flagon.toml line 3`,
    /// `environment variable FLAGON_SERVER__PORT`, or `default`.
    pub fn source_of(&self, key: &str) -> String {
        let figment = &self.inner.figment;
        let Some(meta) = figment.find_metadata(key) else {
            return "default".into();
        };
        let keys: Vec<&str> = key.split('.').collect();
        match &meta.source {
            Some(Source::File(path)) => self.file_location(&path.display().to_string(), &keys),
            Some(Source::Custom(name)) if name.starts_with("file:") => {
                self.file_location(&name["file:".len()..], &keys)
            }
            _ if meta.name == ENV_NAME => format!(
                "environment variable {}",
                meta.interpolate(&FigProfile::Global, &keys)
            ),
            _ => meta.name.to_string(),
        }
    }

    fn file_location(&self, name: &str, keys: &[&str]) -> String {
        let Some((_, text)) = &self.inner.file else {
            return name.to_owned();
        };
        let profiled: Vec<&str> = std::iter::once(self.inner.profile.as_str())
            .chain(keys.iter().copied())
            .collect();
        match line_of(text, &profiled).or_else(|| line_of(text, keys)) {
            Some(line) => format!("{name} line {line}"),
            None => name.to_owned(),
        }
    }

    fn convert(&self, prefix: Option<&str>, e: figment::Error) -> ConfigError {
        let mut path: Vec<String> = prefix.map(str::to_owned).into_iter().collect();
        path.extend(e.path.iter().cloned());
        let message = match &e.kind {
            figment::error::Kind::UnknownField(field, expected) => {
                if path.last() != Some(field) {
                    path.push(field.clone());
                }
                if expected.is_empty() {
                    "unknown key; this section takes no keys".to_owned()
                } else {
                    format!("unknown key; expected one of: {}", expected.join(", "))
                }
            }
            figment::error::Kind::MissingField(field) => {
                if path.last().map(String::as_str) != Some(field) {
                    path.push(field.to_string());
                }
                "missing required key".to_owned()
            }
            kind => kind.to_string(),
        };
        let key = path.join(".");
        let source = if key.is_empty() {
            e.metadata
                .as_ref()
                .map(|m| m.name.to_string())
                .unwrap_or_else(|| "settings".into())
        } else {
            self.source_of(&key)
        };
        ConfigError::new(
            if key.is_empty() { "<root>".into() } else { key },
            source,
            message,
        )
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::String(..) => "a string",
        Value::Char(..) => "a character",
        Value::Bool(..) => "a boolean",
        Value::Num(..) => "a number",
        Value::Empty(..) => "nothing",
        Value::Dict(..) => "a table",
        Value::Array(..) => "an array",
    }
}

/// The 1-based line of the key at `path` in TOML `text`, if it is written there.
fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let (last, parents) = path.split_last()?;
    for p in parents {
        table = table.get(p)?.as_table_like()?;
    }
    let (key, item) = table.get_key_value(last)?;
    let offset = key.span().or_else(|| item.span())?.start;
    Some(text[..offset].matches('\n').count() + 1)
}

const ENV_NAME: &str = "environment variable";

/// `flagon.toml`: flat base settings plus profile tables that override them.
struct FileProvider {
    name: String,
    data: Map<FigProfile, Dict>,
}

impl FileProvider {
    fn parse(name: &str, text: &str) -> Result<Self, ConfigError> {
        let mut base: Dict = toml_edit::de::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| format!("{name} line {}", text[..s.start].matches('\n').count() + 1))
                .unwrap_or_else(|| name.to_owned());
            ConfigError::new("<file>", line, format!("not valid TOML: {}", e.message()))
        })?;
        let mut data = Map::new();
        for profile in Profile::ALL {
            if let Some(v) = base.remove(profile.as_str()) {
                match v {
                    Value::Dict(_, d) => {
                        data.insert(FigProfile::new(profile.as_str()), d);
                    }
                    other => {
                        return Err(ConfigError::new(
                            profile.as_str(),
                            name,
                            format!(
                                "a profile override must be a table ([{profile}.section]), found {}",
                                describe(&other)
                            ),
                        ));
                    }
                }
            }
        }
        data.insert(FigProfile::Default, base);
        Ok(FileProvider {
            name: name.to_owned(),
            data,
        })
    }
}

impl Provider for FileProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named("settings file").source(Source::Custom(format!("file:{}", self.name)))
    }

    fn data(&self) -> Result<Map<FigProfile, Dict>, figment::Error> {
        Ok(self.data.clone())
    }
}

/// `FLAGON_*` variables, in the global profile so they override every file table.
struct EnvProvider {
    vars: Vec<(String, String)>,
}

impl Provider for EnvProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENV_NAME).interpolater(|_, keys: &[&str]| {
            format!(
                "FLAGON_{}",
                keys.iter()
                    .map(|k| k.to_uppercase())
                    .collect::<Vec<_>>()
                    .join("__")
            )
        })
    }

    fn data(&self) -> Result<Map<FigProfile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for (name, raw) in &self.vars {
            let parts: Vec<String> = name["FLAGON_".len()..]
                .split("__")
                .map(|p| p.to_lowercase())
                .collect();
            let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
            insert_path(&mut root, &parts, value);
        }
        let mut map = Map::new();
        map.insert(FigProfile::Global, root);
        Ok(map)
    }
}

fn insert_path(dict: &mut Dict, parts: &[String], value: Value) {
    let (first, rest) = parts.split_first().expect("non-empty key path");
    if rest.is_empty() {
        dict.insert(first.clone(), value);
        return;
    }
    let entry = dict
        .entry(first.clone())
        .or_insert_with(|| Value::from(Dict::new()));
    if !matches!(entry, Value::Dict(..)) {
        *entry = Value::from(Dict::new());
    }
    if let Value::Dict(_, d) = entry {
        insert_path(d, rest, value);
    }
}

/// A configuration string that is never printed: `Debug`, `Display` and `Serialize` show
/// `********`. Use it for passwords and tokens in config structs.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

pub(crate) const REDACTED: &str = "********";

/// Whether a key name looks like it holds a secret (`password`, `secret_key`, `token`, …).
pub(crate) fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "token",
        "api_key",
        "private_key",
        "credential",
    ]
    .iter()
    .any(|w| last.contains(w))
}

/// Redacts the password of a URL-shaped value (`postgres://user:pw@host/db`).
pub(crate) fn redact_url(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_owned();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return value.to_owned();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:{REDACTED}{}",
            &value[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => value.to_owned(),
    }
}

/// Core's own `[server]` section.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `host` | `127.0.0.1` | address to bind |
/// | `port` | `5000` | port to bind |
/// | `body_limit` | `2097152` | largest request body in bytes (413 beyond) |
/// | `request_timeout` | `30s` | a request still running after this gets a 503 |
/// | `header_read_timeout` | `10s` | a client must send its headers within this |
/// | `keep_alive_timeout` | `75s` | an idle connection between requests is closed after this |
/// | `shutdown_deadline` | `10s` | how long in-flight requests may finish after a stop signal |
/// | `trusted_proxies` | `[]` | proxy addresses whose `X-Forwarded-For` is believed |
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind.
    pub port: u16,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// A request still running after this gets a 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A client must send its request headers within this.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// An idle connection between requests is closed after this.
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
    /// How long in-flight requests may finish after a stop signal.
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
    /// Proxy addresses (IPs) whose forwarding headers are believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 5000,
            body_limit: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            shutdown_deadline: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Mail {
        host: String,
        port: u16,
    }

    #[test]
    fn file_error_names_key_and_line() {
        let c = Config::builder()
            .toml("[mail]\nhost = \"x\"\nport = \"abc\"\n")
            .build()
            .unwrap();
        let err = c.section::<Mail>("mail").unwrap_err().remove(0);
        assert_eq!(err.key(), "mail.port");
        assert_eq!(err.source_desc(), "flagon.toml line 3");
        assert!(err.message().contains("u16"), "{err}");
    }

    #[test]
    fn env_error_names_variable() {
        let c = Config::builder()
            .env([("FLAGON_MAIL__PORT", "seventy")])
            .build()
            .unwrap();
        let err = c.section::<Mail>("mail").unwrap_err().remove(0);
        assert_eq!(err.key(), "mail.port");
        assert_eq!(err.source_desc(), "environment variable FLAGON_MAIL__PORT");
    }

    #[test]
    fn unknown_key_is_named() {
        let c = Config::builder()
            .toml("[mail]\nhost = \"x\"\n\nprot = 25\n")
            .build()
            .unwrap();
        let err = c.section::<Mail>("mail").unwrap_err().remove(0);
        assert_eq!(err.key(), "mail.prot");
        assert_eq!(err.source_desc(), "flagon.toml line 4");
        assert!(err.message().contains("unknown key"), "{err}");
    }

    #[test]
    fn profile_table_overrides_and_env_overrides_both() {
        let text = "[mail]\nport = 25\n[production.mail]\nport = 587\n";
        let prod = Config::builder()
            .profile(Profile::Production)
            .toml(text)
            .build()
            .unwrap();
        assert_eq!(prod.section::<Mail>("mail").unwrap().port, 587);
        assert_eq!(prod.source_of("mail.port"), "flagon.toml line 4");
        let dev = Config::builder().toml(text).build().unwrap();
        assert_eq!(dev.section::<Mail>("mail").unwrap().port, 25);
        let env = Config::builder()
            .profile(Profile::Production)
            .toml(text)
            .env([("FLAGON_MAIL__PORT", "2525")])
            .build()
            .unwrap();
        assert_eq!(env.section::<Mail>("mail").unwrap().port, 2525);
    }

    #[test]
    fn absent_section_takes_defaults() {
        let c = Config::builder().build().unwrap();
        assert_eq!(c.section::<Mail>("mail").unwrap().port, 0);
    }

    #[test]
    fn bad_profile_is_an_error_naming_the_variable() {
        let err = Config::load_from(
            vec![("FLAGON_ENV".into(), "prod".into())],
            Path::new("/nonexistent"),
        )
        .unwrap_err();
        assert_eq!(err.key(), "FLAGON_ENV");
    }

    #[test]
    fn dotenv_is_read_in_development_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "FLAGON_MAIL__PORT=2626\n").unwrap();
        let dev = Config::load_from(vec![], dir.path()).unwrap();
        assert_eq!(dev.section::<Mail>("mail").unwrap().port, 2626);
        let prod = Config::load_from(vec![("FLAGON_ENV".into(), "production".into())], dir.path())
            .unwrap();
        assert_eq!(prod.section::<Mail>("mail").unwrap().port, 0);
    }

    #[test]
    fn redaction() {
        assert!(is_secret_key("db.password"));
        assert!(is_secret_key("secret_key"));
        assert!(!is_secret_key("server.port"));
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:********@h:5432/db"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
