//! Headless Chromium through chromedriver (Debian's `chromium` and `chromium-driver`), driven
//! with fantoccini: the driver on a port of its own choosing, a browser session with a
//! throwaway profile, the browser's console log (where CSP violations are reported), and
//! screenshots of every page kept for a failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use flagon::http;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `chromedriver` on `PATH`, if there is one.
fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromedriver"))
        .find(|p| p.is_file())
}

/// Why the browser tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    if !Path::new(CHROMIUM).is_file() {
        return Some(format!(
            "{CHROMIUM} is missing (apt-get install chromium chromium-driver)"
        ));
    }
    if chromedriver().is_none() {
        return Some("chromedriver is not on PATH (apt-get install chromium-driver)".into());
    }
    None
}

/// A running chromedriver, killed on drop.
pub struct Driver {
    child: Child,
    /// Its WebDriver endpoint.
    pub url: String,
    profile: tempfile::TempDir,
}

impl Driver {
    /// Starts `chromedriver --port=0` and reads the port it chose.
    pub fn start() -> Driver {
        let bin = chromedriver().expect("checked by missing()");
        let mut child = Command::new(bin)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts chromedriver");
        let out = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // "ChromeDriver was started successfully on port 33351."
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("chromedriver reports its port");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}/"),
            profile: tempfile::tempdir().expect("a profile directory"),
        }
    }

    /// A new headless browser session, its console log recorded.
    pub async fn session(&self) -> Client {
        let caps = serde_json::json!({
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1024,900",
                    "--lang=en-US",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
                "prefs": { "intl.accept_languages": "en-US,en" },
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("a browser session from chromedriver: {e}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`, type `browser`): the console
/// messages since the last call, CSP violations among them.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// One console message.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// `SEVERE`, `WARNING`, `INFO`…
    pub level: String,
    /// `security` for CSP reports, `javascript`, `network`…
    pub source: String,
    /// The text.
    pub message: String,
}

impl LogEntry {
    /// A Content-Security-Policy violation.
    pub fn is_csp_violation(&self) -> bool {
        self.message.contains("Content Security Policy")
    }
}

/// The console messages since the last call.
pub async fn console(client: &Client) -> Vec<LogEntry> {
    let value = client
        .issue_cmd(BrowserLog)
        .await
        .unwrap_or_else(|e| panic!("reading the browser log: {e}"));
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| LogEntry {
            level: e["level"].as_str().unwrap_or_default().to_owned(),
            source: e["source"].as_str().unwrap_or_default().to_owned(),
            message: e["message"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// A screenshot and the HTML of every page the test looked at, written to `dir` only when
/// the test fails (on drop while panicking).
pub struct Shots {
    dir: PathBuf,
    pages: Vec<(String, Vec<u8>, String)>,
}

impl Shots {
    /// Pages to be kept in `dir` on failure.
    pub fn new(dir: PathBuf) -> Shots {
        Shots {
            dir,
            pages: Vec::new(),
        }
    }

    /// Records the page the browser shows now as step `name`.
    pub async fn take(&mut self, client: &Client, name: &str) {
        let png = client.screenshot().await.unwrap_or_default();
        let html = client.source().await.unwrap_or_default();
        let n = self.pages.len() + 1;
        self.pages.push((format!("{n:02}-{name}"), png, html));
    }
}

impl Drop for Shots {
    fn drop(&mut self) {
        if !std::thread::panicking() || self.pages.is_empty() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        for (name, png, html) in &self.pages {
            let _ = std::fs::write(self.dir.join(format!("{name}.png")), png);
            let _ = std::fs::write(self.dir.join(format!("{name}.html")), html);
        }
        eprintln!(
            "screenshots of the {} pages: {}",
            self.pages.len(),
            self.dir.display()
        );
    }
}
