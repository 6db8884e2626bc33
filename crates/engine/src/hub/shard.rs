//! A map split into independently locked shards, so a lookup in one room or session does
//! not wait for a connect, disconnect or publish that touches another.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A sharded `HashMap` behind `std::sync::RwLock`s. Critical sections are short and never
/// span an `.await`.
#[derive(Debug)]
pub(crate) struct Sharded<K, V> {
    shards: Box<[RwLock<HashMap<K, V>>]>,
    hasher: RandomState,
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    pub(crate) fn new(shards: usize) -> Self {
        let n = shards.max(1).next_power_of_two();
        Sharded {
            shards: (0..n).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn index<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        (self.hasher.hash_one(key) as usize) & (self.shards.len() - 1)
    }

    pub(crate) fn read<Q: Hash + ?Sized>(&self, key: &Q) -> RwLockReadGuard<'_, HashMap<K, V>> {
        // Poisoning only follows a panic inside a short map operation; the map is still
        // structurally valid, so keep serving.
        self.shards[self.index(key)]
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write<Q: Hash + ?Sized>(&self, key: &Q) -> RwLockWriteGuard<'_, HashMap<K, V>> {
        self.shards[self.index(key)]
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Visits every shard in turn (holding one shard's read lock at a time).
    pub(crate) fn for_each_shard(&self, mut f: impl FnMut(&HashMap<K, V>)) {
        for shard in self.shards.iter() {
            f(&shard.read().unwrap_or_else(|p| p.into_inner()));
        }
    }

    /// Visits every shard with write access, one at a time.
    pub(crate) fn for_each_shard_mut(&self, mut f: impl FnMut(&mut HashMap<K, V>)) {
        for shard in self.shards.iter() {
            f(&mut shard.write().unwrap_or_else(|p| p.into_inner()));
        }
    }

    pub(crate) fn len(&self) -> usize {
        let mut n = 0;
        self.for_each_shard(|m| n += m.len());
        n
    }
}
