//! What templates themselves give every template: `url_for` and the `request` object, plus
//! the render's context object, which also carries the render's request to request-aware
//! functions and globals.

use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, ValueKind, from_args};
use minijinja::{Error, ErrorKind, State, Value};

use super::{RenderRequest, RequestGlobalFn};

/// The context key under which a render's request travels to request-aware functions.
const CARRIER: &str = "__flagon_request";

/// A render's whole context as one object: the explicit values, then the context
/// processors' (the last registered first), then the built-ins: `request`, the
/// request-aware globals and the carrier. A name is looked up layer by layer, by `&str`,
/// without the temporary key and per-layer item lookup a general merge makes.
pub(crate) struct RenderContext {
    /// The value layers, the one that wins first: the explicit context, then the
    /// processors' values in reverse registration order.
    pub(crate) layers: Vec<Value>,
    pub(crate) req: Arc<RenderRequest>,
    pub(crate) request_globals: Arc<[(String, RequestGlobalFn)]>,
}

impl std::fmt::Debug for RenderContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderContext")
            .field("req", &self.req)
            .finish_non_exhaustive()
    }
}

impl RenderContext {
    /// The built-ins: the lowest layer.
    fn builtin(self: &Arc<Self>, key: &str) -> Option<Value> {
        match key {
            "request" => Some(Value::from_object(RequestView(self.req.clone()))),
            CARRIER => Some(Value::from_dyn_object(self.clone())),
            _ => {
                let (_, f) = self.request_globals.iter().find(|(n, _)| n == key)?;
                // An error (a value still loading) shows as undefined in this round; the
                // render runs again once the value is loaded.
                f(&self.req).ok()
            }
        }
    }
}

impl Object for RenderContext {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str() {
            Some(key) => self.get_value_by_str(key),
            None => self
                .layers
                .iter()
                .find_map(|l| l.get_item(key).ok().filter(|v| !v.is_undefined())),
        }
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        // A layer that is not an object (a processor returning a string) has no names.
        // An undefined value counts as absent, as in `merge_maps`: the name is then looked
        // up in the next layer, and last in the environment's globals.
        let defined = |v: &Value| !v.is_undefined();
        let found = self
            .layers
            .iter()
            .find_map(|layer| layer.as_object()?.get_value_by_str(key).filter(defined));
        found.or_else(|| self.builtin(key).filter(defined))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut names: BTreeSet<Value> = self
            .layers
            .iter()
            .filter(|v| v.kind() == ValueKind::Map)
            .filter_map(|v| v.try_iter().ok())
            .flatten()
            .collect();
        names.insert(Value::from("request"));
        names.extend(
            self.request_globals
                .iter()
                .map(|(n, _)| Value::from(n.as_str())),
        );
        Enumerator::Iter(Box::new(names.into_iter()))
    }
}

/// The request a render is for, as request-aware functions see it.
pub(crate) fn request_of(state: &State) -> Result<Arc<RenderRequest>, Error> {
    state
        .lookup(CARRIER)
        .and_then(|v| {
            v.downcast_object_ref::<RenderContext>()
                .map(|c| c.req.clone())
        })
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "this function needs a request: render with the Templates extractor",
            )
        })
}

/// `url_for(endpoint, **params)`: path parameters filled in, the rest as a query string.
pub(crate) fn url_for(req: &RenderRequest, args: &[Value]) -> Result<String, Error> {
    let (endpoint, params): (&str, Kwargs) = from_args(args)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for key in params.args() {
        let v: Value = params.get(key)?;
        pairs.push((key.to_owned(), v.to_string()));
    }
    req.app()
        .url_for(endpoint, pairs)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

/// `request`: `path`, `query_string`, `method`, `url`, `args` (the parsed query).
#[derive(Debug)]
pub(crate) struct RequestView(pub(crate) Arc<RenderRequest>);

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
