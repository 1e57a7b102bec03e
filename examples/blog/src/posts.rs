//! Posts: the index, a post with its comments, writing and editing in Markdown, search and
//! image uploads. Blueprint `posts`, at the site's root.

use flagon::Blueprint;

/// The `posts` blueprint.
pub fn blueprint() -> Blueprint {
    Blueprint::new("posts")
}
