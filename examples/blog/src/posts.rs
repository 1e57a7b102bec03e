//! Posts: the index, a post with its comments, writing and editing in Markdown, search and
//! image uploads. Blueprint `posts`, at the site's root.
//!
//! | route | endpoint | who |
//! |---|---|---|
//! | `GET /` (`?page=`) | `posts.index` | everyone: published posts, newest first |
//! | `GET /posts/{slug}` (`?reply=ID`) | `posts.show` | everyone for published posts; drafts for their author and editors |
//! | `GET/POST /posts/new` | `posts.new` | logged in |
//! | `GET/POST /posts/{slug}/edit` | `posts.edit` | the author, editors |
//! | `POST /posts/{slug}/delete` | `posts.delete` | the author, editors |
//! | `POST /posts/{slug}/comments` | `posts.comment` | logged in, 5 a minute |
//! | `GET /search?q=` (`&page=`, `&sort=`) | `posts.search` | everyone |
//! | `GET /uploads/{name}` | `posts.upload` | everyone |
//!
//! The shared part of the index and of a post page (the list, the article and its
//! comments) is cached per locale in flagon-cache ([`pages`]): rendered without the
//! session, so no user's nav, flashed message or CSRF token ever lands in a shared entry,
//! and forgotten at once on every instance when a post or comment changes
//! ([`content::changed`](crate::content::changed)).

mod comments;
mod dates;
mod edit;
mod form;
pub mod pages;
mod search;
mod uploads;
mod views;

use flagon::{Blueprint, Route};

pub use dates::{Date, ymd};
pub use search::{SearchSort, fts5_query, search_select};
pub use uploads::{ImageType, sniff_image, valid_upload_name};

/// The `posts` blueprint.
pub fn blueprint() -> Blueprint {
    Blueprint::new("posts")
        .route(Route::get("/", views::index).name("index"))
        .route(
            Route::get("/posts/new", edit::new_form)
                .and_post(edit::create)
                .name("new"),
        )
        .route(Route::get("/posts/{slug}", views::show).name("show"))
        .route(
            Route::get("/posts/{slug}/edit", edit::edit_form)
                .and_post(edit::update)
                .name("edit"),
        )
        .route(Route::post("/posts/{slug}/delete", edit::delete).name("delete"))
        .route(
            Route::post("/posts/{slug}/comments", comments::create)
                .name("comment")
                .with(flagon_limiter::limit("5/minute")),
        )
        .route(Route::get("/search", search::search).name("search"))
        .route(Route::get("/uploads/{name}", uploads::serve).name("upload"))
}
