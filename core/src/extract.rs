//! axum's body and path extractors, with rejections that are [`HttpError`]s.
//!
//! axum answers a malformed JSON body, form, query or path with a plain-text 4xx of its
//! own. These wrappers give the same status and message as an [`HttpError`], so the app's
//! error handlers see it and the client gets the JSON or HTML error page its `Accept`
//! header asks for. Use them where a JSON API should answer bad input in JSON. The axum
//! rejection stays the error's cause: an error handler finds it with
//! [`HttpError::find_cause`] (`find_cause::<axum::extract::rejection::JsonRejection>()`).
//!
//! ```
//! use flagon::extract::{Json, Path};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct NewItem {
//!     name: String,
//! }
//!
//! async fn create(Path(list): Path<u32>, Json(item): Json<NewItem>) -> String {
//!     format!("{} added to list {list}", item.name)
//! }
//! ```

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::IntoResponse;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::http_error::HttpError;

macro_rules! wrapper {
    ($(#[$doc:meta])* $name:ident, $inner:path, body) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name<T>(pub T);

        impl<T, S> FromRequest<S> for $name<T>
        where
            T: DeserializeOwned,
            S: Send + Sync,
        {
            type Rejection = HttpError;

            async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
                <$inner>::from_request(req, state)
                    .await
                    .map(|v| $name(v.0))
                    // The rejection's status and message, the rejection kept as the cause.
                    .map_err(|r| HttpError::with_cause(r.status(), r))
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $inner:path, parts) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name<T>(pub T);

        impl<T, S> FromRequestParts<S> for $name<T>
        where
            T: DeserializeOwned + Send,
            S: Send + Sync,
        {
            type Rejection = HttpError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
                <$inner>::from_request_parts(parts, state)
                    .await
                    .map(|v| $name(v.0))
                    .map_err(|r| HttpError::with_cause(r.status(), r))
            }
        }
    };
}

wrapper!(
    /// A JSON body (`Content-Type: application/json`); bad input is a 400, 415 or 422
    /// [`HttpError`].
    Json, axum::Json<T>, body
);
wrapper!(
    /// A `application/x-www-form-urlencoded` body (or the query string of a GET); bad input
    /// is a 400, 415 or 422 [`HttpError`].
    Form, axum::Form<T>, body
);
wrapper!(
    /// The query string; bad input is a 400 [`HttpError`].
    Query, axum::extract::Query<T>, parts
);
wrapper!(
    /// Path parameters; bad input is a 400 [`HttpError`].
    Path, axum::extract::Path<T>, parts
);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}
