//! Fixtures: catalog directories written to a temporary directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use flagon::{App, AppBuilder};

/// A temporary `locales/` tree (and `templates/`), removed when dropped.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Fixture { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `[i18n]` pointing at this fixture's `locales`, plus `extra` lines of that section, and
    /// `[templates] dir` at its `templates`.
    pub fn toml(&self, extra: &str) -> String {
        format!(
            "[i18n]\ndirs = [{:?}]\n{extra}\n[templates]\ndir = {:?}\n",
            self.path("locales").display().to_string(),
            self.path("templates").display().to_string()
        )
    }

    pub fn builder(&self, extra: &str) -> AppBuilder {
        App::builder().settings(flagon::testing::testing_config_toml(&self.toml(extra)))
    }
}

/// The usual catalogs: en (default), fr, de, zh, zh-Hant, es, ar, pl.
pub fn standard() -> Fixture {
    Fixture::new(&[
        (
            "locales/en/main.ftl",
            "hello = Hello, { $name }!\nitems = { $count ->\n    [one] one item\n   *[other] { $count } items\n}\nonly-en = Only in English\nlogin-form = Log in\n    .title = Please log in\n",
        ),
        (
            "locales/fr/main.ftl",
            "hello = Bonjour, { $name } !\nitems = { $count ->\n    [one] { $count } article\n   *[other] { $count } articles\n}\n",
        ),
        ("locales/de/main.ftl", "hello = Hallo, { $name }!\n"),
        (
            "locales/zh/main.ftl",
            "hello = 你好，{ $name }！\nitems = { $count } 件\nlogin-form = 登录\n    .title = 请登录\n",
        ),
        ("locales/zh-Hant/main.ftl", "hello = 妳好，{ $name }！\n"),
        ("locales/es/main.ftl", "hello = ¡Hola, { $name }!\n"),
        (
            "locales/ar/main.ftl",
            "hello = مرحبا { $name }\nitems = { $count ->\n    [zero] لا عناصر\n    [one] عنصر واحد\n    [two] عنصران\n    [few] { $count } عناصر\n    [many] { $count } عنصرًا\n   *[other] { $count } عنصر\n}\n",
        ),
        (
            "locales/pl/main.ftl",
            "hello = Cześć, { $name }!\nitems = { $count ->\n    [one] { $count } element\n    [few] { $count } elementy\n    [many] { $count } elementów\n   *[other] { $count } elementu\n}\n",
        ),
    ])
}
