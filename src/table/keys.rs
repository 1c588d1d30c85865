//! A shard's keys: its entries in a slab of fixed-size chunks, found by key through a hash
//! index of their slab positions.
//!
//! Why not a `HashTable<Entry>`: its buckets would hold the 16-byte entries themselves at
//! 44-87% load (about 36 bytes per key at 1M keys), and each doubling frees the old bucket
//! array: at 1M keys some 35 MB freed in large blocks during the load, which mimalloc
//! gives back to the OS only after its purge delay and only on the thread that allocated
//! them, so a server loaded from two threads kept a varying part of it resident. Here the
//! index holds 4-byte positions (a quarter of the bytes and of the growth churn), and the
//! slab grows one 16 KiB chunk at a time without moving or freeing anything.
//!
//! A vacant slot holds [`Entry::vacant`] (no allocation) and its position waits on a free
//! list; the index only ever points at occupied slots. Chunks are kept when keys go (like a
//! hash table's buckets): the slab is as large as the most keys the shard has held.

use std::hash::BuildHasher;

use hashbrown::hash_table::OccupiedEntry;
use hashbrown::HashTable;

use super::entry::Entry;

/// Slots per chunk: 1024 entries, 16 KiB.
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Entries by key (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Keys {
    /// Slab positions, by the hash of the key of the entry there.
    index: HashTable<u32>,
    slab: Slab,
    hasher: foldhash::fast::RandomState,
}

/// The storage behind the index.
#[derive(Debug, Default)]
struct Slab {
    chunks: Vec<Box<[Entry]>>,
    /// Vacant positions, most recently freed last.
    free: Vec<u32>,
}

impl Slab {
    fn at(&self, pos: u32) -> &Entry {
        &self.chunks[(pos >> CHUNK_BITS) as usize][pos as usize & (CHUNK - 1)]
    }

    fn at_mut(&mut self, pos: u32) -> &mut Entry {
        &mut self.chunks[(pos >> CHUNK_BITS) as usize][pos as usize & (CHUNK - 1)]
    }

    /// Stores `entry` in a vacant slot (a new chunk when none is left); its position.
    fn put(&mut self, entry: Entry) -> u32 {
        let pos = match self.free.pop() {
            Some(pos) => pos,
            None => {
                let first = self.chunks.len() * CHUNK;
                // A shard holding 2^32 keys would need far more memory than any machine
                // this runs on has.
                let first = u32::try_from(first).expect("at most 2^32 keys per shard");
                self.chunks
                    .push((0..CHUNK).map(|_| Entry::vacant()).collect());
                // Hand out the chunk's first slot now, the others from the free list
                // (lowest first).
                self.free.extend((first + 1..first + CHUNK as u32).rev());
                first
            }
        };
        *self.at_mut(pos) = entry;
        pos
    }

    /// Empties slot `pos` and returns what it held.
    fn take(&mut self, pos: u32) -> Entry {
        debug_assert!(!self.at(pos).is_vacant(), "slot {pos} freed twice");
        self.free.push(pos);
        std::mem::replace(self.at_mut(pos), Entry::vacant())
    }
}

/// An occupied entry found by [`Keys::find`], to change or remove in place.
pub(crate) struct Found<'a> {
    slot: OccupiedEntry<'a, u32>,
    slab: &'a mut Slab,
}

impl Found<'_> {
    /// The entry.
    pub(crate) fn get(&self) -> &Entry {
        self.slab.at(*self.slot.get())
    }

    /// The entry, mutably (its key must stay).
    pub(crate) fn get_mut(&mut self) -> &mut Entry {
        self.slab.at_mut(*self.slot.get())
    }

    /// Removes the entry and returns it.
    pub(crate) fn remove(self) -> Entry {
        let (pos, _) = self.slot.remove();
        self.slab.take(pos)
    }
}

impl Keys {
    /// The in-shard hash of `key` (independent of the hash that picked the shard).
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The entry of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entry> {
        let slab = &self.slab;
        let pos = self
            .index
            .find(self.hash(key), |&pos| slab.at(pos).key() == key)?;
        Some(slab.at(*pos))
    }

    /// The entry of `key`, mutably (its key must stay).
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let pos = *self.find_pos(self.hash(key), |e| e.key() == key)?;
        Some(self.slab.at_mut(pos))
    }

    fn find_pos(&self, hash: u64, which: impl Fn(&Entry) -> bool) -> Option<&u32> {
        let slab = &self.slab;
        self.index.find(hash, |&pos| which(slab.at(pos)))
    }

    /// The entry whose key has `hash` and for which `which` is true.
    pub(crate) fn find(&mut self, hash: u64, which: impl Fn(&Entry) -> bool) -> Option<Found<'_>> {
        let slab = &mut self.slab;
        let slot = self
            .index
            .find_entry(hash, |&pos| which(slab.at(pos)))
            .ok()?;
        Some(Found { slot, slab })
    }

    /// Adds `entry`, whose key must be missing.
    pub(crate) fn insert(&mut self, entry: Entry) {
        debug_assert!(self.get(entry.key()).is_none(), "key inserted twice");
        let hash = self.hash(entry.key());
        let pos = self.slab.put(entry);
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.index
            .insert_unique(hash, pos, |&pos| hasher.hash_one(slab.at(pos).key()));
    }

    /// Removes the entry of `key` and returns it.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = self.hash(key);
        Some(self.find(hash, |e| e.key() == key)?.remove())
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.index.iter().map(|&pos| self.slab.at(pos))
    }

    /// Removes every entry and returns them.
    pub(crate) fn take_all(&mut self) -> Vec<Entry> {
        let positions: Vec<u32> = self.index.drain().collect();
        positions
            .into_iter()
            .map(|pos| self.slab.take(pos))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::HoldKind;
    use crate::table::entry::{Deadline, Lease};
    use crate::wheel::TimerId;

    fn lock(key: &str) -> Entry {
        let lease = Lease {
            kind: HoldKind::Exclusive,
            token: 1,
            deadline: Deadline::from_nanos(0),
            timer: TimerId::from_bits(0),
        };
        Entry::held(key.as_bytes(), b"owner", lease)
    }

    #[test]
    fn insert_find_remove_across_chunks() {
        let mut keys = Keys::default();
        let n = 3 * CHUNK + 5;
        for i in 0..n {
            keys.insert(lock(&format!("k{i}")));
        }
        assert_eq!(keys.len(), n);
        assert_eq!(keys.slab.chunks.len(), 4);
        for i in (0..n).step_by(2) {
            let removed = keys.remove(format!("k{i}").as_bytes()).expect("present");
            assert_eq!(removed.key(), format!("k{i}").as_bytes());
        }
        assert!(keys.remove(b"k0").is_none());
        assert_eq!(keys.len(), n / 2);
        // Freed slots are reused before any new chunk.
        for i in 0..n / 2 {
            keys.insert(lock(&format!("again{i}")));
        }
        assert_eq!(keys.slab.chunks.len(), 4);
        assert!(keys.get(b"k1").is_some() && keys.get(b"k2").is_none());
        assert_eq!(keys.iter().count(), keys.len());
        let hash = keys.hash(b"k3");
        let found = keys.find(hash, |e| e.key() == b"k3").expect("present");
        assert_eq!(found.remove().key(), b"k3");
        assert_eq!(keys.take_all().len(), 2 * (n / 2) - 1);
        assert_eq!(keys.len(), 0);
        assert!(keys.get(b"k1").is_none());
    }
}
