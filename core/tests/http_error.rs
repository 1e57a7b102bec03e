//! `HttpError` as an error type: a typed cause reachable by type and through `source()`,
//! and `?` conversions that hide the cause from the client.

use std::error::Error as _;

use flagon::testing::{TestClient, testing_config};
use flagon::{App, HttpError, OrInternal, Route};
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
#[error("the account is locked")]
struct Locked;

#[derive(Debug, thiserror::Error)]
#[error("lookup failed")]
struct Lookup(#[source] HttpError);

#[test]
fn the_typed_cause_is_reachable_by_type_and_through_source() {
    let e = HttpError::with_cause(StatusCode::FORBIDDEN, Locked);
    assert_eq!(e.status(), 403);
    assert_eq!(e.message(), "the account is locked");
    assert!(e.find_cause::<Locked>().is_some());
    assert!(e.find_cause::<std::io::Error>().is_none());
    assert_eq!(e.source().unwrap().to_string(), "the account is locked");
    // HttpError is an error in its own right: it can be another error's source, and its
    // cause is found through the chain.
    let outer = Lookup(e);
    let inner = outer.source().unwrap().downcast_ref::<HttpError>().unwrap();
    assert!(inner.find_cause::<Locked>().is_some());
    assert_eq!(inner.to_string(), "403 the account is locked");
}

#[test]
fn a_cause_deeper_in_the_chain_is_found() {
    let e = HttpError::internal(Lookup(HttpError::with_cause(StatusCode::FORBIDDEN, Locked)));
    assert!(e.find_cause::<Lookup>().is_some());
    assert!(e.find_cause::<Locked>().is_some());
}

async fn locked() -> Result<String, HttpError> {
    Err(HttpError::with_cause(StatusCode::FORBIDDEN, Locked))
}

async fn plain_forbidden() -> Result<String, HttpError> {
    Err(HttpError::forbidden("no"))
}

async fn parse() -> Result<String, HttpError> {
    let n: u32 = "twelve".parse().or_500()?;
    Ok(n.to_string())
}

#[tokio::test]
async fn an_error_handler_tells_causes_apart_by_type() {
    let app = App::builder()
        .settings(testing_config())
        .route(Route::get("/locked", locked).name("locked"))
        .route(Route::get("/forbidden", plain_forbidden).name("forbidden"))
        .route(Route::get("/parse", parse).name("parse"))
        .configure(|s| {
            s.error_handler(StatusCode::FORBIDDEN, |ctx| async move {
                let why = match ctx.error.find_cause::<Locked>() {
                    Some(_) => "locked account",
                    None => "other refusal",
                };
                (StatusCode::FORBIDDEN, why)
            });
            Ok(())
        })
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    assert_eq!(client.get("/locked").send().await.text(), "locked account");
    assert_eq!(
        client.get("/forbidden").send().await.text(),
        "other refusal"
    );
    let res = client.get("/parse").send().await;
    assert_eq!(res.status(), 500);
    assert!(
        !res.text().contains("invalid digit"),
        "the cause is not shown"
    );
}
