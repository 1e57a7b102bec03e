//! Template functions: `_("id", name=value)` and its alias `t`.

use std::sync::Arc;

use flagon::minijinja::value::{Kwargs, Value, ValueKind, from_args};
use flagon::minijinja::{Error, ErrorKind};
use flagon::templates::RenderRequest;
use flagon::{Locale, Setup};
use fluent_bundle::{FluentArgs, FluentValue};

use crate::lang::Lang;
use crate::state::{Cell, Shared};

/// A template value as a Fluent argument: numbers stay numbers (plural selection needs
/// them), everything else is its text.
pub(crate) fn to_fluent(v: &Value) -> FluentValue<'static> {
    match v.kind() {
        ValueKind::Number => match f64::try_from(v.clone()) {
            Ok(n) => FluentValue::from(n),
            Err(_) => FluentValue::from(v.to_string()),
        },
        ValueKind::String => FluentValue::from(v.as_str().unwrap_or_default().to_owned()),
        ValueKind::None | ValueKind::Undefined => FluentValue::None,
        _ => FluentValue::from(v.to_string()),
    }
}

/// The [`Lang`] a render is for: its locale (the request's, or the one given to
/// `Templates::for_locale`), else the default; marks the request as having used it.
pub(crate) fn lang_for(shared: &Arc<Shared>, req: &RenderRequest) -> Lang {
    let locale: Locale = match req.locale() {
        Some(l) => l.clone(),
        None => shared.default_locale(),
    };
    if let Some(used) = shared.used.get(req) {
        let _ = used.locale.set(locale.clone());
    }
    Lang::new(shared.clone(), locale)
}

pub(crate) fn shared(cell: &Cell) -> Result<&Arc<Shared>, Error> {
    cell.get()
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "i18n is not set up"))
}

fn translate(cell: &Cell, req: &RenderRequest, args: &[Value]) -> Result<String, Error> {
    let (id, kwargs): (String, Kwargs) = from_args(args)?;
    let mut fargs = FluentArgs::new();
    for key in kwargs.args() {
        let v: Value = kwargs.get(key)?;
        fargs.set(key.to_owned(), to_fluent(&v));
    }
    let mut lang = lang_for(shared(cell)?, req);
    let args = kwargs.args().next().is_some().then_some(&fargs);
    let text = crate::timezone::translate_in_render(&mut lang, req, |l| l.try_t(&id, args));
    Ok(text.unwrap_or(id))
}

pub(crate) fn register(app: &mut Setup<'_>, cell: &Cell) {
    for name in ["_", "t"] {
        let cell = cell.clone();
        app.template_request_function(name, move |req, args| translate(&cell, req, args));
    }
    let cell2 = cell.clone();
    app.template_request_function("current_locale", move |req, _args| {
        Ok(lang_for(shared(&cell2)?, req).locale().to_string())
    });
    #[cfg(feature = "icu")]
    crate::format::register_filters(app, cell);
}
