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
//!
//! A [`Message`] can be flashed instead of text ([`Session::flash_message`]): it is kept
//! as an id with arguments and translated when shown, in the locale of the request that
//! shows it ([`crate::messages::translate`]), so a message flashed before a redirect reads
//! in the language of the page after it.
//!
//! Flash is built on sessions' public API only: pending messages live under a reserved
//! session key ([`FLASH_KEY`]), and the messages taken out in a request are a
//! request-scoped value ([`crate::RequestLocal`]), so every read in that request sees them.

use std::sync::Mutex;

use minijinja::value::{Kwargs, from_args};
use minijinja::{Error, Value};
use serde::{Deserialize, Serialize};

use crate::error::SetupError;
use crate::facts::Locale;
use crate::handle::AppHandle;
use crate::messages::Message;
use crate::request_local::{RequestLocal, RequestScope};
use crate::session::{Session, SessionError};
use crate::setup::Setup;

/// The session key holding pending messages.
pub const FLASH_KEY: &str = "_flashes";

/// Most messages kept pending; older ones are dropped beyond this.
const MAX_PENDING: usize = 64;

/// One flashed message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlashMessage {
    /// The category (`message` by default in Flask; `error`, `success`, … by convention).
    pub category: String,
    /// The text (for a flashed [`Message`], its fallback text).
    pub message: String,
    /// The message to translate when shown, if one was flashed
    /// ([`Session::flash_message`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy: Option<Message>,
}

impl FlashMessage {
    /// The text to show in `locale`: a flashed [`Message`] translated by the app's
    /// translator, otherwise the text as flashed.
    pub fn text(&self, app: &AppHandle, locale: Option<&Locale>) -> String {
        match &self.lazy {
            Some(m) => crate::messages::translate(app, locale, m),
            None => self.message.clone(),
        }
    }
}

impl Session {
    /// Flashes `message` under `category` for the next request that reads messages.
    pub fn flash(
        &self,
        message: impl Into<String>,
        category: impl Into<String>,
    ) -> Result<(), SessionError> {
        self.push_flash(FlashMessage {
            category: category.into(),
            message: message.into(),
            lazy: None,
        })
    }

    /// Flashes `message` (an id with arguments) under `category`, translated when shown in
    /// the locale of the request that shows it.
    ///
    /// ```
    /// use flagon::messages::Message;
    /// use flagon::session::Session;
    ///
    /// async fn save(session: Session) -> Result<&'static str, flagon::HttpError> {
    ///     session.flash_message(Message::new("saved").arg("n", 3).fallback("Saved."), "success")?;
    ///     Ok("ok")
    /// }
    /// ```
    pub fn flash_message(
        &self,
        message: Message,
        category: impl Into<String>,
    ) -> Result<(), SessionError> {
        self.push_flash(FlashMessage {
            category: category.into(),
            message: message.fallback_text().to_owned(),
            lazy: Some(message),
        })
    }

    fn push_flash(&self, message: FlashMessage) -> Result<(), SessionError> {
        let mut pending: Vec<FlashMessage> = self.get(FLASH_KEY).unwrap_or_default();
        pending.push(message);
        if pending.len() > MAX_PENDING {
            let excess = pending.len() - MAX_PENDING;
            pending.drain(..excess);
        }
        self.insert(FLASH_KEY, pending)
    }

    /// Takes the pending messages out of the session. Within one request every call
    /// returns the same messages (Flask's behaviour); the next request sees none.
    pub fn flashed_messages(&self) -> Vec<FlashMessage> {
        let taken = self
            .request_head()
            .and_then(|h| h.app().state::<FlashKey>().and_then(|k| k.0))
            .and_then(|key| key.get(self));
        let take = || match self.remove(FLASH_KEY) {
            Some(v) => serde_json::from_value(v).unwrap_or_default(),
            None => Vec::new(),
        };
        let Some(taken) = taken else {
            return take();
        };
        let mut taken = taken.lock().unwrap_or_else(|e| e.into_inner());
        taken.get_or_insert_with(take).clone()
    }
}

/// The messages taken out during this request.
type Taken = Mutex<Option<Vec<FlashMessage>>>;

/// Where the app keeps flash's request-local key.
#[derive(Clone, Copy, Default)]
struct FlashKey(Option<RequestLocal<Taken>>);

/// Declares the per-request "taken" list and `get_flashed_messages()` for templates.
pub(crate) fn init(s: &mut Setup<'_>) -> Result<(), SetupError> {
    let key: RequestLocal<Taken> = s.request_local(|_| Mutex::new(None));
    s.provide(FlashKey(Some(key)));
    s.template_request_function("get_flashed_messages", |req, args| {
        let (opts,): (Kwargs,) = from_args(args)?;
        let with_categories: Option<bool> = opts.get("with_categories")?;
        let filter: Option<Vec<String>> = opts.get("category_filter")?;
        opts.assert_all_used()?;
        // Outside a request (mail, commands) there is no session and so nothing flashed.
        let messages = match Session::for_render(req)? {
            Some(session) => session.flashed_messages(),
            None => Vec::new(),
        };
        let kept = messages
            .into_iter()
            .filter(|m| filter.as_ref().is_none_or(|f| f.contains(&m.category)))
            .map(|m| {
                let text = m.text(req.app(), req.locale());
                (m.category, text)
            });
        Ok::<Value, Error>(if with_categories.unwrap_or(false) {
            kept.map(|(c, t)| Value::from(vec![Value::from(c), Value::from(t)]))
                .collect()
        } else {
            kept.map(|(_, t)| Value::from(t)).collect()
        })
    });
    Ok(())
}
