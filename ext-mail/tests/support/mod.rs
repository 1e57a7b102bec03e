//! Shared by the mail tests: the aiosmtpd server (`smtp_server.py`) started once per test
//! binary, its received messages, test certificates, and real databases per test.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flagon::App;
use flagon::testing::testing_config_toml;
use flagon_db::sqlx::{self, Connection};
use flagon_db::{Backend, Db};
use flagon_mail::Mail;

pub fn require_services() -> bool {
    std::env::var("FLAGON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The Python that has aiosmtpd: `FLAGON_TEST_MAIL_PYTHON` (set by `.ci/run`), else the venv
/// `.ci/run` creates in the target directory (`<target>/smtp-venv`), found from this test
/// binary's path (`<target>/debug/deps/…`).
pub fn python() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match std::env::var_os("FLAGON_TEST_MAIL_PYTHON") {
        Some(p) => vec![PathBuf::from(p)],
        None => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let target = exe.ancestors().nth(3).map(Path::to_path_buf);
            target
                .into_iter()
                .map(|t| t.join("smtp-venv/bin/python"))
                .collect()
        }
    };
    for c in &candidates {
        let ok = Command::new(c)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(c.clone());
        }
    }
    Err(format!(
        "no Python with aiosmtpd at {candidates:?} (run .ci/run once, or set FLAGON_TEST_MAIL_PYTHON)"
    ))
}

pub struct Certs {
    pub ca_pem: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub wrong_cert: PathBuf,
    pub wrong_key: PathBuf,
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
}

fn certs(dir: &Path) -> Certs {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Flagon mail test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, expired: bool| {
        let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let k = KeyPair::generate().unwrap();
        let c = p.signed_by(&k, &issuer).unwrap();
        (c.pem(), k.serialize_pem())
    };
    let (good, good_key) = leaf("localhost", false);
    let (wrong, wrong_key) = leaf("wrong.example", false);
    let (expired, expired_key) = leaf("localhost", true);
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Certs {
        ca_pem: w("ca.pem", &ca_cert.pem()),
        cert: w("cert.pem", &good),
        key: w("key.pem", &good_key),
        wrong_cert: w("wrong.pem", &wrong),
        wrong_key: w("wrong-key.pem", &wrong_key),
        expired_cert: w("expired.pem", &expired),
        expired_key: w("expired-key.pem", &expired_key),
    }
}

/// The running server of this test binary.
pub struct Smtp {
    pub plain: u16,
    pub starttls: u16,
    pub starttls_wrong: u16,
    pub starttls_expired: u16,
    pub implicit: u16,
    pub busy: u16,
    pub blackhole: u16,
    pub drip: u16,
    pub maildir: PathBuf,
    pub certs: Certs,
    _child: std::sync::Mutex<Child>,
    _dir: tempfile::TempDir,
}

static SERVER: OnceLock<Result<Smtp, String>> = OnceLock::new();

/// The server, started on first use; `None` (with a line saying why) when no Python with
/// aiosmtpd is installed, unless `FLAGON_TEST_REQUIRE_SERVICES=1`, which makes it a failure.
pub fn smtp() -> Option<&'static Smtp> {
    match SERVER.get_or_init(start_server) {
        Ok(s) => Some(s),
        Err(why) => {
            if require_services() {
                panic!(
                    "the aiosmtpd test server is required (FLAGON_TEST_REQUIRE_SERVICES=1): {why}"
                );
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

fn start_server() -> Result<Smtp, String> {
    let py = python()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let maildir = dir.path().join("mail");
    let certs = certs(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
    // The server's own log (session exceptions from the TLS tests) goes to a file.
    let log = std::fs::File::create(dir.path().join("server.log")).map_err(|e| e.to_string())?;
    let mut child = Command::new(py)
        .arg(script)
        .arg("--maildir")
        .arg(&maildir)
        .arg("--cert")
        .arg(&certs.cert)
        .arg("--key")
        .arg(&certs.key)
        .arg("--wrong-cert")
        .arg(&certs.wrong_cert)
        .arg("--wrong-key")
        .arg(&certs.wrong_key)
        .arg("--expired-cert")
        .arg(&certs.expired_cert)
        .arg("--expired-key")
        .arg(&certs.expired_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting smtp_server.py: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| "smtp_server.py did not print READY within 20s".to_owned())?;
    let port = |name: &str| -> Result<u16, String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("bad READY line: {line:?}"))
    };
    Ok(Smtp {
        plain: port("plain")?,
        starttls: port("starttls")?,
        starttls_wrong: port("starttls_wrong")?,
        starttls_expired: port("starttls_expired")?,
        busy: port("busy")?,
        implicit: port("implicit")?,
        blackhole: port("blackhole")?,
        drip: port("drip")?,
        maildir,
        certs,
        _child: std::sync::Mutex::new(child),
        _dir: dir,
    })
}

/// One message the server stored.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub message_id: String,
    pub tls: bool,
    pub raw: Vec<u8>,
}

impl Smtp {
    /// Every stored message with `addr` among its envelope recipients.
    pub fn received_for(&self, addr: &str) -> Vec<Received> {
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir(&self.maildir) else {
            return out;
        };
        let mut names: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        for p in names {
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let to: Vec<String> = v["to"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_lowercase))
                        .collect()
                })
                .unwrap_or_default();
            if !to.iter().any(|t| t == &addr.to_lowercase()) {
                continue;
            }
            let raw = std::fs::read(p.with_extension("eml")).unwrap_or_default();
            out.push(Received {
                from: v["from"].as_str().unwrap_or("").to_owned(),
                to,
                message_id: v["message_id"].as_str().unwrap_or("").to_owned(),
                tls: v["tls"].as_bool().unwrap_or(false),
                raw,
            });
        }
        out
    }

    /// Waits until `n` messages for `addr` are stored (or the timeout passes); returns them.
    pub async fn wait_for(&self, addr: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received_for(addr);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// How many messages the server stored (all tests of this binary).
    pub fn stored(&self) -> usize {
        std::fs::read_dir(&self.maildir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The AUTH attempts the server saw.
    pub fn auth_log(&self) -> String {
        std::fs::read_to_string(self.maildir.join("auth.log")).unwrap_or_default()
    }

    /// `[mail.smtp]` TOML for a port, with fast timeouts.
    pub fn toml(&self, port: u16, tls: &str, extra: &str) -> String {
        format!(
            "[mail]\ntransport = \"smtp\"\ndefault_sender = \"Flagon Tests <app@example.com>\"\n\
             [mail.smtp]\nhost = \"localhost\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{}\"\n\
             connect_timeout = \"2s\"\ngreeting_timeout = \"2s\"\ncommand_timeout = \"2s\"\ndata_timeout = \"3s\"\n{extra}\n",
            self.certs.ca_pem.display()
        )
    }
}

/// A unique address with `prefix` as the start of its local part.
pub fn addr(prefix: &str) -> String {
    format!(
        "{prefix}{:012x}@example.com",
        rand::random::<u64>() & 0xffff_ffff_ffff
    )
}

/// An app with `mail` (and `db` when `db_url` is given) on `toml`.
pub fn mail_app(toml: &str, db_url: Option<&str>) -> App {
    let mut t = toml.to_owned();
    if let Some(url) = db_url {
        t.push_str(&format!("\n[db]\nurl = \"{url}\"\nauto_upgrade = true\n"));
    }
    let mut b = App::builder().settings(testing_config_toml(&t));
    if db_url.is_some() {
        b = b.register(Db::extension());
    }
    b.register(Mail::extension())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Applies the app's migrations (what `auto_upgrade` does before serving).
pub async fn start(app: &App) {
    flagon::testing::TestClient::new(app)
        .start()
        .await
        .unwrap_or_else(|e| panic!("startup: {e}"));
}

pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const MY_ADMIN: &str = "mysql://root@127.0.0.1:3306/test";

/// A database for one test, dropped afterwards.
pub struct TestDb {
    pub url: String,
    pub name: String,
    pub backend: Backend,
    admin: &'static str,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        TestDb {
            url: format!("sqlite://{}", path.display()),
            name: "app.db".into(),
            backend: Backend::Sqlite,
            admin: "",
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> Option<TestDb> {
        Self::server(Backend::Postgres, PG_ADMIN).await
    }

    pub async fn mysql() -> Option<TestDb> {
        Self::server(Backend::MySql, MY_ADMIN).await
    }

    pub async fn of(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => Self::postgres().await,
            _ => Self::mysql().await,
        }
    }

    async fn server(backend: Backend, admin: &'static str) -> Option<TestDb> {
        sqlx::any::install_default_drivers();
        let conn =
            tokio::time::timeout(Duration::from_secs(3), sqlx::AnyConnection::connect(admin)).await;
        let mut conn = match conn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return skip(backend, &e.to_string()),
            Err(_) => return skip(backend, "no answer within 3s"),
        };
        let name = format!("flagon_mail_{:016x}", rand::random::<u64>());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let url = admin
            .rsplit_once('/')
            .map(|(b, _)| format!("{b}/{name}"))
            .unwrap();
        Some(TestDb {
            url,
            name,
            backend,
            admin,
            _dir: None,
        })
    }
}

fn skip(backend: Backend, why: &str) -> Option<TestDb> {
    if require_services() {
        panic!("{backend} is required (FLAGON_TEST_REQUIRE_SERVICES=1) but unreachable: {why}");
    }
    eprintln!("skipped: {backend} unreachable ({why})");
    None
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.admin.is_empty() {
            return;
        }
        let (admin, name, backend) = (self.admin, self.name.clone(), self.backend);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(mut conn) = sqlx::AnyConnection::connect(admin).await else {
                    return;
                };
                let sql = match backend {
                    Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    _ => format!("DROP DATABASE IF EXISTS {name}"),
                };
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await;
            });
        })
        .join();
    }
}

/// Runs `mail`'s relay until `done` says so or `timeout` passes.
pub async fn relay_until<F>(mail: &Mail, timeout: Duration, mut done: F)
where
    F: FnMut() -> bool,
{
    let deadline = Instant::now() + timeout;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let m = mail.clone();
    let h = tokio::spawn(async move {
        m.relay(async {
            let _ = rx.await;
        })
        .await
    });
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = tx.send(());
    let _ = h.await;
}
