//! What core records about a request for extensions: `RequestFinished`'s endpoint, blueprint
//! and who answered, and the neutral identity and locale facts.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use axum::response::IntoResponse;
use flagon::signals::{AnsweredBy, RequestFinished};
use flagon::testing::{TestClient, testing_config};
use flagon::{App, Blueprint, Decorator, Identity, Locale, Next, Route};
use http::StatusCode;

type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>, AnsweredBy, u16)>>>;

fn app(seen: &Seen) -> App {
    let seen = seen.clone();
    App::builder()
        .settings(testing_config())
        .configure(move |s| {
            s.subscribe(move |e: &RequestFinished| {
                seen.lock().unwrap().push((
                    e.endpoint.as_deref().map(str::to_owned),
                    e.blueprint.as_deref().map(str::to_owned),
                    e.answered_by,
                    e.status.as_u16(),
                ));
            });
            s.before_request(|req| async move {
                match req.headers().contains_key("x-hook-stop") {
                    true => flagon::respond(StatusCode::IM_A_TEAPOT),
                    false => ControlFlow::Continue(req),
                }
            });
            s.guard(
                |r| r.endpoint == "api.items",
                |req| async move {
                    match req.headers().contains_key("x-guard-stop") {
                        true => flagon::respond(StatusCode::FORBIDDEN),
                        false => ControlFlow::Continue(req),
                    }
                },
            );
            Ok(())
        })
        .route(Route::get("/", || async { "home" }).name("home"))
        .configure(|s| {
            s.mount(
                "/files",
                "files",
                axum::Router::new().route("/a", axum::routing::get(|| async { "a" })),
            );
            Ok(())
        })
        .blueprint(
            Blueprint::new("api").url_prefix("/api").route(
                Route::get("/items", || async { "items" })
                    .name("items")
                    .with(Decorator::new(
                        "app",
                        "quota",
                        |req, next: Next| async move {
                            match req.headers().contains_key("x-decorator-stop") {
                                true => StatusCode::TOO_MANY_REQUESTS.into_response(),
                                false => next.run(req).await,
                            }
                        },
                    )),
            ),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn request_finished_says_which_route_and_who_answered() {
    let seen: Seen = Arc::default();
    let app = app(&seen);
    let client = TestClient::new(&app);
    client.get("/").send().await;
    client.get("/api/items").send().await;
    client
        .get("/api/items")
        .header("x-decorator-stop", "1")
        .send()
        .await;
    client
        .get("/api/items")
        .header("x-guard-stop", "1")
        .send()
        .await;
    client
        .get("/api/items")
        .header("x-hook-stop", "1")
        .send()
        .await;
    client.get("/nowhere").send().await;
    client.post("/").send().await;
    client.get("/files/a").send().await;
    let items = || (Some("api.items".to_owned()), Some("api".to_owned()));
    let expected = vec![
        (Some("home".to_owned()), None, AnsweredBy::Handler, 200),
        (items().0, items().1, AnsweredBy::Handler, 200),
        (items().0, items().1, AnsweredBy::Decorator, 429),
        (items().0, items().1, AnsweredBy::Guard, 403),
        (items().0, items().1, AnsweredBy::Hook, 418),
        (None, None, AnsweredBy::Router, 404),
        (None, None, AnsweredBy::Router, 405),
        (None, None, AnsweredBy::Mount, 200),
    ];
    assert_eq!(*seen.lock().unwrap(), expected);
}

#[tokio::test]
async fn identity_and_locale_set_by_one_step_are_read_by_others() {
    // A login-like decorator sets the identity, an i18n-like hook the locale; a cache-like
    // decorator and the handler read them without knowing who set them.
    let sets_identity = Decorator::new("app", "login", |mut req, next: Next| async move {
        if let Some(user) = req.headers().get("x-user").and_then(|v| v.to_str().ok()) {
            let id = Identity::new(user.to_owned());
            let _ = Identity::set(&mut req, id);
        }
        next.run(req).await
    });
    let varies = Decorator::new("app", "vary", |req, next: Next| async move {
        let key = format!(
            "{}|{}",
            Identity::of(&req).map(Identity::as_str).unwrap_or("-"),
            Locale::of(&req).map(Locale::as_str).unwrap_or("-")
        );
        let mut res = next.run(req).await;
        res.headers_mut()
            .insert("x-cache-key", key.parse().unwrap());
        res
    });
    let app = App::builder()
        .settings(testing_config())
        .configure(|s| {
            s.before_request(|mut req| async move {
                let tag = req
                    .headers()
                    .get("accept-language")
                    .and_then(|v| v.to_str().ok())
                    .and_then(Locale::parse);
                if let Some(locale) = tag {
                    let _ = Locale::set(&mut req, locale);
                }
                ControlFlow::Continue(req)
            });
            Ok(())
        })
        .route(
            Route::get(
                "/me",
                |who: Option<Identity>, locale: Option<Locale>| async move {
                    format!(
                        "{} in {}",
                        who.map(|w| w.to_string())
                            .unwrap_or_else(|| "anonymous".into()),
                        locale.map(|l| l.to_string()).unwrap_or_else(|| "?".into())
                    )
                },
            )
            .name("me")
            .with(sets_identity.clone())
            .with(varies),
        )
        .route(
            Route::get("/private", |who: Identity| async move { who.to_string() })
                .name("private")
                .with(sets_identity),
        )
        .route(Route::get("/lang", |l: Locale| async move { l.to_string() }).name("lang"))
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    let res = client
        .get("/me")
        .header("x-user", "42")
        .header("accept-language", "fr-CA")
        .send()
        .await;
    assert_eq!(res.text(), "42 in fr-CA");
    assert_eq!(res.header("x-cache-key"), Some("42|fr-CA"));
    let res = client
        .get("/me")
        .header("accept-language", "../../x")
        .send()
        .await;
    assert_eq!(res.text(), "anonymous in ?");
    assert_eq!(res.header("x-cache-key"), Some("-|-"));

    let res = client.get("/private").send().await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = client.get("/private").header("x-user", "7").send().await;
    assert_eq!(res.text(), "7");

    let res = client.get("/lang").send().await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let res = client
        .get("/lang")
        .header("accept-language", "de")
        .send()
        .await;
    assert_eq!(res.text(), "de");
}
