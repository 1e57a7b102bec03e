//! A set of migrations as declared: the files of one directory, parsed and checked.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flagon::RegistryKind;

use super::error::DeclarationError;
use crate::Backend;

/// The registry of migration sets: every extension (and the app, as owner `app`) adds its
/// own in `init_app`, named after itself.
///
/// ```
/// use flagon::{Extension, Setup, SetupError};
///
/// struct Login;
///
/// impl Extension for Login {
///     fn name(&self) -> &'static str {
///         "login"
///     }
///
///     fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
///         // Login's tables reference the app's `users`: apply the app's migrations first.
///         let set = flagon_db::migrations!("tests/fixtures/migrate/login").requires(["app"]);
///         app.add_to::<flagon_db::Migrations>("login", set);
///         Ok(())
///     }
/// }
/// ```
///
/// The name an entry is added under is its owner: the tracking table records it with each
/// version, so two sets may both have a `0001`. Two sets under one name fail the app's build,
/// naming both parties.
pub struct Migrations;

impl RegistryKind for Migrations {
    type Entry = MigrationSet;
    const KIND: &'static str = "migration set";
}

/// The migrations of one owner: SQL files embedded by [`migrations!`](crate::migrations), or
/// built at run time with [`MigrationSet::from_files`].
///
/// Building a set never fails: problems in its files are kept and reported, each naming its
/// file, by [`MigrationSet::check`] and by every command that uses the set (the app's build
/// checks every registered set).
#[derive(Clone, Debug)]
pub struct MigrationSet {
    source: Arc<Source>,
    requires: Vec<String>,
}

#[derive(Debug)]
struct Source {
    label: String,
    dir: Option<PathBuf>,
    declared_in: Option<PathBuf>,
    parsed: Result<Vec<Declared>, Vec<DeclarationError>>,
}

/// One version as declared: its shared files and each backend's own.
#[derive(Debug)]
pub(crate) struct Declared {
    pub(crate) version: i64,
    pub(crate) name: String,
    shared: Pair,
    backends: [Pair; 3],
}

#[derive(Debug, Default)]
struct Pair {
    up: Option<SqlFile>,
    down: Option<SqlFile>,
}

/// One SQL file: where it came from (for messages) and its text.
#[derive(Clone, Debug)]
pub(crate) struct SqlFile {
    pub(crate) path: String,
    pub(crate) sql: Cow<'static, str>,
}

/// The files one backend runs for one version.
pub(crate) struct Resolved<'a> {
    pub(crate) up: &'a SqlFile,
    pub(crate) down: Option<&'a SqlFile>,
    /// Where a down file would go (for the error refusing a downgrade).
    pub(crate) down_path: String,
}

pub(crate) const BACKEND_DIRS: [&str; 3] = ["sqlite", "postgres", "mysql"];

pub(crate) fn backend_index(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 0,
        Backend::Postgres => 1,
        Backend::MySql => 2,
    }
}

impl MigrationSet {
    #[doc(hidden)]
    /// What [`migrations!`](crate::migrations) expands to; not a public API.
    pub fn __embedded(
        label: &'static str,
        dir: &'static str,
        declared_in: Option<&'static str>,
        files: &'static [(&'static str, &'static str)],
    ) -> MigrationSet {
        let files = files
            .iter()
            .map(|&(path, sql)| (Cow::Borrowed(path), Cow::Borrowed(sql)));
        MigrationSet::build(
            label.to_owned(),
            Some(PathBuf::from(dir)),
            declared_in.map(PathBuf::from),
            files,
        )
    }

    /// A set from files given at run time: `files` are (path relative to the migration
    /// directory, SQL text) with `/` separators, as `0001_create_users.up.sql` or
    /// `postgres/0001_create_users.up.sql`; `label` is how messages name the directory.
    ///
    /// ```
    /// use flagon_db::MigrationSet;
    /// let set = MigrationSet::from_files(
    ///     "migrations",
    ///     [
    ///         ("0001_create_users.up.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY)"),
    ///         ("0001_create_users.down.sql", "DROP TABLE users"),
    ///     ],
    /// );
    /// assert!(set.check("app").is_ok());
    /// assert_eq!(set.versions(), [1]);
    /// ```
    pub fn from_files<P, S>(label: &str, files: impl IntoIterator<Item = (P, S)>) -> MigrationSet
    where
        P: Into<String>,
        S: Into<String>,
    {
        let files = files
            .into_iter()
            .map(|(p, s)| (Cow::Owned(p.into()), Cow::Owned(s.into())));
        MigrationSet::build(label.to_owned(), None, None, files)
    }

    fn build(
        label: String,
        dir: Option<PathBuf>,
        declared_in: Option<PathBuf>,
        files: impl Iterator<Item = (Cow<'static, str>, Cow<'static, str>)>,
    ) -> MigrationSet {
        let parsed = parse(&label, files);
        MigrationSet {
            source: Arc::new(Source {
                label,
                dir,
                declared_in,
                parsed,
            }),
            requires: Vec::new(),
        }
    }

    /// The owners whose migrations are applied before this set's (and reverted after).
    pub fn requires<I, S>(mut self, owners: I) -> MigrationSet
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.requires.extend(owners.into_iter().map(Into::into));
        self
    }

    /// The owners this set requires.
    pub fn required(&self) -> &[String] {
        &self.requires
    }

    /// The directory as the declaration wrote it (`migrations`).
    pub fn label(&self) -> &str {
        &self.source.label
    }

    /// The directory the files were embedded from, for sets made by
    /// [`migrations!`](crate::migrations).
    pub fn source_dir(&self) -> Option<&Path> {
        self.source.dir.as_deref()
    }

    /// The source file holding the [`migrations!`](crate::migrations) call, when the compiler
    /// told.
    pub fn declared_in(&self) -> Option<&Path> {
        self.source.declared_in.as_deref()
    }

    /// The versions declared, ascending (empty when the files have problems).
    pub fn versions(&self) -> Vec<i64> {
        match &self.source.parsed {
            Ok(v) => v.iter().map(|d| d.version).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Checks the files: names, duplicate versions, down files without an up file, unknown
    /// directories. The error lists every problem, each naming its file.
    ///
    /// ```
    /// use flagon_db::MigrationSet;
    /// let set = MigrationSet::from_files("migrations", [("1-users.sql", "")]);
    /// let err = set.check("app").unwrap_err().to_string();
    /// assert!(err.contains("migrations/1-users.sql"), "{err}");
    /// ```
    pub fn check(&self, owner: &str) -> Result<(), super::MigrateError> {
        self.declared(owner).map(|_| ())
    }

    pub(crate) fn declared(&self, owner: &str) -> Result<&[Declared], super::MigrateError> {
        match &self.source.parsed {
            Ok(v) => Ok(v),
            Err(problems) => Err(super::MigrateError::Declaration {
                owner: owner.to_owned(),
                problems: problems.clone(),
            }),
        }
    }
}

impl Declared {
    /// The files `backend` runs: its own directory's when that has the version, else the
    /// shared ones.
    pub(crate) fn resolve(
        &self,
        label: &str,
        backend: Backend,
    ) -> Result<Resolved<'_>, DeclarationError> {
        let own = &self.backends[backend_index(backend)];
        let (pair, dir) = if own.up.is_some() {
            (own, format!("{label}/{}/", backend.name()))
        } else {
            (&self.shared, format!("{label}/"))
        };
        match &pair.up {
            Some(up) => Ok(Resolved {
                up,
                down: pair.down.as_ref(),
                down_path: format!("{dir}{}.down.sql", self.name),
            }),
            None => Err(DeclarationError {
                file: format!("{label}/{}.up.sql", self.name),
                problem: format!(
                    "no file for {backend}: add {label}/{backend}/{name}.up.sql or a shared \
                     {label}/{name}.up.sql",
                    name = self.name
                ),
            }),
        }
    }
}

/// `sql` with CRLF line ends as LF, so a checkout that converts line ends keeps the checksum.
pub(crate) fn checksum(sql: &str) -> String {
    use sha2::{Digest, Sha256};
    let normal = sql.replace("\r\n", "\n");
    let digest = Sha256::digest(normal.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse(
    label: &str,
    files: impl Iterator<Item = (Cow<'static, str>, Cow<'static, str>)>,
) -> Result<Vec<Declared>, Vec<DeclarationError>> {
    let mut problems = Vec::new();
    let mut by_version: BTreeMap<i64, Declared> = BTreeMap::new();
    let mut files: Vec<_> = files.collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (rel, sql) in files {
        let display = format!("{label}/{rel}");
        let problem = |p: String| DeclarationError {
            file: display.clone(),
            problem: p,
        };
        let (dir, file) = match rel.rsplit_once('/') {
            None => (None, rel.as_ref()),
            Some((dir, file)) => (Some(dir), file),
        };
        let slot = match dir {
            None => None,
            Some(d) => match BACKEND_DIRS.iter().position(|b| *b == d) {
                Some(i) => Some(i),
                None => {
                    problems.push(problem(format!(
                        "unknown directory `{d}/`: a backend's own files go in sqlite/, postgres/ \
                         or mysql/, shared ones beside them"
                    )));
                    continue;
                }
            },
        };
        let (stem, up) = if let Some(stem) = file.strip_suffix(".up.sql") {
            (stem, true)
        } else if let Some(stem) = file.strip_suffix(".down.sql") {
            (stem, false)
        } else {
            problems.push(problem(
                "a migration file is named VERSION_NAME.up.sql or VERSION_NAME.down.sql \
                 (0001_create_users.up.sql)"
                    .into(),
            ));
            continue;
        };
        let version = match parse_stem(stem) {
            Ok(v) => v,
            Err(p) => {
                problems.push(problem(p));
                continue;
            }
        };
        let entry = by_version.entry(version).or_insert_with(|| Declared {
            version,
            name: stem.to_owned(),
            shared: Pair::default(),
            backends: Default::default(),
        });
        if entry.name != stem {
            problems.push(problem(format!(
                "version {version} is also `{}`: each version has one name, in every directory",
                entry.name
            )));
            continue;
        }
        let pair = match slot {
            None => &mut entry.shared,
            Some(i) => &mut entry.backends[i],
        };
        let target = if up { &mut pair.up } else { &mut pair.down };
        if let Some(existing) = target {
            problems.push(problem(format!("duplicate of {}", existing.path)));
            continue;
        }
        *target = Some(SqlFile { path: display, sql });
    }
    for d in by_version.values() {
        for pair in std::iter::once(&d.shared).chain(&d.backends) {
            if let (None, Some(down)) = (&pair.up, &pair.down) {
                problems.push(DeclarationError {
                    file: down.path.clone(),
                    problem: "a down file without its up file".into(),
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(by_version.into_values().collect())
    } else {
        Err(problems)
    }
}

/// The version of `0001_create_users`.
fn parse_stem(stem: &str) -> Result<i64, String> {
    let expected = "expected a version number, `_` and a name (0001_create_users.up.sql)";
    let Some((digits, name)) = stem.split_once('_') else {
        return Err(format!("no `_` after the version: {expected}"));
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{digits}` is not a version number: {expected}"));
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "`{name}` is not a name: use letters, digits, `_` and `-`: {expected}"
        ));
    }
    match digits.parse::<i64>() {
        Ok(0) => Err("version 0 is reserved (it means \"nothing applied\")".into()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("version `{digits}` is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[(&str, &str)]) -> MigrationSet {
        MigrationSet::from_files("m", files.iter().copied())
    }

    fn problems(files: &[(&str, &str)]) -> Vec<String> {
        match &set(files).source.parsed {
            Err(p) => p.iter().map(|p| p.to_string()).collect(),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn backend_files_override_shared_ones_version_by_version() {
        let s = set(&[
            ("0001_a.up.sql", "shared up 1"),
            ("0001_a.down.sql", "shared down 1"),
            ("0002_b.up.sql", "shared up 2"),
            ("postgres/0002_b.up.sql", "pg up 2"),
        ]);
        let declared = s.declared("app").unwrap();
        let pg: Vec<_> = declared
            .iter()
            .map(|d| d.resolve("m", Backend::Postgres).unwrap())
            .collect();
        assert_eq!(pg[0].up.sql, "shared up 1");
        assert_eq!(pg[0].down.unwrap().sql, "shared down 1");
        assert_eq!(pg[1].up.sql, "pg up 2");
        // postgres/ has 0002's up file but no down: the shared down is not borrowed.
        assert!(pg[1].down.is_none());
        assert_eq!(pg[1].down_path, "m/postgres/0002_b.down.sql");
        let lite = declared[1].resolve("m", Backend::Sqlite).unwrap();
        assert_eq!(lite.up.sql, "shared up 2");
    }

    #[test]
    fn a_backend_without_a_file_is_named() {
        let s = set(&[("postgres/0001_a.up.sql", "x")]);
        let d = &s.declared("app").unwrap()[0];
        let err = d.resolve("m", Backend::MySql).err().unwrap().to_string();
        assert!(err.contains("no file for mysql"), "{err}");
        assert!(err.contains("m/mysql/0001_a.up.sql"), "{err}");
    }

    #[test]
    fn bad_files_are_each_named() {
        let p = problems(&[
            ("0001_a.up.sql", ""),
            ("1_b.up.sql", ""),
            ("0002_c.sql", ""),
            ("x_y.up.sql", ""),
            ("0003.up.sql", ""),
            ("0004_bad name.up.sql", ""),
            ("postgresql/0005_e.up.sql", ""),
            ("0006_f.down.sql", ""),
            ("0000_zero.up.sql", ""),
        ]);
        let joined = p.join("\n");
        for needle in [
            "m/1_b.up.sql: version 1 is also `0001_a`",
            "m/0002_c.sql: a migration file is named",
            "m/x_y.up.sql: `x` is not a version number",
            "m/0003.up.sql: no `_` after the version",
            "m/0004_bad name.up.sql: `bad name` is not a name",
            "m/postgresql/0005_e.up.sql: unknown directory `postgresql/`",
            "m/0006_f.down.sql: a down file without its up file",
            "m/0000_zero.up.sql: version 0 is reserved",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
        }
        assert_eq!(p.len(), 8, "{joined}");
    }

    #[test]
    fn checksums_ignore_line_end_style() {
        assert_eq!(checksum("a\r\nb\n"), checksum("a\nb\n"));
        assert_ne!(checksum("a"), checksum("b"));
        assert_eq!(checksum("").len(), 64);
    }
}
