//! The blog in a real browser: the release-shaped binary on its embedded defaults (SQLite,
//! mail into files) in a directory of its own, driven in headless Chromium through
//! chromedriver. One reader's whole visit — register, open the verification link from the
//! mail, log in, write a Markdown post with an image, comment and reply, switch to Chinese,
//! search, log out — each step asserting what the page shows, and no page breaking the
//! Content-Security-Policy. On failure a screenshot and the HTML of every page are left in
//! `$CARGO_TARGET_DIR/blog-screenshots/`.
//!
//! Skipped with a one-line reason without `chromium` and `chromedriver`; failing instead
//! when `FLAGON_TEST_REQUIRE_SERVICES=1`.

mod e2e;

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::chrome::{self, Driver, LogEntry, Shots};
use e2e::process::Blog;
use fantoccini::elements::Element;
use fantoccini::{Client, Locator};

/// A 48×48 PNG (the upload's type is checked by its content, so it must be a real one).
const PNG_48: &str = "iVBORw0KGgoAAAANSUhEUgAAADAAAAAwCAIAAADYYG7QAAAAOklEQVR42u3OQQkAAAgEsItjCPtjLFuIj8ECLNP1SoSEhISEhISEhISEhISEhISEhISEhISEhISE7ixCk4yXfGiw8gAAAABJRU5ErkJggg==";

/// How long one wait for the page may take.
const WAIT: Duration = Duration::from_secs(15);

/// The browser, the blog it visits, and what it saw.
struct Visit {
    client: Client,
    base: String,
    shots: Shots,
    console: Vec<LogEntry>,
}

impl Visit {
    /// Records the current page (screenshot, HTML, console) as step `name`.
    async fn saw(&mut self, name: &str) {
        self.shots.take(&self.client, name).await;
        self.console.extend(chrome::console(&self.client).await);
    }

    /// Fails the test on the current page: it is recorded first.
    async fn fail(&mut self, what: &str) -> ! {
        self.saw("failed").await;
        let url = self.client.current_url().await.map(|u| u.to_string());
        panic!("{what} (at {url:?})");
    }

    /// Opens `path` of the blog.
    async fn open(&mut self, path: &str, name: &str) {
        let url = format!("{}{path}", self.base);
        if let Err(e) = self.client.goto(&url).await {
            self.fail(&format!("opening {url}: {e}")).await;
        }
        self.saw(name).await;
    }

    /// The element `css` matches, waiting for it to appear.
    async fn find(&mut self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => self.fail(&format!("no element `{css}`: {e}")).await,
        }
    }

    /// Whether `css` matches anything now.
    async fn has(&self, css: &str) -> bool {
        self.client
            .find_all(Locator::Css(css))
            .await
            .is_ok_and(|v| !v.is_empty())
    }

    /// Types `value` into the field `css`.
    async fn fill(&mut self, css: &str, value: &str) {
        let field = self.find(css).await;
        let _ = field.clear().await;
        if let Err(e) = field.send_keys(value).await {
            self.fail(&format!("typing into `{css}`: {e}")).await;
        }
    }

    /// Clicks `css` and waits until the browser shows the next page.
    async fn click_to_next_page(&mut self, css: &str, name: &str) {
        let target = self.find(css).await;
        self.mark_page().await;
        if let Err(e) = target.click().await {
            self.fail(&format!("clicking `{css}`: {e}")).await;
        }
        self.wait_next_page(css).await;
        self.saw(name).await;
    }

    /// Clicks the submit button of the form that holds `field` (the form a user fills in,
    /// not the header's language switcher or logout button).
    async fn submit_form_of(&mut self, field: &str, name: &str) {
        let css = format!("main form:has({field}) button");
        self.click_to_next_page(&css, name).await;
    }

    /// Tags the document shown now, so that a new one is recognised.
    async fn mark_page(&mut self) {
        let _ = self
            .client
            .execute("window.__e2e_old_page = true;", vec![])
            .await;
    }

    /// Waits until a new document has replaced the marked one and has loaded.
    async fn wait_next_page(&mut self, after: &str) {
        let start = Instant::now();
        loop {
            let fresh = self
                .client
                .execute(
                    "return window.__e2e_old_page === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            if matches!(fresh, Ok(serde_json::Value::Bool(true))) {
                return;
            }
            if start.elapsed() > WAIT {
                self.fail(&format!("no new page after clicking `{after}`"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of `css`.
    async fn text(&mut self, css: &str) -> String {
        let e = self.find(css).await;
        match e.text().await {
            Ok(t) => t,
            Err(e) => self.fail(&format!("reading `{css}`: {e}")).await,
        }
    }

    /// The text of the whole page.
    async fn page_text(&mut self) -> String {
        self.text("body").await
    }

    /// Asserts that the page says `what`.
    async fn expect_text(&mut self, what: &str) {
        let text = self.page_text().await;
        if !text.contains(what) {
            self.fail(&format!("the page does not say {what:?}; it says:\n{text}"))
                .await;
        }
    }

    /// Runs `script` in the page and returns its result.
    async fn js(&mut self, script: &str, args: Vec<serde_json::Value>) -> serde_json::Value {
        match self.client.execute(script, args).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("running {script:?}: {e}")).await,
        }
    }

    /// The path of the page shown now.
    async fn path(&mut self) -> String {
        match self.client.current_url().await {
            Ok(u) => u.path().to_owned(),
            Err(e) => self.fail(&format!("reading the URL: {e}")).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_registers_writes_comments_switches_language_searches_and_logs_out() {
    if let Some(why) = chrome::missing() {
        e2e::skip(&why);
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("a working directory");
    let blog = Blog::start(
        "browser",
        dir.path(),
        &[
            ("FLAGON_ENV".into(), "development".into()),
            ("FLAGON_MAIL__OUTBOX__POLL_INTERVAL".into(), "200ms".into()),
        ],
    );
    let driver = Driver::start();
    let client = driver.session().await;
    let visit = Visit {
        client: client.clone(),
        base: blog.url(),
        shots: Shots::new(e2e::process::artifact_dir("blog-screenshots")),
        console: Vec::new(),
    };
    // The steps run in a task of their own, so that a failing step still lets the browser
    // be closed (chromedriver's end alone would leave Chromium running).
    let workdir = dir.path().to_owned();
    let steps = tokio::spawn(async move {
        let mut visit = visit;
        tokio::time::timeout(Duration::from_secs(300), the_visit(&mut visit, &workdir)).await
    })
    .await;
    let _ = client.close().await;
    match steps {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the visit took longer than 300 s"),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the visit was cancelled: {e}"),
    }
    eprintln!(
        "browser test: the whole visit took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn the_visit(v: &mut Visit, dir: &Path) {
    let run = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let email = format!("reader{run}@example.com");
    let username = format!("reader{run}");
    let password = "correct horse battery staple";

    // Register.
    v.open("/auth/register", "register").await;
    v.fill("main [name=email]", &email).await;
    v.fill("main [name=username]", &username).await;
    v.fill("main [name=password]", password).await;
    v.submit_form_of("[name=username]", "registered").await;
    if !v.has(".flash").await {
        v.fail("registering flashes no message").await;
    }

    // The verification link from the mail the outbox relay wrote.
    let mail = e2e::mail::wait_for(&dir.join("instance/mail"), &email, WAIT).await;
    let Some(link) = e2e::mail::link_path(&mail.text, "/auth/verify/") else {
        v.fail(&format!(
            "no /auth/verify/ link in the mail:\n{}",
            mail.text
        ))
        .await;
    };
    v.open(&link, "verified").await;
    if !v.has(".flash").await {
        v.fail("verifying flashes no message").await;
    }

    // Log in: the header names the reader.
    v.open("/auth/login", "login").await;
    v.fill("main [name=email]", &email).await;
    v.fill("main [name=password]", password).await;
    v.submit_form_of("[name=password]", "logged-in").await;
    let who = v.text("header .who").await;
    if who != username {
        v.fail(&format!("the header shows {who:?}, not {username:?}"))
            .await;
    }

    // Write a Markdown post with an image.
    let title = format!("Notes from the browser {run}");
    let marker = format!("zebrafish{run}");
    let body = format!(
        "A post with **bold words** and a list:\n\n- first item\n- {marker}\n\n\
         <script>window.__xss = 1</script>"
    );
    let image = dir.join("pixel.png");
    std::fs::write(&image, base64_decode(PNG_48)).expect("writes the image");
    v.open("/posts/new", "new-post").await;
    v.fill("main [name=title]", &title).await;
    v.fill("main [name=body]", &body).await;
    if v.has("main [name=tags]").await {
        v.fill("main [name=tags]", "browser, e2e").await;
    }
    if v.has("main input[name=published][type=checkbox]").await {
        let checked = v
            .js(
                "return document.querySelector('main input[name=published]').checked;",
                vec![],
            )
            .await;
        if checked != serde_json::Value::Bool(true) {
            let b = v.find("main input[name=published]").await;
            let _ = b.click().await;
        }
    }
    let file = v.find("main input[type=file]").await;
    if let Err(e) = file.send_keys(&image.display().to_string()).await {
        v.fail(&format!("choosing the image: {e}")).await;
    }
    v.submit_form_of("[name=title]", "post").await;
    let path = v.path().await;
    if !path.starts_with("/posts/") {
        v.fail(&format!("saving the post leads to {path}, not the post"))
            .await;
    }
    let post_path = path;
    let heading = v.text("main h1").await;
    if !heading.contains(&title) {
        v.fail(&format!("the post's heading is {heading:?}")).await;
    }
    let bold = v.text("main article strong").await;
    if bold != "bold words" {
        v.fail(&format!("the Markdown's bold is {bold:?}")).await;
    }
    v.expect_text(&marker).await;
    // The script in the Markdown was removed, not run.
    let xss = v.js("return window.__xss === undefined;", vec![]).await;
    if xss != serde_json::Value::Bool(true) {
        v.fail("a <script> in the Markdown ran").await;
    }
    // The image is served so that the browser shows it (type, nosniff): 48 pixels wide.
    let width = image_width(v).await;
    if width != 48 {
        v.fail(&format!("the post's image is {width} pixels wide, not 48"))
            .await;
    }

    // Comment, then reply to the comment.
    let comment = format!("A first comment {run}");
    let reply = format!("A reply to it {run}");
    let top = "main form[action$='/comments']:not(:has([name=parent_id][value]:not([value=''])))";
    v.fill(&format!("{top} textarea[name=body]"), &comment)
        .await;
    v.click_to_next_page(&format!("{top} button"), "commented")
        .await;
    v.expect_text(&comment).await;
    v.click_to_next_page("main li.comment a.reply", "reply-form")
        .await;
    let reply_form = "main form[action$='/comments']:has([name=parent_id][value]:not([value='']))";
    v.fill(&format!("{reply_form} textarea[name=body]"), &reply)
        .await;
    v.click_to_next_page(&format!("{reply_form} button"), "replied")
        .await;
    v.expect_text(&reply).await;
    let nesting = v
        .js(
            "const leaf = t => [...document.querySelectorAll('main *')]
                 .find(e => e.children.length === 0 && e.textContent.includes(t));
             const c = leaf(arguments[0]), r = leaf(arguments[1]);
             if (!c || !r) return 'missing';
             const box = c.closest('li, article, .comment, [id^=\"comment\"]');
             return box && box.contains(r) ? 'nested' : 'flat';",
            vec![comment.clone().into(), reply.clone().into()],
        )
        .await;
    if nesting != "nested" {
        v.fail(&format!(
            "the reply is not shown under its comment ({nesting})"
        ))
        .await;
    }

    // Switch to Chinese: the same page, in Chinese.
    v.click_to_next_page("header button[name=lang][value=zh]", "chinese")
        .await;
    let lang = v.js("return document.documentElement.lang;", vec![]).await;
    if !lang.as_str().is_some_and(|l| l.starts_with("zh")) {
        v.fail(&format!("the page's language is {lang}, not zh"))
            .await;
    }
    let nav = v.text("header nav").await;
    if !nav.contains("首页") || !nav.contains("退出") {
        v.fail(&format!("the navigation is not in Chinese: {nav:?}"))
            .await;
    }
    let here = v.path().await;
    if here != post_path {
        v.fail(&format!("switching language left {post_path} for {here}"))
            .await;
    }

    // Search from the search page's form: the post is found.
    v.click_to_next_page("header nav a[href='/search']", "search")
        .await;
    v.fill("main [name=q]", &marker).await;
    v.submit_form_of("[name=q]", "results").await;
    let found = v
        .js(
            "return [...document.querySelectorAll('main a')].some(a => a.getAttribute('href') === arguments[0]);",
            vec![post_path.clone().into()],
        )
        .await;
    if found != serde_json::Value::Bool(true) {
        v.fail(&format!(
            "searching {marker:?} does not link to {post_path}"
        ))
        .await;
    }
    v.expect_text(&title).await;

    // Log out: the header offers to log in again (in Chinese).
    v.click_to_next_page("header form[action$='/auth/logout'] button", "logged-out")
        .await;
    if v.has("header .who").await {
        v.fail("the header still names the reader after logging out")
            .await;
    }
    let nav = v.text("header nav").await;
    if !nav.contains("登录") {
        v.fail(&format!("after logging out the navigation is {nav:?}"))
            .await;
    }

    // No page broke the Content-Security-Policy…
    let violations: Vec<&LogEntry> = v.console.iter().filter(|e| e.is_csp_violation()).collect();
    if !violations.is_empty() {
        v.fail(&format!("CSP violations: {violations:#?}")).await;
    }
    // …and the policy is enforced: an inline script without the nonce is refused, and
    // reported where the check above looks.
    let blocked = v
        .js(
            "const s = document.createElement('script');
             s.textContent = 'window.__inline_ran = true';
             document.body.appendChild(s);
             return window.__inline_ran === undefined;",
            vec![],
        )
        .await;
    let reported = chrome::console(&v.client).await;
    if blocked != serde_json::Value::Bool(true) || !reported.iter().any(LogEntry::is_csp_violation)
    {
        v.fail(&format!(
            "an inline script without a nonce was not refused (blocked: {blocked}, log: {reported:#?})"
        ))
        .await;
    }
}

/// The natural width of the first image in the post, once it has loaded (0 if it failed).
async fn image_width(v: &mut Visit) -> u64 {
    let start = Instant::now();
    loop {
        let w = v
            .js(
                "const i = document.querySelector('main img');
                 if (!i) return -1;
                 return i.complete ? i.naturalWidth : -2;",
                vec![],
            )
            .await;
        match w.as_i64() {
            Some(-1) => v.fail("the post shows no image").await,
            Some(n) if n >= 0 => return n as u64,
            _ if start.elapsed() > WAIT => v.fail("the image never loaded").await,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Standard base64 (the test image).
fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("valid base64")
}
