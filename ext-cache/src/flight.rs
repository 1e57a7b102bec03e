//! Single flight: one loader per key (and result type) per instance, its outcome shared by
//! every caller.
//!
//! The load is a [`Shared`] future that every waiter polls, so it has no owner: a dropped
//! first caller leaves the others driving it, and they never hang on it. The map entry is
//! removed by the last waiter to leave, or by any waiter once the load is done, so the map
//! holds only loads somebody is waiting for.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::{BoxFuture, FutureExt, Shared};

type Load<O> = Shared<BoxFuture<'static, O>>;
type Key = (String, TypeId);
type Map = HashMap<Key, (u64, Box<dyn Slot>)>;

trait Slot: Send + Sync {
    /// Handles to the load, `None` once it is done.
    fn refs(&self) -> Option<usize>;
    fn as_any(&self) -> &dyn Any;
}

impl<O: Clone + Send + Sync + 'static> Slot for Load<O> {
    fn refs(&self) -> Option<usize> {
        self.strong_count()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[derive(Default)]
pub(crate) struct Flights {
    next: AtomicU64,
    map: Mutex<Map>,
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the load in flight for `key`, or starts the one `start` makes.
    pub(crate) fn join_or_start<O: Clone + Send + Sync + 'static>(
        &self,
        key: &str,
        start: impl FnOnce() -> BoxFuture<'static, O>,
    ) -> Waiter<'_, O> {
        let key = (key.to_owned(), TypeId::of::<O>());
        let mut map = self.lock();
        if let Some((id, slot)) = map.get(&key)
            && let Some(load) = slot.as_any().downcast_ref::<Load<O>>()
        {
            let (id, load) = (*id, load.clone());
            return Waiter {
                flights: self,
                key,
                id,
                load,
            };
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let load = start().shared();
        map.insert(key.clone(), (id, Box::new(load.clone())));
        Waiter {
            flights: self,
            key,
            id,
            load,
        }
    }

    /// Loads in flight (for tests and stats).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// One caller's share of a load.
pub(crate) struct Waiter<'a, O: Clone + Send + Sync + 'static> {
    flights: &'a Flights,
    key: Key,
    id: u64,
    load: Load<O>,
}

impl<O: Clone + Send + Sync + 'static> Waiter<'_, O> {
    pub(crate) async fn wait(&mut self) -> O {
        (&mut self.load).await
    }
}

impl<O: Clone + Send + Sync + 'static> Drop for Waiter<'_, O> {
    fn drop(&mut self) {
        let mut map = self.flights.lock();
        if let Some((id, slot)) = map.get(&self.key) {
            // Only the map's handle and this waiter's are left, or the load is done.
            if *id == self.id && slot.refs().is_none_or(|n| n <= 2) {
                map.remove(&self.key);
            }
        }
    }
}
