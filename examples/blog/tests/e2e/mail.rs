//! The mails flagon-mail's file transport wrote (`*.eml` in its directory), parsed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One delivered mail.
pub struct Mail {
    /// The file it was written to.
    pub path: PathBuf,
    /// `To:`.
    pub to: String,
    /// `Subject:`, decoded.
    pub subject: String,
    /// `Message-ID:`.
    pub message_id: String,
    /// Every text part, decoded (plain and HTML).
    pub text: String,
}

/// Every mail in `dir`, oldest first (the transport names files by time). A missing directory
/// is no mail.
pub fn read_all(dir: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    paths.into_iter().map(|p| parse(&p)).collect()
}

fn parse(path: &Path) -> Mail {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed = mailparse::parse_mail(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = |name: &str| {
        use mailparse::MailHeaderMap;
        parsed.headers.get_first_value(name).unwrap_or_default()
    };
    let mut text = String::new();
    collect_text(&parsed, &mut text);
    Mail {
        path: path.to_owned(),
        to: header("To"),
        subject: header("Subject"),
        message_id: header("Message-ID"),
        text,
    }
}

fn collect_text(part: &mailparse::ParsedMail<'_>, out: &mut String) {
    if part.subparts.is_empty() {
        if part.ctype.mimetype.starts_with("text/") {
            out.push_str(&part.get_body().unwrap_or_default());
            out.push('\n');
        }
    } else {
        for p in &part.subparts {
            collect_text(p, out);
        }
    }
}

/// Waits up to `within` for a mail to `to` in `dir`.
pub async fn wait_for(dir: &Path, to: &str, within: Duration) -> Mail {
    let start = Instant::now();
    loop {
        if let Some(m) = read_all(dir).into_iter().find(|m| m.to.contains(to)) {
            return m;
        }
        if start.elapsed() > within {
            let seen: Vec<String> = read_all(dir).into_iter().map(|m| m.to).collect();
            panic!(
                "no mail to {to} in {} within {within:?} (mails: {seen:?})",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The path of the first link in `text` that contains `marker` (`/auth/verify/`), whether
/// the mail has it absolute (`http://host/auth/verify/…`) or relative.
pub fn link_path(text: &str, marker: &str) -> Option<String> {
    let at = text.find(marker)?;
    let end = text[at..]
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>' | ')' | '\''))
        .map_or(text.len(), |e| e + at);
    Some(text[at..end].replace("&amp;", "&"))
}

#[test]
fn links_are_found_in_text_and_html() {
    let text = "Open http://127.0.0.1:5000/auth/verify/abc.def-1 to verify.\n\
                <a href=\"http://x/auth/verify/abc.def-1\">verify</a>";
    assert_eq!(
        link_path(text, "/auth/verify/").as_deref(),
        Some("/auth/verify/abc.def-1")
    );
    assert_eq!(link_path("nothing", "/auth/verify/"), None);
}
