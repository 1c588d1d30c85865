//! `max-held-keys:N`: how many keys of a user's key space may have a holder at once.
//!
//! The count is kept per user as the set of keys the user's grants may hold: seeded once
//! (per user and per version of its rules) by one walk of the keyspace for keys matching
//! its patterns that have a holder, then grown by the keys of each LOCK, WLOCK, RLOCK,
//! MLOCK or SEM.ACQUIRE it is allowed to ask. Each check looks the tracked keys up in the
//! table and forgets those with neither holder nor waiter, so the count follows releases,
//! lease expiry, DEL and FLUSHALL exactly, at a cost bounded by the limit plus the user's
//! waiting requests, never by the size of the keyspace (a walk per grant let one tenant
//! with a limit stall a worker on a large table). A key of the user's space that another
//! user takes after the seed is counted once this user asks for it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};

use super::User;
use crate::error::RespError;
use crate::table::{LockTable, Now, ShardKeys};

/// The keys tracked per user with `max-held-keys` (owned by [`super::Acl`]).
#[derive(Debug, Default)]
pub struct HeldKeys {
    users: Mutex<HashMap<String, Tracked>>,
}

/// One user's tracked keys, and the rules they were seeded under.
#[derive(Debug)]
struct Tracked {
    rules: Arc<User>,
    keys: HashSet<Bytes>,
}

/// Held while a checked grant is applied, so that two grants of users with a limit are
/// not checked at once (both could take the last place otherwise).
#[derive(Debug)]
pub struct HeldGate<'a>(
    // Only held, never read: dropping the gate lets the next limited grant be checked.
    #[allow(dead_code)] MutexGuard<'a, HashMap<String, Tracked>>,
);

impl HeldKeys {
    /// Checks that `user`'s held keys plus those of `keys` not held yet stay within its
    /// `max-held-keys` (non-zero), then tracks `keys`. Keep the gate while the grant is
    /// applied.
    ///
    /// # Errors
    /// `-ERR max held keys reached for user '<name>' (max N)`.
    pub fn admit<'a>(
        &'a self,
        table: &LockTable,
        now: Now,
        user: &Arc<User>,
        keys: &[&[u8]],
    ) -> Result<HeldGate<'a>, RespError> {
        let max = user.limits().max_held_keys;
        let mut users = self.users.lock();
        let seed = || Tracked {
            rules: Arc::clone(user),
            keys: held_in_space(table, now, user),
        };
        let tracked = users
            .entry(user.name().to_string())
            .and_modify(|t| {
                if !Arc::ptr_eq(&t.rules, user) {
                    *t = seed();
                }
            })
            .or_insert_with(seed);
        let mut held = HashSet::new();
        tracked.keys.retain(|key| {
            let (has_holder, live) = table
                .run(&[key.as_ref()], now, |tx| {
                    tx.entry(key).map_or((false, false), |e| {
                        let h = !e.is_str() && e.holders().next().is_some();
                        (h, h || e.has_waiters())
                    })
                })
                .value;
            if has_holder {
                held.insert(key.clone());
            }
            live
        });
        let new = keys.iter().filter(|k| !held.contains(**k)).count();
        if (held.len() + new) as u64 > max {
            return Err(RespError::new(format!(
                "ERR max held keys reached for user '{}' (max {max})",
                user.name()
            )));
        }
        tracked
            .keys
            .extend(keys.iter().map(|k| Bytes::copy_from_slice(k)));
        Ok(HeldGate(users))
    }
}

/// The keys matching `user`'s patterns that have a holder now: one walk of the keyspace.
fn held_in_space(table: &LockTable, now: Now, user: &User) -> HashSet<Bytes> {
    let mut candidates = Vec::new();
    let mut shard_keys = ShardKeys::default();
    for i in 0..table.shard_count() {
        table.copy_keys(i, &mut shard_keys);
        candidates.extend(
            shard_keys
                .iter()
                .filter(|(key, kind)| *kind != "string" && user.key_allowed(key))
                .map(|(key, _)| Bytes::copy_from_slice(key)),
        );
    }
    candidates
        .into_iter()
        .filter(|key| {
            table
                .run(&[key.as_ref()], now, |tx| {
                    tx.entry(key).is_some_and(|e| e.holders().next().is_some())
                })
                .value
        })
        .collect()
}
