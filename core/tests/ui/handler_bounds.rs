// A handler argument must be an extractor: a bare `u32` is not one (use `Path<u32>`).
use flagon::Route;

async fn show(id: u32) -> String {
    id.to_string()
}

fn main() {
    let _ = Route::get("/users/{id}", show);
}
