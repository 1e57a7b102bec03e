//! Test kit: drive an app in-process (no socket) with a cookie jar, and run its CLI with
//! captured output.
//!
//! A [`TestClient`] runs the app's startup hooks once, before its first request (or when
//! [`TestClient::start`] is awaited), so an extension whose state is set up at startup works
//! under test as it does when served; [`TestClient::shutdown`] runs the shutdown hooks.
//!
//! ```
//! use flagon::{App, Route};
//! use flagon::testing::{TestClient, testing_config};
//!
//! # tokio_test_block_on(async {
//! let app = App::builder()
//!     .settings(testing_config())
//!     .route(Route::get("/", || async { "hi" }).name("index"))
//!     .build()
//!     .unwrap();
//! let client = TestClient::new(&app);
//! let res = client.get("/").send().await;
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.text(), "hi");
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, HOST, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::command::Output;
use crate::config::{Config, Profile};
use crate::{App, Extension};

mod jar;
mod logs;

pub use logs::LogCapture;

/// A config for tests: the `testing` profile, no file, no environment.
pub fn testing_config() -> Config {
    Config::builder()
        .profile(Profile::Testing)
        .build()
        .expect("an empty testing config is valid")
}

/// A `testing`-profile config from TOML text (panics on bad TOML: it is a test).
pub fn testing_config_toml(toml: &str) -> Config {
    Config::builder()
        .profile(Profile::Testing)
        .toml(toml)
        .build()
        .expect("test config TOML")
}

/// Builds an app with `extension` alone on the testing config: the way to test an extension
/// in isolation. Its startup hooks run when a [`TestClient`] first drives it. Panics with the
/// build error's message if the app cannot be built (test a build error with
/// [`App::builder`] instead).
///
/// ```
/// use flagon::{Extension, Route, Setup, SetupError};
/// use flagon::testing::app_with;
///
/// struct Ping;
/// impl Extension for Ping {
///     fn name(&self) -> &'static str { "ping" }
///     fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
///         app.route(Route::get("/ping", || async { "pong" }).name("ping"));
///         Ok(())
///     }
/// }
///
/// let app = app_with(Ping);
/// assert_eq!(app.registrations("ping").unwrap(), ["route GET /ping -> ping"]);
/// ```
pub fn app_with(extension: impl Extension) -> App {
    build_or_panic(
        App::builder()
            .settings(testing_config())
            .register(extension),
    )
}

/// [`app_with`], with `toml` as the settings file (the `testing` profile).
///
/// ```
/// # use flagon::{Extension, Setup, SetupError};
/// # #[derive(Default, serde::Deserialize, serde::Serialize)]
/// # #[serde(default, deny_unknown_fields)]
/// # struct PingConfig { reply: String }
/// # struct Ping;
/// # impl Extension for Ping {
/// #     fn name(&self) -> &'static str { "ping" }
/// #     fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
/// #         let _: PingConfig = app.config("ping")?;
/// #         Ok(())
/// #     }
/// # }
/// let app = flagon::testing::app_with_config(Ping, "[ping]\nreply = \"pong\"");
/// assert_eq!(app.registrations("ping").unwrap(), ["config section [ping]"]);
/// ```
pub fn app_with_config(extension: impl Extension, toml: &str) -> App {
    build_or_panic(
        App::builder()
            .settings(testing_config_toml(toml))
            .register(extension),
    )
}

fn build_or_panic(builder: crate::AppBuilder) -> App {
    builder.build().unwrap_or_else(|e| panic!("{e}"))
}

/// An in-process HTTP client for an app, with a cookie jar.
///
/// The jar follows a browser's rules: a cookie goes only to the paths its `Path` allows and,
/// with a `Domain`, only to hosts in that domain (the host is the request's `Host` header,
/// else `localhost`; a cookie without `Domain` goes to any host, so a test can change `Host`
/// to exercise origin checks); one a browser would refuse (a `Domain` of another site, a
/// `__Host-` cookie without `Secure`, with a `Domain` or not on `/`) is dropped; and `Secure`
/// cookies are kept and sent only while the client counts as https — by default it does,
/// as browsers treat `http://localhost`; see [`TestClient::plain_http`].
///
/// The app's startup hooks run once per app, before the first request any client sends (or at
/// [`TestClient::start`]); a failing startup hook makes that request panic with the hook's
/// message, as a failed startup stops a served app.
#[derive(Clone)]
pub struct TestClient {
    app: App,
    jar: Arc<Mutex<jar::Jar>>,
    follow_redirects: bool,
    secure: bool,
}

impl TestClient {
    /// A client for `app`; redirects are not followed.
    pub fn new(app: &App) -> Self {
        TestClient {
            app: app.clone(),
            jar: Arc::default(),
            follow_redirects: false,
            secure: true,
        }
    }

    /// The app this client sends to (for an extension's testing kit that prepares state,
    /// such as a login helper that plants a credential).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Runs the app's startup hooks, unless they already ran for this app (through any
    /// client). A failure is returned, and the next request or call tries again.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use flagon::{App, AppHandle, Route};
    /// use flagon::testing::{TestClient, testing_config};
    ///
    /// struct Pool(AtomicBool);
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let app = App::builder()
    ///     .settings(testing_config())
    ///     .configure(|s| {
    ///         s.provide(Pool(AtomicBool::new(false)));
    ///         s.on_startup(|app: AppHandle| async move {
    ///             app.state::<Pool>().unwrap().0.store(true, Ordering::SeqCst);
    ///             Ok(())
    ///         });
    ///         Ok(())
    ///     })
    ///     .build()
    ///     .unwrap();
    /// let client = TestClient::new(&app);
    /// client.start().await.unwrap();
    /// assert!(app.state::<Pool>().unwrap().0.load(Ordering::SeqCst));
    /// client.shutdown().await;
    /// # });
    /// ```
    pub async fn start(&self) -> Result<(), crate::serve::ServeError> {
        self.app
            .handle
            .0
            .test_lifecycle
            .started
            .get_or_try_init(|| self.app.start_serving())
            .await
            .map(|_| ())
    }

    /// Runs the app's shutdown hooks (within `server.shutdown_deadline`), once per app and
    /// only if its startup ran. Requests sent afterwards still reach the app.
    pub async fn shutdown(&self) {
        let lifecycle = &self.app.handle.0.test_lifecycle;
        if lifecycle.started.initialized() {
            let deadline = self.app.handle.0.server.shutdown_deadline;
            lifecycle
                .stopped
                .get_or_init(|| self.app.shutdown(deadline))
                .await;
        }
    }

    /// Behaves as a browser on a plain-http site (not `localhost`): `Secure` cookies are
    /// neither stored nor sent. Use it to check that a cookie that must not travel over
    /// plain http is marked `Secure`.
    pub fn plain_http(mut self) -> Self {
        self.secure = false;
        self
    }

    /// Follows redirects (up to 10), as a browser would.
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.follow_redirects = follow;
        self
    }

    /// A request with any method. It carries `Host: localhost` unless the test sets a
    /// `Host`; a `path` that is an absolute URL (`http://example.com/x`) is sent the way
    /// HTTP/2 sends it, with the authority in the URI and no `Host`.
    pub fn request(&self, method: Method, path: &str) -> TestRequest {
        TestRequest {
            client: self.clone(),
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            peer: None,
        }
    }

    /// A `GET` request.
    pub fn get(&self, path: &str) -> TestRequest {
        self.request(Method::GET, path)
    }

    /// A `POST` request.
    pub fn post(&self, path: &str) -> TestRequest {
        self.request(Method::POST, path)
    }

    /// A `PUT` request.
    pub fn put(&self, path: &str) -> TestRequest {
        self.request(Method::PUT, path)
    }

    /// A `DELETE` request.
    pub fn delete(&self, path: &str) -> TestRequest {
        self.request(Method::DELETE, path)
    }

    /// A `PATCH` request.
    pub fn patch(&self, path: &str) -> TestRequest {
        self.request(Method::PATCH, path)
    }

    /// A `HEAD` request.
    pub fn head(&self, path: &str) -> TestRequest {
        self.request(Method::HEAD, path)
    }

    /// The jar's value for cookie `name` (the first one, if several paths hold one).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar().get(name)
    }

    /// Sets a cookie in the jar, for path `/` and every host (sent with every later
    /// request).
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar().set(name, value);
    }

    /// Removes every cookie.
    pub fn clear_cookies(&self) {
        self.jar().clear();
    }

    fn jar(&self) -> std::sync::MutexGuard<'_, jar::Jar> {
        self.jar.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where a request to `uri` with `headers` goes, for the jar.
    fn target<'a>(&self, uri: &'a http::Uri, headers: &'a HeaderMap) -> jar::Target<'a> {
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.host())
            .unwrap_or("localhost");
        // Strip a port (`host:8080`, `[::1]:8080`).
        let host = match host.rsplit_once(':') {
            Some((name, port)) if !name.is_empty() && !port.contains(']') => name,
            _ => host,
        };
        jar::Target {
            host,
            path: uri.path(),
            secure: self.secure,
        }
    }
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("app", &self.app)
            .field("follow_redirects", &self.follow_redirects)
            .field("plain_http", &!self.secure)
            .finish_non_exhaustive()
    }
}

/// A request being built by [`TestClient`].
#[derive(Debug)]
pub struct TestRequest {
    client: TestClient,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    peer: Option<SocketAddr>,
}

impl TestRequest {
    /// Sends the request as if it came from `peer` (by default it has no peer address, as
    /// [`PeerAddr(None)`](crate::PeerAddr)). Use it to test trusted-proxy handling.
    pub fn peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
        let value = HeaderValue::from_str(value).expect("valid header value");
        self.headers.append(name, value);
        self
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
            .finish();
        self.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self.body = Bytes::from(body);
        self
    }

    /// A JSON body.
    pub fn json<T: Serialize>(mut self, value: &T) -> Self {
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.body = Bytes::from(serde_json::to_vec(value).expect("serialisable test body"));
        self
    }

    /// A raw body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request through the whole app (core layer included).
    pub async fn send(self) -> TestResponse {
        let TestRequest {
            client,
            mut method,
            mut path,
            headers,
            mut body,
            peer,
        } = self;
        if let Err(e) = client.start().await {
            panic!("{e}");
        }
        let mut hops = 0;
        loop {
            let mut req = Request::builder()
                .method(method.clone())
                .uri(&path)
                .body(Body::from(body.clone()))
                .expect("valid test request");
            *req.headers_mut() = headers.clone();
            if !req.headers().contains_key(http::header::HOST) {
                // As a real client would: HTTP/1.1 names the host, HTTP/2 puts it in the URI.
                if req.uri().authority().is_some() {
                    *req.version_mut() = http::Version::HTTP_2;
                } else {
                    req.headers_mut()
                        .insert(http::header::HOST, HeaderValue::from_static("localhost"));
                }
            }
            let uri = req.uri().clone();
            let cookies = client.jar().header(&client.target(&uri, &headers));
            if let Some(c) = cookies {
                req.headers_mut().insert(COOKIE, c);
            }
            let mut service = client.app.service();
            if let Some(peer) = peer {
                service = service.with_peer(peer);
            }
            let res = service
                .oneshot(req)
                .await
                .unwrap_or_else(|never| match never {});
            let (parts, res_body) = res.into_parts();
            let bytes = res_body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            {
                let target = client.target(&uri, &headers);
                let mut jar = client.jar();
                for v in parts.headers.get_all(SET_COOKIE) {
                    if let Ok(text) = v.to_str() {
                        jar.store(text, &target);
                    }
                }
            }
            let response = TestResponse {
                status: parts.status,
                headers: parts.headers,
                body: bytes,
            };
            let location = response.header("location").map(str::to_owned);
            match location {
                Some(loc)
                    if client.follow_redirects && response.status.is_redirection() && hops < 10 =>
                {
                    hops += 1;
                    if response.status == StatusCode::SEE_OTHER
                        || (matches!(response.status.as_u16(), 301 | 302) && method == Method::POST)
                    {
                        method = Method::GET;
                        body = Bytes::new();
                    }
                    path = loc;
                }
                _ => return response,
            }
        }
    }
}

/// A response received by [`TestClient`].
#[derive(Debug)]
pub struct TestResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl TestResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// One header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON (panics if it is not: it is a test).
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not the expected JSON ({e}): {}", self.text()))
    }

    /// The raw body.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The redirect target, if any.
    pub fn location(&self) -> Option<&str> {
        self.header(LOCATION.as_str())
    }
}

/// What a CLI run printed, and its exit code.
#[derive(Debug)]
pub struct CliOutput {
    /// The exit code (0 success, 1 command error, 2 usage error).
    pub code: u8,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs the app's CLI with `args` (without the program name) and captures its output.
/// Commands see an empty standard input.
pub async fn run_cli<I, T>(app: &App, args: I) -> CliOutput
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_cli_with_input(app, args, "").await
}

/// Runs the app's CLI with `args` (without the program name), commands reading `input` as
/// their standard input ([`CommandContext::input`](crate::cli::CommandContext::input)),
/// and captures its output.
///
/// ```
/// use std::io::Write as _;
/// use flagon::App;
/// use flagon::clap::Command;
/// use flagon::testing::{run_cli_with_input, testing_config};
///
/// let app = App::builder()
///     .settings(testing_config())
///     .configure(|app| {
///         app.command(Command::new("shout"), |ctx| async move {
///             let line = ctx.input().read_line()?.unwrap_or_default();
///             writeln!(ctx.out(), "{}", line.to_uppercase())?;
///             Ok(())
///         });
///         Ok(())
///     })
///     .build()
///     .unwrap();
/// # flagon::tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let run = run_cli_with_input(&app, ["shout"], "hello\n").await;
/// assert_eq!(run.stdout, "HELLO\n");
/// # });
/// ```
pub async fn run_cli_with_input<I, T>(app: &App, args: I, input: &str) -> CliOutput
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let (out, err) = (Output::buffer(), Output::buffer());
    let mut all: Vec<OsString> = vec!["app".into()];
    all.extend(args.into_iter().map(Into::into));
    let input = crate::cli::Input::from_bytes(input.as_bytes().to_vec());
    let code = app
        .run_with_input(all, input, out.clone(), err.clone())
        .await;
    CliOutput {
        code,
        stdout: out.contents(),
        stderr: err.contents(),
    }
}
