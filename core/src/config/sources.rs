//! Where settings come from: `flagon.toml` (flat base plus profile tables) and `FLAGON_*`
//! environment variables.

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile as FigProfile, Provider, Source};

use super::{ConfigError, Profile, describe};

pub(super) const ENV_NAME: &str = "environment variable";

/// `flagon.toml`: flat base settings plus profile tables that override them.
pub(super) struct FileProvider {
    name: String,
    data: Map<FigProfile, Dict>,
}

impl FileProvider {
    pub(super) fn parse(name: &str, text: &str) -> Result<Self, ConfigError> {
        let mut base: Dict = toml_edit::de::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| format!("{name} line {}", text[..s.start].matches('\n').count() + 1))
                .unwrap_or_else(|| name.to_owned());
            let message = format!("not valid TOML: {}", e.message());
            ConfigError::new("<file>", line, message).with_cause(e)
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
pub(super) struct EnvProvider {
    pub(super) vars: Vec<(String, String)>,
}

fn env_metadata() -> Metadata {
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

impl Provider for EnvProvider {
    fn metadata(&self) -> Metadata {
        env_metadata()
    }

    fn data(&self) -> Result<Map<FigProfile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for (name, raw) in &self.vars {
            let parts: Vec<String> = name["FLAGON_".len()..]
                .split("__")
                .map(|p| p.to_lowercase())
                .collect();
            // Arrays and tables are parsed (`["10.0.0.1"]`); scalars stay text, so that
            // `FLAGON_DB__PASSWORD=123456` is a string for a string setting, and are read as
            // numbers or booleans only where the setting is one (`typed_env_value`).
            let value = match raw.parse::<Value>() {
                Ok(v @ (Value::Array(..) | Value::Dict(..))) => v,
                _ => Value::from(raw.clone()),
            };
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

/// One variable re-read as the scalar its setting expects: `error` says a string was found
/// where a boolean or number was expected, and the value at `key` is a variable's text. Only
/// the exact forms count: `true`/`false` for a boolean (not `yes`, `on` or `1`), a decimal
/// number for a number. `None` when the error is anything else, so it is reported as is.
pub(super) fn typed_env_value(
    figment: &figment::Figment,
    error: &figment::Error,
    key: &[String],
) -> Option<TypedEnv> {
    let figment::error::Kind::InvalidType(figment::error::Actual::Str(_), expected) = &error.kind
    else {
        return None;
    };
    let dotted = key.join(".");
    if figment.find_metadata(&dotted)?.name != ENV_NAME {
        return None;
    }
    let Ok(Value::String(_, raw)) = figment.find_value(&dotted) else {
        return None;
    };
    let value = if expected == "a boolean" {
        match raw.as_str() {
            "true" => Value::from(true),
            "false" => Value::from(false),
            _ => return None,
        }
    } else if let Ok(n) = raw.parse::<u64>() {
        Value::from(n)
    } else if let Ok(n) = raw.parse::<i64>() {
        Value::from(n)
    } else if raw
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        Value::from(raw.parse::<f64>().ok()?)
    } else {
        return None;
    };
    Some(TypedEnv {
        key: key.to_vec(),
        value,
    })
}

/// A variable's value re-read as a boolean or number, overriding its text.
pub(super) struct TypedEnv {
    key: Vec<String>,
    value: Value,
}

impl Provider for TypedEnv {
    fn metadata(&self) -> Metadata {
        env_metadata()
    }

    fn data(&self) -> Result<Map<FigProfile, Dict>, figment::Error> {
        let mut root = Dict::new();
        insert_path(&mut root, &self.key, self.value.clone());
        let mut map = Map::new();
        map.insert(FigProfile::Global, root);
        Ok(map)
    }
}
