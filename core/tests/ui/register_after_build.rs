// `build()` freezes the app: a built `App` has no registration methods.
use flagon::{App, Extension, Route, Setup, SetupError};

struct Ping;

impl Extension for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }

    fn init_app(&self, _app: &mut Setup<'_>) -> Result<(), SetupError> {
        Ok(())
    }
}

async fn index() -> &'static str {
    "hi"
}

fn main() {
    let app = App::builder().build().unwrap();
    app.route(Route::get("/", index));
    app.register(Ping);
}
