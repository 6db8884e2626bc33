//! The engine's one sharded map: a `HashMap` split into independently locked shards, so
//! an operation on one key (a room, a session, an address, a principal) does not wait for
//! an operation on a key of another shard.
//!
//! Every keyed table the engine shares between tasks is one of these (hub sessions and
//! rooms, memory history, handshake limiter, connection counters, signed-request replay
//! memory), so the locking, the shard choice and the poisoning policy are written once.
//! Why not `dashmap`: the users need things its API does not give, namely a guard over a
//! whole shard for check-then-act steps (count, then insert or refuse), per-shard state
//! next to the map (the handshake limiter's last self-sweep) and per-shard caps.
//!
//! Critical sections are short and never span an `.await`. Poisoning only follows a panic
//! inside a short map operation; the map is still structurally valid, so a poisoned lock
//! keeps serving.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::ops::{Deref, DerefMut};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A sharded `HashMap<K, V>` behind `std::sync::RwLock`s, with optional per-shard state
/// `E` kept under the same lock.
#[derive(Debug)]
pub(crate) struct Sharded<K, V, E = ()> {
    shards: Box<[RwLock<Shard<K, V, E>>]>,
    hasher: RandomState,
}

/// One shard: its part of the map (reached through `Deref`) and its own state.
#[derive(Debug, Default)]
pub(crate) struct Shard<K, V, E = ()> {
    map: HashMap<K, V>,
    /// State the owner keeps per shard, updated under the shard's lock.
    pub(crate) extra: E,
}

impl<K, V, E> Deref for Shard<K, V, E> {
    type Target = HashMap<K, V>;

    fn deref(&self) -> &HashMap<K, V> {
        &self.map
    }
}

impl<K, V, E> DerefMut for Shard<K, V, E> {
    fn deref_mut(&mut self) -> &mut HashMap<K, V> {
        &mut self.map
    }
}

impl<K, V, E: Default> Sharded<K, V, E> {
    /// A map of `shards` shards, rounded up to a power of two (at least one).
    pub(crate) fn new(shards: usize) -> Self {
        let n = shards.max(1).next_power_of_two();
        Sharded {
            shards: (0..n)
                .map(|_| {
                    RwLock::new(Shard {
                        map: HashMap::new(),
                        extra: E::default(),
                    })
                })
                .collect(),
            hasher: RandomState::new(),
        }
    }
}

impl<K, V, E> Sharded<K, V, E> {
    /// How many shards there are (a power of two).
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn index<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // The hash only spreads keys over shards; truncating it is fine.
        (self.hasher.hash_one(key) as usize) & (self.shards.len() - 1)
    }

    /// Shared access to the shard that holds `key`.
    pub(crate) fn read<Q: Hash + ?Sized>(&self, key: &Q) -> RwLockReadGuard<'_, Shard<K, V, E>> {
        self.shards[self.index(key)]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Exclusive access to the shard that holds `key`.
    pub(crate) fn write<Q: Hash + ?Sized>(&self, key: &Q) -> RwLockWriteGuard<'_, Shard<K, V, E>> {
        self.shards[self.index(key)]
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Visits every shard in turn (holding one shard's read lock at a time).
    pub(crate) fn for_each_shard(&self, mut f: impl FnMut(&Shard<K, V, E>)) {
        for shard in self.shards.iter() {
            f(&shard.read().unwrap_or_else(PoisonError::into_inner));
        }
    }

    /// Visits every shard with write access, one at a time.
    pub(crate) fn for_each_shard_mut(&self, mut f: impl FnMut(&mut Shard<K, V, E>)) {
        for shard in self.shards.iter() {
            f(&mut shard.write().unwrap_or_else(PoisonError::into_inner));
        }
    }

    /// Entries in all shards (each shard counted under its own lock, so not a snapshot).
    pub(crate) fn len(&self) -> usize {
        let mut n = 0;
        self.for_each_shard(|m| n += m.len());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_count_rounds_up_to_a_power_of_two() {
        assert_eq!(Sharded::<u32, u32>::new(0).shard_count(), 1);
        assert_eq!(Sharded::<u32, u32>::new(12).shard_count(), 16);
        assert_eq!(Sharded::<u32, u32>::new(64).shard_count(), 64);
    }

    #[test]
    fn a_key_lives_in_one_shard_and_len_counts_all() {
        let map: Sharded<String, u32> = Sharded::new(8);
        for i in 0..100u32 {
            map.write(&i.to_string()).insert(i.to_string(), i);
        }
        assert_eq!(map.len(), 100);
        // Borrowed lookups (`&str` for `String` keys) land in the key's shard.
        assert_eq!(map.read("42").get("42"), Some(&42));
        map.for_each_shard_mut(|shard| shard.retain(|_, v| *v % 2 == 0));
        assert_eq!(map.len(), 50);
        let mut seen = 0;
        map.for_each_shard(|shard| seen += shard.values().filter(|v| *v % 2 == 0).count());
        assert_eq!(seen, 50);
    }

    #[test]
    fn per_shard_state_is_kept_under_the_shard_lock() {
        let map: Sharded<u32, u32, u8> = Sharded::new(4);
        map.write(&1).extra = 7;
        assert_eq!(map.read(&1).extra, 7);
        let mut total = 0u32;
        map.for_each_shard(|shard| total += u32::from(shard.extra));
        assert_eq!(total, 7);
    }
}
