//! What a hold is ([`HoldKind`]): a lock mode or a number of semaphore permits, and the
//! rules between kinds. `persist::record` encodes it; the table and the commands use it.

/// What a hold is: a lock mode or a number of semaphore permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldKind {
    /// LOCK / WLOCK: excludes everybody else.
    Exclusive,
    /// WLOCK ... SHARED: shares with other shared writers only.
    SharedWrite,
    /// RLOCK: shares with other readers.
    Read,
    /// SEM.ACQUIRE ... PERMITS n.
    Permits(u64),
}

/// The names of the hold kinds, as metrics label them, in [`HoldKind::index`] order.
pub const KIND_NAMES: [&str; 4] = ["exclusive", "shared_write", "read", "permits"];

impl HoldKind {
    /// Permits this hold uses (1 for lock modes).
    pub fn permits(&self) -> u64 {
        match self {
            HoldKind::Permits(n) => *n,
            _ => 1,
        }
    }

    /// Whether two lock holds may coexist on one key.
    pub fn compatible_with(&self, other: &HoldKind) -> bool {
        matches!(
            (self, other),
            (HoldKind::Read, HoldKind::Read) | (HoldKind::SharedWrite, HoldKind::SharedWrite)
        )
    }

    /// The mode name LOCK.INFO shows.
    pub fn mode_name(&self) -> &'static str {
        match self {
            HoldKind::Exclusive => "exclusive",
            HoldKind::SharedWrite => "shared-write",
            HoldKind::Read => "read",
            HoldKind::Permits(_) => "permits",
        }
    }

    /// The position of this kind in [`KIND_NAMES`].
    pub fn index(&self) -> usize {
        match self {
            HoldKind::Exclusive => 0,
            HoldKind::SharedWrite => 1,
            HoldKind::Read => 2,
            HoldKind::Permits(_) => 3,
        }
    }
}
