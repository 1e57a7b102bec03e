//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong loading catalogs or using the extension.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// A catalog file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A `.ftl` file does not parse (or nests placeables too deeply).
    #[error("{file}:{line}:{column}: {message}{}", if *more > 0 { format!(" (and {more} more errors)") } else { String::new() })]
    Parse {
        /// The file (or `extension: name` for a contributed catalog).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser says.
        message: String,
        /// How many further errors the file has.
        more: usize,
    },
    /// A `.ftl` file is larger than [`MAX_FILE_BYTES`](crate::catalog::MAX_FILE_BYTES).
    #[error("{}: {bytes} bytes is more than a catalog file may have", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// A directory under a locale directory is not named by a language tag.
    #[error("{}: the directory's name is not a language tag (expected e.g. `en`, `zh-Hant`, `pt_BR`)", path.display())]
    BadLocaleDir {
        /// The directory.
        path: PathBuf,
    },
    /// An extension contributed a catalog for something that is not a language tag.
    #[error("{label}: `{locale}` is not a language tag")]
    BadContributedLocale {
        /// The catalog.
        label: String,
        /// The locale it named.
        locale: String,
    },
    /// Two app files, or two extensions, define the same message for one locale.
    #[error("message `{id}` ({locale}) is defined twice: in {first} and in {second}")]
    Duplicate {
        /// The message id.
        id: String,
        /// The locale.
        locale: String,
        /// The first definition.
        first: String,
        /// The second.
        second: String,
    },
    /// A configuration value is wrong.
    #[error("{key}: {message}")]
    Config {
        /// The key (`i18n.default_locale`).
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The app was built without the i18n extension.
    #[error(
        "the i18n extension is not registered on this app (register `flagon_i18n::I18n::new()`)"
    )]
    NotRegistered,
}
