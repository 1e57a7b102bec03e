//! One settings tree: `flagon.toml`, profile tables, `FLAGON_*` environment variables and `.env`.
//!
//! The file is flat: top-level keys are the base settings, and a table named after a profile
//! (`[production.server]`) overrides them in that profile. `FLAGON_ENV` selects the profile
//! (`development` by default), `FLAGON_CONFIG` the file (`flagon.toml` by default). Environment
//! variables `FLAGON_SECTION__KEY=value` override both. A variable is text: it is read as a
//! boolean or number only where the setting is one, and only in exact form (`true`/`false`,
//! `8080`); arrays and tables are written in TOML (`["10.0.0.1"]`). In development, a `.env`
//! file in the working directory is read too; variables already set in the environment win
//! over it.
//!
//! Values are read strictly: `enabled = "yes"`, `"on"` or `1` is not a boolean, and a wrong
//! type stops the build like any other error.
//!
//! Each extension reads its own section into a typed serde struct
//! ([`Setup::config`](crate::Setup::config)). An unknown key, a wrong type or a failed
//! validation is a [`ConfigError`] naming the key path, where the value came from (file and
//! line, or the variable's name) and what was expected.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use figment::value::{Dict, Value};
use figment::{Figment, Profile as FigProfile, Source};
use serde::Serialize;
use serde::de::DeserializeOwned;

mod secret;
mod server;
mod sources;

pub use secret::Secret;
pub(crate) use secret::{REDACTED, is_secret_key, redact_url, weakness};
pub use server::ServerConfig;
use sources::{ENV_NAME, EnvProvider, FileProvider};

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

/// A configuration problem: which key, where its value came from, and what is wrong. The
/// underlying error (figment's, an I/O or `.env` error) is kept as its
/// [`source()`](std::error::Error::source).
#[derive(Clone, Debug)]
pub struct ConfigError {
    key: String,
    location: String,
    message: String,
    cause: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
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
            location: source.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// Keeps `cause` as the error's `source()` (the message should still say what is wrong).
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Arc::new(cause));
        self
    }

    /// The dotted key path, e.g. `server.port`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Where the value came from: `flagon.toml line 3`, `environment variable FLAGON_X`, …
    pub fn source_desc(&self) -> &str {
        &self.location
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
            self.key, self.location, self.message
        )
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The loaded settings tree for one profile. Cheap to clone.
#[derive(Clone)]
pub struct Config {
    inner: Arc<Inner>,
}

struct Inner {
    figment: Figment,
    profile: Profile,
    file: Option<(String, String)>,
    /// How many `FLAGON_*` variables are settings (bounds the strict reading's retries).
    env_count: usize,
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
            .with_cause(e)
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
        let env_count = env.len();
        figment = figment.merge(EnvProvider { vars: env });
        let figment = figment.select(profile.as_str());
        Ok(Config {
            inner: Arc::new(Inner {
                figment,
                profile,
                file: self.file,
                env_count,
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
                let dotenv_error = |e: dotenvy::Error| {
                    ConfigError::new(".env", dotenv.display().to_string(), e.to_string())
                        .with_cause(e)
                };
                let iter = dotenvy::from_path_iter(&dotenv).map_err(dotenv_error)?;
                for item in iter {
                    let (k, v) = item.map_err(dotenv_error)?;
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
        let present = match figment.find_value(name) {
            Ok(Value::Dict(..)) => true,
            Ok(other) => {
                return Err(vec![self.error(
                    name,
                    format!("expected a table, found {}", describe(&other)),
                )]);
            }
            Err(_) => false,
        };
        let extract = |f: &Figment| match present {
            true => f.focus(name).extract::<T>().map_err(Box::new),
            false => Figment::new().extract::<T>().map_err(Box::new),
        };
        self.strict(Some(name), extract)
            .map_err(|e| e.into_iter().map(|e| self.convert(Some(name), e)).collect())
    }

    /// Reads strictly: a wrong type in the file is an error (`enabled = "yes"` is not a
    /// boolean). Environment variables are text, so where the setting is a boolean or a
    /// number, a variable's text is read as one if it is exactly one (`true`, `8080`);
    /// everywhere else it stays text (`FLAGON_DB__PASSWORD=0123456`).
    fn strict<T>(
        &self,
        prefix: Option<&str>,
        extract: impl Fn(&Figment) -> Result<T, Box<figment::Error>>,
    ) -> Result<T, Box<figment::Error>> {
        let mut figment = self.inner.figment.clone();
        // Each retry turns one more variable into the scalar its setting expects.
        for _ in 0..=self.inner.env_count {
            let e = match extract(&figment) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let key: Vec<String> = prefix
                .map(str::to_owned)
                .into_iter()
                .chain(e.path.iter().cloned())
                .collect();
            match sources::typed_env_value(&figment, &e, &key) {
                Some(typed) => figment = figment.merge(typed),
                None => return Err(e),
            }
        }
        extract(&figment)
    }

    /// Reads the top-level key `key` into `T` (`None` when absent).
    pub fn value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        if !self.inner.figment.contains(key) {
            return Ok(None);
        }
        self.strict(None, |f| f.extract_inner::<T>(key).map_err(Box::new))
            .map(Some)
            .map_err(|e| self.convert(None, *e))
    }

    /// The top-level keys present after merging file, profile and environment.
    pub fn top_level_keys(&self) -> Vec<String> {
        self.inner
            .figment
            .extract::<Dict>()
            .map(|d| d.into_keys().collect())
            .unwrap_or_default()
    }

    /// An error about the value at dotted `key`, naming where that value came from (its
    /// [`source_of`](Config::source_of)): what every setting's validation reports.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(key, self.source_of(key), message)
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
        let e = FigmentCause(e);
        let key = path.join(".");
        let source = if key.is_empty() {
            e.0.metadata
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
        .with_cause(e)
    }
}

/// A figment error as a cause: its own `Display` only (figment's adds the source and path,
/// which the [`ConfigError`] already says in Flagon's terms).
#[derive(Debug)]
struct FigmentCause(figment::Error);

impl fmt::Display for FigmentCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.kind, f)
    }
}

impl std::error::Error for FigmentCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

pub(super) fn describe(v: &Value) -> &'static str {
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

#[cfg(test)]
mod tests {
    use serde::Deserialize;

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
    fn env_text_that_looks_numeric_stays_text_for_text_settings() {
        #[derive(Debug, Default, Deserialize)]
        #[serde(default)]
        struct Db {
            password: String,
            pool: u32,
            replicas: Vec<String>,
        }
        let c = Config::builder()
            .env([
                ("FLAGON_DB__PASSWORD", "0123456"),
                ("FLAGON_DB__POOL", "8"),
                ("FLAGON_DB__REPLICAS", "[\"a\", \"b\"]"),
            ])
            .build()
            .unwrap();
        let db = c.section::<Db>("db").unwrap();
        assert_eq!(db.password, "0123456");
        assert_eq!(db.pool, 8);
        assert_eq!(db.replicas, ["a", "b"]);
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
