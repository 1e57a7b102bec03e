//! The check compiled onto every route that takes an unsafe method.

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, Limited};

use super::{CsrfError, CsrfRuntime};
use crate::http_error::HttpError;
use crate::request::RequestMeta;

impl CsrfRuntime {
    /// The token field of a `multipart/form-data` body (an upload form), if any. The body is
    /// already buffered within the limit; a malformed one has no token.
    async fn multipart_token(&self, bytes: bytes::Bytes, boundary: String) -> Option<String> {
        let stream =
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) });
        let mut form = multer::Multipart::new(stream, boundary);
        while let Ok(Some(field)) = form.next_field().await {
            if field.name() == Some(self.cfg.field_name.as_str()) {
                return field.text().await.ok();
            }
        }
        None
    }

    /// Checks an unsafe request; returns it (its body restored) or the refusal. Needs no
    /// session and no store: the token is checked against the browser's signed cookie.
    pub(crate) async fn check(
        &self,
        meta: &RequestMeta,
        req: Request,
    ) -> Result<Request, Response> {
        if self.cfg.check_origin
            && self
                .origins
                .cross_origin(req.headers(), req.uri(), meta.peer)
        {
            return Err(CsrfError::CrossOrigin.into_response());
        }
        if bearer_only(req.headers()) {
            return Ok(req);
        }
        let secret = self.tokens.browser_secret(req.headers());
        if let Some(v) = req.headers().get(&self.header) {
            let token = v.to_str().map_err(|_| CsrfError::Invalid.into_response())?;
            self.tokens
                .verify(secret, token)
                .map_err(IntoResponse::into_response)?;
            return Ok(req);
        }
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let is_form = content_type.starts_with("application/x-www-form-urlencoded");
        let boundary = multer::parse_boundary(&content_type).ok();
        if !is_form && boundary.is_none() {
            return Err(CsrfError::Missing.into_response());
        }
        let limit = meta.app.server_config().body_limit;
        let (parts, body) = req.into_parts();
        let bytes = match Limited::new(body, limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Err(HttpError::from_body_error(e).into_response()),
        };
        let token = match boundary {
            None => form_urlencoded::parse(&bytes)
                .find(|(k, _)| *k == self.cfg.field_name)
                .map(|(_, v)| v.into_owned()),
            Some(boundary) => self.multipart_token(bytes.clone(), boundary).await,
        };
        let req = Request::from_parts(parts, Body::from(bytes));
        match token {
            None => Err(CsrfError::Missing.into_response()),
            Some(t) => {
                self.tokens
                    .verify(secret, &t)
                    .map_err(IntoResponse::into_response)?;
                Ok(req)
            }
        }
    }
}

/// A request authenticated by `Authorization: Bearer` and carrying no cookie at all: it has
/// no ambient credential for a forged cross-site request to ride on (browsers never add a
/// bearer token on their own, and a page cannot set `Authorization` on another origin's
/// request without CORS), so it needs no token. `Basic` is not exempt: browsers resend it.
pub(super) fn bearer_only(headers: &http::HeaderMap) -> bool {
    if headers.contains_key(http::header::COOKIE) {
        return false;
    }
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
        })
}
