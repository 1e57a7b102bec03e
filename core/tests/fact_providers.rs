//! Request facts computed on first read by the provider an extension registered
//! (`Setup::provide_fact`): at most once per request, never for a request that does not read
//! them, an explicit `set` wins, and one provider per fact.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use flagon::testing::{TestClient, testing_config};
use flagon::{
    App, AppBuilder, Decorator, Extension, Identity, Locale, Next, RequestLocal, Route, Setup,
    SetupError,
};
use http::StatusCode;

/// An i18n-like extension: the locale from `Accept-Language`, as a provider, with an
/// after-response step for the requests that read it.
struct Negotiator {
    name: &'static str,
    calls: Arc<AtomicUsize>,
}

impl Extension for Negotiator {
    fn name(&self) -> &'static str {
        self.name
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let calls = self.calls.clone();
        let chosen = app.request_local(move |head| {
            calls.fetch_add(1, Ordering::SeqCst);
            head.headers()
                .and_then(|h| h.get("accept-language"))
                .and_then(|v| v.to_str().ok())
                .and_then(Locale::parse)
        });
        app.after_response(chosen, |l: Arc<Option<Locale>>, mut res, _| async move {
            if let Some(l) = &*l {
                res.headers_mut()
                    .insert("content-language", l.as_str().parse().unwrap());
            }
            res
        });
        app.provide_fact(chosen, |l: &Option<Locale>| l.as_ref());
        Ok(())
    }
}

/// A login-like extension: the identity from an `X-Api-Key` header, as a provider.
struct ApiKeys {
    calls: Arc<AtomicUsize>,
}

impl Extension for ApiKeys {
    fn name(&self) -> &'static str {
        "api-keys"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let calls = self.calls.clone();
        let who = app.request_local(move |head| {
            calls.fetch_add(1, Ordering::SeqCst);
            head.headers()
                .and_then(|h| h.get("x-api-key"))
                .and_then(|v| v.to_str().ok())
                .and_then(|k| k.strip_prefix("key-"))
                .map(|user| Identity::new(user.to_owned()))
        });
        app.provide_fact(who, |w: &Option<Identity>| w.as_ref());
        Ok(())
    }
}

fn text(l: Option<&Locale>) -> String {
    l.map(|l| l.to_string()).unwrap_or_else(|| "-".into())
}

fn app(locale_calls: &Arc<AtomicUsize>, identity_calls: &Arc<AtomicUsize>) -> App {
    // Reads the locale three times before the handler reads it twice more.
    let reads = Decorator::new("app", "reads", |req, next: Next| async move {
        let first = text(Locale::of(&req));
        assert_eq!(text(Locale::of(&req)), first);
        let mut res = next.run(req).await;
        res.headers_mut().insert("x-seen", first.parse().unwrap());
        res
    });
    // Tries to change the locale after it was read: refused, the read one stays.
    let late_set = Decorator::new("app", "late", |mut req, next: Next| async move {
        let read = Locale::of(&req).cloned();
        let refused = Locale::set(&mut req, Locale::parse("ar").unwrap()).is_err();
        assert_eq!(Locale::of(&req).cloned(), read);
        let mut res = next.run(req).await;
        res.headers_mut()
            .insert("x-refused", refused.to_string().parse().unwrap());
        res
    });
    App::builder()
        .settings(testing_config())
        .register(Negotiator {
            name: "negotiator",
            calls: locale_calls.clone(),
        })
        .register(ApiKeys {
            calls: identity_calls.clone(),
        })
        .configure(|s| {
            // An app's own choice, set explicitly: it wins over the provider.
            s.guard(
                |r| r.endpoint == "forced",
                |mut req| async move {
                    let _ = Locale::set(&mut req, Locale::parse("de").unwrap());
                    ControlFlow::Continue(req)
                },
            );
            s.template_request_function("lang", |req, _| Ok(text(req.locale())));
            s.configure_templates(|env| {
                env.add_template("lang.txt", "{{ lang() }}").unwrap();
            });
            Ok(())
        })
        .route(Route::get("/plain", || async { "plain" }).name("plain"))
        .route(
            Route::get("/read", |l: Option<Locale>, l2: Locale| async move {
                format!("{}/{}", text(l.as_ref()), l2)
            })
            .name("read")
            .with(reads),
        )
        .route(Route::get("/forced", |l: Locale| async move { l.to_string() }).name("forced"))
        .route(
            Route::get("/late", |l: Option<Locale>| async move { text(l.as_ref()) })
                .name("late")
                .with(late_set),
        )
        .route(
            Route::get("/render", |tpl: flagon::templates::Templates| async move {
                tpl.render_string("lang.txt", ()).await
            })
            .name("render"),
        )
        .route(Route::get("/me", |who: Identity| async move { who.to_string() }).name("me"))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_provider_runs_once_per_request_that_reads_the_fact() {
    let (calls, ids) = (Arc::default(), Arc::default());
    let app = app(&calls, &ids);
    let client = TestClient::new(&app);
    let res = client
        .get("/read")
        .header("accept-language", "fr-CA")
        .send()
        .await;
    assert_eq!(res.text(), "fr-CA/fr-CA");
    assert_eq!(res.header("x-seen"), Some("fr-CA"));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "four reads, one negotiation"
    );
    // The provider's after-response step ran: the request read the fact.
    assert_eq!(res.header("content-language"), Some("fr-CA"));
    // Each request negotiates afresh.
    let res = client
        .get("/read")
        .header("accept-language", "zh")
        .send()
        .await;
    assert_eq!(res.text(), "zh/zh");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Template functions read it through the render request.
    let res = client
        .get("/render")
        .header("accept-language", "pl")
        .send()
        .await;
    assert_eq!(res.text(), "pl");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // The provider may have no fact: the extractor then refuses, as with nobody setting it.
    let res = client.get("/read").send().await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(res.header("content-language").is_none());
}

#[tokio::test]
async fn a_request_that_does_not_read_the_fact_never_runs_the_provider() {
    let (calls, ids) = (Arc::default(), Arc::default());
    let app = app(&calls, &ids);
    let client = TestClient::new(&app);
    for _ in 0..3 {
        let res = client
            .get("/plain")
            .header("accept-language", "fr")
            .header("x-api-key", "key-7")
            .send()
            .await;
        assert_eq!(res.text(), "plain");
        assert!(res.header("content-language").is_none());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(ids.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_explicit_set_wins_and_a_late_one_is_refused() {
    let (calls, ids) = (Arc::default(), Arc::default());
    let app = app(&calls, &ids);
    let client = TestClient::new(&app);
    // Set by a guard before anyone read it: the provider is never asked.
    let res = client
        .get("/forced")
        .header("accept-language", "fr")
        .send()
        .await;
    assert_eq!(res.text(), "de");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(res.header("content-language").is_none());
    // Set after the provider computed it: refused, every reader sees the first value.
    let res = client
        .get("/late")
        .header("accept-language", "fr")
        .send()
        .await;
    assert_eq!(res.text(), "fr");
    assert_eq!(res.header("x-refused"), Some("true"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn identity_has_providers_too() {
    let (calls, ids) = (Arc::default(), Arc::default());
    let app = app(&calls, &ids);
    let client = TestClient::new(&app);
    let res = client.get("/me").header("x-api-key", "key-42").send().await;
    assert_eq!(res.text(), "42");
    let res = client.get("/me").header("x-api-key", "wrong").send().await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(ids.load(Ordering::SeqCst), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

fn build_error(builder: AppBuilder) -> String {
    match builder.build() {
        Ok(_) => panic!("the app was built"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn two_providers_of_one_fact_fail_the_build_naming_both() {
    let calls = Arc::<AtomicUsize>::default();
    let err = build_error(
        App::builder()
            .settings(testing_config())
            .register(Negotiator {
                name: "i18n-a",
                calls: calls.clone(),
            })
            .register(Negotiator {
                name: "i18n-b",
                calls: calls.clone(),
            }),
    );
    assert!(err.contains("request fact provider `Locale`"), "{err}");
    assert!(
        err.contains("extension `i18n-a`") && err.contains("extension `i18n-b`"),
        "{err}"
    );
}

#[test]
fn a_provider_from_another_apps_key_fails_the_build() {
    let kept: Arc<Mutex<Option<RequestLocal<u8>>>> = Arc::default();
    let k = kept.clone();
    App::builder()
        .settings(testing_config())
        .configure(move |s| {
            *k.lock().unwrap() = Some(s.request_local(|_| 1u8));
            Ok(())
        })
        .build()
        .unwrap();
    let foreign = kept.lock().unwrap().unwrap();
    let err = build_error(
        App::builder()
            .settings(testing_config())
            .configure(move |s| {
                let _own: RequestLocal<String> = s.request_local(|_| String::new());
                s.provide_fact(foreign, |_: &u8| None::<&Locale>);
                Ok(())
            }),
    );
    assert!(err.contains("request fact provider for `Locale`"), "{err}");
    assert!(err.contains("not declared by this app"), "{err}");
}
