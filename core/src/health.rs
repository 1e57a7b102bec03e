//! `/healthz` (the process answers) and `/readyz` (every registered check passes).
//!
//! Checks run concurrently, each cut off at its own timeout. `/readyz` answers 200 when all
//! pass and 503 otherwise, with a JSON body naming each check's result and duration.

use std::time::Instant;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::AppHandle;

pub(crate) async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub(crate) async fn readyz(app: AppHandle) -> Response {
    let checks = app.0.health.iter().map(|h| {
        let app = app.clone();
        async move {
            let started = Instant::now();
            let check = std::panic::AssertUnwindSafe(async move { (h.check)(app).await });
            let result =
                tokio::time::timeout(h.timeout, futures_util::FutureExt::catch_unwind(check))
                    .await
                    .map(|r| r.unwrap_or_else(|_| Err("the check panicked".to_owned())));
            let ms = started.elapsed().as_millis() as u64;
            let (ok, body) = match result {
                Ok(Ok(())) => (true, json!({ "status": "ok", "duration_ms": ms })),
                Ok(Err(e)) => (
                    false,
                    json!({ "status": "fail", "error": e, "duration_ms": ms }),
                ),
                Err(_) => (
                    false,
                    json!({
                        "status": "timeout",
                        "error": format!("no answer within {:?}", h.timeout),
                        "duration_ms": ms
                    }),
                ),
            };
            if !ok {
                tracing::warn!(check = %h.name, result = %body, "readiness check failed");
            }
            (h.name.clone(), ok, body)
        }
    });
    let results = futures_util::future::join_all(checks).await;
    let all_ok = results.iter().all(|(_, ok, _)| *ok);
    let mut map = Map::new();
    for (name, _, body) in results {
        map.insert(name, body);
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body =
        json!({ "status": if all_ok { "ok" } else { "fail" }, "checks": Value::Object(map) });
    (status, Json(body)).into_response()
}
