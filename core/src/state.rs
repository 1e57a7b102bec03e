//! Typed state: one value per type, provided by an extension at init and read everywhere.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Origin, SetupError};

type AnyArc = Arc<dyn Any + Send + Sync>;

/// State provided by extensions, keyed by type.
#[derive(Default)]
pub(crate) struct StateMap {
    values: HashMap<TypeId, (AnyArc, &'static str, Origin)>,
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
