//! Without `[db] url`, the database is `instance/app.db` under the working directory, the
//! directory made when the app is built. (Its own test binary: it changes the working
//! directory.)

use flagon::App;
use flagon::testing::testing_config;
use flagon_db::Db;

#[tokio::test]
async fn the_default_is_a_sqlite_file_in_the_instance_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let app = App::builder()
        .settings(testing_config())
        .register(Db::extension())
        .build()
        .unwrap();
    assert!(dir.path().join("instance").is_dir(), "instance/ is created");
    let db = app.state::<Db>().unwrap();
    db.query("CREATE TABLE t (x INTEGER)")
        .execute(&*db)
        .await
        .unwrap();
    assert!(
        dir.path().join("instance/app.db").is_file(),
        "the file is created on first use"
    );
}
