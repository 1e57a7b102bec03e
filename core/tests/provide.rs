//! `Setup::provide` hands back the shared `Arc`: what the extension keeps is what handlers,
//! hooks and commands see.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flagon::testing::{TestClient, testing_config};
use flagon::{App, Ext, Extension, Route, Setup, SetupError};

#[derive(Default)]
struct Hits(AtomicU64);

#[derive(Default)]
struct Counter {
    kept: Mutex<Option<Arc<Hits>>>,
}

impl Extension for &'static Counter {
    fn name(&self) -> &'static str {
        "counter"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let hits = app.provide(Hits::default());
        *self.kept.lock().unwrap() = Some(hits);
        Ok(())
    }
}

async fn hit(hits: Ext<Hits>) -> String {
    (hits.0.fetch_add(1, Ordering::Relaxed) + 1).to_string()
}

#[tokio::test]
async fn the_provided_arc_is_the_one_handlers_see() {
    let counter: &'static Counter = Box::leak(Box::default());
    let app = App::builder()
        .settings(testing_config())
        .register(counter)
        .route(Route::get("/hit", hit).name("hit"))
        .build()
        .unwrap();
    let kept = counter.kept.lock().unwrap().clone().expect("init_app ran");
    assert!(Arc::ptr_eq(&kept, &app.state::<Hits>().unwrap()));
    let client = TestClient::new(&app);
    assert_eq!(client.get("/hit").send().await.text(), "1");
    assert_eq!(client.get("/hit").send().await.text(), "2");
    assert_eq!(kept.0.load(Ordering::Relaxed), 2);
}
