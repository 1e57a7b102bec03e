//! Typed registries: one party offers a registry, others add named entries to it.
//!
//! A registry is a type implementing [`RegistryKind`]: it says what its entries are and how
//! they are shown (`session store`). Any extension adds to it with
//! [`Setup::add_to`](crate::Setup::add_to); every entry records who added it, so `extensions`
//! lists it under its owner and, in a registry of unique names, a second entry of the same
//! name fails the build naming both parties. The registry's owner reads the entries in the
//! finish phase ([`Finish::registry`](crate::Finish::registry)), when everyone has added
//! theirs; handlers and hooks read them through [`AppHandle::registry`](crate::AppHandle::registry).
//!
//! Core's session stores are one: `db` and `cache` add SQL and Redis stores to
//! [`SessionStores`](crate::session::SessionStores), and `[session] store` picks one by name.

use std::any::{Any, TypeId};
use std::collections::HashMap;

use crate::error::Origin;

/// A kind of registry: the type of its entries, and how they are named.
///
/// One extension offers a registry (this type); any extension adds named entries with
/// [`Setup::add_to`](crate::Setup::add_to). Every entry records who added it, so `extensions`
/// lists it under its owner and, in a registry of unique names, a second entry of the same
/// name fails the build naming both parties. The registry's owner reads the entries in its
/// finish step ([`Finish::registry`](crate::Finish::registry)), when everyone has added
/// theirs; handlers, hooks and commands read them through
/// [`AppHandle::registry`](crate::AppHandle::registry). Core's session stores are one:
/// [`SessionStores`](crate::session::SessionStores).
///
/// ```
/// use std::sync::Arc;
/// use flagon::RegistryKind;
///
/// /// Mail transports other extensions offer, selected by `[mail] transport`.
/// pub struct Transports;
///
/// pub trait Transport: Send + Sync {
///     fn send(&self, message: &str) -> Result<(), String>;
/// }
///
/// impl RegistryKind for Transports {
///     type Entry = Arc<dyn Transport>;
///     const KIND: &'static str = "mail transport";
/// }
/// ```
pub trait RegistryKind: 'static {
    /// What each entry holds (often a factory or an `Arc<dyn Trait>`).
    type Entry: Send + Sync + 'static;
    /// What an entry is called in listings and clash errors (`session store`).
    const KIND: &'static str;
    /// Whether names are unique: a second entry of a taken name fails the build, naming
    /// both parties. Set it to `false` for registries where many parties may add the same
    /// name (exemption lists, for example).
    const UNIQUE: bool = true;
}

/// One entry of a registry: its name, who added it, and its value.
#[derive(Debug)]
pub struct Entry<T> {
    name: String,
    origin: Origin,
    value: T,
}

impl<T> Entry<T> {
    /// The entry's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who added it.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }
}

/// The entries of one registry, in the order they were added.
#[derive(Debug)]
pub struct Entries<'a, T> {
    items: &'a [Entry<T>],
}

impl<T> Clone for Entries<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Entries<'_, T> {}

impl<'a, T> Entries<'a, T> {
    /// The value of the first entry named `name`.
    pub fn get(&self, name: &str) -> Option<&'a T> {
        self.entry(name).map(|e| &e.value)
    }

    /// The first entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&'a Entry<T>> {
        self.items.iter().find(|e| e.name == name)
    }

    /// Every entry, in the order added.
    pub fn iter(&self) -> std::slice::Iter<'a, Entry<T>> {
        self.items.iter()
    }

    /// The entries' names, in the order added.
    pub fn names(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.items.iter().map(|e| e.name.as_str())
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<'a, T> IntoIterator for Entries<'a, T> {
    type Item = &'a Entry<T>;
    type IntoIter = std::slice::Iter<'a, Entry<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// Every registry's entries, keyed by the registry type.
#[derive(Default)]
pub(crate) struct RegistryStore {
    lists: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl RegistryStore {
    pub(crate) fn add<K: RegistryKind>(&mut self, name: String, origin: Origin, value: K::Entry) {
        let list = self
            .lists
            .entry(TypeId::of::<K>())
            .or_insert_with(|| Box::new(Vec::<Entry<K::Entry>>::new()));
        if let Some(list) = list.downcast_mut::<Vec<Entry<K::Entry>>>() {
            list.push(Entry {
                name,
                origin,
                value,
            });
        }
    }

    pub(crate) fn entries<K: RegistryKind>(&self) -> Entries<'_, K::Entry> {
        let items = self
            .lists
            .get(&TypeId::of::<K>())
            .and_then(|l| l.downcast_ref::<Vec<Entry<K::Entry>>>())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        Entries { items }
    }
}

/// Typed values a subsystem keeps for itself during setup (see [`Setup::slot`](crate::Setup::slot)).
#[derive(Default)]
pub(crate) struct SlotStore {
    values: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl SlotStore {
    pub(crate) fn get_or_default<T: Default + Send + Sync + 'static>(&mut self) -> &mut T {
        self.values
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut::<T>()
            .expect("a slot holds the type it is keyed by")
    }

    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }

    pub(crate) fn take<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        let boxed = self.values.remove(&TypeId::of::<T>())?;
        boxed.downcast::<T>().ok().map(|b| *b)
    }
}

/// The key for `purpose` from the key ring in `slots` (core puts it there first).
pub(crate) fn derive_key(slots: &SlotStore, purpose: &str) -> crate::DerivedKey {
    slots
        .get::<crate::crypto::KeyRing>()
        .expect("core sets up the key ring before anything else registers")
        .derive(purpose)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Things;
    impl RegistryKind for Things {
        type Entry = u32;
        const KIND: &'static str = "thing";
    }

    #[test]
    fn entries_keep_order_and_owner() {
        let mut store = RegistryStore::default();
        assert!(store.entries::<Things>().is_empty());
        store.add::<Things>("a".into(), Origin::new("x"), 1);
        store.add::<Things>("b".into(), Origin::new("y"), 2);
        let e = store.entries::<Things>();
        assert_eq!(e.names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(e.get("b"), Some(&2));
        assert_eq!(e.entry("a").unwrap().origin().owner, "x");
        assert_eq!(e.get("c"), None);
    }

    #[test]
    fn slots_are_taken_once() {
        let mut slots = SlotStore::default();
        *slots.get_or_default::<Vec<u8>>() = vec![1];
        assert_eq!(slots.get::<Vec<u8>>(), Some(&vec![1]));
        assert_eq!(slots.take::<Vec<u8>>(), Some(vec![1]));
        assert_eq!(slots.take::<Vec<u8>>(), None);
    }
}
