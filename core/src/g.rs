//! Flask's `g`: per-request state that hooks and the handler share. It rides in the request's
//! extensions and knows nothing else of Flagon, so hooks, requests and templates all name it
//! from here.

use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Request};
use http::request::Parts;

/// Flask's `g`: a per-request typed map shared by hooks and the handler.
///
/// ```
/// use flagon::G;
/// #[derive(Clone)]
/// struct StartedAt(u64);
/// async fn handler(g: G) -> String {
///     let started = g.get::<StartedAt>().map(|s| s.0).unwrap_or(0);
///     format!("started at {started}")
/// }
/// ```
#[derive(Clone, Default)]
pub struct G(Arc<Mutex<http::Extensions>>);

impl G {
    /// Stores a value, returning the previous one of the same type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.lock().insert(value)
    }

    /// A clone of the stored value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().get::<T>().cloned()
    }

    /// Removes and returns the stored value of type `T`.
    pub fn remove<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().remove::<T>()
    }

    /// The request's `g`, created on first use.
    pub fn of(req: &mut Request) -> G {
        G::of_extensions(req.extensions_mut())
    }

    fn of_extensions(ext: &mut http::Extensions) -> G {
        if let Some(g) = ext.get::<G>() {
            return g.clone();
        }
        let g = G::default();
        ext.insert(g.clone());
        g
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, http::Extensions> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for G {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(G::of_extensions(&mut parts.extensions))
    }
}
