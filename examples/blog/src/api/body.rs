//! Reading a JSON request body: the content type, the syntax, the shape and each field are
//! checked in that order, and each failure names what is wrong — a 400 when the body is not
//! a JSON object at all, a 422 naming the field when one is missing, unknown or of the wrong
//! type.

use flagon::axum::body::{Body, to_bytes};
use flagon::http::HeaderMap;
use flagon::http::header::CONTENT_TYPE;
use flagon::serde_json::{Map, Value};
use flagon::{HttpError, serde_json};
use flagon_i18n::Lang;

use super::problem::{ApiError, Problem};

/// The largest JSON body read: a post's 100 KiB of Markdown, escaped, with room to spare.
pub const MAX_JSON_BYTES: usize = 512 * 1024;

/// Whether `headers` say the body is JSON: `application/json` or any `application/*+json`,
/// parameters (`; charset=utf-8`) allowed.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// A JSON object whose keys are all among the accepted ones.
#[derive(Debug)]
pub struct Fields<'l> {
    map: Map<String, Value>,
    lang: &'l Lang,
}

/// Reads `body` as a JSON object whose keys are all in `accepted`.
pub async fn read_object<'l>(
    headers: &HeaderMap,
    body: Body,
    accepted: &[&str],
    lang: &'l Lang,
) -> Result<Fields<'l>, ApiError> {
    if !is_json(headers) {
        return Err(Problem::bad_request(
            "unsupported-content-type",
            lang.t("api-content-type", ()),
        )
        .into());
    }
    let bytes = to_bytes(body, MAX_JSON_BYTES)
        .await
        .map_err(HttpError::from_body_error)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Problem::bad_request(
            "malformed-json",
            lang.t("api-malformed-json", [("error", e.to_string())]),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(Problem::bad_request("not-an-object", lang.t("api-not-object", ())).into());
    };
    if let Some(unknown) = map.keys().find(|k| !accepted.contains(&k.as_str())) {
        let shown: String = unknown.chars().take(64).collect();
        return Err(Problem::invalid_field(
            shown.clone(),
            lang.t("api-unknown-field", [("field", shown)]),
        )
        .into());
    }
    Ok(Fields { map, lang })
}

impl Fields<'_> {
    fn wrong(&self, field: &str, expected: &str) -> Problem {
        let expected = self.lang.t(expected, ());
        Problem::invalid_field(
            field,
            self.lang.t(
                "api-wrong-type",
                [("field", field.to_owned()), ("expected", expected)],
            ),
        )
    }

    fn present(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// A string field that must be there.
    pub fn required_str(&self, field: &str) -> Result<String, ApiError> {
        match self.present(field) {
            None => Err(Problem::invalid_field(
                field,
                self.lang.t("api-missing-field", [("field", field)]),
            )
            .into()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(self.wrong(field, "api-type-string").into()),
        }
    }

    /// A string field that may be absent or `null`.
    pub fn optional_str(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(field, "api-type-string").into()),
        }
    }

    /// A boolean field; absent or `null` is `false`.
    pub fn flag(&self, field: &str) -> Result<bool, ApiError> {
        match self.present(field) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.wrong(field, "api-type-bool").into()),
        }
    }

    /// A list of strings; absent or `null` is empty.
    pub fn strings(&self, field: &str) -> Result<Vec<String>, ApiError> {
        match self.present(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.wrong(field, "api-type-strings").into()),
                })
                .collect(),
            Some(_) => Err(self.wrong(field, "api-type-strings").into()),
        }
    }
}
