//! Localized messages across extensions, without their depending on each other.
//!
//! Two registries meet here:
//!
//! * [`Catalogs`]: any extension contributes message catalogs (Fluent `.ftl` sources, one per
//!   locale), the way it contributes template directories. Login ships its "Please log in to
//!   access this page." in English and Chinese this way; the app's own message of the same id
//!   wins, as the app's template wins over an extension's.
//! * [`Translators`]: the one extension that translates (an i18n extension) adds itself under
//!   [`Translators::NAME`]. A second translator fails the build, naming both.
//!
//! A consumer (login's flash message, a mail subject) builds a [`Message`] — an id, named
//! arguments and the text to show when nobody translates it — and calls [`translate`] with the
//! request's [`Locale`] fact. Without a translator the fallback is shown, so an app without
//! i18n still reads well. A `Message` is `Serialize`, so it can be stored (in the session, in a
//! flashed message) and translated only when shown, in the locale of the request that shows it.
//!
//! ```
//! use std::sync::Arc;
//! use flagon::messages::{Catalog, Catalogs, Message, Translator, Translators};
//! use flagon::{App, Locale, Setup, SetupError};
//!
//! // A login extension contributes its messages.
//! fn contribute(app: &mut Setup<'_>) -> Result<(), SetupError> {
//!     let en = Locale::parse("en").unwrap();
//!     app.add_to::<Catalogs>("login.ftl", Catalog::new(en, "login-required = Please log in.\n"));
//!     Ok(())
//! }
//!
//! // An i18n extension translates (here: only knows one message).
//! struct Shouting;
//! impl Translator for Shouting {
//!     fn translate(&self, _locale: Option<&Locale>, message: &Message) -> Option<String> {
//!         (message.id() == "login-required").then(|| "PLEASE LOG IN.".to_owned())
//!     }
//! }
//!
//! let app = App::builder()
//!     .configure(contribute)
//!     .configure(|app: &mut Setup<'_>| {
//!         app.add_to::<Translators>(Translators::NAME, Arc::new(Shouting));
//!         Ok(())
//!     })
//!     .build()
//!     .unwrap();
//! let handle = app.handle();
//! assert_eq!(handle.registry::<Catalogs>().iter().count(), 1);
//! let msg = Message::new("login-required").fallback("Please log in.");
//! assert_eq!(flagon::messages::translate(&handle, None, &msg), "PLEASE LOG IN.");
//! let unknown = Message::new("nobody-knows").fallback("Shown as written.");
//! assert_eq!(flagon::messages::translate(&handle, None, &unknown), "Shown as written.");
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::facts::Locale;
use crate::handle::AppHandle;
use crate::registries::RegistryKind;

/// The registry of message catalogs: entries are named by file (`login.ftl`), several per
/// name allowed (one per locale, from several extensions); each records who added it, so the
/// translator can let the app's messages win over an extension's.
pub struct Catalogs;

impl RegistryKind for Catalogs {
    type Entry = Catalog;
    const KIND: &'static str = "message catalog";
    const UNIQUE: bool = false;
}

/// One catalog: a Fluent (`.ftl`) source for one locale.
#[derive(Clone, Debug)]
pub struct Catalog {
    locale: Locale,
    source: Cow<'static, str>,
}

impl Catalog {
    /// A catalog of `locale` with the Fluent source `source` (often `include_str!`).
    pub fn new(locale: Locale, source: impl Into<Cow<'static, str>>) -> Catalog {
        Catalog {
            locale,
            source: source.into(),
        }
    }

    /// The catalog's locale.
    pub fn locale(&self) -> &Locale {
        &self.locale
    }

    /// The Fluent source.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The registry of translators: at most one, added under [`Translators::NAME`] by the
/// extension that translates.
pub struct Translators;

impl Translators {
    /// The name the translator is added under; a second one fails the build.
    pub const NAME: &'static str = "translator";
}

impl RegistryKind for Translators {
    type Entry = Arc<dyn Translator>;
    const KIND: &'static str = "translator";
}

/// Translates [`Message`]s: implemented by an i18n extension.
pub trait Translator: Send + Sync + 'static {
    /// `message` in `locale` (the translator's default locale when `None`, or when it does
    /// not have `locale`), or `None` when no catalog has the message.
    fn translate(&self, locale: Option<&Locale>, message: &Message) -> Option<String>;
}

/// `message` translated for `locale` by the app's translator; its fallback (or, without one,
/// its id) when there is no translator or the translator does not know it.
pub fn translate(app: &AppHandle, locale: Option<&Locale>, message: &Message) -> String {
    app.registry::<Translators>()
        .get(Translators::NAME)
        .and_then(|t| t.translate(locale, message))
        .unwrap_or_else(|| message.fallback_text().to_owned())
}

/// A message to translate when shown: an id, named arguments, and the text shown when no
/// translator knows it. Serializable, so it can wait in a session or a flashed message.
///
/// ```
/// use flagon::messages::{Arg, Message};
/// let m = Message::new("greeting").arg("name", "Ada").arg("count", 3).fallback("Hello!");
/// assert_eq!(m.id(), "greeting");
/// assert_eq!(m.get("name"), Some(&Arg::Str("Ada".into())));
/// assert_eq!(m.get("count"), Some(&Arg::Number(3.0)));
/// assert_eq!(m.fallback_text(), "Hello!");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    id: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    args: Vec<(Cow<'static, str>, Arg)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fallback: Option<Cow<'static, str>>,
}

impl Message {
    /// The message `id` (a Fluent message id, `login-required`, or an attribute,
    /// `login-form.title`).
    pub fn new(id: impl Into<Cow<'static, str>>) -> Message {
        Message {
            id: id.into(),
            args: Vec::new(),
            fallback: None,
        }
    }

    /// Adds the argument `name` (a later one of the same name replaces it).
    pub fn arg(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Arg>) -> Message {
        let name = name.into();
        let value = value.into();
        match self.args.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.args.push((name, value)),
        }
        self
    }

    /// Sets the text shown when no translator knows the message.
    pub fn fallback(mut self, text: impl Into<Cow<'static, str>>) -> Message {
        self.fallback = Some(text.into());
        self
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The arguments, in the order added.
    pub fn args(&self) -> impl Iterator<Item = (&str, &Arg)> {
        self.args.iter().map(|(n, v)| (n.as_ref(), v))
    }

    /// The argument `name`.
    pub fn get(&self, name: &str) -> Option<&Arg> {
        self.args.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The fallback text, or the id when there is none.
    pub fn fallback_text(&self) -> &str {
        self.fallback.as_deref().unwrap_or(&self.id)
    }
}

impl fmt::Display for Message {
    /// The fallback text (what is shown without a translator).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.fallback_text())
    }
}

/// A message argument: text or a number (Fluent's two argument types).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Arg {
    /// A number (plural selection and `NUMBER()` formatting use it).
    Number(f64),
    /// Text.
    Str(Cow<'static, str>),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Str(Cow::Owned(s.to_owned()))
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Str(Cow::Owned(s))
    }
}

impl From<Cow<'static, str>> for Arg {
    fn from(s: Cow<'static, str>) -> Arg {
        Arg::Str(s)
    }
}

macro_rules! number_arg {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(n: $t) -> Arg {
                Arg::Number(n as f64)
            }
        }
    )*};
}
number_arg!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize, f32, f64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_json() {
        let m = Message::new("welcome")
            .arg("name", "Zoë")
            .arg("count", 2)
            .fallback("Welcome!");
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"id":"welcome","args":[["name","Zoë"],["count",2.0]],"fallback":"Welcome!"}"#
        );
        let back: Message = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let bare: Message = serde_json::from_str(r#"{"id":"x"}"#).unwrap();
        assert_eq!(bare.fallback_text(), "x");
    }

    #[test]
    fn a_later_argument_replaces_an_earlier_one() {
        let m = Message::new("x").arg("n", 1).arg("n", 2);
        assert_eq!(m.args().count(), 1);
        assert_eq!(m.get("n"), Some(&Arg::Number(2.0)));
    }
}
