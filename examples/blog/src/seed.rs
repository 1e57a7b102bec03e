//! `seed --posts N`: demo accounts, posts and comments for trying the blog out.
//!
//! Makes (or reuses) three verified demo accounts, `demo-author-1@example.com`,
//! `demo-author-2@example.com` (authors) and `demo-editor@example.com` (an editor), all
//! with the password [`DEMO_PASSWORD`]; then N published posts spread over them, with a
//! category, tags and a few comments and replies each, with a progress bar on stderr. Run
//! `db upgrade` first.

use std::io::Write;

use flagon::clap::{Arg, Command, value_parser};
use flagon::cli::CommandContext;
use flagon::{AppHandle, BoxError, Setup};
use flagon_db::Db;
use flagon_login::Login;
use indicatif::{ProgressBar, ProgressStyle};

use crate::content::{self, PostInput};
use crate::models::{Account, comment_status, now};

/// The demo accounts' password.
pub const DEMO_PASSWORD: &str = "demo-password";

const AUTHORS: &[(&str, &str, &str)] = &[
    ("demo-author-1@example.com", "demo_author_1", "author"),
    ("demo-author-2@example.com", "demo_author_2", "author"),
    ("demo-editor@example.com", "demo_editor", "editor"),
];
const TOPICS: &[&str] = &[
    "Rust",
    "Flask",
    "SQLite",
    "Caching",
    "Templates",
    "Async",
    "Testing",
    "Search",
];
const CATEGORIES: &[&str] = &["Engineering", "Notes", "Tutorials"];
const TAGS: &[&str] = &["rust", "web", "databases", "performance", "howto", "i18n"];

/// Registers the command.
pub fn install(app: &mut Setup<'_>) {
    let command = Command::new("seed")
        .about("Add demo accounts, published posts with tags and categories, and comments")
        .arg(
            Arg::new("posts")
                .long("posts")
                .value_name("N")
                .help("How many posts to write")
                .value_parser(value_parser!(u32).range(1..=100_000))
                .default_value("20"),
        );
    app.command(command, run);
}

async fn run(ctx: CommandContext) -> Result<(), BoxError> {
    let n = *ctx.matches().get_one::<u32>("posts").ok_or("--posts N")?;
    let written = seed(ctx.app(), n, true).await?;
    writeln!(
        ctx.out(),
        "Seeded {written} posts by {} demo accounts ({}; password: {DEMO_PASSWORD}).",
        AUTHORS.len(),
        AUTHORS.iter().map(|a| a.0).collect::<Vec<_>>().join(", "),
    )?;
    Ok(())
}

/// Writes `n` demo posts (and the demo accounts if missing); returns how many were written.
/// `progress` draws a bar on stderr (hidden when stderr is not a terminal).
pub async fn seed(app: &AppHandle, n: u32, progress: bool) -> Result<u32, BoxError> {
    let db = app
        .state::<Db>()
        .ok_or("the db extension is not registered")?;
    let authors = demo_accounts(app, &db).await?;
    let start: i64 = db
        .query_scalar::<i64>("SELECT COUNT(*) FROM posts")
        .fetch_one(&*db)
        .await
        .map_err(|e| format!("{e} (run `db upgrade` first)"))?;
    let bar = if progress {
        ProgressBar::new(u64::from(n))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(ProgressStyle::with_template(
        "{spinner} seeding [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
    )?);
    for i in 0..n {
        let k = start + i64::from(i) + 1;
        let pick = |list: &[&'static str], salt: i64| list[((k + salt) as usize) % list.len()];
        let topic = pick(TOPICS, 0);
        let input = PostInput {
            title: format!("{topic} notes, part {k}"),
            body: format!(
                "# {topic}, part {k}\n\nA demo post about **{topic}** for trying the blog: \
                 lists, search and comments.\n\n- one point\n- another point\n\n\
                 Search for `{}` to find it.",
                topic.to_lowercase()
            ),
            published: true,
            category: Some(pick(CATEGORIES, 1).to_owned()),
            tags: vec![pick(TAGS, 0).to_owned(), pick(TAGS, 3).to_owned()],
        }
        .check()
        .map_err(|e| e.message)?;
        let author = authors[(k as usize) % authors.len()];
        let mut tx = db.begin().await?;
        let (post_id, _) = content::insert_post(&mut tx, author, &input, None).await?;
        let mut first = None;
        for (j, text) in ["Nice write-up.", "Thanks, this helped.", "Agreed!"]
            .iter()
            .enumerate()
        {
            let commenter = authors[(k as usize + j + 1) % authors.len()];
            let parent = if j == 2 { first } else { None };
            let row = tx
                .query(
                    "INSERT INTO comments (post_id, author_id, parent_id, body, status, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(post_id)
                .bind(commenter)
                .bind(parent)
                .bind(*text)
                .bind(comment_status::VISIBLE)
                .bind(now())
                .fetch_one(&mut tx)
                .await?;
            let id: i64 = flagon_db::sqlx::Row::try_get(&row, 0)?;
            first = first.or(Some(id));
        }
        tx.commit().await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    content::changed(app).await;
    Ok(n)
}

/// The demo accounts' ids, made if missing.
async fn demo_accounts(app: &AppHandle, db: &Db) -> Result<Vec<i64>, BoxError> {
    let passwords =
        Login::<Account>::passwords(app).ok_or("the login extension is not registered")?;
    let mut ids = Vec::new();
    for (email, username, role) in AUTHORS {
        if let Some(a) = Account::by_email(db, email).await? {
            ids.push(a.id);
            continue;
        }
        let hash = passwords.hash(DEMO_PASSWORD).await?;
        let t = now();
        let row = db
            .query(
                "INSERT INTO users (email, username, password_hash, role, verified_at, active, created_at) \
                 VALUES (?, ?, ?, ?, ?, 1, ?) RETURNING id",
            )
            .bind(*email)
            .bind(*username)
            .bind(hash)
            .bind(*role)
            .bind(t)
            .bind(t)
            .fetch_one(db)
            .await?;
        ids.push(flagon_db::sqlx::Row::try_get(&row, 0)?);
    }
    Ok(ids)
}
