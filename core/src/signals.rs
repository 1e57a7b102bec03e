//! Typed signals (Flask's blinker signals): any `Send + Sync + 'static` type is an event.
//!
//! Extensions subscribe at init with [`Setup::subscribe`](crate::Setup::subscribe) (sync,
//! called inline) or [`Setup::subscribe_async`](crate::Setup::subscribe_async) (async).
//! [`Signals::emit`] calls sync subscribers inline and spawns async ones;
//! [`Signals::emit_and_wait`] awaits them all. A signal nobody subscribed to costs one map
//! lookup. A panicking subscriber is logged and does not affect the others.

use std::any::{Any, TypeId};
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::{Method, StatusCode};

use crate::error::Origin;
use crate::future::BoxFuture;
use crate::state::TypeMap;

type SyncSub = Arc<dyn Fn(&(dyn Any + Send + Sync)) + Send + Sync>;
type AsyncSub = Arc<dyn Fn(Arc<dyn Any + Send + Sync>) -> BoxFuture<()> + Send + Sync>;

#[derive(Default)]
pub(crate) struct Subscribers {
    pub(crate) type_name: &'static str,
    pub(crate) sync: Vec<(Origin, SyncSub)>,
    pub(crate) asynchronous: Vec<(Origin, AsyncSub)>,
}

/// Subscriptions gathered during setup.
#[derive(Default)]
pub(crate) struct SignalsBuilder {
    pub(crate) subs: TypeMap<Subscribers>,
}

impl SignalsBuilder {
    pub(crate) fn subscribe<E, F>(&mut self, origin: Origin, f: F)
    where
        E: Send + Sync + 'static,
        F: Fn(&E) + Send + Sync + 'static,
    {
        let sub: SyncSub = Arc::new(move |e| {
            if let Some(e) = e.downcast_ref::<E>() {
                f(e)
            }
        });
        self.entry::<E>().sync.push((origin, sub));
    }

    pub(crate) fn subscribe_async<E, F, Fut>(&mut self, origin: Origin, f: F)
    where
        E: Send + Sync + 'static,
        F: Fn(Arc<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let sub: AsyncSub = Arc::new(move |e| match e.downcast::<E>() {
            Ok(e) => Box::pin(f(e)),
            Err(_) => Box::pin(async {}),
        });
        self.entry::<E>().asynchronous.push((origin, sub));
    }

    pub(crate) fn has<E: 'static>(&self) -> bool {
        self.subs.contains_key(&TypeId::of::<E>())
    }

    fn entry<E: 'static>(&mut self) -> &mut Subscribers {
        let s = self.subs.entry(TypeId::of::<E>()).or_default();
        s.type_name = std::any::type_name::<E>();
        s
    }

    pub(crate) fn freeze(self) -> Signals {
        Signals(Arc::new(self.subs))
    }
}

/// The app's frozen signal table.
#[derive(Clone, Default)]
pub struct Signals(Arc<TypeMap<Subscribers>>);

impl Signals {
    /// Whether anyone subscribed to `E` (emitters can skip building the event).
    pub fn has<E: 'static>(&self) -> bool {
        self.0.contains_key(&TypeId::of::<E>())
    }

    /// Sends `event`: sync subscribers run now, async ones are spawned on the runtime.
    pub fn emit<E: Send + Sync + 'static>(&self, event: E) {
        let Some(subs) = self.0.get(&TypeId::of::<E>()) else {
            return;
        };
        let event: Arc<dyn Any + Send + Sync> = Arc::new(event);
        for (origin, sub) in &subs.sync {
            call_sync(origin, sub, &*event, subs.type_name);
        }
        if subs.asynchronous.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                signal = subs.type_name,
                "no runtime: async subscribers skipped"
            );
            return;
        };
        for (origin, sub) in &subs.asynchronous {
            // The subscriber is called inside the task, so even a panic before its first
            // await stays there.
            let (sub, event) = (sub.clone(), event.clone());
            let fut = AssertUnwindSafe(async move { sub(event).await }).catch_unwind();
            let (owner, name) = (origin.owner, subs.type_name);
            rt.spawn(async move {
                if fut.await.is_err() {
                    tracing::error!(
                        signal = name,
                        subscriber = owner,
                        "signal subscriber panicked"
                    );
                }
            });
        }
    }

    /// Sends `event` and waits for every subscriber, sync and async, in subscription order.
    pub async fn emit_and_wait<E: Send + Sync + 'static>(&self, event: E) {
        let Some(subs) = self.0.get(&TypeId::of::<E>()) else {
            return;
        };
        let event: Arc<dyn Any + Send + Sync> = Arc::new(event);
        for (origin, sub) in &subs.sync {
            call_sync(origin, sub, &*event, subs.type_name);
        }
        for (origin, sub) in &subs.asynchronous {
            let call = AssertUnwindSafe(async { sub(event.clone()).await });
            if call.catch_unwind().await.is_err() {
                tracing::error!(
                    signal = subs.type_name,
                    subscriber = origin.owner,
                    "signal subscriber panicked"
                );
            }
        }
    }
}

fn call_sync(origin: &Origin, sub: &SyncSub, event: &(dyn Any + Send + Sync), name: &str) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| sub(event))).is_err() {
        tracing::error!(
            signal = name,
            subscriber = origin.owner,
            "signal subscriber panicked"
        );
    }
}

/// Emitted once the server is listening.
#[derive(Clone, Debug)]
pub struct AppStarted {
    /// The bound address, when serving.
    pub addr: Option<SocketAddr>,
}

/// Emitted when the app begins to stop.
#[derive(Clone, Debug)]
pub struct AppStopping;

/// Emitted when a request arrives.
#[derive(Clone, Debug)]
pub struct RequestStarted {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The request id.
    pub request_id: String,
}

/// Who answered a request, as [`RequestFinished`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AnsweredBy {
    /// The route's handler (also when it failed: see the status).
    Handler,
    /// A route decorator, without calling the handler.
    Decorator,
    /// A route guard ([`Setup::guard`](crate::Setup::guard)), before the view.
    Guard,
    /// A `before_request` hook, before the view.
    Hook,
    /// The router itself: no route matched (404), or the path takes other methods (405).
    Router,
    /// A mounted router or service ([`Setup::mount`](crate::Setup::mount)).
    Mount,
}

impl AnsweredBy {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            AnsweredBy::Handler => 1,
            AnsweredBy::Decorator => 2,
            AnsweredBy::Guard => 3,
            AnsweredBy::Hook => 4,
            AnsweredBy::Router => 5,
            AnsweredBy::Mount => 6,
        }
    }

    pub(crate) fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            1 => AnsweredBy::Handler,
            2 => AnsweredBy::Decorator,
            3 => AnsweredBy::Guard,
            4 => AnsweredBy::Hook,
            5 => AnsweredBy::Router,
            6 => AnsweredBy::Mount,
            _ => return None,
        })
    }
}

/// Emitted when a response is ready.
///
/// It says where the request went: the matched endpoint and blueprint (shared with the
/// route table, not copied) and who answered, so an extension can count what it produced
/// (a limiter its 429s, a cache its hits).
#[derive(Clone, Debug)]
pub struct RequestFinished {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The response status.
    pub status: StatusCode,
    /// Time from arrival to response.
    pub latency: Duration,
    /// The request id.
    pub request_id: String,
    /// The matched route's endpoint (`None` when no route matched).
    pub endpoint: Option<Arc<str>>,
    /// The dotted name of the blueprint that owns the matched route.
    pub blueprint: Option<Arc<str>>,
    /// Who answered: the handler, a decorator, a guard, a before hook, the router or a
    /// mount.
    pub answered_by: AnsweredBy,
}
