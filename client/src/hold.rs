//! What a guard holds on the server and the commands that grant, renew and release it.

use std::time::Duration;

use redis::Cmd;

/// The kind of hold a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `LOCK`: exclusive.
    Lock,
    /// `RLOCK`: shared with other readers.
    Read,
    /// `WLOCK`: exclusive (the writer side of a readers-writer lock).
    Write,
    /// `WLOCK ... SHARED`: shared with other shared writers, excludes readers and writers.
    SharedWrite,
    /// `SEM.ACQUIRE ... PERMITS n [CAPACITY c]`.
    Semaphore { permits: u64, capacity: Option<u64> },
    /// `MLOCK`: several keys, exclusive, all or none.
    Multi,
}

/// A hold: kind, keys, owner and lease length. One owner per hold (see `owner.rs`).
#[derive(Debug, Clone)]
pub(crate) struct Hold {
    pub kind: Kind,
    pub keys: Vec<Vec<u8>>,
    pub owner: String,
    pub ttl: Duration,
}

impl Hold {
    /// The lease in whole milliseconds, as the server takes it (at least 1).
    pub fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// How often the watchdog renews the lease: a third of it, as Redisson's watchdog
    /// does, so that two renewals can fail before the lease runs out.
    pub fn refresh_interval(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(1))
    }

    /// How long after a grant or renewal was sent the hold is surely still valid: the
    /// lease less a drift allowance for clocks that run at different rates (1 % of the
    /// lease plus 2 ms, as in the Redlock analysis). The server's lease starts when it
    /// receives the request, so never before the request was sent.
    pub fn valid_for(&self) -> Duration {
        self.ttl
            .saturating_sub(self.ttl / 100 + Duration::from_millis(2))
            .max(Duration::from_millis(1))
    }

    /// The grant request, with `WAIT wait_ms` when given (0: forever).
    pub fn grant(&self, wait_ms: Option<u64>) -> Cmd {
        let mut cmd = match &self.kind {
            Kind::Lock => redis::cmd("LOCK"),
            Kind::Read => redis::cmd("RLOCK"),
            Kind::Write | Kind::SharedWrite => redis::cmd("WLOCK"),
            Kind::Semaphore { .. } => redis::cmd("SEM.ACQUIRE"),
            Kind::Multi => {
                let mut cmd = redis::cmd("MLOCK");
                cmd.arg(self.keys.len());
                cmd
            }
        };
        for key in &self.keys {
            cmd.arg(key.as_slice());
        }
        cmd.arg(&self.owner).arg(self.ttl_ms());
        if let Kind::Semaphore { permits, capacity } = &self.kind {
            cmd.arg("PERMITS").arg(*permits);
            if let Some(capacity) = capacity {
                cmd.arg("CAPACITY").arg(*capacity);
            }
        }
        if let Some(wait_ms) = wait_ms {
            cmd.arg("WAIT").arg(wait_ms);
        }
        if self.kind == Kind::SharedWrite {
            cmd.arg("SHARED");
        }
        cmd
    }

    /// One `REFRESH key owner ttl` per key.
    pub fn refreshes(&self) -> impl Iterator<Item = Cmd> + '_ {
        self.keys.iter().map(|key| {
            let mut cmd = redis::cmd("REFRESH");
            cmd.arg(key.as_slice()).arg(&self.owner).arg(self.ttl_ms());
            cmd
        })
    }

    /// The release: `UNLOCK`, `SEM.RELEASE` or `MUNLOCK`. Its integer reply counts what
    /// was released (0: nothing was held).
    pub fn release(&self) -> Cmd {
        let mut cmd = match self.kind {
            Kind::Semaphore { .. } => redis::cmd("SEM.RELEASE"),
            Kind::Multi => {
                let mut cmd = redis::cmd("MUNLOCK");
                cmd.arg(self.keys.len());
                cmd
            }
            _ => redis::cmd("UNLOCK"),
        };
        for key in &self.keys {
            cmd.arg(key.as_slice());
        }
        cmd.arg(&self.owner);
        cmd
    }

    /// Whether a release reply of `released` means the whole hold was still there.
    pub fn released_all(&self, released: i64) -> bool {
        match self.kind {
            Kind::Multi => released == self.keys.len() as i64,
            _ => released > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(kind: Kind, keys: &[&str]) -> Hold {
        Hold {
            kind,
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            owner: "o".into(),
            ttl: Duration::from_millis(3000),
        }
    }

    fn words(cmd: &Cmd) -> Vec<String> {
        cmd.args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => "<cursor>".into(),
            })
            .collect()
    }

    #[test]
    fn grant_commands_follow_the_protocol() {
        let lock = hold(Kind::Lock, &["k"]);
        assert_eq!(words(&lock.grant(None)), ["LOCK", "k", "o", "3000"]);
        assert_eq!(
            words(&lock.grant(Some(0))),
            ["LOCK", "k", "o", "3000", "WAIT", "0"]
        );
        let shared = hold(Kind::SharedWrite, &["k"]);
        assert_eq!(
            words(&shared.grant(Some(5))),
            ["WLOCK", "k", "o", "3000", "WAIT", "5", "SHARED"]
        );
        let multi = hold(Kind::Multi, &["a", "b"]);
        assert_eq!(
            words(&multi.grant(None)),
            ["MLOCK", "2", "a", "b", "o", "3000"]
        );
        assert_eq!(words(&multi.release()), ["MUNLOCK", "2", "a", "b", "o"]);
        let sem = hold(
            Kind::Semaphore {
                permits: 2,
                capacity: Some(4),
            },
            &["s"],
        );
        assert_eq!(
            words(&sem.grant(None)),
            [
                "SEM.ACQUIRE",
                "s",
                "o",
                "3000",
                "PERMITS",
                "2",
                "CAPACITY",
                "4"
            ]
        );
        assert_eq!(words(&sem.release()), ["SEM.RELEASE", "s", "o"]);
    }

    #[test]
    fn refresh_every_third_of_the_lease_and_trust_it_less_the_drift() {
        let lock = hold(Kind::Lock, &["k"]);
        assert_eq!(lock.refresh_interval(), Duration::from_millis(1000));
        assert_eq!(lock.valid_for(), Duration::from_millis(3000 - 30 - 2));
        assert!(lock.released_all(1) && !lock.released_all(0));
        assert!(!hold(Kind::Multi, &["a", "b"]).released_all(1));
    }
}
