//! The `mail` commands: `send-test`, `outbox`, `outbox retry`, `outbox purge`.

use std::io::Write;
use std::time::{Duration, SystemTime};

use clap::{Arg, ArgAction, ArgMatches, Command};
use flagon::cli::CommandContext;
use flagon::{BoxError, Setup};

use crate::mail::Mail;
use crate::message::Message;
use crate::outbox::{RetryWhich, Status};

/// The `mail` command and its subcommands.
pub fn command() -> Command {
    let status = Arg::new("status")
        .long("status")
        .value_name("STATUS")
        .value_parser(["pending", "sent", "failed", "dead"])
        .help("only messages in this state");
    Command::new("mail")
        .about("Mail: send a test message, inspect and manage the outbox")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            Command::new("send-test")
                .about(
                    "Send a test message through the configured transport and print the dialogue",
                )
                .arg(
                    Arg::new("to")
                        .value_name("TO")
                        .required(true)
                        .help("the recipient"),
                ),
        )
        .subcommand(
            Command::new("outbox")
                .about("List outbox messages (newest first)")
                .arg(status)
                .arg(
                    Arg::new("limit")
                        .long("limit")
                        .value_name("N")
                        .value_parser(clap::value_parser!(usize))
                        .default_value("50"),
                )
                .subcommand(
                    Command::new("retry")
                        .about("Put failed or dead-lettered messages back in the queue")
                        .arg(
                            Arg::new("id")
                                .value_name("ID")
                                .value_parser(clap::value_parser!(i64)),
                        )
                        .arg(
                            Arg::new("all-failed")
                                .long("all-failed")
                                .action(ArgAction::SetTrue)
                                .conflicts_with("id"),
                        ),
                )
                .subcommand(
                    Command::new("purge")
                        .about("Delete sent messages older than DURATION")
                        .arg(
                            Arg::new("sent-before")
                                .long("sent-before")
                                .value_name("DURATION")
                                .required(true)
                                .help("an age such as 7d or 12h"),
                        ),
                ),
        )
}

pub(crate) fn register(app: &mut Setup<'_>) {
    app.command(command(), run);
}

async fn run(ctx: CommandContext) -> Result<(), BoxError> {
    let mail = Mail::of(ctx.app()).ok_or("the mail extension is not registered")?;
    let mut out = ctx.out();
    match ctx.matches().subcommand() {
        Some(("send-test", m)) => send_test(&mail, m, &mut out).await,
        Some(("outbox", m)) => match m.subcommand() {
            Some(("retry", r)) => {
                let which = match (r.get_one::<i64>("id"), r.get_flag("all-failed")) {
                    (Some(id), false) => RetryWhich::Id(*id),
                    (None, true) => RetryWhich::AllFailed,
                    _ => return Err("give an outbox ID or --all-failed".into()),
                };
                let n = mail.queue().retry(which).await?;
                writeln!(out, "{n} message(s) queued again")?;
                Ok(())
            }
            Some(("purge", p)) => {
                let text = p
                    .get_one::<String>("sent-before")
                    .map(String::as_str)
                    .unwrap_or("");
                let age: Duration =
                    humantime_serde::re::humantime::parse_duration(text).map_err(|e| {
                        format!("--sent-before `{text}`: {e} (write an age such as 7d or 12h)")
                    })?;
                let before = SystemTime::now()
                    .checked_sub(age)
                    .ok_or_else(|| format!("--sent-before `{text}` is too long"))?;
                let n = mail.queue().purge_sent_before(before).await?;
                writeln!(out, "{n} sent message(s) purged")?;
                Ok(())
            }
            _ => list(&mail, m, &mut out).await,
        },
        _ => Err("`mail` needs a subcommand: send-test or outbox".into()),
    }
}

async fn send_test(mail: &Mail, m: &ArgMatches, out: &mut impl Write) -> Result<(), BoxError> {
    let to = m.get_one::<String>("to").map(String::as_str).unwrap_or("");
    let msg = Message::builder()
        .to(to)
        .subject("Flagon test message")
        .text("This is a test message sent by `mail send-test`.\n")
        .build()?;
    writeln!(out, "transport: {}", mail.transport_kind().as_str())?;
    let prepared = mail.prepare(&msg)?;
    writeln!(out, "Message-ID: {}", prepared.message_id())?;
    match mail.transport().send(&prepared).await {
        Ok(d) => {
            for line in &d.transcript {
                writeln!(out, "  {line}")?;
            }
            for f in d.deferred.iter().chain(&d.rejected) {
                writeln!(out, "  refused {} ({} {})", f.address, f.code, f.message)?;
            }
            if d.accepted.is_empty() {
                return Err(format!("not sent: {}", d.reply).into());
            }
            writeln!(out, "sent to {}: {}", to, d.reply)?;
            Ok(())
        }
        Err(e) => Err(format!("not sent: {e}").into()),
    }
}

fn when(ms: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime_serde::re::humantime::format_rfc3339_seconds(t).to_string()
}

async fn list(mail: &Mail, m: &ArgMatches, out: &mut impl Write) -> Result<(), BoxError> {
    let status = m.get_one::<String>("status").and_then(|s| Status::parse(s));
    let limit = m.get_one::<usize>("limit").copied().unwrap_or(50);
    let entries = mail.queue().list(status, limit).await?;
    if entries.is_empty() {
        writeln!(out, "no messages")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:<8} {:>3}  {:<20}  {:<30}  recipients / last error",
        "id", "status", "try", "queued", "message-id"
    )?;
    for e in entries {
        writeln!(
            out,
            "{:>6}  {:<8} {:>3}  {:<20}  {:<30}  {}{}",
            e.id,
            e.status.as_str(),
            e.attempts,
            when(e.created_at),
            e.message_id,
            e.recipients.join(", "),
            e.last_error.map(|x| format!(" — {x}")).unwrap_or_default()
        )?;
    }
    Ok(())
}
