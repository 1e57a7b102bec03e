//! The migrations one backend runs, owners in dependency order, and what a target selects.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::error::{DeclarationError, MigrateError};
use super::set::{MigrationSet, SqlFile, checksum};
use crate::Backend;

/// How long `upgrade` and `downgrade` wait for another process's migration lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Every registered migration set, resolved for one backend and ordered: owners by their
/// `requires`, then versions ascending. Run it with [`Migrator::upgrade`],
/// [`Migrator::downgrade`] and [`Migrator::status`].
///
/// ```
/// use flagon_db::{Backend, MigrationSet, Migrator};
/// let app = MigrationSet::from_files("migrations", [("0001_users.up.sql", "CREATE TABLE users (id INT)")]);
/// let login = MigrationSet::from_files("login", [("0001_tokens.up.sql", "CREATE TABLE tokens (id INT)")])
///     .requires(["app"]);
/// let migrator = Migrator::new([("login", &login), ("app", &app)], Backend::Sqlite)?;
/// assert_eq!(migrator.owners().collect::<Vec<_>>(), ["app", "login"]);
/// # Ok::<(), flagon_db::MigrateError>(())
/// ```
#[derive(Debug)]
pub struct Migrator {
    pub(crate) backend: Backend,
    pub(crate) owners: Vec<OwnerPlan>,
    pub(crate) lock_timeout: Duration,
}

#[derive(Debug)]
pub(crate) struct OwnerPlan {
    pub(crate) owner: String,
    pub(crate) requires: Vec<String>,
    pub(crate) set: MigrationSet,
    pub(crate) steps: Vec<PlannedStep>,
}

#[derive(Debug)]
pub(crate) struct PlannedStep {
    pub(crate) version: i64,
    pub(crate) name: String,
    pub(crate) up: SqlFile,
    pub(crate) down: Option<SqlFile>,
    pub(crate) down_path: String,
    pub(crate) checksum: String,
}

impl Migrator {
    /// Resolves `sets` (owner, set) for `backend`: checks every set's files, that each
    /// version has a file for this backend, that every `requires` names a set and that they
    /// form no cycle. Sets with no requirement between them keep the order given.
    pub fn new<'a, I>(sets: I, backend: Backend) -> Result<Migrator, MigrateError>
    where
        I: IntoIterator<Item = (&'a str, &'a MigrationSet)>,
    {
        let sets: Vec<(&str, &MigrationSet)> = sets.into_iter().collect();
        let mut index = HashMap::new();
        for (i, (owner, set)) in sets.iter().enumerate() {
            check_owner(owner, set)?;
            if index.insert(*owner, i).is_some() {
                return Err(MigrateError::Declaration {
                    owner: (*owner).to_owned(),
                    problems: vec![DeclarationError {
                        file: set.label().to_owned(),
                        problem: format!("a second migration set is named `{owner}`"),
                    }],
                });
            }
        }
        for (owner, set) in &sets {
            for req in set.required() {
                if !index.contains_key(req.as_str()) {
                    return Err(MigrateError::MissingRequirement {
                        owner: (*owner).to_owned(),
                        missing: req.clone(),
                    });
                }
            }
        }
        let order = topological(&sets, &index)?;
        let mut owners = Vec::with_capacity(sets.len());
        for i in order {
            let (owner, set) = sets[i];
            let declared = set.declared(owner)?;
            let mut steps = Vec::with_capacity(declared.len());
            let mut problems = Vec::new();
            for d in declared {
                match d.resolve(set.label(), backend) {
                    Ok(r) => steps.push(PlannedStep {
                        version: d.version,
                        name: d.name.clone(),
                        checksum: checksum(&r.up.sql),
                        up: r.up.clone(),
                        down: r.down.cloned(),
                        down_path: r.down_path,
                    }),
                    Err(problem) => problems.push(problem),
                }
            }
            if !problems.is_empty() {
                return Err(MigrateError::Declaration {
                    owner: owner.to_owned(),
                    problems,
                });
            }
            owners.push(OwnerPlan {
                owner: owner.to_owned(),
                requires: set.required().to_vec(),
                set: set.clone(),
                steps,
            });
        }
        Ok(Migrator {
            backend,
            owners,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        })
    }

    /// The registered sets of an app (the entries of [`Migrations`](crate::Migrations)), resolved
    /// for `backend`, as [`Migrator::new`].
    pub fn from_registry(
        entries: flagon::Entries<'_, MigrationSet>,
        backend: Backend,
    ) -> Result<Migrator, MigrateError> {
        Migrator::new(entries.iter().map(|e| (e.name(), e.value())), backend)
    }

    /// How long `upgrade` and `downgrade` wait for another process holding the migration lock
    /// before failing with [`MigrateError::LockTimeout`] (default
    /// [`DEFAULT_LOCK_TIMEOUT`]).
    pub fn lock_timeout(mut self, timeout: Duration) -> Migrator {
        self.lock_timeout = timeout;
        self
    }

    /// The backend the migrations were resolved for.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The owners in the order their migrations are applied.
    pub fn owners(&self) -> impl Iterator<Item = &str> {
        self.owners.iter().map(|o| o.owner.as_str())
    }

    /// Every migration in the order a full `upgrade` applies them, each with the up file this
    /// backend runs. Reads no database.
    ///
    /// ```
    /// use flagon_db::{Backend, MigrationSet, Migrator};
    /// let set = MigrationSet::from_files("m", [
    ///     ("0001_a.up.sql", "SELECT 1"),
    ///     ("postgres/0001_a.up.sql", "SELECT 1 -- PostgreSQL's own"),
    /// ]);
    /// let files = |backend| -> Result<Vec<String>, flagon_db::MigrateError> {
    ///     Ok(Migrator::new([("app", &set)], backend)?.plan().into_iter().map(|s| s.file).collect())
    /// };
    /// assert_eq!(files(Backend::Postgres)?, ["m/postgres/0001_a.up.sql"]);
    /// assert_eq!(files(Backend::MySql)?, ["m/0001_a.up.sql"]);
    /// # Ok::<(), flagon_db::MigrateError>(())
    /// ```
    pub fn plan(&self) -> Vec<super::Step> {
        self.owners
            .iter()
            .flat_map(|o| {
                o.steps.iter().map(|s| super::Step {
                    owner: o.owner.clone(),
                    version: s.version,
                    name: s.name.clone(),
                    file: s.up.path.clone(),
                    direction: super::Direction::Up,
                })
            })
            .collect()
    }

    /// The set registered by `owner`.
    pub fn set(&self, owner: &str) -> Option<&MigrationSet> {
        self.owner(owner).map(|o| &o.set)
    }

    pub(crate) fn owner(&self, owner: &str) -> Option<&OwnerPlan> {
        self.owners.iter().find(|o| o.owner == owner)
    }

    pub(crate) fn known_owner(&self, owner: &str) -> Result<&OwnerPlan, MigrateError> {
        self.owner(owner).ok_or_else(|| {
            let names: Vec<&str> = self.owners().collect();
            MigrateError::Target(format!(
                "no migration set is named `{owner}` (the sets are: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ))
        })
    }

    /// `owner` and every owner it requires, transitively, in plan order.
    pub(crate) fn with_requirements(&self, owner: &str) -> Vec<&OwnerPlan> {
        let mut wanted = vec![owner.to_owned()];
        let mut i = 0;
        while i < wanted.len() {
            if let Some(o) = self.owner(&wanted[i].clone()) {
                for r in &o.requires {
                    if !wanted.contains(r) {
                        wanted.push(r.clone());
                    }
                }
            }
            i += 1;
        }
        self.owners
            .iter()
            .filter(|o| wanted.contains(&o.owner))
            .collect()
    }
}

/// Which migrations a command selects.
///
/// Written on the command line as nothing, `OWNER`, `OWNER:VERSION` or `VERSION` (the app's,
/// owner `app`):
///
/// | target | `db upgrade` | `db downgrade` |
/// |---|---|---|
/// | (none) | every pending migration | the most recently applied migration (one step, like Flask-Migrate's `-1`) |
/// | `login` | `login`'s pending ones and those of every set it requires | `login`'s latest applied one |
/// | `login:3` | the sets `login` requires, then `login` up to version 3 | `login`'s applied versions above 3 (`login:0`: all of them) |
/// | `3` | as `app:3` | as `app:3` |
///
/// ```
/// use flagon_db::Target;
/// assert_eq!("".parse::<Target>()?, Target::Default);
/// assert_eq!("login".parse::<Target>()?, Target::Owner("login".into()));
/// assert_eq!("login:0003".parse::<Target>()?, Target::Version("login".into(), 3));
/// assert_eq!("2".parse::<Target>()?, Target::Version("app".into(), 2));
/// assert!("app:x".parse::<Target>().is_err());
/// # Ok::<(), flagon_db::MigrateError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// No target given.
    Default,
    /// One owner's set.
    Owner(String),
    /// One owner's set up to (upgrade) or down to (downgrade) a version.
    Version(String, i64),
}

/// The owner of the app's own migrations.
pub const APP_OWNER: &str = "app";

impl FromStr for Target {
    type Err = MigrateError;

    fn from_str(s: &str) -> Result<Target, MigrateError> {
        let s = s.trim();
        let version = |v: &str| {
            v.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                MigrateError::Target(format!(
                    "`{s}` is not a target: a version is a number (OWNER:VERSION, VERSION or OWNER)"
                ))
            })
        };
        if s.is_empty() {
            return Ok(Target::Default);
        }
        if let Some((owner, v)) = s.split_once(':') {
            if owner.is_empty() {
                return Err(MigrateError::Target(format!(
                    "`{s}` is not a target: the owner is missing before `:`"
                )));
            }
            return Ok(Target::Version(owner.to_owned(), version(v)?));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Target::Version(APP_OWNER.to_owned(), version(s)?));
        }
        Ok(Target::Owner(s.to_owned()))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Default => f.write_str("(default)"),
            Target::Owner(o) => f.write_str(o),
            Target::Version(o, v) => write!(f, "{o}:{v}"),
        }
    }
}

fn check_owner(owner: &str, set: &MigrationSet) -> Result<(), MigrateError> {
    let ok = !owner.is_empty()
        && owner.len() <= 100
        && owner
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        return Ok(());
    }
    Err(MigrateError::Declaration {
        owner: owner.to_owned(),
        problems: vec![DeclarationError {
            file: set.label().to_owned(),
            problem: format!(
                "`{owner}` is not an owner name: use 1 to 100 lowercase letters, digits, `_` and `-`"
            ),
        }],
    })
}

/// Indices of `sets` with every set after those it requires; otherwise in the given order.
fn topological(
    sets: &[(&str, &MigrationSet)],
    index: &HashMap<&str, usize>,
) -> Result<Vec<usize>, MigrateError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit(
        i: usize,
        sets: &[(&str, &MigrationSet)],
        index: &HashMap<&str, usize>,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> Result<(), MigrateError> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..]
                    .iter()
                    .map(|&p| sets[p].0.to_owned())
                    .collect();
                cycle.push(sets[i].0.to_owned());
                return Err(MigrateError::Cycle { cycle });
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        path.push(i);
        for req in sets[i].1.required() {
            if let Some(&j) = index.get(req.as_str()) {
                visit(j, sets, index, marks, path, out)?;
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        out.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; sets.len()];
    let mut out = Vec::with_capacity(sets.len());
    let mut path = Vec::new();
    for i in 0..sets.len() {
        visit(i, sets, index, &mut marks, &mut path, &mut out)?;
    }
    Ok(out)
}
