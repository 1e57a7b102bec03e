//! Templates at setup: the `[templates]` section and everything extensions contribute
//! (filters, functions, globals, tests, context processors, template directories), kept as
//! replayable closures so the environment can be rebuilt when templates change.

use std::path::PathBuf;
use std::sync::Arc;

use minijinja::value::{FunctionArgs, FunctionResult, Rest, ValueKind};
use minijinja::{Environment, State, Value};
use minijinja_autoreload::AutoReloader;
use serde::{Deserialize, Serialize};

use super::builtins;
use super::{EnvSource, ProcessorFn, RenderRequest, RequestGlobalFn, TemplatesRuntime};
use crate::config::Profile;
use crate::error::SetupError;
use crate::error::{APP, CORE};
use crate::finish::Finish;
use crate::setup::Setup;

/// Core's `[templates]` section.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `dir` | `"templates"` | the app's template directory (relative to the working directory) |
/// | `auto_reload` | `true` in development | rebuild the environment when a template file changes |
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplatesConfig {
    /// The app's template directory.
    pub dir: PathBuf,
    /// Reload templates on change (default: only in development).
    pub auto_reload: Option<bool>,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        TemplatesConfig {
            dir: PathBuf::from("templates"),
            auto_reload: None,
        }
    }
}

/// A registration replayed on every (re)built environment.
pub(crate) type RegisterFn = Arc<dyn Fn(&mut Environment<'static>) + Send + Sync>;

/// What setup gathers for templates.
#[derive(Clone, Default)]
pub(crate) struct TemplateSlot {
    config: Option<TemplatesConfig>,
    /// Directories with whether the app (or core) contributed them.
    dirs: Vec<(PathBuf, bool)>,
    registrations: Vec<RegisterFn>,
    processors: Vec<ProcessorFn>,
    request_globals: Vec<(String, RequestGlobalFn)>,
}

impl Setup<'_> {
    fn templates(&mut self) -> &mut TemplateSlot {
        self.slot::<TemplateSlot>()
    }

    fn replay(&mut self, f: impl Fn(&mut Environment<'static>) + Send + Sync + 'static) {
        self.templates().registrations.push(Arc::new(f));
    }

    /// Adds a template filter (`{{ value|name(args) }}`), Flask's `template_filter`.
    /// Filters are minijinja functions whose first argument is the filtered value. A second
    /// filter of the same name fails the build, naming both registrations.
    ///
    /// ```
    /// # use flagon::{Setup, SetupError};
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// app.template_filter("shout", |s: String| format!("{}!", s.to_uppercase()));
    /// # Ok(()) }
    /// ```
    pub fn template_filter<F, Rv, Args>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: minijinja::functions::Function<Rv, Args>,
        Rv: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        self.claim_name("template filter", name);
        let (name, f) = (name.to_owned(), Value::from_function(f));
        self.replay(move |env| {
            let f = f.clone();
            env.add_filter(name.clone(), move |s: &State, a: Rest<Value>| f.call(s, &a));
        });
        self
    }

    /// Adds a template function (`{{ name(args) }}`), Flask's `template_global` for a
    /// callable. Functions and globals share one namespace.
    pub fn template_function<F, Rv, Args>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: minijinja::functions::Function<Rv, Args>,
        Rv: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        self.claim_name("template global", name);
        let (name, f) = (name.to_owned(), Value::from_function(f));
        self.replay(move |env| env.add_global(name.clone(), f.clone()));
        self
    }

    /// Adds a template function that sees the request being rendered for
    /// (`{{ name(args) }}`): i18n's `_()`, login's `current_user()`, secure-headers'
    /// `csp_nonce()`. `f` gets the [`RenderRequest`] (and through it the request's `g` and
    /// request-scoped values, [`RenderRequest::load`]) and the call's arguments, which
    /// [`from_args`](minijinja::value::from_args) turns into typed values. Registered once
    /// for the environment (no per-render closure) and clash-checked with every other
    /// template function and global. Outside a request (`Templates::for_app`) `f` sees a
    /// `GET /` request without headers or request values.
    ///
    /// ```
    /// # use flagon::{Setup, SetupError};
    /// use flagon::templates::{Value, from_args};
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// app.template_request_function("shout_path", |req, args| {
    ///     let (suffix,): (Option<String>,) = from_args(args)?;
    ///     Ok(format!("{}{}", req.path().to_uppercase(), suffix.unwrap_or_default()))
    /// });
    /// # Ok(()) }
    /// ```
    pub fn template_request_function<F, R>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(&RenderRequest, &[Value]) -> Result<R, minijinja::Error> + Send + Sync + 'static,
        R: Into<Value>,
    {
        self.claim_name("template global", name);
        let (name, f) = (name.to_owned(), Arc::new(f));
        self.replay(move |env| {
            let f = f.clone();
            env.add_function(name.clone(), move |state: &State, args: Rest<Value>| {
                let req = builtins::request_of(state)?;
                f(&req, &args).map(Into::into)
            });
        });
        self
    }

    /// Adds a template filter that sees the request being rendered for
    /// (`{{ value|name(args) }}`): i18n's `decimalformat` formats in the render's locale.
    /// `f` gets the [`RenderRequest`] and the call's arguments, the filtered value first.
    /// Clash-checked with every other filter; outside a request it sees what
    /// [`Setup::template_request_function`] describes.
    ///
    /// ```
    /// # use flagon::{Setup, SetupError};
    /// use flagon::templates::{Value, from_args};
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// app.template_request_filter("at_path", |req, args| {
    ///     let (value,): (String,) = from_args(args)?;
    ///     Ok(format!("{value} at {}", req.path()))
    /// });
    /// # Ok(()) }
    /// ```
    pub fn template_request_filter<F, R>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(&RenderRequest, &[Value]) -> Result<R, minijinja::Error> + Send + Sync + 'static,
        R: Into<Value>,
    {
        self.claim_name("template filter", name);
        let (name, f) = (name.to_owned(), Arc::new(f));
        self.replay(move |env| {
            let f = f.clone();
            env.add_filter(name.clone(), move |state: &State, args: Rest<Value>| {
                let req = builtins::request_of(state)?;
                f(&req, &args).map(Into::into)
            });
        });
        self
    }

    /// Adds a template global computed from the request when a template first looks it up
    /// in a render (`{{ name.attr }}`): core's `session` is one. Clash-checked like every
    /// global. An error from `f` (a request value still loading, see
    /// [`RenderRequest::load`]) shows the name as undefined in that round.
    pub fn template_request_global<F>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(&RenderRequest) -> Result<Value, minijinja::Error> + Send + Sync + 'static,
    {
        self.claim_name("template global", name);
        self.templates()
            .request_globals
            .push((name.to_owned(), Arc::new(f)));
        self
    }

    /// Adds a template global value (`{{ name }}`), the same in every render.
    pub fn template_global(&mut self, name: &str, value: impl Serialize) -> &mut Self {
        self.claim_name("template global", name);
        let (name, value) = (name.to_owned(), Value::from_serialize(value));
        self.replay(move |env| env.add_global(name.clone(), value.clone()));
        self
    }

    /// Adds a template test (`{% if value is name %}`), Flask's `template_test`.
    pub fn template_test<F, Rv, Args>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: minijinja::functions::Function<Rv, Args>,
        Rv: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        self.claim_name("template test", name);
        let (name, f) = (name.to_owned(), Value::from_function(f));
        self.replay(move |env| {
            let f = f.clone();
            env.add_test(name.clone(), move |s: &State, a: Rest<Value>| {
                f.call(s, &a).map(|v| v.is_true())
            });
        });
        self
    }

    /// Adds a context processor: run on every render, its values merged into the
    /// template's context. Later processors win over earlier ones; values passed to
    /// `render` win over every processor. `f` returns anything `Serialize`; a
    /// [`context!`](crate::templates::context) value is used as it is.
    ///
    /// ```
    /// # use flagon::{Setup, SetupError};
    /// use flagon::templates::context;
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// app.context_processor(|req| context! { current_path => req.path() });
    /// # Ok(()) }
    /// ```
    pub fn context_processor<F, R>(&mut self, f: F) -> &mut Self
    where
        F: Fn(&RenderRequest) -> R + Send + Sync + 'static,
        R: Serialize + 'static,
    {
        let owner = self.name();
        let n = self.templates().processors.len() + 1;
        self.claim_name("template context processor", &format!("#{n} ({owner})"));
        self.templates()
            .processors
            .push(Arc::new(move |req| to_value(f(req))));
        self
    }

    /// Adds a directory templates are loaded from. The app's own directories (its
    /// `[templates] dir` and any it adds) are searched before every extension's, so an app
    /// overrides an extension's template by writing a file of the same name.
    pub fn template_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        let app_owned = self.name() == APP || self.name() == CORE;
        self.templates().dirs.push((dir.into(), app_owned));
        self
    }

    /// Runs `f` on the template environment whenever it is built, for what the other
    /// methods do not cover (minijinja-contrib's `add_to_environment`, custom syntax).
    /// Names added this way are not clash-checked.
    pub fn configure_templates<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(&mut Environment<'static>) + Send + Sync + 'static,
    {
        self.replay(f);
        self
    }
}

/// `value` as a template value: a [`Value`] (what `context!` makes) as it is, without the
/// round trip through serde that `Value::from_serialize` makes of it; anything else
/// serialised.
fn to_value<T: Serialize + 'static>(value: T) -> Value {
    let mut value = Some(value);
    if let Some(v) = (&mut value as &mut dyn std::any::Any).downcast_mut::<Option<Value>>() {
        return v.take().unwrap_or_default();
    }
    value.map(Value::from_serialize).unwrap_or_default()
}

/// Reads `[templates]` and claims the built-in names.
pub(crate) fn init(s: &mut Setup<'_>) -> Result<(), SetupError> {
    let cfg: TemplatesConfig = s.config("templates")?;
    s.template_dir(cfg.dir.clone());
    s.templates().config = Some(cfg);
    s.template_request_function("url_for", builtins::url_for);
    s.claim_name("template global", "request");
    s.on_finish(|f| {
        finish(f);
        Ok(())
    });
    Ok(())
}

/// Builds the environment (or its reloader) once every extension has registered.
fn finish(f: &mut Finish<'_>) {
    let profile = f.profile();
    let Some(mut slot) = f.take_slot::<TemplateSlot>() else {
        return;
    };
    let Some(cfg) = slot.config.take() else {
        return;
    };
    // App-owned directories first, then extensions', each group in registration order;
    // blueprints' directories (never app-owned, like Flask's blueprint `template_folder`)
    // last, in the order the blueprints were registered.
    slot.dirs.sort_by_key(|(_, app_owned)| !app_owned);
    let blueprint_dirs: Vec<PathBuf> = f
        .blueprints()
        .flat_map(|b| b.template_dirs.iter().cloned())
        .collect();
    let dirs: Arc<[PathBuf]> = slot
        .dirs
        .iter()
        .map(|(d, _)| d.clone())
        .chain(blueprint_dirs)
        .collect();
    let regs: Arc<[RegisterFn]> = slot.registrations.into();
    let development = profile == Profile::Development;
    let source = if cfg.auto_reload.unwrap_or(development) {
        EnvSource::Reloading(AutoReloader::new(move |notifier| {
            for d in dirs.iter().filter(|d| d.is_dir()) {
                notifier.watch_path(d, true);
            }
            Ok(build_env(&dirs, &regs))
        }))
    } else {
        EnvSource::Fixed(build_env(&dirs, &regs))
    };
    f.provide(TemplatesRuntime {
        source,
        processors: slot.processors.into(),
        request_globals: slot.request_globals.into(),
        debug: development,
    });
}

/// Escapes as Jinja2 (and so Flask) does: `& < > " '`, leaving `/` alone so URLs from
/// `url_for` read the same in pages as in Flask.
fn jinja_formatter(
    out: &mut minijinja::Output<'_>,
    state: &State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if state.auto_escape() != minijinja::AutoEscape::Html {
        return minijinja::escape_formatter(out, state, value);
    }
    let written = match value.as_str() {
        Some(s) if !value.is_safe() => crate::http_error::write_escaped_html(out, s),
        // Safe strings go out as they are; numbers, booleans, none and undefined have
        // nothing to escape.
        Some(_) => return minijinja::escape_formatter(out, state, value),
        None if matches!(
            value.kind(),
            ValueKind::Number | ValueKind::Bool | ValueKind::None | ValueKind::Undefined
        ) =>
        {
            return minijinja::escape_formatter(out, state, value);
        }
        None => crate::http_error::write_escaped_html(out, &value.to_string()),
    };
    written.map_err(|_| {
        minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "failed to write output")
    })
}

/// A fresh environment: loader over `dirs` in order, autoescape for HTML and XML, the
/// built-ins, then every registration.
fn build_env(dirs: &[PathBuf], regs: &[RegisterFn]) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(minijinja::default_auto_escape_callback);
    env.set_formatter(jinja_formatter);
    let loaders: Vec<_> = dirs.iter().map(minijinja::path_loader).collect();
    env.set_loader(move |name| {
        for load in &loaders {
            if let Some(source) = load(name)? {
                return Ok(Some(source));
            }
        }
        Ok(None)
    });
    for r in regs {
        r(&mut env);
    }
    env
}
