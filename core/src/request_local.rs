//! Request-scoped lazy values: Flask's `g` plus `after_this_request`, typed and declared.
//!
//! An extension declares a value at setup with [`Setup::request_local`] (synchronous
//! init) or [`Setup::request_local_async`] (async init, such as a store load) and keeps the
//! returned [`RequestLocal`] key. In a request, `key.get(&parts)` or `key.load(&parts).await`
//! makes the value on first use and hands out the same `Arc<T>` afterwards: the init runs at
//! most once per request (for an async init, its future is awaited once even when several
//! tasks ask at the same instant). [`Setup::after_response`] adds a step run after the
//! response is ready, only for requests that made the value; it may change the response
//! (set a cookie, add a header) and is bounded by `server.request_timeout`; a panic in it
//! becomes a 500 for that request.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use flagon::{RequestLocal, Setup, SetupError};
//!
//! /// How many times this request asked for the greeting.
//! struct Asked(AtomicU64);
//!
//! fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
//!     let asked: RequestLocal<Asked> = app.request_local(|_head| Asked(AtomicU64::new(0)));
//!     app.after_response(asked, |asked: Arc<Asked>, mut res, _outcome| async move {
//!         let n = asked.0.load(Ordering::Relaxed);
//!         res.headers_mut().insert("x-asked", n.into());
//!         res
//!     });
//!     app.route(flagon::Route::get("/hi", move |parts: http::request::Parts| async move {
//!         if let Some(a) = asked.get(&parts) {
//!             a.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!         "hi"
//!     }).name("hi"));
//!     Ok(())
//! }
//! ```
//!
//! Cost: a request that uses no value pays nothing (no allocation, no lookup). The first
//! value a request makes allocates the request's slot table (one small allocation, sized by
//! the number of declared values); each value is one `Arc`.
//!
//! Core's sessions are built this way: the loaded session is an async request-local whose
//! after-response step saves it and sets the cookie; CSRF's per-browser secret and flash's
//! "messages shown in this request" are request-locals too.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::{HeaderMap, Method, StatusCode, Uri};

use crate::AppHandle;
use crate::error::{Origin, SetupError};
use crate::future::{BoxFuture, Eventually};
use crate::http_error::{ErrorKind, HttpError};
use crate::request::{RequestId, RequestMeta};
use crate::setup::Setup;

type AnyArc = Arc<dyn Any + Send + Sync>;
type SyncInit = Arc<dyn Fn(&RequestHead<'_>) -> AnyArc + Send + Sync>;
type AsyncInit = Arc<dyn Fn(&RequestHead<'_>) -> Eventually<AnyArc> + Send + Sync>;
type FinishFn =
    Arc<dyn Fn(AnyArc, Response, ResponseOutcome) -> Eventually<Response> + Send + Sync>;

/// The key of a request-scoped value of type `T`, returned by [`Setup::request_local`]
/// or [`Setup::request_local_async`]. `Copy`: keep it in your extension's closures or state.
///
/// The value is made on first use in a request (at most once), shared as an `Arc<T>` for
/// the rest of that request, and dropped with it; [`Setup::after_response`] adds a step run
/// after the response for requests that made it. A request that uses no value pays
/// nothing; the first value a request makes allocates its slot table (one small
/// allocation), each value one `Arc`. See the [guide](crate::guide#request-scoped-values)
/// for an example. Core's sessions, flash and CSRF are built this way.
pub struct RequestLocal<T> {
    index: usize,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for RequestLocal<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for RequestLocal<T> {}

impl<T> RequestLocal<T> {
    /// The value's place in the app's table of declared values.
    pub(crate) fn index(&self) -> usize {
        self.index
    }
}

impl<T> std::fmt::Debug for RequestLocal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLocal")
            .field("index", &self.index)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

/// What an after-response step is told about the request.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ResponseOutcome {
    /// The handler and hooks produced this response. `false` after a panic or a timeout
    /// (the response is then an error page): persist nothing.
    pub completed: bool,
}

/// What a value's init sees of the request: the app, the request id, and (unless the value
/// is first asked for through a [`Session`](crate::session::Session), which knows its
/// request but not its head) the method, URI and headers. It is itself a
/// [`RequestScope`], so an init can reach other request-scoped values.
pub struct RequestHead<'a> {
    meta: &'a RequestMeta,
    head: Option<Head<'a>>,
}

#[derive(Clone, Copy)]
struct Head<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

impl RequestHead<'_> {
    /// The app serving the request.
    pub fn app(&self) -> &AppHandle {
        &self.meta.app
    }

    /// The request id.
    pub fn id(&self) -> &RequestId {
        &self.meta.id
    }

    /// The request method (`None` when first asked for through a session).
    pub fn method(&self) -> Option<&Method> {
        self.head.map(|h| h.method)
    }

    /// The request URI (`None` when first asked for through a session).
    pub fn uri(&self) -> Option<&Uri> {
        self.head.map(|h| h.uri)
    }

    /// The request headers (`None` when first asked for through a session).
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.head.map(|h| h.headers)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Something that knows its request: `http::request::Parts` (in extractors), `Request` (in
/// before hooks and layers), [`RenderRequest`](crate::templates::RenderRequest) (in
/// template functions and context processors), [`Session`](crate::session::Session) and
/// [`RequestHead`] (in another value's init). Sealed: Flagon implements it.
pub trait RequestScope: sealed::Sealed {
    #[doc(hidden)]
    fn request_head(&self) -> Option<RequestHead<'_>>;
}

impl sealed::Sealed for http::request::Parts {}
impl RequestScope for http::request::Parts {
    fn request_head(&self) -> Option<RequestHead<'_>> {
        let meta = self.extensions.get::<RequestMeta>()?;
        Some(RequestHead::new(
            meta,
            &self.method,
            &self.uri,
            &self.headers,
        ))
    }
}

impl<B> sealed::Sealed for http::Request<B> {}
impl<B> RequestScope for http::Request<B> {
    fn request_head(&self) -> Option<RequestHead<'_>> {
        let meta = self.extensions().get::<RequestMeta>()?;
        Some(RequestHead::new(
            meta,
            self.method(),
            self.uri(),
            self.headers(),
        ))
    }
}

impl sealed::Sealed for RequestHead<'_> {}
impl RequestScope for RequestHead<'_> {
    fn request_head(&self) -> Option<RequestHead<'_>> {
        Some(RequestHead {
            meta: self.meta,
            head: self.head,
        })
    }
}

impl<'a> RequestHead<'a> {
    pub(crate) fn new(
        meta: &'a RequestMeta,
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
    ) -> Self {
        RequestHead {
            meta,
            head: Some(Head {
                method,
                uri,
                headers,
            }),
        }
    }

    pub(crate) fn meta(&self) -> &'a RequestMeta {
        self.meta
    }

    /// A head that knows only its request (a session's).
    pub(crate) fn meta_only(meta: &'a RequestMeta) -> Self {
        RequestHead { meta, head: None }
    }
}

/// Lets other core modules implement [`RequestScope`] (the trait is sealed).
macro_rules! request_scope {
    ($ty:ty, |$this:ident| $body:expr) => {
        impl $crate::request_local::Sealed for $ty {}
        impl $crate::request_local::RequestScope for $ty {
            fn request_head(&self) -> Option<$crate::request_local::RequestHead<'_>> {
                let $this = self;
                $body
            }
        }
    };
}
pub(crate) use request_scope;
pub(crate) use sealed::Sealed;

enum Init {
    Sync(SyncInit),
    Async(AsyncInit),
}

/// One declared value.
#[derive(Clone)]
struct LocalDef {
    init: Arc<Init>,
    finish: Option<FinishFn>,
    origin: Origin,
    type_name: &'static str,
    type_id: std::any::TypeId,
}

/// The values declared during setup, in declaration order, and the request facts derived
/// from them (the app keeps both once built).
#[derive(Clone, Default)]
pub(crate) struct LocalsSlot {
    defs: Arc<Vec<LocalDef>>,
    facts: Arc<Vec<FactDef>>,
}

/// Picks a fact out of a request-local value (type-erased `Fn(&V) -> Option<&T>`).
pub(crate) type ProjectFn = Arc<
    dyn for<'v> Fn(&'v (dyn Any + Send + Sync)) -> Option<&'v (dyn Any + Send + Sync)>
        + Send
        + Sync,
>;

/// A request fact provided by a request-local value ([`Setup::provide_fact`]).
#[derive(Clone)]
struct FactDef {
    /// The fact's type.
    fact: std::any::TypeId,
    /// The request-local value it is read from.
    local: usize,
    project: ProjectFn,
}

impl LocalsSlot {
    /// Whether any fact has a provider (a request reading one with no provider looks no
    /// further than its extensions).
    pub(crate) fn has_facts(&self) -> bool {
        !self.facts.is_empty()
    }

    /// Records that facts of type `fact` are read from local `local` of type `value`
    /// through `project`; `Err` says why not.
    pub(crate) fn add_fact(
        &mut self,
        fact: std::any::TypeId,
        local: usize,
        value: std::any::TypeId,
        project: ProjectFn,
    ) -> Result<(), &'static str> {
        match self.defs.get(local) {
            Some(d) if d.type_id == value => {}
            _ => return Err("the key was not declared by this app"),
        }
        Arc::make_mut(&mut self.facts).push(FactDef {
            fact,
            local,
            project,
        });
        Ok(())
    }

    /// The fact of type `fact` for the request of `head`, from its provider: the provider's
    /// value is made now if a synchronous init has not made it yet in this request (an
    /// async one only if already loaded). `None` without a provider, or when the provider
    /// has no fact for this request.
    pub(crate) fn provided<'a>(
        &'a self,
        fact: std::any::TypeId,
        head: &RequestHead<'a>,
    ) -> Option<&'a (dyn Any + Send + Sync)> {
        let def = self.facts.iter().find(|f| f.fact == fact)?;
        let table = head.meta.locals.table(&head.meta.app)?;
        let (cell, init) = (
            table.cells.get(def.local)?,
            &table.defs.get(def.local)?.init,
        );
        let value = match (cell, &**init) {
            (Cell::Sync(c), Init::Sync(init)) => c.get_or_init(|| init(head)),
            (c, _) => c.get()?,
        };
        (def.project)(&**value)
    }

    /// Like [`LocalsSlot::provided`], only if this request already made the provider's
    /// value (never runs its init).
    pub(crate) fn provided_if_made<'a>(
        &'a self,
        fact: std::any::TypeId,
        meta: &'a RequestMeta,
    ) -> Option<&'a (dyn Any + Send + Sync)> {
        let def = self.facts.iter().find(|f| f.fact == fact)?;
        let value = meta.locals.0.get()?.cells.get(def.local)?.get()?;
        (def.project)(&**value)
    }
}

enum Cell {
    Sync(OnceLock<AnyArc>),
    Async(tokio::sync::OnceCell<AnyArc>),
}

impl Cell {
    fn get(&self) -> Option<&AnyArc> {
        match self {
            Cell::Sync(c) => c.get(),
            Cell::Async(c) => c.get(),
        }
    }
}

/// One request's values: made when the request first asks for any of them.
pub(crate) struct Table {
    defs: Arc<Vec<LocalDef>>,
    cells: Box<[Cell]>,
}

/// A request's slot table, in its core metadata.
#[derive(Default)]
pub(crate) struct Locals(OnceLock<Table>);

impl Locals {
    fn table(&self, app: &AppHandle) -> Option<&Table> {
        if let Some(t) = self.0.get() {
            return Some(t);
        }
        let defs = &app.0.locals.defs;
        if defs.is_empty() {
            return None;
        }
        let defs = defs.clone();
        Some(self.0.get_or_init(|| {
            let cells = defs
                .iter()
                .map(|d| match *d.init {
                    Init::Sync(_) => Cell::Sync(OnceLock::new()),
                    Init::Async(_) => Cell::Async(tokio::sync::OnceCell::new()),
                })
                .collect();
            Table { defs, cells }
        }))
    }

    /// Whether this request made a value that has an after-response step.
    pub(crate) fn has_after_steps(&self) -> bool {
        self.0.get().is_some_and(|t| {
            t.cells
                .iter()
                .zip(t.defs.iter())
                .any(|(c, d)| d.finish.is_some() && c.get().is_some())
        })
    }
}

impl<T: Send + Sync + 'static> RequestLocal<T> {
    /// The request's value, made now by a synchronous init if this is its first use. For a
    /// value with an async init, only one already loaded ([`RequestLocal::load`]). `None`
    /// outside a Flagon request or for a key of another app.
    pub fn get(&self, scope: &impl RequestScope) -> Option<Arc<T>> {
        let head = scope.request_head()?;
        let table = head.meta.locals.table(&head.meta.app)?;
        let (cell, def) = (table.cells.get(self.index)?, table.defs.get(self.index)?);
        if def.type_id != std::any::TypeId::of::<T>() {
            return None;
        }
        let value = match (cell, &*def.init) {
            (Cell::Sync(c), Init::Sync(init)) => c.get_or_init(|| init(&head)).clone(),
            (c, _) => c.get()?.clone(),
        };
        value.downcast().ok()
    }

    /// The request's value if this request already made it (never runs the init).
    pub fn get_if_made(&self, scope: &impl RequestScope) -> Option<Arc<T>> {
        let head = scope.request_head()?;
        let table = head.meta.locals.0.get()?;
        table.cells.get(self.index)?.get()?.clone().downcast().ok()
    }

    /// The request's value, made now if this is its first use, by either kind of init. The
    /// returned future borrows nothing, so a before hook can move its request afterwards.
    pub fn load<S: RequestScope>(
        &self,
        scope: &S,
    ) -> impl Future<Output = Option<Arc<T>>> + Send + use<T, S> {
        self.load_in(scope.request_head())
    }

    /// [`RequestLocal::load`] from a request head. Its future's type names no lifetime of
    /// the head, so the init of another value, which gets a borrowed [`RequestHead`] and
    /// must return a `'static` future, can load this value (login's user loads the
    /// session this way).
    pub fn load_in(
        &self,
        head: Option<RequestHead<'_>>,
    ) -> impl Future<Output = Option<Arc<T>>> + Send + use<T> {
        let index = self.index;
        let prepared = self.prepare(head);
        async move {
            match prepared {
                Prepared::Ready(v) => v?.downcast().ok(),
                Prepared::Wait(meta, fut) => wait_for(meta, index, fut).await?.downcast().ok(),
            }
        }
    }

    /// [`RequestLocal::load`] without a future when the value is made already or its init
    /// is ready at once ([`Setup::request_local_maybe_async`] answering `Now`, or a sync
    /// init): `Now` then, else `Later` with the boxed wait.
    pub fn load_eventually(&self, scope: &impl RequestScope) -> Eventually<Option<Arc<T>>> {
        match self.prepare(scope.request_head()) {
            Prepared::Ready(v) => Eventually::Now(v.and_then(|v| v.downcast().ok())),
            Prepared::Wait(meta, fut) => {
                let index = self.index;
                Eventually::later(async move { wait_for(meta, index, fut).await?.downcast().ok() })
            }
        }
    }

    /// Everything of a load that needs no waiting: the value if it is made (or made now),
    /// else the init's future to await.
    fn prepare(&self, head: Option<RequestHead<'_>>) -> Prepared {
        let index = self.index;
        let Some(head) = head else {
            return Prepared::Ready(None);
        };
        let Some(table) = head.meta.locals.table(&head.meta.app) else {
            return Prepared::Ready(None);
        };
        let (Some(cell), Some(def)) = (table.cells.get(index), table.defs.get(index)) else {
            return Prepared::Ready(None);
        };
        if def.type_id != std::any::TypeId::of::<T>() {
            return Prepared::Ready(None);
        }
        match (cell, &*def.init) {
            (Cell::Sync(c), Init::Sync(init)) => {
                Prepared::Ready(Some(c.get_or_init(|| init(&head)).clone()))
            }
            (Cell::Async(c), Init::Async(init)) => {
                if let Some(v) = c.get() {
                    return Prepared::Ready(Some(v.clone()));
                }
                match init(&head) {
                    // Ready at once (a session read from memory): set here, nothing awaited.
                    Eventually::Now(v) => match c.set(v) {
                        Ok(()) => Prepared::Ready(c.get().cloned()),
                        Err(tokio::sync::SetError::AlreadyInitializedError(_)) => {
                            Prepared::Ready(c.get().cloned())
                        }
                        // Another task of this request is initialising it: wait for that.
                        Err(tokio::sync::SetError::InitializingError(v)) => {
                            Prepared::Wait(head.meta.clone(), Box::pin(std::future::ready(v)))
                        }
                    },
                    Eventually::Later(fut) => Prepared::Wait(head.meta.clone(), fut),
                }
            }
            (c, _) => Prepared::Ready(c.get().cloned()),
        }
    }
}

/// A load's state once nothing more can be done without waiting.
enum Prepared {
    Ready(Option<AnyArc>),
    /// The init's future, to be awaited through the value's cell (once per request).
    Wait(RequestMeta, BoxFuture<AnyArc>),
}

/// Awaits `fut` as the init of value `index` (or another task's init of it).
async fn wait_for(meta: RequestMeta, index: usize, fut: BoxFuture<AnyArc>) -> Option<AnyArc> {
    let table = meta.locals.0.get()?;
    match table.cells.get(index)? {
        Cell::Async(c) => Some(c.get_or_init(|| fut).await.clone()),
        Cell::Sync(_) => None,
    }
}

/// Runs the after-response steps of the values this request made, later declarations first
/// (a value declared later, such as login's user, may write to the session declared
/// earlier, which then saves). Each step is panic-contained, and one that has to wait is
/// bounded. Steps that are ready at once run here, without a future: the result is `Now`
/// unless a step had I/O to do.
pub(crate) fn run_after_steps(
    meta: &RequestMeta,
    res: Response,
    completed: bool,
) -> Eventually<Response> {
    match meta.locals.0.get() {
        Some(table) => steps_from(meta, table.cells.len(), res, completed),
        None => Eventually::Now(res),
    }
}

/// Runs the steps of the values below `end`, last first.
fn steps_from(
    meta: &RequestMeta,
    mut end: usize,
    mut res: Response,
    mut completed: bool,
) -> Eventually<Response> {
    let Some(table) = meta.locals.0.get() else {
        return Eventually::Now(res);
    };
    while end > 0 {
        end -= 1;
        let (Some(cell), Some(def)) = (table.cells.get(end), table.defs.get(end)) else {
            continue;
        };
        let (Some(value), Some(finish)) = (cell.get(), &def.finish) else {
            continue;
        };
        let outcome = ResponseOutcome { completed };
        match std::panic::catch_unwind(AssertUnwindSafe(|| finish(value.clone(), res, outcome))) {
            Ok(Eventually::Now(r)) => res = r,
            Ok(Eventually::Later(fut)) => {
                let meta = meta.clone();
                let (type_name, origin) = (def.type_name, def.origin.clone());
                return Eventually::later(async move {
                    let bound = meta.app.server_config().request_timeout;
                    let mut deadline = crate::timeout::Deadline::after(bound);
                    let bounded = AssertUnwindSafe(fut).catch_unwind();
                    let (res, completed) = match crate::timeout::ready_or_by(&mut deadline, bounded)
                        .await
                    {
                        Some(Ok(r)) => (r, completed),
                        Some(Err(panic)) => (
                            HttpError::panic(&*panic, "an after-response step").into_response(),
                            false,
                        ),
                        None => {
                            tracing::error!(target: "flagon::request", value = type_name, origin = %origin, ?bound, "an after-response step timed out");
                            let timed_out = HttpError::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "The request took too long.",
                            )
                            .with_kind(ErrorKind::Timeout)
                            .into_response();
                            (timed_out, false)
                        }
                    };
                    steps_from(&meta, end, res, completed).await
                });
            }
            Err(panic) => {
                res = HttpError::panic(&*panic, "an after-response step").into_response();
                completed = false;
            }
        }
    }
    Eventually::Now(res)
}

impl Setup<'_> {
    /// Declares a request-scoped value made on first use in a request by `init`, at most
    /// once per request (see [`RequestLocal`]). A request that never asks for it pays
    /// nothing.
    pub fn request_local<T, F>(&mut self, init: F) -> RequestLocal<T>
    where
        T: Send + Sync + 'static,
        F: Fn(&RequestHead<'_>) -> T + Send + Sync + 'static,
    {
        let init: SyncInit = Arc::new(move |head| Arc::new(init(head)) as AnyArc);
        self.declare_local(Init::Sync(init))
    }

    /// Declares a request-scoped value made on first use by an async `init` (a store load,
    /// a user lookup). `init` runs synchronously with the request's head and returns the
    /// future that makes the value; the future is awaited at most once per request. Get the
    /// value with [`RequestLocal::load`].
    pub fn request_local_async<T, F, Fut>(&mut self, init: F) -> RequestLocal<T>
    where
        T: Send + Sync + 'static,
        F: Fn(&RequestHead<'_>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        // `map`, not an `async` block around the init's future: the box then holds that
        // future once (an `async` block keeps a second slot for it), which keeps a session
        // load, boxed on every request with a cookie, small.
        let init: AsyncInit = Arc::new(move |head| {
            Eventually::Later(Box::pin(init(head).map(|v| Arc::new(v) as AnyArc)))
        });
        self.declare_local(Init::Async(init))
    }

    /// Declares a request-scoped value whose init is often ready at once and sometimes has
    /// to wait: it hands back [`Eventually::Now`] (no allocation, no poll) or
    /// [`Eventually::Later`]. Otherwise as [`Setup::request_local_async`]. Core's sessions
    /// use it: a request without a cookie, or one whose store answers from memory, loads its
    /// session without a future.
    ///
    /// ```
    /// use flagon::{Eventually, RequestLocal, Setup, SetupError};
    ///
    /// struct Theme(String);
    ///
    /// fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    ///     let _theme: RequestLocal<Theme> = app.request_local_maybe_async(|head| {
    ///         let asked = head
    ///             .headers()
    ///             .and_then(|h| h.get("x-theme"))
    ///             .and_then(|v| v.to_str().ok())
    ///             .map(str::to_owned);
    ///         match asked {
    ///             Some(name) => Eventually::Now(Theme(name)),
    ///             // A real extension would look the user's choice up in its store here.
    ///             None => Eventually::later(async { Theme("light".into()) }),
    ///         }
    ///     });
    ///     Ok(())
    /// }
    /// ```
    pub fn request_local_maybe_async<T, F>(&mut self, init: F) -> RequestLocal<T>
    where
        T: Send + Sync + 'static,
        F: Fn(&RequestHead<'_>) -> Eventually<T> + Send + Sync + 'static,
    {
        let init: AsyncInit = Arc::new(move |head| match init(head) {
            Eventually::Now(v) => Eventually::Now(Arc::new(v) as AnyArc),
            Eventually::Later(fut) => {
                Eventually::Later(Box::pin(fut.map(|v| Arc::new(v) as AnyArc)))
            }
        });
        self.declare_local(Init::Async(init))
    }

    fn declare_local<T: 'static>(&mut self, init: Init) -> RequestLocal<T> {
        let origin = self.origin();
        let slot = self.slot::<LocalsSlot>();
        let defs = Arc::make_mut(&mut slot.defs);
        defs.push(LocalDef {
            init: Arc::new(init),
            finish: None,
            origin,
            type_name: std::any::type_name::<T>(),
            type_id: std::any::TypeId::of::<T>(),
        });
        RequestLocal {
            index: defs.len() - 1,
            _value: PhantomData,
        }
    }

    /// Adds a step run after the response is ready, for requests that made `key`'s value:
    /// it gets the value and the response and returns the response to send (with a cookie
    /// set, a header added, or replaced). Steps run later declarations first, bounded by
    /// `server.request_timeout` (then a 503); a panic becomes a 500. Only the extension that
    /// declared the value may add its step, and only one.
    pub fn after_response<T, F, Fut>(&mut self, key: RequestLocal<T>, step: F) -> &mut Self
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>, Response, ResponseOutcome) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        self.after_response_maybe_async(key, move |v, res, outcome| {
            Eventually::Later(Box::pin(step(v, res, outcome)))
        })
    }

    /// Adds an after-response step that usually has nothing to wait for: it hands back
    /// [`Eventually::Now`] with the response (a header added, nothing saved), or
    /// [`Eventually::Later`] when it has I/O to do. Otherwise as
    /// [`Setup::after_response`]. A request whose steps are all `Now` finishes without a
    /// future: core's sessions use it, so a session that was only read costs no allocation
    /// to finish.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use flagon::{Eventually, RequestLocal, Setup, SetupError};
    ///
    /// struct Seen;
    ///
    /// fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    ///     let seen: RequestLocal<Seen> = app.request_local(|_| Seen);
    ///     app.after_response_maybe_async(seen, |_seen: Arc<Seen>, mut res, _outcome| {
    ///         res.headers_mut().insert("x-seen", "1".parse().unwrap());
    ///         Eventually::Now(res)
    ///     });
    ///     Ok(())
    /// }
    /// ```
    pub fn after_response_maybe_async<T, F>(&mut self, key: RequestLocal<T>, step: F) -> &mut Self
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>, Response, ResponseOutcome) -> Eventually<Response> + Send + Sync + 'static,
    {
        let origin = self.origin();
        let finish: FinishFn =
            Arc::new(
                move |value: AnyArc, res, outcome| match value.downcast::<T>() {
                    Ok(v) => step(v, res, outcome),
                    Err(_) => Eventually::Now(res),
                },
            );
        let slot = self.slot::<LocalsSlot>();
        let defs = Arc::make_mut(&mut slot.defs);
        let problem = match defs.get_mut(key.index) {
            None => Some("the key was not declared by this app".to_owned()),
            Some(d) if d.origin.owner != origin.owner => Some(format!(
                "the value was declared by {}; only it may add the step",
                d.origin
            )),
            Some(d) if d.finish.is_some() => Some("it already has an after-response step".into()),
            Some(d) => {
                d.finish = Some(finish);
                None
            }
        };
        if let Some(reason) = problem {
            self.reg.errors.push(SetupError::Invalid {
                what: format!("after-response step for `{}`", std::any::type_name::<T>()),
                origin,
                reason,
            });
        }
        self
    }
}
