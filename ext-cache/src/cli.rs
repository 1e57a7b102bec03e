//! `cache clear`, `cache stats` and `cache get`.

use std::io::Write as _;

use flagon::clap::{Arg, ArgAction, ArgMatches, Command};
use flagon::{BoxError, Setup};

use crate::{CacheHandle, Caches};

fn which() -> Arg {
    Arg::new("cache")
        .long("cache")
        .value_name("NAME")
        .help("A named cache (default: the default cache)")
}

fn command() -> Command {
    Command::new("cache")
        .about("Inspect and clear the caches")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            Command::new("clear")
                .about("Remove every entry of a cache (on Redis, the keys under its prefix only)")
                .arg(
                    Arg::new("yes")
                        .long("yes")
                        .action(ArgAction::SetTrue)
                        .help("Do it without asking"),
                )
                .arg(which()),
        )
        .subcommand(
            Command::new("stats")
                .about("Entries, weight and hit rate of each cache")
                .arg(which()),
        )
        .subcommand(
            Command::new("get")
                .about("Print the entry under KEY as JSON")
                .arg(Arg::new("key").required(true).value_name("KEY"))
                .arg(which()),
        )
}

fn pick(caches: &Caches, m: &ArgMatches) -> Result<CacheHandle, BoxError> {
    match m.get_one::<String>("cache") {
        None => Ok(caches.default().clone()),
        Some(n) => caches.named(n).cloned().ok_or_else(|| {
            let names: Vec<&str> = caches.all().map(CacheHandle::name).collect();
            format!("no cache named `{n}` (caches: {})", names.join(", ")).into()
        }),
    }
}

pub(crate) fn register(app: &mut Setup<'_>) {
    app.command(command(), |ctx| async move {
        let caches = Caches::of(ctx.app()).ok_or("the cache extension provided no caches")?;
        let mut out = ctx.out();
        match ctx.matches().subcommand() {
            Some(("clear", m)) => {
                let cache = pick(&caches, m)?;
                if !m.get_flag("yes") {
                    return Err(format!(
                        "`cache clear` removes every entry of the `{}` cache: run it again with --yes",
                        cache.name()
                    )
                    .into());
                }
                let n = cache.clear().await?;
                writeln!(out, "cleared the `{}` cache: {n} entries removed", cache.name())?;
            }
            Some(("stats", m)) => {
                let list: Vec<CacheHandle> = match m.get_one::<String>("cache") {
                    Some(_) => vec![pick(&caches, m)?],
                    None => caches.all().cloned().collect(),
                };
                for cache in list {
                    let s = cache.stats().await;
                    let mut line = format!("{} ({})", cache.name(), cache.backend().as_str());
                    if let Some(e) = s.entries {
                        line.push_str(&format!(" entries={e}"));
                    }
                    if let Some(b) = s.bytes {
                        line.push_str(&format!(" bytes={b}"));
                    }
                    line.push_str(&format!(" hits={} misses={}", s.hits, s.misses));
                    if let Some(r) = s.hit_rate() {
                        line.push_str(&format!(" hit_rate={:.1}%", r * 100.0));
                    }
                    if let Some(server) = &s.server {
                        line.push_str(&format!(" server=\"{server}\""));
                    }
                    if cache.circuit_open() {
                        line.push_str(" circuit=open");
                    }
                    writeln!(out, "{line}")?;
                }
            }
            Some(("get", m)) => {
                let cache = pick(&caches, m)?;
                let key = m.get_one::<String>("key").map(String::as_str).unwrap_or_default();
                match cache.inspect(key).await {
                    None => writeln!(out, "(no entry)")?,
                    Some(Ok(v)) => writeln!(out, "{v}")?,
                    Some(Err(why)) => writeln!(out, "(undecodable: {why})")?,
                }
            }
            _ => return Err("unknown `cache` subcommand".into()),
        }
        Ok(())
    });
}
