//! `cargo run -p example-blog`: the blog on its embedded defaults (SQLite, in-process cache
//! and limits, mail written to `instance/mail/`), or any of its commands
//! (`cargo run -p example-blog -- routes`, `… -- create-admin EMAIL --password-stdin`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let app = example_blog::load_config()
        .map_err(|e| e.to_string())
        .and_then(|config| example_blog::build(config).map_err(|e| e.to_string()));
    match app {
        Ok(app) => app.run().await,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
