//! Typed state: one value per type, provided by an extension at init and read everywhere.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::error::{Origin, SetupError};

type AnyArc = Arc<dyn Any + Send + Sync>;

/// A map keyed by type, read on every request (state, signals).
pub(crate) type TypeMap<V> = HashMap<TypeId, V, BuildHasherDefault<TypeIdHasher>>;

/// Hashes a `TypeId` by taking it as it is: a type id is already a hash of its type, and
/// its keys come from the program's types, not from clients, so SipHash's defence against
/// chosen keys buys nothing here and would cost a couple of hundred instructions a lookup.
#[derive(Default)]
pub(crate) struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // `TypeId` hashes through `write_u64`; anything else still hashes (FNV-1a).
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// State provided by extensions, keyed by type.
#[derive(Default)]
pub(crate) struct StateMap {
    values: TypeMap<(AnyArc, &'static str, Origin)>,
}

impl StateMap {
    pub(crate) fn insert<T: Send + Sync + 'static>(
        &mut self,
        value: Arc<T>,
        origin: Origin,
    ) -> Result<(), SetupError> {
        let name = std::any::type_name::<T>();
        if let Some((_, _, first)) = self.values.get(&TypeId::of::<T>()) {
            return Err(SetupError::StateClash {
                type_name: name,
                first: first.clone(),
                second: origin,
            });
        }
        self.values.insert(TypeId::of::<T>(), (value, name, origin));
        Ok(())
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|(v, _, _)| v.clone().downcast::<T>().ok())
    }

    /// (type name, provider) pairs, for introspection.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'static str, &Origin)> {
        self.values.values().map(|(_, n, o)| (*n, o))
    }
}
