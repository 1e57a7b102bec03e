//! Templates driven through whole apps: contributed filters and functions, clashes,
//! context processors, autoescape, template overrides, built-ins and error pages.
#![allow(clippy::result_large_err)] // `configure` closures return SetupError

use std::path::Path;

use axum::response::{Html, Redirect};
use flagon::config::{Config, Profile};
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, AppBuilder, Extension, HttpError, Route, Setup, SetupError};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn config_for(dir: &Path) -> Config {
    testing_config_toml(&format!(
        "[templates]\ndir = {:?}\n",
        dir.display().to_string()
    ))
}

/// An extension that contributes template pieces.
struct Widgets {
    name: &'static str,
    dir: Option<std::path::PathBuf>,
    filter: Option<&'static str>,
    function: Option<&'static str>,
    global: Option<&'static str>,
}

impl Widgets {
    fn named(name: &'static str) -> Self {
        Widgets {
            name,
            dir: None,
            filter: None,
            function: None,
            global: None,
        }
    }
}

impl Extension for Widgets {
    fn name(&self) -> &'static str {
        self.name
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        if let Some(dir) = &self.dir {
            app.template_dir(dir.clone());
        }
        if let Some(f) = self.filter {
            app.template_filter(f, |s: String| format!("{}!", s.to_uppercase()));
        }
        if let Some(f) = self.function {
            app.template_function(f, |a: i64, b: i64| a + b);
        }
        if let Some(g) = self.global {
            app.template_global(g, "global value");
        }
        Ok(())
    }
}

async fn render(
    tpl: Templates,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Html<String>, HttpError> {
    tpl.render(
        &name,
        context! { title => "explicit", html => "<b>bold</b>" },
    )
    .await
}

fn app(dir: &Path, builder: AppBuilder) -> App {
    builder
        .settings(config_for(dir))
        .route(Route::get("/render/{name}", render))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn get(app: &App, path: &str) -> (u16, String) {
    let res = TestClient::new(app).get(path).send().await;
    (res.status().as_u16(), res.text())
}

#[tokio::test]
async fn contributed_filters_functions_and_globals_render() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t.html",
        "{{ 'hi'|shout }} {{ add(2, 3) }} {{ motto }}",
    );
    let ext = Widgets {
        filter: Some("shout"),
        function: Some("add"),
        global: Some("motto"),
        ..Widgets::named("widgets")
    };
    let app = app(dir.path(), App::builder().register(ext));
    assert_eq!(
        get(&app, "/render/t.html").await,
        (200, "HI! 5 global value".into())
    );
}

fn clash(a: Widgets, b: Widgets) -> String {
    App::builder()
        .settings(testing_config_toml(""))
        .register(a)
        .register(b)
        .build()
        .unwrap_err()
        .to_string()
}

#[test]
fn a_filter_clash_is_a_build_error_naming_both() {
    let err = clash(
        Widgets {
            filter: Some("shout"),
            ..Widgets::named("alpha")
        },
        Widgets {
            filter: Some("shout"),
            ..Widgets::named("beta")
        },
    );
    assert!(err.contains("template filter `shout`"), "{err}");
    assert!(
        err.contains("extension `alpha`") && err.contains("extension `beta`"),
        "{err}"
    );
}

#[test]
fn a_function_or_global_clash_is_a_build_error_naming_both() {
    let err = clash(
        Widgets {
            function: Some("helper"),
            ..Widgets::named("alpha")
        },
        Widgets {
            global: Some("helper"),
            ..Widgets::named("beta")
        },
    );
    assert!(err.contains("template global `helper`"), "{err}");
    assert!(
        err.contains("extension `alpha`") && err.contains("extension `beta`"),
        "{err}"
    );

    let err = clash(
        Widgets {
            function: Some("url_for"),
            ..Widgets::named("alpha")
        },
        Widgets::named("beta"),
    );
    assert!(err.contains("template global `url_for`"), "{err}");
    assert!(
        err.contains("flagon core") && err.contains("extension `alpha`"),
        "{err}"
    );
}

#[tokio::test]
async fn render_arguments_win_over_processors_and_later_processors_over_earlier() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t.txt",
        "{{ title }}|{{ a }}|{{ b }}|{{ path }}|{{ q }}",
    );
    let app = app(
        dir.path(),
        App::builder().configure(|s| {
            s.context_processor(|_| context! { title => "first", a => "first", b => "first" });
            s.context_processor(|req| {
                context! { title => "second", b => "second", path => req.path(), q => req.query() }
            });
            Ok(())
        }),
    );
    assert_eq!(
        get(&app, "/render/t.txt?x=1").await,
        (200, "explicit|first|second|/render/t.txt|x=1".into())
    );
}

#[tokio::test]
async fn context_processors_read_the_session() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t.html", "user={{ user }}");
    async fn login(session: Session) -> Result<&'static str, HttpError> {
        session.insert("user", "ada")?;
        Ok("ok")
    }
    let app = App::builder()
        .settings(config_for(dir.path()))
        .configure(|s| {
            s.context_processor(|req| {
                let user: Option<String> = Session::for_render(req)
                    .ok()
                    .flatten()
                    .and_then(|s| s.get("user"));
                context! { user => user.unwrap_or_else(|| "anonymous".into()) }
            });
            s.route(Route::get("/login", login).name("login"));
            s.route(Route::get("/render/{name}", render));
            Ok(())
        })
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    assert_eq!(
        client.get("/render/t.html").send().await.text(),
        "user=anonymous"
    );
    client.get("/login").send().await;
    assert_eq!(client.get("/render/t.html").send().await.text(), "user=ada");
}

#[tokio::test]
async fn html_and_xml_are_autoescaped_text_is_not() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["t.html", "t.xml", "t.txt"] {
        write(dir.path(), name, "{{ html }}");
    }
    let app = app(dir.path(), App::builder());
    assert_eq!(
        get(&app, "/render/t.html").await.1,
        "&lt;b&gt;bold&lt;/b&gt;"
    );
    assert_eq!(
        get(&app, "/render/t.xml").await.1,
        "&lt;b&gt;bold&lt;/b&gt;"
    );
    assert_eq!(get(&app, "/render/t.txt").await.1, "<b>bold</b>");
}

#[tokio::test]
async fn the_apps_template_overrides_an_extensions() {
    let app_dir = tempfile::tempdir().unwrap();
    let ext_dir = tempfile::tempdir().unwrap();
    write(ext_dir.path(), "page.html", "from the extension");
    write(ext_dir.path(), "only.html", "extension only");
    write(app_dir.path(), "page.html", "from the app");
    let ext = Widgets {
        dir: Some(ext_dir.path().to_owned()),
        ..Widgets::named("widgets")
    };
    let app = app(app_dir.path(), App::builder().register(ext));
    assert_eq!(get(&app, "/render/page.html").await.1, "from the app");
    assert_eq!(get(&app, "/render/only.html").await.1, "extension only");
    assert_eq!(get(&app, "/render/..%2F..%2Fetc%2Fpasswd").await.0, 500);
}

#[tokio::test]
async fn built_ins_url_for_request_and_flashed_messages() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t.html",
        "{{ url_for('render', name='x.html', page=2) }} {{ request.path }} {{ request.args.q }} \
         {% for c, m in get_flashed_messages(with_categories=true) %}[{{ c }}:{{ m }}]{% endfor %}",
    );
    async fn save(session: Session) -> Result<Redirect, HttpError> {
        session.flash("Saved", "success")?;
        Ok(Redirect::to("/render/t.html?q=hi"))
    }
    let app = App::builder()
        .settings(config_for(dir.path()))
        .route(Route::get("/render/{name}", render))
        .route(Route::post("/save", save).name("save"))
        .configure(|s| {
            s.csrf_exempt("save");
            Ok(())
        })
        .build()
        .unwrap();
    let client = TestClient::new(&app).follow_redirects(true);
    let res = client.post("/save").send().await;
    assert_eq!(
        res.text(),
        "/render/x.html?page=2 /render/t.html hi [success:Saved]"
    );
    let again = client.get("/render/t.html?q=hi").send().await;
    assert_eq!(
        again.text(),
        "/render/x.html?page=2 /render/t.html hi ",
        "shown once"
    );
}

#[tokio::test]
async fn a_flash_survives_one_redirect_and_not_two() {
    async fn flash(session: Session) -> Result<Redirect, HttpError> {
        session.flash("Hello", "info")?;
        Ok(Redirect::to("/show"))
    }
    async fn show(session: Session) -> String {
        let msgs: Vec<String> = session
            .flashed_messages()
            .into_iter()
            .map(|m| format!("{}:{}", m.category, m.message))
            .collect();
        format!("{msgs:?}")
    }
    async fn hop() -> Redirect {
        Redirect::to("/show")
    }
    let app = App::builder()
        .settings(testing_config_toml(""))
        .route(Route::get("/flash", flash).name("flash"))
        .route(Route::get("/show", show).name("show"))
        .route(Route::get("/hop", hop).name("hop"))
        .build()
        .unwrap();
    let client = TestClient::new(&app).follow_redirects(true);
    assert_eq!(client.get("/flash").send().await.text(), "[\"info:Hello\"]");
    assert_eq!(
        client.get("/hop").send().await.text(),
        "[]",
        "gone after being shown"
    );
}

#[tokio::test]
async fn a_template_error_is_a_plain_500_outside_development() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.html", "line one\n{{ 1 + }}\n");
    let app = app(dir.path(), App::builder());
    let (status, body) = get(&app, "/render/bad.html").await;
    assert_eq!(status, 500);
    assert!(!body.contains("bad.html"), "{body}");
    let (status, _) = get(&app, "/render/missing.html").await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn a_template_error_names_template_and_line_in_development() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.html", "line one\n{{ 1 + }}\n");
    let config = Config::builder()
        .profile(Profile::Development)
        .toml(format!(
            "[templates]\ndir = {:?}\nauto_reload = false\n",
            dir.path().display().to_string()
        ))
        .build()
        .unwrap();
    let app = App::builder()
        .settings(config)
        .route(Route::get("/render/{name}", render))
        .build()
        .unwrap();
    let (status, body) = get(&app, "/render/bad.html").await;
    assert_eq!(status, 500);
    assert!(body.contains("bad.html line 2"), "{body}");
    assert!(body.contains("syntax error"), "{body}");
    insta::assert_snapshot!("development_template_error_page", body);
}

#[tokio::test]
async fn templates_reload_on_change_when_auto_reload_is_on() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t.html", "before");
    let config = testing_config_toml(&format!(
        "[templates]\ndir = {:?}\nauto_reload = true\n",
        dir.path().display().to_string()
    ));
    let app = App::builder()
        .settings(config)
        .route(Route::get("/render/{name}", render))
        .build()
        .unwrap();
    assert_eq!(get(&app, "/render/t.html").await.1, "before");
    write(dir.path(), "t.html", "after");
    let mut body = String::new();
    for _ in 0..50 {
        body = get(&app, "/render/t.html").await.1;
        if body == "after" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(body, "after");
}

#[tokio::test]
async fn templates_render_outside_a_request_for_mail_and_commands() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "mail.txt",
        "{{ greeting }} {{ url_for('render', name='a') }} {{ name }}",
    );
    let app = App::builder()
        .settings(config_for(dir.path()))
        .route(Route::get("/render/{name}", render))
        .configure(|s| {
            s.context_processor(|_| context! { greeting => "Hi" });
            Ok(())
        })
        .build()
        .unwrap();
    let tpl = Templates::for_app(app.handle()).unwrap();
    let text = tpl
        .render_string("mail.txt", context! { name => "Ada" })
        .await
        .unwrap();
    assert_eq!(text, "Hi /render/a Ada");
}

#[tokio::test]
async fn templates_see_session_values_but_not_flagons_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t.txt",
        "{{ session.user }}|{{ session._csrf_secret }}|{{ session|list|join(',') }}",
    );
    async fn login(session: Session) -> Result<&'static str, HttpError> {
        session.insert("user", "ada")?;
        session.flash("hi", "info")?;
        Ok("ok")
    }
    async fn token(_t: flagon::csrf::CsrfToken) -> &'static str {
        "ok"
    }
    let app = App::builder()
        .settings(config_for(dir.path()))
        .route(Route::get("/login", login).name("login"))
        .route(Route::get("/token", token).name("token"))
        .route(Route::get("/render/{name}", render))
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    client.get("/login").send().await;
    client.get("/token").send().await;
    assert_eq!(client.get("/render/t.txt").send().await.text(), "ada||user");
}

#[tokio::test]
async fn a_blueprints_templates_are_found_after_the_apps() {
    let app_dir = tempfile::tempdir().unwrap();
    let bp_dir = tempfile::tempdir().unwrap();
    write(bp_dir.path(), "admin.html", "admin from the blueprint");
    write(bp_dir.path(), "page.html", "page from the blueprint");
    write(app_dir.path(), "page.html", "page from the app");
    async fn admin(tpl: Templates) -> Result<Html<String>, HttpError> {
        tpl.render("admin.html", ()).await
    }
    async fn page(tpl: Templates) -> Result<Html<String>, HttpError> {
        tpl.render("page.html", ()).await
    }
    let bp = flagon::Blueprint::new("admin")
        .url_prefix("/admin")
        .template_dir(bp_dir.path())
        .route(Route::get("/", admin).name("index"))
        .route(Route::get("/page", page).name("page"));
    let app = App::builder()
        .settings(config_for(app_dir.path()))
        .blueprint(bp)
        .build()
        .unwrap();
    assert_eq!(get(&app, "/admin/").await.1, "admin from the blueprint");
    assert_eq!(get(&app, "/admin/page").await.1, "page from the app");
}

#[tokio::test]
async fn a_panicking_filter_is_a_500_and_does_not_break_later_renders() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "boom.html", "{{ 'x' | boom }}");
    write(dir.path(), "fine.html", "fine");
    let config = testing_config_toml(&format!(
        "[templates]\ndir = {:?}\nauto_reload = true\n",
        dir.path().display().to_string()
    ));
    let app = App::builder()
        .settings(config)
        .route(Route::get("/render/{name}", render))
        .configure(|s| {
            s.template_filter("boom", |_: String| -> String { panic!("filter bug") });
            Ok(())
        })
        .build()
        .unwrap();
    assert_eq!(get(&app, "/render/boom.html").await.0, 500);
    assert_eq!(
        get(&app, "/render/fine.html").await,
        (200, "fine".to_owned())
    );
    assert_eq!(get(&app, "/render/boom.html").await.0, 500);
}

#[test]
fn a_template_test_clash_is_a_build_error_naming_both() {
    let err = App::builder()
        .settings(testing_config_toml(""))
        .configure(|s| {
            s.template_test("even_id", |n: i64| n % 2 == 0);
            Ok(())
        })
        .register(TestExt)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("template test `even_id`"), "{err}");
    assert!(
        err.contains("the app") && err.contains("extension `tests_ext`"),
        "{err}"
    );
}

struct TestExt;

impl flagon::Extension for TestExt {
    fn name(&self) -> &'static str {
        "tests_ext"
    }
    fn init_app(&self, app: &mut flagon::Setup<'_>) -> Result<(), flagon::SetupError> {
        app.template_test("even_id", |n: i64| n % 2 == 0);
        Ok(())
    }
}

#[tokio::test]
async fn template_functions_see_the_requests_locale_or_the_one_rendered_in() {
    use std::ops::ControlFlow;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "lang.txt", "[{{ lang() }}]");
    let app = App::builder()
        .settings(config_for(dir.path()))
        .route(Route::get("/render/{name}", render))
        .configure(|s| {
            s.template_request_function("lang", |req, _| {
                Ok(req.locale().map(|l| l.to_string()).unwrap_or_default())
            });
            // An extension that chose the request's language sets the fact before the view.
            s.before_request(|mut req: axum::extract::Request| async move {
                if req.uri().query() == Some("fr") {
                    let _ = flagon::Locale::set(&mut req, flagon::Locale::parse("fr").unwrap());
                }
                ControlFlow::Continue(req)
            });
            Ok(())
        })
        .build()
        .unwrap();
    assert_eq!(get(&app, "/render/lang.txt?fr").await, (200, "[fr]".into()));
    assert_eq!(get(&app, "/render/lang.txt").await, (200, "[]".into()));
    let zh = flagon::Locale::parse("zh").unwrap();
    let tpl = Templates::for_locale(app.handle(), zh).unwrap();
    assert_eq!(tpl.render_string("lang.txt", ()).await.unwrap(), "[zh]");
    let tpl = Templates::for_app(app.handle()).unwrap();
    assert_eq!(tpl.render_string("lang.txt", ()).await.unwrap(), "[]");
}

#[tokio::test]
async fn exists_tells_a_missing_template_from_a_present_or_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mail")).unwrap();
    write(dir.path(), "mail/here.txt", "hi");
    write(dir.path(), "mail/broken.html", "{% if %}");
    let app = App::builder()
        .settings(config_for(dir.path()))
        .build()
        .unwrap();
    let tpl = Templates::for_app(app.handle()).unwrap();
    assert!(tpl.exists("mail/here.txt"));
    assert!(!tpl.exists("mail/absent.html"));
    // A template that does not compile exists: rendering it reports the error.
    assert!(tpl.exists("mail/broken.html"));
    assert!(tpl.render_string("mail/broken.html", ()).await.is_err());
}

#[tokio::test]
async fn request_filters_see_the_request_and_the_filtered_value() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f.txt", "{{ 'x'|at_path }} {{ 3|times(4) }}");
    let app = App::builder()
        .settings(config_for(dir.path()))
        .route(Route::get("/render/{name}", render))
        .configure(|s| {
            s.template_request_filter("at_path", |req, args| {
                let (v,): (String,) = flagon::templates::from_args(args)?;
                Ok(format!("{v}@{}", req.path()))
            });
            s.template_request_filter("times", |_req, args| {
                let (a, b): (i64, i64) = flagon::templates::from_args(args)?;
                Ok(a * b)
            });
            Ok(())
        })
        .build()
        .unwrap();
    assert_eq!(
        get(&app, "/render/f.txt").await,
        (200, "x@/render/f.txt 12".into())
    );
    let tpl = Templates::for_app(app.handle()).unwrap();
    assert_eq!(tpl.render_string("f.txt", ()).await.unwrap(), "x@/ 12");
}
