//! The mutual-exclusion checker: what a history of exclusive LOCKs proves, seen only from
//! the clients, with all times on the test's one monotonic clock.
//!
//! For each grant we know bounds, never exact server times:
//! - `inv`: the grant was made no earlier than the invocation of the LOCK that made it
//!   (the earliest LOCK of that owner that could have made it).
//! - `granted_by`: it was made no later than the first reply that proves it: the LOCK's
//!   own `ok`, or a LOCK.INFO that listed the owner with that token.
//! - `end_lower`: it lasted at least until the earliest of (a) the invocation of the
//!   owner's first UNLOCK after it, and (b) its lease: a lease never ends before its
//!   deadline, and the deadline is at least `ttl` after the LOCK (or REFRESH) was sent,
//!   since the server can only start it once the command arrived.
//!
//! Checks, per key:
//! 1. Exclusion with fencing order: tokens are given in the state machine's order, so if
//!    token(A) < token(B), A ended before B was granted: `end_lower(A) <= granted_by(B)`.
//!    Two grants whose certain intervals overlap always fail this, whichever token is
//!    smaller, so "zero overlapping holds" is part of it; it also catches a B granted
//!    while A held even when B's own interval ended before A's reply came.
//! 2. Token order matches real time: if token(A) < token(B) then
//!    `inv(A) < granted_by(B)`; and no two grants to different owners share a token.
//! 3. No lost hold: a REFRESH or UNLOCK of the owner answering 0, or a LOCK.INFO that does
//!    not list the owner with its token, while the grant was certainly held throughout
//!    the call, is a lost acknowledged grant.
//! 4. No phantom hold: a LOCK.INFO never lists an owner whose every LOCK was answered nil,
//!    nor one after its UNLOCK answered 1, nor two exclusive holders.
//!
//! An operation with an unknown outcome may have taken effect at any time after its
//! invocation (it counts as possibly holding): it never proves a violation by itself, but
//! a LOCK.INFO that lists its owner turns it into a known grant that the checks use.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::history::{ms, Call, Op, Outcome};

/// Tolerance for deadlines kept on disk as whole wall-clock milliseconds.
pub const SLACK: Duration = Duration::from_millis(2);

/// A grant the history proves.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The key.
    pub key: String,
    /// The owner.
    pub owner: String,
    /// Its token.
    pub token: i64,
    /// Lower bound of the grant time.
    pub inv: Duration,
    /// Upper bound of the grant time.
    pub granted_by: Duration,
    /// Lower bound of the lease end (before unlocks are considered).
    pub lease_lower: Duration,
    /// Lower bound of the hold's end.
    pub end_lower: Duration,
    /// Whether a LOCK reply acknowledged it (as opposed to only a LOCK.INFO).
    pub acknowledged: bool,
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Report {
    /// Violations, each a sentence with the ops involved.
    pub violations: Vec<String>,
    /// Counts for the summary line.
    pub stats: BTreeMap<String, u64>,
}

impl Report {
    fn bump(&mut self, what: &str) {
        *self.stats.entry(what.to_string()).or_default() += 1;
    }

    /// One line of counts.
    pub fn summary(&self) -> String {
        self.stats
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Checks a history of exclusive LOCK / REFRESH / UNLOCK / LOCK.INFO operations.
pub fn check(ops: &[Op]) -> Report {
    let mut report = Report::default();
    for op in ops {
        let kind = match (&op.call, &op.outcome) {
            (Call::Lock { .. }, Outcome::Granted(_)) => "lock_ok",
            (Call::Lock { .. }, Outcome::NotGranted) => "lock_nil",
            (Call::Lock { .. }, _) => "lock_unknown",
            (Call::Unlock, Outcome::Int(1)) => "unlock_1",
            (Call::Unlock, Outcome::Int(_)) => "unlock_0",
            (Call::Refresh { .. }, Outcome::Int(1)) => "refresh_1",
            (Call::Refresh { .. }, Outcome::Int(_)) => "refresh_0",
            (Call::Info, Outcome::Holders(_)) => "info_ok",
            (_, Outcome::Unknown(_)) => "other_unknown",
            _ => "other",
        };
        report.bump(kind);
        if let Outcome::Unknown(why) = &op.outcome {
            let class = if why.starts_with("TRYAGAIN") {
                "why_tryagain"
            } else if why.contains("timeout") {
                "why_timeout"
            } else if why.contains("closed") || why.contains("connect") || why.contains("reset") {
                "why_connection"
            } else {
                "why_other_error"
            };
            report.bump(class);
        }
    }

    let mut by_owner: HashMap<(&str, &str), Vec<&Op>> = HashMap::new();
    for op in ops {
        if !op.owner.is_empty() {
            by_owner
                .entry((op.key.as_str(), op.owner.as_str()))
                .or_default()
                .push(op);
        }
    }
    let infos: Vec<&Op> = ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Holders(_)))
        .collect();

    // Grants: from LOCK replies, then from LOCK.INFO listings of owners whose LOCK had
    // an unknown outcome.
    let mut grants: BTreeMap<(String, String, i64), Grant> = BTreeMap::new();
    for op in ops {
        if let (Call::Lock { ttl, .. }, Outcome::Granted(token)) = (&op.call, &op.outcome) {
            let g = grants
                .entry((op.key.clone(), op.owner.clone(), *token))
                .or_insert_with(|| Grant {
                    key: op.key.clone(),
                    owner: op.owner.clone(),
                    token: *token,
                    inv: op.invoke,
                    granted_by: op.complete,
                    lease_lower: Duration::ZERO,
                    end_lower: Duration::ZERO,
                    acknowledged: true,
                });
            g.granted_by = g.granted_by.min(op.complete);
            g.lease_lower = g.lease_lower.max(op.invoke + Duration::from_millis(*ttl));
        }
    }
    for info in &infos {
        let Outcome::Holders(holders) = &info.outcome else {
            continue;
        };
        for h in holders {
            let g = grants
                .entry((info.key.clone(), h.owner.clone(), h.token))
                .or_insert_with(|| Grant {
                    key: info.key.clone(),
                    owner: h.owner.clone(),
                    token: h.token,
                    inv: Duration::ZERO,
                    granted_by: info.complete,
                    lease_lower: Duration::ZERO,
                    end_lower: Duration::ZERO,
                    acknowledged: false,
                });
            g.granted_by = g.granted_by.min(info.complete);
            // Held at some instant of the call, so it ended no earlier than the call began.
            g.lease_lower = g.lease_lower.max(info.invoke);
        }
    }
    for g in grants.values_mut() {
        let mine = by_owner
            .get(&(g.key.as_str(), g.owner.as_str()))
            .cloned()
            .unwrap_or_default();
        // The earliest LOCK of this owner that could have made this grant.
        let candidates: Vec<&&Op> = mine
            .iter()
            .filter(|op| {
                matches!(op.call, Call::Lock { .. })
                    && match op.outcome {
                        Outcome::Granted(t) => t == g.token,
                        Outcome::Unknown(_) => true,
                        _ => false,
                    }
            })
            .collect();
        g.inv = candidates
            .iter()
            .map(|op| op.invoke)
            .min()
            .unwrap_or(g.granted_by);
        if !g.acknowledged {
            // Made by one of the unknown LOCKs: its lease lasts at least the shortest
            // of theirs.
            if let Some(lease) = candidates
                .iter()
                .filter_map(|op| match op.call {
                    Call::Lock { ttl, .. } if op.invoke <= g.granted_by => {
                        Some(op.invoke + Duration::from_millis(ttl))
                    }
                    _ => None,
                })
                .min()
            {
                g.lease_lower = g.lease_lower.max(lease);
            }
        }
        // Acknowledged refreshes of this owner after the grant extend the lease.
        for op in &mine {
            if let (Call::Refresh { ttl }, Outcome::Int(1)) = (&op.call, &op.outcome) {
                if op.invoke >= g.granted_by {
                    g.lease_lower = g.lease_lower.max(op.invoke + Duration::from_millis(*ttl));
                }
            }
        }
        // Any UNLOCK of this owner (whatever its outcome) may end it from its invocation.
        let first_unlock = mine
            .iter()
            .filter(|op| matches!(op.call, Call::Unlock) && op.invoke >= g.inv)
            .map(|op| op.invoke)
            .min();
        g.end_lower = match first_unlock {
            Some(u) => g.lease_lower.min(u),
            None => g.lease_lower,
        };
    }

    // Checks 1 and 2, per key in token order.
    let mut per_key: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
    for g in grants.values() {
        per_key.entry(g.key.as_str()).or_default().push(g);
    }
    for (key, mut list) in per_key {
        list.sort_by_key(|g| g.token);
        report
            .stats
            .insert(format!("grants[{key}]"), list.len() as u64);
        for pair in list.windows(2) {
            if pair[0].token == pair[1].token && pair[0].owner != pair[1].owner {
                report.violations.push(format!(
                    "key {key}: token {} given to two owners: {} and {}",
                    pair[0].token, pair[0].owner, pair[1].owner
                ));
            }
        }
        let mut max_end: Option<&Grant> = None;
        let mut max_inv: Option<&Grant> = None;
        for g in list {
            if let Some(a) = max_end {
                if a.token < g.token && a.end_lower > g.granted_by + SLACK {
                    report.violations.push(format!(
                        "key {key}: double grant: {} (token {}) held until at least {:.3} ms, \
                         but {} (token {}) was granted by {:.3} ms (overlap {:.3} ms; \
                         {} granted in [{:.3}, {:.3}])",
                        a.owner,
                        a.token,
                        ms(a.end_lower),
                        g.owner,
                        g.token,
                        ms(g.granted_by),
                        ms(a.end_lower - g.granted_by),
                        a.owner,
                        ms(a.inv),
                        ms(a.granted_by),
                    ));
                }
            }
            if let Some(a) = max_inv {
                if a.token < g.token && a.inv > g.granted_by {
                    report.violations.push(format!(
                        "key {key}: tokens out of real-time order: {} got token {} after \
                         {:.3} ms, but {} already had the larger token {} by {:.3} ms",
                        a.owner,
                        a.token,
                        ms(a.inv),
                        g.owner,
                        g.token,
                        ms(g.granted_by)
                    ));
                }
            }
            if max_end.is_none_or(|a| g.end_lower > a.end_lower) {
                max_end = Some(g);
            }
            if max_inv.is_none_or(|a| g.inv > a.inv) {
                max_inv = Some(g);
            }
        }
    }

    // Check 3: lost holds.
    let grants_of = |key: &str, owner: &str| -> Vec<&Grant> {
        grants
            .values()
            .filter(|g| g.key == key && g.owner == owner)
            .collect()
    };
    for op in ops {
        let answered_zero = matches!(
            (&op.call, &op.outcome),
            (Call::Refresh { .. }, Outcome::Int(0)) | (Call::Unlock, Outcome::Int(0))
        );
        if answered_zero {
            for g in grants_of(&op.key, &op.owner) {
                // Certainly held through the whole call (the lease bound here leaves out
                // refreshes made after this call's start).
                if g.granted_by <= op.invoke && op.complete + SLACK < g.end_lower {
                    report.violations.push(format!(
                        "key {}: lost hold: {} of {} (token {}) answered 0 at {:.3} ms, but \
                         the hold lasts at least until {:.3} ms",
                        op.key,
                        if matches!(op.call, Call::Unlock) {
                            "UNLOCK"
                        } else {
                            "REFRESH"
                        },
                        op.owner,
                        g.token,
                        ms(op.complete),
                        ms(g.end_lower)
                    ));
                }
            }
        }
    }
    for info in &infos {
        let Outcome::Holders(holders) = &info.outcome else {
            continue;
        };
        for g in grants.values() {
            if g.key != info.key || !g.acknowledged {
                continue;
            }
            if g.granted_by <= info.invoke && info.complete + SLACK < g.end_lower {
                match holders.iter().find(|h| h.owner == g.owner) {
                    None => report.violations.push(format!(
                        "key {}: acknowledged grant missing: LOCK.INFO at [{:.3}, {:.3}] ms \
                         on n{} does not list {} (token {}), held until at least {:.3} ms",
                        info.key,
                        ms(info.invoke),
                        ms(info.complete),
                        info.node,
                        g.owner,
                        g.token,
                        ms(g.end_lower)
                    )),
                    Some(h) if h.token != g.token => report.violations.push(format!(
                        "key {}: token changed: LOCK.INFO at {:.3} ms lists {} with token {}, \
                         granted token {}",
                        info.key,
                        ms(info.invoke),
                        g.owner,
                        h.token,
                        g.token
                    )),
                    Some(_) => report.bump("info_confirmed_hold"),
                }
            }
        }
        // Check 4: phantoms.
        let exclusive = holders.iter().filter(|h| h.mode == "exclusive").count();
        if exclusive > 1 {
            report.violations.push(format!(
                "key {}: LOCK.INFO at {:.3} ms on n{} lists {} exclusive holders: {:?}",
                info.key,
                ms(info.invoke),
                info.node,
                exclusive,
                holders
            ));
        }
        for h in holders {
            let mine = by_owner
                .get(&(info.key.as_str(), h.owner.as_str()))
                .cloned()
                .unwrap_or_default();
            let locks: Vec<&&Op> = mine
                .iter()
                .filter(|op| matches!(op.call, Call::Lock { .. }) && op.invoke <= info.complete)
                .collect();
            if locks.is_empty() {
                report.violations.push(format!(
                    "key {}: phantom holder {} (token {}) in LOCK.INFO at {:.3} ms: it never \
                     asked before then",
                    info.key,
                    h.owner,
                    h.token,
                    ms(info.invoke)
                ));
            } else if locks
                .iter()
                .all(|op| matches!(op.outcome, Outcome::NotGranted))
            {
                report.violations.push(format!(
                    "key {}: {} is listed as holder (token {}) at {:.3} ms, but every LOCK it \
                     sent was answered nil",
                    info.key,
                    h.owner,
                    h.token,
                    ms(info.invoke)
                ));
            }
            // A LOCK with an unknown outcome may still take effect late (a forwarded
            // command applied after the client gave up), so only owners whose every LOCK
            // was answered count here.
            let all_answered = locks
                .iter()
                .all(|op| !matches!(op.outcome, Outcome::Unknown(_)));
            let released = all_answered
                && mine.iter().any(|op| {
                    matches!((&op.call, &op.outcome), (Call::Unlock, Outcome::Int(1)))
                        && op.complete < info.invoke
                        && !mine
                            .iter()
                            .any(|l| matches!(l.call, Call::Lock { .. }) && l.invoke > op.invoke)
                });
            if released {
                report.violations.push(format!(
                    "key {}: {} (token {}) listed at {:.3} ms after its UNLOCK answered 1",
                    info.key,
                    h.owner,
                    h.token,
                    ms(info.invoke)
                ));
            }
        }
    }
    report.stats.insert(
        "unknown_locks_seen_granted".into(),
        grants.values().filter(|g| !g.acknowledged).count() as u64,
    );
    report
}
