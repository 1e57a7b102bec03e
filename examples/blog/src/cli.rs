//! The blog's own commands: `create-admin EMAIL --password-stdin` (here) and
//! `seed --posts N` ([`crate::seed`]).
//!
//! ```text
//! $ printf '%s\n' 'a long admin passphrase' | cargo run -p example-blog -- create-admin ann@example.com --password-stdin
//! created admin ann (ann@example.com), id 1
//! ```

use std::io::Write as _;

use flagon::clap::{Arg, ArgAction, Command};
use flagon::cli::CommandContext;
use flagon::{BoxError, Setup};
use flagon_db::Db;
use flagon_login::Login;

use crate::auth::{NewAccount, insert_account, validate};
use crate::models::{Account, now};

/// Registers the commands.
pub fn install(app: &mut Setup<'_>) {
    app.command(
        Command::new("create-admin")
            .about("Create a verified admin account (the password is read from standard input)")
            .arg(
                Arg::new("email")
                    .required(true)
                    .help("The admin's email address"),
            )
            .arg(
                Arg::new("password-stdin")
                    .long("password-stdin")
                    .action(ArgAction::SetTrue)
                    .help("Read the password from the first line of standard input"),
            )
            .arg(
                Arg::new("username")
                    .long("username")
                    .help("The name shown on posts (default: from the address)"),
            ),
        create_admin,
    );
    // When the server starts without any admin, say how to make one.
    if app.profile() != flagon::config::Profile::Testing {
        app.before_serving(|app| async move {
            let Some(db) = app.state::<Db>() else {
                return Ok(());
            };
            let admins: Result<i64, _> = db
                .query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin'")
                .fetch_one(&*db)
                .await;
            if matches!(admins, Ok(0)) {
                println!(
                    "No admin account yet. Create one with:\n  \
                     printf '%s\\n' 'a long passphrase' | cargo run -p example-blog -- create-admin you@example.com --password-stdin"
                );
            }
            Ok(())
        });
    }
}

/// A username from the address's local part: its letters, digits, `_` and `-`, at least
/// three characters, at most 32.
fn username_from(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let mut name: String = local
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .take(32)
        .collect();
    while name.chars().count() < 3 {
        name.push('_');
    }
    name
}

async fn create_admin(ctx: CommandContext) -> Result<(), BoxError> {
    let raw_email: &String = ctx.matches().get_one("email").ok_or("EMAIL is required")?;
    if !ctx.matches().get_flag("password-stdin") {
        return Err("give the password on standard input with --password-stdin \
                    (it never goes on the command line, where `ps` and the shell history see it)"
            .into());
    }
    let email = validate::email(raw_email)
        .map_err(|_| format!("`{}` is not a valid email address", raw_email.trim()))?;
    let username = match ctx.matches().get_one::<String>("username") {
        Some(u) => validate::username(u)
            .map_err(|_| "the username must have 3 to 32 letters, digits, `_` or `-`".to_owned())?,
        None => username_from(&email),
    };
    let password = ctx
        .input()
        .read_line()?
        .ok_or("no password on standard input")?;
    let app = ctx.app();
    let passwords = Login::<Account>::passwords(app).ok_or("login is not registered")?;
    if let Err(why) = validate::password(&passwords, &password) {
        let min = app
            .settings()
            .value::<usize>("login.password_min_chars")
            .ok()
            .flatten()
            .unwrap_or(8);
        let message = match why {
            "auth-error-password-short" => {
                format!("the password is too short: at least {min} characters")
            }
            "auth-error-password-long" => "the password is too long".to_owned(),
            _ => "the password is too common; choose another".to_owned(),
        };
        return Err(message.into());
    }
    let db = app
        .state::<Db>()
        .ok_or("the db extension is not registered")?;
    if Account::by_email(&db, &email).await?.is_some() {
        return Err(format!("an account with {email} already exists").into());
    }
    let taken: Option<i64> = db
        .query_scalar("SELECT id FROM users WHERE LOWER(username) = LOWER(?)")
        .bind(username.clone())
        .fetch_optional(&*db)
        .await?;
    if taken.is_some() {
        return Err(
            format!("the username {username} is taken; choose another with --username").into(),
        );
    }
    let hash = passwords.hash(&password).await?;
    let mut tx = db.begin().await?;
    let id = insert_account(
        &mut tx,
        &NewAccount {
            email: &email,
            username: &username,
            password_hash: &hash,
            role: "admin",
            verified_at: Some(now()),
        },
    )
    .await?;
    tx.commit().await?;
    writeln!(ctx.out(), "created admin {username} ({email}), id {id}")?;
    Ok(())
}
