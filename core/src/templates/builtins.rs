//! What every template gets from core: `url_for`, `get_flashed_messages`, `csrf_token`,
//! and the `request` and `session` objects.

use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr};
use minijinja::{Environment, Error, ErrorKind, State, Value};

use super::RenderRequest;
use crate::session::Session;

/// Global names core claims (clashes with them are build errors).
pub(crate) const NAMES: [&str; 5] = [
    "url_for",
    "get_flashed_messages",
    "csrf_token",
    "request",
    "session",
];

/// The context key under which a render's request travels to the built-in functions.
const CARRIER: &str = "__flagon_request";

pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_function("url_for", url_for);
    env.add_function("get_flashed_messages", get_flashed_messages);
    env.add_function("csrf_token", csrf_token);
}

/// The lowest layer of every render context: `request`, `session`, and the carrier.
#[derive(Debug)]
pub(crate) struct Globals(pub(crate) Arc<RenderRequest>);

impl Object for Globals {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "request" => Some(Value::from_object(RequestView(self.0.clone()))),
            "session" => self
                .0
                .session()
                .map(|s| Value::from_object(SessionView(s.clone()))),
            CARRIER => Some(Value::from_dyn_object(self.clone())),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["request", "session"])
    }
}

fn request_of(state: &State) -> Result<Arc<RenderRequest>, Error> {
    state
        .lookup(CARRIER)
        .and_then(|v| v.downcast_object_ref::<Globals>().map(|g| g.0.clone()))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "this function needs a request: render with the Templates extractor",
            )
        })
}

fn session_of(state: &State) -> Result<Session, Error> {
    request_of(state)?.session().cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            "sessions are not available for this render",
        )
    })
}

/// `url_for(endpoint, **params)`: path parameters filled in, the rest as a query string.
fn url_for(state: &State, endpoint: &str, params: Kwargs) -> Result<String, Error> {
    let req = request_of(state)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for key in params.args() {
        let v: Value = params.get(key)?;
        pairs.push((key.to_owned(), v.to_string()));
    }
    req.app()
        .url_for(endpoint, pairs)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

/// `get_flashed_messages(with_categories=false, category_filter=[])`.
fn get_flashed_messages(state: &State, opts: Kwargs) -> Result<Value, Error> {
    let with_categories: Option<bool> = opts.get("with_categories")?;
    let filter: Option<Vec<String>> = opts.get("category_filter")?;
    opts.assert_all_used()?;
    // Outside a request (mail, commands) there is no session and so nothing flashed.
    let messages = match request_of(state)?.session() {
        Some(session) => session.flashed_messages(),
        None => Vec::new(),
    };
    let kept = messages
        .into_iter()
        .filter(|m| filter.as_ref().is_none_or(|f| f.contains(&m.category)));
    Ok(if with_categories.unwrap_or(false) {
        kept.map(|m| Value::from(vec![Value::from(m.category), Value::from(m.message)]))
            .collect()
    } else {
        kept.map(|m| Value::from(m.message)).collect()
    })
}

/// `csrf_token()`: the session's CSRF token for a hidden `csrf_token` form field.
fn csrf_token(state: &State) -> Result<String, Error> {
    let req = request_of(state)?;
    let session = session_of(state)?;
    crate::csrf::token(req.app(), &session)
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "CSRF protection is not set up"))
}

/// `request`: `path`, `query_string`, `method`, `url`, `args` (the parsed query).
#[derive(Debug)]
struct RequestView(Arc<RenderRequest>);

/// Most query parameters exposed as `request.args`.
const MAX_ARGS: usize = 64;

impl Object for RequestView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let r = &self.0;
        Some(match key.as_str()? {
            "path" => Value::from(r.path()),
            "query_string" => Value::from(r.query().unwrap_or("")),
            "method" => Value::from(r.method().as_str()),
            "url" => Value::from(r.uri().to_string()),
            "args" => {
                let pairs = form_urlencoded::parse(r.query().unwrap_or("").as_bytes());
                let map: std::collections::BTreeMap<String, String> = pairs
                    .take(MAX_ARGS)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                Value::from_serialize(map)
            }
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["path", "query_string", "method", "url", "args"])
    }
}

/// `session`: the session's values, read-only. Keys starting with `_` (Flagon's own, such
/// as the CSRF secret and pending flashes) are hidden.
#[derive(Debug)]
struct SessionView(Session);

impl Object for SessionView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str().filter(|k| !k.starts_with('_'))?;
        self.0.get_value(key).map(Value::from_serialize)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys = self.0.keys().into_iter().filter(|k| !k.starts_with('_'));
        Enumerator::Values(keys.map(Value::from).collect())
    }
}
