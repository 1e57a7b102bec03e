//! `i18n check`, `i18n stats` and `i18n init`.

mod common;

use flagon::testing::run_cli;
use flagon_i18n::I18n;

fn problems() -> common::Fixture {
    common::Fixture::new(&[
        (
            "locales/en/main.ftl",
            "hello = Hello, { $name }!\nbye = Bye\nitems = { $count ->\n    [one] one item\n   *[other] { $count } items\n}\n",
        ),
        // Missing `bye`, extra `zh-only`, `hello` uses another variable.
        (
            "locales/zh/main.ftl",
            "hello = 你好，{ $user }！\nitems = { $count } 件\nzh-only = 只有中文\n",
        ),
        (
            "locales/fr/main.ftl",
            "hello = Bonjour, { $name } !\nbye = Au revoir\nitems = { $count } articles\n",
        ),
        (
            "templates/page.html",
            "{{ _('hello', name=u) }}\n{{ t(\"not-anywhere\") }}\n{{ _('items', count=1) }}\n",
        ),
    ])
}

#[tokio::test]
async fn check_reports_each_kind_of_problem_and_fails() {
    let fx = problems();
    let app = fx
        .builder("")
        .register(I18n::new())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let out = run_cli(&app, ["i18n", "check"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let root = fx.root().display().to_string();
    let stdout = out.stdout.replace(&root, "[root]");
    insta::assert_snapshot!(stdout);
    assert!(
        out.stderr.contains("i18n check: 4 problems"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn check_passes_on_clean_catalogs() {
    let fx = common::Fixture::new(&[
        ("locales/en/main.ftl", "hello = Hello, { $name }!\n"),
        ("locales/zh/main.ftl", "hello = 你好，{ $name }！\n"),
        ("templates/page.html", "{{ _('hello', name=u) }}\n"),
    ]);
    let app = fx.builder("").register(I18n::new()).build().unwrap();
    let out = run_cli(&app, ["i18n", "check"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "i18n check: 2 locales, no problems\n");
}

#[tokio::test]
async fn stats_and_init() {
    let fx = problems();
    let app = fx.builder("").register(I18n::new()).build().unwrap();
    let out = run_cli(&app, ["i18n", "stats"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "en (default): 3/3 (100%)\nfr: 3/3 (100%)\nzh: 2/3 (67%)\n"
    );

    let out = run_cli(&app, ["i18n", "init", "de_AT"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let written = fx.path("locales/de-AT/main.ftl");
    assert!(
        out.stdout.contains(&written.display().to_string()),
        "{}",
        out.stdout
    );
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(
        text.starts_with("# de-AT: translate the values below"),
        "{text}"
    );
    assert!(text.contains("hello = Hello, { $name }!"), "{text}");
    // Not twice without --force.
    let out = run_cli(&app, ["i18n", "init", "de-AT"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    let out = run_cli(&app, ["i18n", "init", "../evil"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not a language tag"), "{}", out.stderr);
    // The new locale is complete and consistent.
    let app = fx.builder("").register(I18n::new()).build().unwrap();
    let out = run_cli(&app, ["i18n", "stats"]).await;
    assert!(out.stdout.contains("de-AT: 3/3 (100%)"), "{}", out.stdout);
}
