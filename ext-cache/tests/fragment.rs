//! The fragment cache: `{% call cache_fragment(name, args…) %}` renders its block once per
//! name and arguments, `forget_fragment(name)` invalidates the name (here at once, on other
//! instances sharing Redis within the sync interval), TTLs expire, the layer is bounded, and
//! the null backend renders every time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flagon::templates::{Templates, context};
use flagon::{App, Route};
use flagon_cache::{Cache, Caches};

const PAGE: &str = r#"<p>{{ title }}</p>
{% call cache_fragment("side", n) %}<aside>{{ rendered() }} for {{ n }} &amp; {{ "<b>" }}</aside>{% endcall %}
{% call cache_fragment("short", n, ttl="300ms") %}[{{ rendered() }}]{% endcall %}
{% call cache_fragment("other", ttl=60) %}({{ rendered() }}){% endcall %}"#;

/// An app rendering `PAGE` at `/p/{n}`, with a template function counting block renders.
fn app(toml: &str, renders: &Arc<AtomicUsize>) -> App {
    app_with(toml, renders, &[("page.html", PAGE)])
}

fn app_with(toml: &str, renders: &Arc<AtomicUsize>, files: &[(&str, &str)]) -> App {
    let dir = std::env::temp_dir()
        .join(common::unique_prefix("flagon-cache-fragments").replace(':', "-"));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, src) in files {
        std::fs::write(dir.join(name), src).unwrap();
    }
    let renders = renders.clone();
    App::builder()
        .settings(flagon::testing::testing_config_toml(toml))
        .register(Cache::new())
        .configure(move |app| {
            app.template_dir(dir.clone());
            let renders = renders.clone();
            app.template_function("rendered", move || {
                renders.fetch_add(1, Ordering::SeqCst) + 1
            });
            Ok(())
        })
        .route(
            Route::get(
                "/p/{n}",
                |tpl: Templates,
                 flagon::axum::extract::Path(n): flagon::axum::extract::Path<u32>| async move {
                    tpl.render("page.html", context! { title => "T", n }).await
                },
            )
            .name("p"),
        )
        .build()
        .unwrap()
}

async fn page(app: &App, n: u32) -> String {
    let res = flagon::testing::TestClient::new(app)
        .get(&format!("/p/{n}"))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    res.text()
}

#[tokio::test]
async fn blocks_render_once_per_name_and_arguments() {
    let renders = Arc::new(AtomicUsize::new(0));
    let app = app("", &renders);
    let first = page(&app, 1).await;
    assert!(
        first.contains("<aside>1 for 1 &amp; &lt;b&gt;</aside>"),
        "escaped once, not twice: {first}"
    );
    assert_eq!(renders.load(Ordering::SeqCst), 3, "three blocks rendered");
    assert_eq!(page(&app, 1).await, first, "served from the fragment cache");
    assert_eq!(renders.load(Ordering::SeqCst), 3);

    let second = page(&app, 2).await;
    assert!(second.contains("for 2"), "{second}");
    assert_eq!(
        renders.load(Ordering::SeqCst),
        5,
        "other arguments: `side` and `short` again, `other` (no arguments) shared"
    );

    // Forgetting one name re-renders it, for every argument, and nothing else.
    let cache = Caches::of(app.handle()).unwrap().default().clone();
    cache.forget_fragment("side").await;
    page(&app, 1).await;
    page(&app, 2).await;
    assert_eq!(renders.load(Ordering::SeqCst), 7);
    page(&app, 1).await;
    assert_eq!(renders.load(Ordering::SeqCst), 7);

    // `short` lives 300 ms.
    tokio::time::sleep(Duration::from_millis(400)).await;
    page(&app, 1).await;
    assert_eq!(renders.load(Ordering::SeqCst), 8, "only the expired block");
}

#[tokio::test]
async fn the_null_backend_renders_every_time() {
    let renders = Arc::new(AtomicUsize::new(0));
    let app = app("[cache]\nbackend = \"null\"\n", &renders);
    page(&app, 1).await;
    page(&app, 1).await;
    assert_eq!(renders.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn misuse_is_a_template_error_not_a_panic() {
    let cases = [
        ("plain.html", r#"{{ cache_fragment("x") }}"#, "as a block"),
        (
            "noname.html",
            r#"{% call cache_fragment() %}a{% endcall %}"#,
            "name",
        ),
        (
            "badttl.html",
            r#"{% call cache_fragment("x", ttl="soon") %}a{% endcall %}"#,
            "ttl `soon`",
        ),
        (
            "typo.html",
            r#"{% call cache_fragment("x", tll=5) %}a{% endcall %}"#,
            "tll",
        ),
    ];
    let files: Vec<(&str, &str)> = cases.iter().map(|(n, s, _)| (*n, *s)).collect();
    let app = app_with("", &Arc::new(AtomicUsize::new(0)), &files);
    let tpl = Templates::for_app(app.handle()).unwrap();
    for (name, _, says) in cases {
        let err = tpl.render_string(name, ()).await.unwrap_err();
        let text = format!("{err} {:?}", std::error::Error::source(&err));
        assert!(text.contains(says), "{name}: {text}");
    }
}

#[tokio::test]
async fn the_layer_stays_within_its_bytes() {
    let renders = Arc::new(AtomicUsize::new(0));
    let app = app("[cache.fragments]\nmax_bytes = 4096\n", &renders);
    for n in 0..300 {
        page(&app, n).await;
    }
    let cache = Caches::of(app.handle()).unwrap().default().clone();
    let bytes = cache.fragment_bytes().unwrap();
    assert!(bytes <= 4096, "{bytes} bytes held");
    assert!(bytes > 0);
}

#[tokio::test]
async fn forgetting_reaches_other_instances_through_redis() {
    if !common::redis_up("fragments over redis") {
        return;
    }
    let prefix = common::unique_prefix("fragments");
    let toml = format!(
        "{}command_timeout = \"5s\"\n[cache.fragments]\nsync_interval = \"50ms\"\n",
        common::redis_toml(&prefix, "")
    );
    let (ra, rb) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, b) = (app(&toml, &ra), app(&toml, &rb));
    // While serving, a worker syncs every `sync_interval`; the test client runs no
    // workers, so the test syncs by hand where the worker would have.
    let (ha, hb) = (
        Caches::of(a.handle()).unwrap().default().clone(),
        Caches::of(b.handle()).unwrap().default().clone(),
    );
    page(&a, 1).await;
    page(&b, 1).await;
    ha.sync_fragments().await; // a publishes its generations
    hb.sync_fragments().await; // b adopts them
    page(&a, 1).await;
    page(&b, 1).await;
    let (a0, b0) = (ra.load(Ordering::SeqCst), rb.load(Ordering::SeqCst));
    page(&a, 1).await;
    page(&b, 1).await;
    assert_eq!(
        (ra.load(Ordering::SeqCst), rb.load(Ordering::SeqCst)),
        (a0, b0),
        "each instance serves its own cached fragments"
    );
    ha.forget_fragment("side").await;
    page(&a, 1).await;
    assert_eq!(ra.load(Ordering::SeqCst), a0 + 1, "forgotten here at once");
    page(&b, 1).await;
    assert_eq!(rb.load(Ordering::SeqCst), b0, "not yet there");
    hb.sync_fragments().await;
    page(&b, 1).await;
    assert_eq!(
        rb.load(Ordering::SeqCst),
        b0 + 1,
        "and on the other instance after a sync"
    );
    ha.clear().await.unwrap();
}
