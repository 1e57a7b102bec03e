//! Argon2id password hashing off the async runtime, behind a concurrency cap.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use flagon::HttpError;
use flagon::http::header::RETRY_AFTER;
use flagon::http::{HeaderValue, StatusCode};
use flagon::tracing;
use tokio::sync::{OnceCell, Semaphore};

use crate::config::LoginConfig;

/// Stored parameters above these are refused without hashing (a hostile row must not make a
/// login allocate gigabytes).
const MAX_STORED_M_KIB: u32 = 256 * 1024;
const MAX_STORED_T: u32 = 16;
const MAX_STORED_P: u32 = 8;
/// Longest stored hash string read.
const MAX_PHC_LEN: usize = 512;

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The password is longer than `login.password_max_bytes` (refused before hashing).
    #[error("the password is too long (at most {max} bytes)")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// No hashing slot within `login.hash_queue_timeout`.
    #[error("too many logins at once; try again shortly")]
    Busy,
    /// Too many failed logins for this account: retry after this long (B8).
    #[error("too many failed logins for this account; try again in {} seconds", .retry_after.as_secs())]
    Throttled {
        /// When one more attempt is allowed.
        retry_after: Duration,
    },
    /// Argon2 failed (not the password's fault).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl From<PasswordError> for HttpError {
    fn from(e: PasswordError) -> HttpError {
        match e {
            PasswordError::TooLong { .. } => HttpError::with_cause(StatusCode::BAD_REQUEST, e),
            PasswordError::Busy => HttpError::with_cause(StatusCode::SERVICE_UNAVAILABLE, e)
                .with_header(RETRY_AFTER, HeaderValue::from_static("1")),
            PasswordError::Throttled { retry_after } => {
                HttpError::with_cause(StatusCode::TOO_MANY_REQUESTS, e)
                    .with_header(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)))
            }
            PasswordError::Hashing(_) => HttpError::internal(e),
        }
    }
}

/// A registration form's password refused by [`Passwords::check_policy`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// Shorter than `login.password_min_chars`.
    #[error("the password must have at least {min} characters")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// Longer than `login.password_max_bytes`.
    #[error("the password must have at most {max} bytes")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// The breached-password hook knows it.
    #[error("this password appears in a list of breached passwords; choose another")]
    Breached,
}

/// The outcome of [`Passwords::verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The password matches.
    pub ok: bool,
    /// It matches, and the stored hash uses weaker parameters than the current ones (or
    /// another Argon2 variant): store [`Passwords::hash`] of it again.
    pub needs_rehash: bool,
}

/// Counters of the hashing pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashStats {
    /// Computations running now.
    pub running: usize,
    /// The most that ever ran at once.
    pub peak: usize,
    /// The cap.
    pub cap: usize,
    /// Computations finished since start.
    pub total: u64,
}

/// Argon2id with the configured (OWASP) parameters, computed in `spawn_blocking` behind a
/// semaphore whose permit moves into the blocking task (a dropped request does not free a
/// slot while its hash still runs). Get it with `Login::passwords(&app)` or the
/// [`Auth`](crate::Auth) extractor.
pub struct Passwords {
    params: Params,
    sem: Arc<Semaphore>,
    cap: usize,
    max_bytes: usize,
    min_chars: usize,
    queue_timeout: Duration,
    dummy: OnceCell<String>,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    total: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("params", &self.params)
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl Passwords {
    pub(crate) fn from_config(cfg: &LoginConfig) -> Result<Passwords, String> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| e.to_string())?;
        let cap = match cfg.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(Passwords {
            params,
            sem: Arc::new(Semaphore::new(cap)),
            cap,
            max_bytes: cfg.password_max_bytes,
            min_chars: cfg.password_min_chars,
            queue_timeout: cfg.hash_queue_timeout,
            dummy: OnceCell::new(),
            running: Arc::default(),
            peak: Arc::default(),
            total: Arc::default(),
        })
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// The pool's counters.
    pub fn stats(&self) -> HashStats {
        HashStats {
            running: self.running.load(Ordering::Relaxed),
            peak: self.peak.load(Ordering::Relaxed),
            cap: self.cap,
            total: self.total.load(Ordering::Relaxed),
        }
    }

    /// The longest password accepted, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Runs `f` on the blocking pool holding a hashing slot.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = tokio::time::timeout(self.queue_timeout, self.sem.clone().acquire_owned())
            .await
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Busy)?;
        let (running, peak, total) = (self.running.clone(), self.peak.clone(), self.total.clone());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let out = f();
            running.fetch_sub(1, Ordering::SeqCst);
            total.fetch_add(1, Ordering::SeqCst);
            out
        })
        .await
        .map_err(|e| PasswordError::Hashing(e.to_string()))
    }

    fn check_len(&self, password: &str) -> Result<(), PasswordError> {
        if password.len() > self.max_bytes {
            return Err(PasswordError::TooLong {
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of `password`, with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        self.check_len(password)?;
        let password = password.to_owned();
        let params = self.params.clone();
        self.run(move || {
            Self::argon2(params)
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| PasswordError::Hashing(e.to_string()))
        })
        .await?
    }

    /// Checks `password` against `stored` (a PHC string). With `stored = None` or `""` (no
    /// such user, or an account without a password) a dummy hash with the same parameters is verified,
    /// so the answer takes as long as for a wrong password and is always "no". A stored hash
    /// that is malformed or asks for more than 256 MiB, 16 passes or 8 lanes is refused
    /// without hashing (logged).
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verified, PasswordError> {
        self.check_len(password)?;
        let no = Verified {
            ok: false,
            needs_rehash: false,
        };
        // An empty stored hash is an account without a password (OAuth only): as unknown.
        let (phc, real) = match stored.filter(|s| !s.is_empty()) {
            Some(s) => (s.to_owned(), true),
            None => (self.dummy_hash().await?.to_owned(), false),
        };
        if phc.len() > MAX_PHC_LEN {
            tracing::warn!(target: "flagon_login", "a stored password hash is too long; refused");
            return Ok(no);
        }
        let parsed = match PasswordHash::new(&phc) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(target: "flagon_login", error = %e, "a stored password hash is malformed; refused");
                return Ok(no);
            }
        };
        let stored_params = match Params::try_from(&parsed) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(target: "flagon_login", error = %e, "a stored password hash has unreadable parameters; refused");
                return Ok(no);
            }
        };
        if stored_params.m_cost() > MAX_STORED_M_KIB
            || stored_params.t_cost() > MAX_STORED_T
            || stored_params.p_cost() > MAX_STORED_P
        {
            tracing::warn!(
                target: "flagon_login",
                m = stored_params.m_cost(),
                t = stored_params.t_cost(),
                p = stored_params.p_cost(),
                "a stored password hash asks for hostile parameters; refused without hashing"
            );
            return Ok(no);
        }
        let weaker = parsed.algorithm.as_str() != "argon2id"
            || stored_params.m_cost() < self.params.m_cost()
            || stored_params.t_cost() < self.params.t_cost()
            || stored_params.p_cost() < self.params.p_cost();
        let password = password.to_owned();
        let ok = self
            .run(move || {
                let parsed = match PasswordHash::new(&phc) {
                    Ok(p) => p,
                    Err(_) => return false,
                };
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .await?;
        let ok = ok && real;
        Ok(Verified {
            ok,
            needs_rehash: ok && weaker,
        })
    }

    /// The dummy hash unknown users are checked against: made once (on startup), with the
    /// current parameters.
    pub(crate) async fn dummy_hash(&self) -> Result<&str, PasswordError> {
        let s = self
            .dummy
            .get_or_try_init(|| async {
                let random: [u8; 24] = rand::random();
                let pw: String = random.iter().map(|b| format!("{b:02x}")).collect();
                self.hash(&pw).await
            })
            .await?;
        Ok(s.as_str())
    }

    /// A registration form's password policy (ASVS 6.2): at least `login.password_min_chars`
    /// characters, at most `login.password_max_bytes` bytes, no composition rules, and not
    /// known to `breached` (a hook onto a breached-password list; `|_| false` for none).
    ///
    /// ```
    /// # flagon::tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let app = flagon::testing::app_with(flagon_login::Login::<flagon_login::testing::TestUser>::new(
    /// #     |_id: String| async { Ok::<_, std::io::Error>(None) }));
    /// let pw = flagon_login::Login::<flagon_login::testing::TestUser>::passwords(app.handle()).unwrap();
    /// assert!(pw.check_policy("correct horse battery", |p| p == "password1").is_ok());
    /// assert!(pw.check_policy("short", |_| false).is_err());
    /// assert!(pw.check_policy("password1", |p| p == "password1").is_err());
    /// # });
    /// ```
    pub fn check_policy(
        &self,
        password: &str,
        breached: impl Fn(&str) -> bool,
    ) -> Result<(), PolicyError> {
        if password.chars().count() < self.min_chars {
            return Err(PolicyError::TooShort {
                min: self.min_chars,
            });
        }
        if password.len() > self.max_bytes {
            return Err(PolicyError::TooLong {
                max: self.max_bytes,
            });
        }
        if breached(password) {
            return Err(PolicyError::Breached);
        }
        Ok(())
    }
}
