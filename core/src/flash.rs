//! Flashed messages: Flask's `flash()` and `get_flashed_messages()`.
//!
//! A message flashed in one request is kept in the session until a later request reads it,
//! so it survives a redirect and is shown once. Templates call
//! `get_flashed_messages(with_categories=false, category_filter=[])`; handlers call
//! [`Session::flashed_messages`].
//!
//! ```
//! use axum::response::Redirect;
//! use flagon::session::Session;
//!
//! async fn save(session: Session) -> Result<Redirect, flagon::HttpError> {
//!     session.flash("Saved.", "success")?;
//!     Ok(Redirect::to("/"))
//! }
//! ```

use serde::{Deserialize, Serialize};

use crate::session::{Session, SessionError};

/// The session key holding pending messages.
pub const FLASH_KEY: &str = "_flashes";

/// Most messages kept pending; older ones are dropped beyond this.
const MAX_PENDING: usize = 64;

/// One flashed message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlashMessage {
    /// The category (`message` by default in Flask; `error`, `success`, … by convention).
    pub category: String,
    /// The text.
    pub message: String,
}

impl Session {
    /// Flashes `message` under `category` for the next request that reads messages.
    pub fn flash(
        &self,
        message: impl Into<String>,
        category: impl Into<String>,
    ) -> Result<(), SessionError> {
        let mut pending: Vec<FlashMessage> = self.get(FLASH_KEY).unwrap_or_default();
        pending.push(FlashMessage {
            category: category.into(),
            message: message.into(),
        });
        if pending.len() > MAX_PENDING {
            let excess = pending.len() - MAX_PENDING;
            pending.drain(..excess);
        }
        self.insert(FLASH_KEY, pending)
    }

    /// Takes the pending messages out of the session. Within one request every call
    /// returns the same messages (Flask's behaviour); the next request sees none.
    pub fn flashed_messages(&self) -> Vec<FlashMessage> {
        let mut st = self.0.lock();
        if let Some(taken) = &st.flashes_taken {
            return taken.clone();
        }
        let taken: Vec<FlashMessage> = match st.data.remove(FLASH_KEY) {
            Some(v) => {
                st.note(FLASH_KEY, None);
                serde_json::from_value(v).unwrap_or_default()
            }
            None => Vec::new(),
        };
        st.flashes_taken = Some(taken.clone());
        taken
    }
}
