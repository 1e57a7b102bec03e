//! The `migrations!` macro of `flagon-db`, which re-exports it: use it as
//! `flagon_db::migrations!("migrations")`, never from this crate directly.
//!
//! The macro lists a directory of SQL migration files when the declaring crate compiles and
//! expands to a `flagon_db::MigrationSet` that holds every `.sql` file under it, each through
//! `include_str!`, so the SQL is inside the binary and cargo rebuilds the crate when one of
//! those files changes. It checks nothing but that the directory exists and that its file
//! names are UTF-8: `flagon-db` parses and validates the set (file names, duplicate versions,
//! down files, per-backend directories) and reports problems naming the file.

use std::path::{Path, PathBuf};

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;

/// Embeds the migration directory `dir` (relative to the declaring crate's `Cargo.toml`) as a
/// `flagon_db::MigrationSet`. See the `flagon_db::migrate` module for the layout.
#[proc_macro]
pub fn migrations(input: TokenStream) -> TokenStream {
    let lit = syn::parse_macro_input!(input as syn::LitStr);
    let declared_in = proc_macro::Span::call_site().local_file();
    match expand(&lit.value(), declared_in) {
        Ok(tokens) => tokens.into(),
        Err(message) => syn::Error::new(lit.span(), message)
            .to_compile_error()
            .into(),
    }
}

fn expand(label: &str, declared_in: Option<PathBuf>) -> Result<TokenStream2, String> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .map_err(|_| "`migrations!` needs CARGO_MANIFEST_DIR: build with cargo".to_owned())?;
    let dir = Path::new(&manifest).join(label);
    if !dir.is_dir() {
        return Err(format!(
            "migration directory `{label}` not found: looked for {} (the path is relative to the \
             crate's Cargo.toml)",
            dir.display()
        ));
    }
    let mut files = Vec::new();
    collect(&dir, "", &mut files)?;
    files.sort();
    let abs_dir = path_str(&dir)?;
    let declared_in = match declared_in.map(absolute) {
        Some(path) => {
            let path = path_str(&path)?;
            quote!(::core::option::Option::Some(#path))
        }
        None => quote!(::core::option::Option::None),
    };
    let entries = files
        .iter()
        .map(|(rel, abs)| quote!((#rel, ::core::include_str!(#abs))));
    Ok(quote! {
        ::flagon_db::MigrationSet::__embedded(
            #label,
            #abs_dir,
            #declared_in,
            &[#(#entries),*],
        )
    })
}

/// Every `.sql` file under `dir`, as (path relative to the migration directory with `/`
/// separators, absolute path).
fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| format!("{}: file name is not UTF-8", Path::new(&n).display()))?;
        let rel = format!("{prefix}{name}");
        // `Path::is_dir` follows symbolic links, so a linked directory is read too.
        if path.is_dir() {
            collect(&path, &format!("{rel}/"), out)?;
        } else if name.ends_with(".sql") {
            out.push((rel, path_str(&path)?));
        }
    }
    Ok(())
}

fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(&path))
        .unwrap_or(path)
}

fn path_str(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: path is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_named_with_where_it_was_looked_for() {
        let err = expand("no-such-migrations", None).unwrap_err();
        assert!(
            err.starts_with("migration directory `no-such-migrations` not found: looked for /"),
            "{err}"
        );
        assert!(err.contains("relative to the crate's Cargo.toml"), "{err}");
    }

    #[test]
    fn every_sql_file_below_the_directory_is_embedded_in_order() {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        let fixtures = Path::new(&dir).join("../tests/fixtures/migrate/layout");
        let mut files = Vec::new();
        collect(&fixtures, "", &mut files).unwrap();
        files.sort();
        let rel: Vec<&str> = files.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(
            rel,
            [
                "0001_first.down.sql",
                "0001_first.up.sql",
                "0002_second.up.sql",
                "postgres/0002_second.down.sql",
                "postgres/0002_second.up.sql"
            ]
        );
        let tokens = expand("../tests/fixtures/migrate/layout", None)
            .unwrap()
            .to_string();
        assert!(
            tokens.contains(":: flagon_db :: MigrationSet :: __embedded"),
            "{tokens}"
        );
        assert_eq!(tokens.matches("include_str !").count(), 5, "{tokens}");
    }
}
