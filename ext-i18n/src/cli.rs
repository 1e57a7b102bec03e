//! `i18n check`, `i18n stats` and `i18n init LOCALE`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use flagon::clap::{Arg, ArgAction, Command};
use flagon::{BoxError, Setup};
use fluent_syntax::ast;

use crate::catalog::Bundles;
use crate::state::Shared;

fn command() -> Command {
    Command::new("i18n")
        .about("Check and start translations")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(Command::new("check").about(
            "Compare every locale with the default: missing and extra messages, differing variables, unknown ids in templates",
        ))
        .subcommand(Command::new("stats").about("Each locale's share of the default's messages"))
        .subcommand(
            Command::new("init")
                .about("Write a new locale directory with the default locale's messages to translate")
                .arg(Arg::new("locale").required(true).value_name("LOCALE"))
                .arg(
                    Arg::new("force")
                        .long("force")
                        .action(ArgAction::SetTrue)
                        .help("Overwrite files that exist"),
                ),
        )
}

/// A message's variables (`$name`), through selectors, attributes and call arguments.
fn variables(m: &ast::Message<&str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(p) = &m.value {
        pattern_vars(p, &mut out);
    }
    for a in &m.attributes {
        pattern_vars(&a.value, &mut out);
    }
    out
}

fn pattern_vars(p: &ast::Pattern<&str>, out: &mut BTreeSet<String>) {
    for e in &p.elements {
        if let ast::PatternElement::Placeable { expression } = e {
            expr_vars(expression, out);
        }
    }
}

fn expr_vars(e: &ast::Expression<&str>, out: &mut BTreeSet<String>) {
    match e {
        ast::Expression::Select { selector, variants } => {
            inline_vars(selector, out);
            for v in variants {
                pattern_vars(&v.value, out);
            }
        }
        ast::Expression::Inline(i) => inline_vars(i, out),
    }
}

fn inline_vars(i: &ast::InlineExpression<&str>, out: &mut BTreeSet<String>) {
    match i {
        ast::InlineExpression::VariableReference { id } => {
            out.insert(id.name.to_owned());
        }
        ast::InlineExpression::FunctionReference { arguments, .. } => call_vars(arguments, out),
        ast::InlineExpression::TermReference {
            arguments: Some(a), ..
        } => call_vars(a, out),
        ast::InlineExpression::Placeable { expression } => expr_vars(expression, out),
        _ => {}
    }
}

fn call_vars(a: &ast::CallArguments<&str>, out: &mut BTreeSet<String>) {
    for p in &a.positional {
        inline_vars(p, out);
    }
    for n in &a.named {
        inline_vars(&n.value, out);
    }
}

/// Per locale: message id → its variables (terms left out).
fn messages(b: &Bundles) -> Vec<BTreeMap<String, BTreeSet<String>>> {
    b.resources
        .iter()
        .map(|rs| {
            let mut map = BTreeMap::new();
            for r in rs {
                for e in r.resource.entries() {
                    if let ast::Entry::Message(m) = e {
                        map.entry(m.id.name.to_owned())
                            .or_insert_with(|| variables(m));
                    }
                }
            }
            map
        })
        .collect()
}

/// `_("id")`, `t("id")` (either quote) in every file under `dir`, with file and line.
pub(crate) fn template_ids(dir: &Path) -> Vec<(String, PathBuf, usize)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            for (n, line) in text.lines().enumerate() {
                scan_line(line, |id| out.push((id.to_owned(), p.clone(), n + 1)));
            }
        }
    }
    out
}

fn scan_line(line: &str, mut found: impl FnMut(&str)) {
    let b = line.as_bytes();
    for i in 0..b.len() {
        let call = (b[i] == b'_' || b[i] == b't')
            && (i == 0
                || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'.'));
        if !call {
            continue;
        }
        let rest = line[i + 1..].trim_start();
        let Some(rest) = rest.strip_prefix('(') else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        if let Some(end) = rest[1..].find(q) {
            let id = &rest[1..1 + end];
            if !id.is_empty()
                && id
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
            {
                found(id);
            }
        }
    }
}

/// The `i18n check` report: one line per problem, and how many.
pub(crate) fn check(b: &Bundles, templates: Option<&Path>) -> (Vec<String>, usize) {
    let msgs = messages(b);
    let d = b.default;
    let default_tag = b.available[d].as_str();
    let mut lines = Vec::new();
    for (i, l) in b.available.iter().enumerate() {
        if i == d {
            continue;
        }
        for (id, vars) in &msgs[d] {
            match msgs[i].get(id) {
                None => lines.push(format!("{l}: missing `{id}` (in {default_tag})")),
                Some(v) if v != vars => lines.push(format!(
                    "{l}: `{id}` uses {} but {default_tag} uses {}",
                    show(v),
                    show(vars)
                )),
                Some(_) => {}
            }
        }
        for id in msgs[i].keys() {
            if !msgs[d].contains_key(id) {
                lines.push(format!("{l}: extra `{id}` (not in {default_tag})"));
            }
        }
    }
    if let Some(dir) = templates {
        let known = |id: &str| {
            let msg = id.split('.').next().unwrap_or(id);
            msgs.iter().any(|m| m.contains_key(msg))
        };
        let mut seen = BTreeSet::new();
        for (id, file, line) in template_ids(dir) {
            if !known(&id) && seen.insert((id.clone(), file.clone())) {
                lines.push(format!(
                    "{}:{line}: `{id}` is in no catalog",
                    file.display()
                ));
            }
        }
    }
    let n = lines.len();
    (lines, n)
}

fn show(v: &BTreeSet<String>) -> String {
    if v.is_empty() {
        return "no variables".to_owned();
    }
    v.iter()
        .map(|s| format!("${s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `i18n stats`: per locale, how many of the default's messages it has.
pub(crate) fn stats(b: &Bundles) -> Vec<String> {
    let msgs = messages(b);
    let total = msgs[b.default].len();
    b.available
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let have = msgs[b.default]
                .keys()
                .filter(|id| msgs[i].contains_key(*id))
                .count();
            let pct = if total == 0 {
                100.0
            } else {
                100.0 * have as f64 / total as f64
            };
            let mark = if i == b.default { " (default)" } else { "" };
            format!("{l}{mark}: {have}/{total} ({pct:.0}%)")
        })
        .collect()
}

/// `i18n init LOCALE`: the default's files, copied under the new locale with a comment
/// asking for translation.
fn init(shared: &Shared, b: &Bundles, tag: &str, force: bool) -> Result<Vec<PathBuf>, BoxError> {
    let canonical =
        crate::catalog::canonical(tag).ok_or_else(|| format!("`{tag}` is not a language tag"))?;
    let dir = shared
        .cfg
        .dirs
        .first()
        .ok_or("`i18n.dirs` is empty")?
        .join(&canonical);
    let mut written = Vec::new();
    let app_files: Vec<_> = b.resources[b.default]
        .iter()
        .filter(|r| r.owner == "app")
        .collect();
    if app_files.is_empty() {
        return Err(format!(
            "the default locale `{}` has no catalog files to start from",
            b.available[b.default]
        )
        .into());
    }
    std::fs::create_dir_all(&dir)?;
    for r in app_files {
        let name = Path::new(&r.label)
            .file_name()
            .ok_or("a catalog file has no name")?;
        let target = dir.join(name);
        if target.exists() && !force {
            return Err(format!("{} exists (use --force to overwrite)", target.display()).into());
        }
        let text = format!(
            "# {canonical}: translate the values below (copied from {}).\n\n{}",
            b.available[b.default],
            r.resource.source()
        );
        std::fs::write(&target, text)?;
        written.push(target);
    }
    Ok(written)
}

pub(crate) fn register(app: &mut Setup<'_>) {
    app.command(command(), |ctx| async move {
        let shared = ctx
            .app()
            .state::<Shared>()
            .ok_or("the i18n extension is not set up")?;
        let b = shared.bundles();
        let mut out = ctx.out();
        match ctx.matches().subcommand() {
            Some(("check", _)) => {
                let dir: PathBuf = ctx
                    .app()
                    .settings()
                    .value::<PathBuf>("templates.dir")
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| PathBuf::from("templates"));
                let (lines, n) = check(&b, Some(&dir));
                for l in &lines {
                    writeln!(out, "{l}")?;
                }
                if n > 0 {
                    return Err(format!("i18n check: {n} problems").into());
                }
                writeln!(
                    out,
                    "i18n check: {} locales, no problems",
                    b.available.len()
                )?;
            }
            Some(("stats", _)) => {
                for l in stats(&b) {
                    writeln!(out, "{l}")?;
                }
            }
            Some(("init", m)) => {
                let tag = m.get_one::<String>("locale").ok_or("LOCALE is required")?;
                for p in init(&shared, &b, tag, m.get_flag("force"))? {
                    writeln!(out, "wrote {}", p.display())?;
                }
            }
            _ => return Err("unknown i18n command".into()),
        }
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_calls_are_found() {
        let mut ids = Vec::new();
        scan_line(
            r#"{{ _("a-b") }} {{ t('c.d', n=1) }} {{ x_("no") }} {{ foot("no") }} {{ _( "e" ) }}"#,
            |id| ids.push(id.to_owned()),
        );
        assert_eq!(ids, ["a-b", "c.d", "e"]);
    }
}
