//! Catalogs: `.ftl` files read from the app's locale directories and catalogs other
//! extensions contribute, parsed and layered into one Fluent bundle per locale with its
//! RFC 4647 fallback chain.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use flagon::Locale;
use flagon::http::HeaderValue;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentError, FluentResource};
use fluent_syntax::ast;

use crate::error::CatalogError;

/// A thread-safe Fluent bundle (`Send + Sync`).
pub(crate) type Bundle = FluentBundle<Arc<FluentResource>>;

/// Placeables nested deeper than this are refused before parsing: fluent-syntax's
/// recursive-descent parser would overflow the stack on a few hundred `{`.
pub const MAX_NESTING: usize = 32;

/// The largest `.ftl` file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// One parsed resource and where it came from.
#[derive(Clone)]
pub(crate) struct Resource {
    /// `locales/fr/main.ftl`, or `login: login.ftl` for a contributed catalog.
    pub(crate) label: String,
    /// Who provided it: `app` for the locale directories, otherwise the extension.
    pub(crate) owner: String,
    pub(crate) resource: Arc<FluentResource>,
}

/// Everything read from the locale directories.
#[derive(Default)]
pub(crate) struct AppFiles {
    /// Per canonical locale tag, its resources in directory then file-name order.
    pub(crate) locales: BTreeMap<String, Vec<Resource>>,
    /// Every file and directory read with its modification time (for reloading).
    pub(crate) stamps: Vec<(PathBuf, Option<SystemTime>)>,
}

/// The canonical form of a locale directory's name (`zh_hant_tw` → `zh-Hant-TW`), if it
/// is one.
pub(crate) fn canonical(tag: &str) -> Option<String> {
    let id: unic_langid::LanguageIdentifier = tag.replace('_', "-").parse().ok()?;
    let s = id.to_string();
    Locale::parse(&s).map(|l| l.as_str().to_owned())
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Reads `dir/<locale>/*.ftl` for every directory in `dirs` (a missing directory is
/// skipped and reported in `missing`).
pub(crate) fn read_dirs(
    dirs: &[PathBuf],
    missing: &mut Vec<PathBuf>,
) -> Result<AppFiles, CatalogError> {
    let mut out = AppFiles::default();
    for dir in dirs {
        out.stamps.push((dir.clone(), mtime(dir)));
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(dir.clone());
                continue;
            }
            Err(source) => {
                return Err(CatalogError::Io {
                    path: dir.clone(),
                    source,
                });
            }
        };
        let mut locale_dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        locale_dirs.sort();
        for ldir in locale_dirs {
            let name = ldir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(tag) = canonical(name) else {
                return Err(CatalogError::BadLocaleDir { path: ldir.clone() });
            };
            out.stamps.push((ldir.clone(), mtime(&ldir)));
            let mut files: Vec<PathBuf> = std::fs::read_dir(&ldir)
                .map_err(|source| CatalogError::Io {
                    path: ldir.clone(),
                    source,
                })?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "ftl") && p.is_file())
                .collect();
            files.sort();
            for file in files {
                let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                if len > MAX_FILE_BYTES {
                    return Err(CatalogError::TooLarge {
                        path: file,
                        bytes: len,
                    });
                }
                let source = std::fs::read_to_string(&file).map_err(|source| CatalogError::Io {
                    path: file.clone(),
                    source,
                })?;
                out.stamps.push((file.clone(), mtime(&file)));
                let label = file.display().to_string();
                let resource = parse(&label, source)?;
                out.locales.entry(tag.clone()).or_default().push(Resource {
                    label,
                    owner: "app".to_owned(),
                    resource: Arc::new(resource),
                });
            }
        }
    }
    Ok(out)
}

/// The 1-based line and column of byte `pos` in `src`.
pub(crate) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src.as_bytes()[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = pos
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    (line, col)
}

/// Where placeables nest deeper than [`MAX_NESTING`], as a byte offset.
fn too_deep(src: &str) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, b) in src.bytes().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' | b'\n' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(i);
                }
            }
            b'}' => depth = depth.saturating_sub(1),
            b'"' if depth > 0 => in_string = true,
            _ => {}
        }
    }
    None
}

/// Parses one resource; a syntax error names the file, line and column.
pub(crate) fn parse(label: &str, source: String) -> Result<FluentResource, CatalogError> {
    if let Some(at) = too_deep(&source) {
        let (line, column) = line_col(&source, at);
        return Err(CatalogError::Parse {
            file: label.to_owned(),
            line,
            column,
            message: format!("placeables nested deeper than {MAX_NESTING}"),
            more: 0,
        });
    }
    match FluentResource::try_new(source) {
        Ok(r) => Ok(r),
        Err((r, errors)) => {
            let first = &errors[0];
            let (line, column) = line_col(r.source(), first.pos.start);
            Err(CatalogError::Parse {
                file: label.to_owned(),
                line,
                column,
                message: first.kind.to_string(),
                more: errors.len() - 1,
            })
        }
    }
}

/// The ids (messages, and terms as `-id`) a resource defines.
pub(crate) fn ids(r: &FluentResource) -> impl Iterator<Item = &str> {
    r.entries().filter_map(|e| match e {
        ast::Entry::Message(m) => Some(m.id.name),
        ast::Entry::Term(t) => Some(t.id.name),
        _ => None,
    })
}

/// The built bundles: one per available locale, each with its fallback chain.
pub(crate) struct Bundles {
    pub(crate) available: Vec<Locale>,
    pub(crate) default: usize,
    pub(crate) bundles: Vec<Bundle>,
    /// Per locale: itself, its available truncations (`zh-Hant-TW` → `zh-Hant` → `zh`),
    /// then the default.
    pub(crate) chains: Vec<Vec<usize>>,
    /// Per locale: its resources, the app's first.
    pub(crate) resources: Vec<Vec<Resource>>,
    /// Per locale: its `Content-Language` value, made once (a clone shares the bytes).
    pub(crate) content_language: Vec<Option<HeaderValue>>,
}

/// What building needs.
pub(crate) struct BuildInput<'a> {
    pub(crate) default_locale: &'a str,
    pub(crate) only: &'a [String],
    pub(crate) app: AppFiles,
    /// Contributed catalogs: (owner, name, locale, source).
    pub(crate) contributed: Vec<(String, String, String, String)>,
    pub(crate) use_isolating: bool,
    pub(crate) configure: fn(&mut Bundle, &str),
    /// `i18n.default_timezone`, for `DATETIME()`.
    pub(crate) timezone: &'a str,
}

impl Bundles {
    pub(crate) fn build(input: BuildInput<'_>) -> Result<Bundles, CatalogError> {
        let default = canonical(input.default_locale).ok_or_else(|| CatalogError::Config {
            key: "i18n.default_locale",
            message: format!("`{}` is not a language tag", input.default_locale),
        })?;
        let mut tags: Vec<String> = vec![default.clone()];
        let mut only = Vec::new();
        for t in input.only {
            let c = canonical(t).ok_or_else(|| CatalogError::Config {
                key: "i18n.locales",
                message: format!("`{t}` is not a language tag"),
            })?;
            if !input.app.locales.contains_key(&c) && c != default {
                return Err(CatalogError::Config {
                    key: "i18n.locales",
                    message: format!("`{c}` has no catalog directory"),
                });
            }
            only.push(c);
        }
        for tag in input.app.locales.keys() {
            if (only.is_empty() || only.contains(tag)) && !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        let available: Vec<Locale> = tags
            .iter()
            .map(|t| Locale::parse(t).expect("canonical tags are valid"))
            .collect();

        // Contributed catalogs, parsed and grouped by locale.
        let mut contributed: HashMap<String, Vec<Resource>> = HashMap::new();
        for (owner, name, locale, source) in input.contributed {
            let label = format!("{owner}: {name}");
            let Some(tag) = canonical(&locale) else {
                return Err(CatalogError::BadContributedLocale { label, locale });
            };
            let resource = parse(&label, source)?;
            contributed.entry(tag).or_default().push(Resource {
                label,
                owner,
                resource: Arc::new(resource),
            });
        }

        let mut bundles = Vec::with_capacity(tags.len());
        let mut all_resources = Vec::with_capacity(tags.len());
        let mut app = input.app.locales;
        for tag in &tags {
            let langid: unic_langid::LanguageIdentifier =
                tag.parse().expect("canonical tags parse");
            let mut bundle: Bundle = FluentBundle::new_concurrent(vec![langid]);
            bundle.set_use_isolating(input.use_isolating);
            (input.configure)(&mut bundle, input.timezone);
            let mut resources = app.remove(tag).unwrap_or_default();
            resources.extend(contributed.remove(tag).unwrap_or_default());
            // Who defined each id first: the app's files come first, so the app wins
            // over an extension; two app files or two extensions may not share an id.
            let mut owners: HashMap<String, (String, String)> = HashMap::new();
            for r in &resources {
                for id in ids(&r.resource) {
                    match owners.get(id) {
                        Some((owner, label)) if owner == "app" && r.owner != "app" => {
                            flagon::tracing::debug!(target: "flagon_i18n", id, locale = %tag, overridden = %r.label, by = %label, "the app's message overrides an extension's");
                        }
                        Some((_, label)) => {
                            return Err(CatalogError::Duplicate {
                                id: id.to_owned(),
                                locale: tag.clone(),
                                first: label.clone(),
                                second: r.label.clone(),
                            });
                        }
                        None => {
                            owners.insert(id.to_owned(), (r.owner.clone(), r.label.clone()));
                        }
                    }
                }
                if let Err(errors) = bundle.add_resource(r.resource.clone()) {
                    // Overriding errors are the app's messages winning (checked above).
                    debug_assert!(
                        errors
                            .iter()
                            .all(|e| matches!(e, FluentError::Overriding { .. }))
                    );
                }
            }
            bundles.push(bundle);
            all_resources.push(resources);
        }
        let chains = available
            .iter()
            .enumerate()
            .map(|(i, l)| chain(i, l.as_str(), &available, 0))
            .collect();
        let content_language = available
            .iter()
            .map(|l| HeaderValue::from_str(l.as_str()).ok())
            .collect();
        Ok(Bundles {
            available,
            default: 0,
            bundles,
            chains,
            resources: all_resources,
            content_language,
        })
    }

    /// The available locale `tag` resolves to by RFC 4647 lookup, if any.
    pub(crate) fn find(&self, tag: &str) -> Option<usize> {
        crate::accept::lookup(tag, &self.available, |_| true)
    }

    /// The index of an available locale (as handed out by negotiation).
    pub(crate) fn index_of(&self, locale: &Locale) -> Option<usize> {
        self.available
            .iter()
            .position(|a| crate::accept::tag_eq(a.as_str(), locale.as_str()))
    }

    /// Formats message `id` (or `id.attribute`) for locale `idx`, walking its fallback
    /// chain. `Err` when no locale of the chain has it; formatting errors (a missing
    /// argument) make the next locale of the chain be tried, and the first locale's output
    /// is used when every one fails.
    pub(crate) fn format<'a>(
        &'a self,
        idx: usize,
        id: &str,
        args: Option<&FluentArgs<'_>>,
    ) -> Result<Formatted<'a>, ()> {
        let (msg, attr) = match id.split_once('.') {
            Some((m, a)) => (m, Some(a)),
            None => (id, None),
        };
        let mut first_flawed: Option<Formatted<'a>> = None;
        for &i in self.chains.get(idx).map_or(&[][..], Vec::as_slice) {
            let bundle = &self.bundles[i];
            let Some(message) = bundle.get_message(msg) else {
                continue;
            };
            let pattern = match attr {
                Some(a) => message.get_attribute(a).map(|a| a.value()),
                None => message.value(),
            };
            let Some(pattern) = pattern else { continue };
            let mut errors = Vec::new();
            #[cfg(feature = "icu")]
            let text = crate::format::formatting_in(&self.available[i], || {
                bundle.format_pattern(pattern, args, &mut errors)
            });
            #[cfg(not(feature = "icu"))]
            let text = bundle.format_pattern(pattern, args, &mut errors);
            let out = Formatted {
                text,
                locale: i,
                errors,
            };
            if out.errors.is_empty() {
                return Ok(match first_flawed {
                    Some(mut f) => {
                        f.text = out.text;
                        f.locale = out.locale;
                        f
                    }
                    None => out,
                });
            }
            if first_flawed.is_none() {
                first_flawed = Some(out);
            }
        }
        first_flawed.ok_or(())
    }
}

/// A formatted message: its text, the locale that had it, and the errors met on the way
/// (kept for logging).
pub(crate) struct Formatted<'a> {
    pub(crate) text: Cow<'a, str>,
    pub(crate) locale: usize,
    pub(crate) errors: Vec<FluentError>,
}

fn chain(i: usize, tag: &str, available: &[Locale], default: usize) -> Vec<usize> {
    let mut out = vec![i];
    let mut t = tag;
    while let Some(cut) = t.rfind('-') {
        t = &t[..cut];
        if let Some(cut2) = t.rfind('-')
            && t.len() - cut2 == 2
        {
            t = &t[..cut2];
        }
        if let Some(j) = available.iter().position(|a| a.as_str() == t)
            && !out.contains(&j)
        {
            out.push(j);
        }
    }
    if !out.contains(&default) {
        out.push(default);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        assert_eq!(line_col("a\nbc\nd", 0), (1, 1));
        assert_eq!(line_col("a\nbc\nd", 3), (2, 2));
        assert_eq!(line_col("a\nbc\nd", 5), (3, 1));
    }

    #[test]
    fn canonical_tags() {
        assert_eq!(canonical("zh_hant_tw").as_deref(), Some("zh-Hant-TW"));
        assert_eq!(canonical("EN-us").as_deref(), Some("en-US"));
        assert_eq!(canonical("../etc"), None);
    }

    #[test]
    fn chains_follow_rfc4647_lookup() {
        let avail: Vec<Locale> = ["en", "zh", "zh-Hant", "zh-Hant-TW"]
            .iter()
            .map(|t| Locale::parse(t).unwrap())
            .collect();
        assert_eq!(chain(3, "zh-Hant-TW", &avail, 0), [3, 2, 1, 0]);
        assert_eq!(chain(0, "en", &avail, 0), [0]);
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let src = format!("bomb = {}", "{".repeat(500));
        let e = parse("x.ftl", src).err().unwrap();
        assert!(e.to_string().contains("nested deeper"), "{e}");
        // Braces inside string literals do not count.
        let ok = format!("brace = {}\n", "{\"{\"}".repeat(100));
        assert!(parse("y.ftl", ok).is_ok());
    }
}
