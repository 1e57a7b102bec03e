//! The extension's shared state: the bundles (fixed, or reloading in development), the
//! missing-message log, the negotiation settings.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use flagon::{Locale, RequestLocal, tracing};

use crate::catalog::{AppFiles, BuildInput, Bundle, Bundles, read_dirs};
use crate::config::I18nConfig;
use crate::error::CatalogError;
use crate::negotiate::Used;

/// Files read and their modification times.
pub(crate) type Stamps = Vec<(PathBuf, Option<SystemTime>)>;

/// How often, at most, a reloading app looks at its files' modification times.
const RELOAD_CHECK: Duration = Duration::from_millis(250);

/// Everything the extension shares between its hook, extractors, template functions,
/// translator and commands.
pub(crate) struct Shared {
    pub(crate) cfg: I18nConfig,
    /// Finds `cfg.cookie_name` in a `Cookie` header.
    pub(crate) cookie_finder: memchr::memmem::Finder<'static>,
    source: Source,
    pub(crate) missing: MissingLog,
    pub(crate) selectors: Vec<Arc<dyn crate::LocaleSelector>>,
    pub(crate) used: RequestLocal<Used>,
    /// `default_timezone` and the timezone selectors.
    #[cfg_attr(not(feature = "icu"), allow(dead_code))]
    pub(crate) tz: crate::timezone::Timezones,
    /// Catalogs other extensions contributed: (owner, name, locale, source).
    pub(crate) contributed: Vec<(String, String, String, String)>,
}

enum Source {
    Fixed(Arc<Bundles>),
    Reloading(Mutex<Reloader>),
}

struct Reloader {
    current: Arc<Bundles>,
    stamps: Vec<(PathBuf, Option<SystemTime>)>,
    checked: Instant,
}

/// Builds bundles from the directories and contributed catalogs.
pub(crate) fn build_bundles(
    cfg: &I18nConfig,
    contributed: &[(String, String, String, String)],
    missing_dirs: &mut Vec<PathBuf>,
) -> Result<(Bundles, Stamps), CatalogError> {
    let AppFiles { locales, stamps } = read_dirs(&cfg.dirs, missing_dirs)?;
    let bundles = Bundles::build(BuildInput {
        default_locale: &cfg.default_locale,
        only: &cfg.locales,
        app: AppFiles {
            locales,
            stamps: Vec::new(),
        },
        contributed: contributed.to_vec(),
        use_isolating: cfg.use_isolating,
        configure: configure_bundle,
        timezone: &cfg.default_timezone,
    })?;
    Ok((bundles, stamps))
}

/// The functions every bundle gets: Fluent's `NUMBER`, and with the `icu` feature
/// locale-aware number display and `CURRENCY`/`DATETIME`.
fn configure_bundle(bundle: &mut Bundle, _timezone: &str) {
    let _ = bundle.add_builtins();
    #[cfg(feature = "icu")]
    crate::format::configure_bundle(bundle, _timezone);
}

impl Shared {
    pub(crate) fn new(
        cfg: I18nConfig,
        reload: bool,
        selectors: Vec<Arc<dyn crate::LocaleSelector>>,
        used: RequestLocal<Used>,
        tz: crate::timezone::Timezones,
        contributed: Vec<(String, String, String, String)>,
    ) -> Result<Shared, CatalogError> {
        let mut missing_dirs = Vec::new();
        let (bundles, stamps) = build_bundles(&cfg, &contributed, &mut missing_dirs)?;
        for d in missing_dirs {
            tracing::warn!(target: "flagon_i18n", dir = %d.display(), "`i18n.dirs` names a directory that does not exist; only the default locale `{}` is available from it", cfg.default_locale);
        }
        let bundles = Arc::new(bundles);
        let source = if reload {
            Source::Reloading(Mutex::new(Reloader {
                current: bundles,
                stamps,
                checked: Instant::now(),
            }))
        } else {
            Source::Fixed(bundles)
        };
        let missing = MissingLog::new(cfg.missing_log_capacity);
        let cookie_finder = memchr::memmem::Finder::new(cfg.cookie_name.as_bytes()).into_owned();
        Ok(Shared {
            cookie_finder,
            cfg,
            source,
            missing,
            selectors,
            used,
            tz,
            contributed,
        })
    }

    /// The current bundles. Fixed in production: one `Arc` clone. Reloading (development):
    /// every 250 ms at most, the files' modification times are compared and the bundles
    /// rebuilt when one changed; a broken file keeps the previous bundles and logs the
    /// error with its file and line.
    pub(crate) fn bundles(&self) -> Arc<Bundles> {
        match &self.source {
            Source::Fixed(b) => b.clone(),
            Source::Reloading(r) => {
                let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
                if r.checked.elapsed() >= RELOAD_CHECK {
                    r.checked = Instant::now();
                    if self.changed(&r.stamps) {
                        let mut missing = Vec::new();
                        match build_bundles(&self.cfg, &self.contributed, &mut missing) {
                            Ok((b, stamps)) => {
                                tracing::info!(target: "flagon_i18n", "catalogs reloaded");
                                r.current = Arc::new(b);
                                r.stamps = stamps;
                            }
                            Err(e) => {
                                tracing::error!(target: "flagon_i18n", error = %e, "catalogs not reloaded");
                                // Do not retry until something changes again.
                                r.stamps = fresh_stamps(&r.stamps);
                            }
                        }
                    }
                }
                r.current.clone()
            }
        }
    }

    fn changed(&self, stamps: &[(PathBuf, Option<SystemTime>)]) -> bool {
        stamps
            .iter()
            .any(|(p, t)| std::fs::metadata(p).and_then(|m| m.modified()).ok() != *t)
    }

    /// The default locale.
    pub(crate) fn default_locale(&self) -> Locale {
        let b = self.bundles();
        b.available[b.default].clone()
    }
}

fn fresh_stamps(old: &[(PathBuf, Option<SystemTime>)]) -> Vec<(PathBuf, Option<SystemTime>)> {
    old.iter()
        .map(|(p, _)| {
            (
                p.clone(),
                std::fs::metadata(p).and_then(|m| m.modified()).ok(),
            )
        })
        .collect()
}

/// Logs a missing message once per (locale, id), remembering at most `capacity` pairs;
/// past that, one line says further misses are not logged one by one.
pub(crate) struct MissingLog {
    capacity: usize,
    seen: Mutex<HashSet<(Box<str>, Box<str>)>>,
    full: AtomicBool,
}

impl MissingLog {
    pub(crate) fn new(capacity: usize) -> Self {
        MissingLog {
            capacity,
            seen: Mutex::new(HashSet::new()),
            full: AtomicBool::new(false),
        }
    }

    /// Whether `(locale, id)` is new (and so was logged now).
    pub(crate) fn note(&self, locale: &str, id: &str, what: &str) -> bool {
        if self.full.load(Ordering::Relaxed) {
            return false;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let key = (Box::<str>::from(locale), Box::<str>::from(id));
        if seen.contains(&key) {
            return false;
        }
        if seen.len() >= self.capacity {
            self.full.store(true, Ordering::Relaxed);
            tracing::warn!(target: "flagon_i18n", capacity = self.capacity, "more missing messages than `i18n.missing_log_capacity`; further ones are not logged");
            return false;
        }
        seen.insert(key);
        tracing::warn!(target: "flagon_i18n", locale, id, "{what}");
        true
    }
}

/// The shared state, set in the finish step.
pub(crate) type Cell = Arc<OnceLock<Arc<Shared>>>;
