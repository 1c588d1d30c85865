//! [`LockGuard`]: a granted hold, its lease watchdog and its release.
//!
//! The guard owns one [`Lease`] (shared with its background task through an `Arc`). The
//! task is either the watchdog, which renews the lease every third of the ttl, or, once
//! the watchdog is stopped, a timer that marks the lease lost when its time is up. The
//! lease's state is a `tokio::sync::watch` channel, so that [`LockGuard::lost`] can wait
//! for a change from any task. A renewal that finds the hold gone marks the lease lost
//! and stops: the guard never asks for the lock again by itself.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::client::Inner;
use crate::conn::is_transient;
use crate::error::{Error, LostReason, Result};
use crate::hold::Hold;

/// The state of a guard's lease, as [`LockGuard::state`] and [`LockGuard::watch`] show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseState {
    /// Held: the lease is valid (as far as the client knows; see
    /// [`LockGuard::valid_until`]).
    Held,
    /// Lost while the guard existed, for this reason. The guard stays lost.
    Lost(LostReason),
    /// Released by [`LockGuard::unlock`].
    Released,
}

/// A hold on the server and what the client knows about its lease.
pub(crate) struct Lease {
    pub inner: Arc<Inner>,
    pub hold: Hold,
    pub tokens: Vec<i64>,
    state: watch::Sender<LeaseState>,
    /// Until when the hold is surely valid (the last grant or renewal's send time plus
    /// the lease less the drift allowance).
    valid_until: Mutex<Instant>,
}

impl Lease {
    fn valid_until(&self) -> Instant {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a grant or renewal sent at `sent`.
    fn renewed(&self, sent: Instant) {
        let until = sent + self.hold.valid_for();
        let mut valid = self
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if until > *valid {
            *valid = until;
        }
    }

    /// Marks the lease lost, unless it already is lost or released.
    fn mark_lost(&self, reason: LostReason) {
        self.state.send_if_modified(|state| {
            if *state == LeaseState::Held {
                *state = LeaseState::Lost(reason);
                true
            } else {
                false
            }
        });
    }

    fn state(&self) -> LeaseState {
        *self.state.borrow()
    }

    /// `Ok` while held; the loss as an error otherwise. A lease whose time is up without a
    /// renewal is marked lost here.
    fn ensure_held(&self) -> Result<()> {
        if self.state() == LeaseState::Held && Instant::now() >= self.valid_until() {
            self.mark_lost(LostReason::Expired);
        }
        match self.state() {
            LeaseState::Held => Ok(()),
            LeaseState::Lost(reason) => Err(Error::LeaseLost(reason)),
            LeaseState::Released => Err(Error::LeaseLost(LostReason::NotHeld)),
        }
    }

    /// Renews every key of the hold, retrying connection failures until the lease's time
    /// is up. `Ok(true)`: renewed, `Ok(false)`: the server has no hold any more.
    async fn renew(&self) -> Result<bool> {
        let deadline = self.valid_until();
        let mut sent_first = None;
        for cmd in self.hold.refreshes() {
            let (renewed, sent) = self.inner.conn.query_until::<i64>(&cmd, deadline).await?;
            sent_first.get_or_insert(sent);
            if renewed != 1 {
                return Ok(false);
            }
        }
        if let Some(sent) = sent_first {
            self.renewed(sent);
        }
        Ok(true)
    }

    /// One renewal as the watchdog and [`LockGuard::refresh`] make it: marks the lease
    /// lost when the hold is gone (or the renewal cannot be made before the lease ends).
    async fn renew_or_mark(&self) -> Result<()> {
        self.ensure_held()?;
        let deadline = self.valid_until();
        match tokio::time::timeout_at(deadline, self.renew()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => {
                self.mark_lost(LostReason::NotHeld);
                self.ensure_held()
            }
            Ok(Err(Error::Redis(err))) if is_transient(&err) && Instant::now() < deadline => {
                Err(Error::Redis(err))
            }
            Ok(Err(Error::Redis(err))) if !is_transient(&err) => {
                // An error answer to REFRESH (WRONGTYPE: the key was deleted and re-created
                // as another kind) means the hold is gone.
                self.mark_lost(LostReason::NotHeld);
                Err(Error::Redis(err))
            }
            Ok(Err(err)) => Err(err),
            Err(_elapsed) => {
                self.mark_lost(LostReason::Expired);
                self.ensure_held()
            }
        }
    }

    /// Sends the release; `Ok(true)` when the whole hold was still there.
    async fn release(&self) -> Result<bool> {
        let released: i64 = self.inner.conn.query(&self.hold.release()).await?;
        Ok(self.hold.released_all(released))
    }
}

/// The watchdog: renews the lease every third of its ttl until the hold is gone.
async fn watchdog(lease: Arc<Lease>, mut next: Instant) {
    let interval = lease.hold.refresh_interval();
    loop {
        tokio::time::sleep_until(next).await;
        let sent = Instant::now();
        match lease.renew_or_mark().await {
            Ok(()) => next = sent + interval,
            // A transient failure with time left: try again soon.
            Err(Error::Redis(_)) if lease.state() == LeaseState::Held => {
                next = Instant::now() + Duration::from_millis(50).min(interval);
            }
            Err(_) => return,
        }
    }
}

/// Without the watchdog: marks the lease lost when its time is up (later if
/// [`LockGuard::refresh`] moved its end).
async fn expiry_timer(lease: Arc<Lease>) {
    loop {
        let until = lease.valid_until();
        tokio::time::sleep_until(until).await;
        if lease.valid_until() <= Instant::now() {
            lease.mark_lost(LostReason::Expired);
            return;
        }
    }
}

/// A granted lock (exclusive, read, write, shared write, several keys) or semaphore
/// permits, with its fencing token(s).
///
/// While the guard lives, a background task renews the lease every third of its ttl (the
/// watchdog, unless [`Acquire::watchdog`](crate::Acquire::watchdog)`(false)` or
/// [`LockGuard::stop_watchdog`]). Dropping the guard releases the hold in a spawned task;
/// [`LockGuard::unlock`] releases it and reports the result.
///
/// If the lease is lost while the guard lives (the server says the hold is gone, or no
/// renewal succeeded before the lease's end), [`LockGuard::lost`] resolves, and the next
/// [`LockGuard::ensure_held`], [`LockGuard::refresh`] or [`LockGuard::unlock`] returns
/// [`Error::LeaseLost`]. The guard never takes the lock again by itself: work protected by
/// it must stop, and writes to other systems should carry [`LockGuard::token`] so that
/// those systems can refuse a writer whose lease ended (fencing).
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard {
    lease: Arc<Lease>,
    task: AbortHandle,
    released: bool,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("keys", &self.lease.hold.keys)
            .field("owner", &self.lease.hold.owner)
            .field("tokens", &self.lease.tokens)
            .field("state", &self.lease.state())
            .finish()
    }
}

impl LockGuard {
    /// A guard for a grant whose request was sent at `sent`; starts its watchdog (or its
    /// expiry timer).
    pub(crate) fn new(
        inner: Arc<Inner>,
        hold: Hold,
        tokens: Vec<i64>,
        sent: Instant,
        watchdog_on: bool,
    ) -> LockGuard {
        let interval = hold.refresh_interval();
        let lease = Arc::new(Lease {
            valid_until: Mutex::new(sent + hold.valid_for()),
            inner,
            hold,
            tokens,
            state: watch::channel(LeaseState::Held).0,
        });
        let handle = lease.inner.handle.clone();
        let task = if watchdog_on {
            handle.spawn(watchdog(lease.clone(), sent + interval))
        } else {
            handle.spawn(expiry_timer(lease.clone()))
        };
        LockGuard {
            lease,
            task: task.abort_handle(),
            released: false,
        }
    }

    /// The fencing token of the grant (for a [`Client::lock_many`](crate::Client::lock_many)
    /// guard: of its first key). Tokens of one key strictly increase over the server's life,
    /// so a store that remembers the largest token it accepted can refuse an older one.
    pub fn token(&self) -> i64 {
        self.lease.tokens.first().copied().unwrap_or_default()
    }

    /// The fencing tokens, one per key in the order the keys were given (one element
    /// except for [`Client::lock_many`](crate::Client::lock_many)).
    pub fn tokens(&self) -> &[i64] {
        &self.lease.tokens
    }

    /// The key (for [`Client::lock_many`](crate::Client::lock_many): the first key).
    pub fn key(&self) -> &[u8] {
        self.lease.hold.keys.first().map_or(&[], Vec::as_slice)
    }

    /// All keys of the hold.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.lease.hold.keys
    }

    /// The owner id this hold has on the server (unique per guard unless
    /// [`Acquire::owner`](crate::Acquire::owner) set one).
    pub fn owner(&self) -> &str {
        &self.lease.hold.owner
    }

    /// The lease length each grant and renewal asks for.
    pub fn ttl(&self) -> Duration {
        self.lease.hold.ttl
    }

    /// The lease's state now.
    pub fn state(&self) -> LeaseState {
        self.lease.state()
    }

    /// Until when the hold is surely valid, by the client's clock: the send time of the
    /// last grant or renewal plus the lease, less 1 % + 2 ms for clock drift.
    pub fn valid_until(&self) -> std::time::Instant {
        self.lease.valid_until().into_std()
    }

    /// `Ok(())` while the lease is held and its time is not up; [`Error::LeaseLost`]
    /// otherwise. Cheap (no request): call it before each step of protected work.
    pub fn ensure_held(&self) -> Result<()> {
        self.lease.ensure_held()
    }

    /// Whether [`LockGuard::ensure_held`] would succeed.
    pub fn is_held(&self) -> bool {
        self.ensure_held().is_ok()
    }

    /// A future that resolves with the reason when the lease is lost while the guard
    /// lives. It never resolves if the lease is released or the guard dropped first, so
    /// use it in `tokio::select!` beside the protected work:
    ///
    /// ```no_run
    /// # async fn demo(client: baton_client::Client) -> baton_client::Result<()> {
    /// # use std::time::Duration;
    /// # async fn work() {}
    /// let guard = client.lock("report", Duration::from_secs(10)).await?;
    /// tokio::select! {
    ///     () = work() => guard.unlock().await?,
    ///     reason = guard.lost() => eprintln!("lock lost ({reason}); work abandoned"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn lost(&self) -> impl Future<Output = LostReason> + Send + 'static {
        let mut state = self.lease.state.subscribe();
        async move {
            loop {
                if let LeaseState::Lost(reason) = *state.borrow_and_update() {
                    return reason;
                }
                if state.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// A receiver of the lease's state, for code that wants to see every change.
    pub fn watch(&self) -> watch::Receiver<LeaseState> {
        self.lease.state.subscribe()
    }

    /// Renews the lease now (the watchdog does this by itself). Fails with
    /// [`Error::LeaseLost`] when the hold is gone; then the guard stays lost.
    pub async fn refresh(&self) -> Result<()> {
        self.lease.renew_or_mark().await
    }

    /// Stops the watchdog: the lease then ends on the server after its ttl (unless
    /// [`LockGuard::refresh`] renews it), and the guard reports it lost
    /// ([`LostReason::Expired`]) when its time is up.
    pub fn stop_watchdog(&mut self) {
        self.task.abort();
        let lease = self.lease.clone();
        self.task = self
            .lease
            .inner
            .handle
            .spawn(expiry_timer(lease))
            .abort_handle();
    }

    /// Releases the hold and reports the result: `Ok(())` when it was still held,
    /// [`Error::LeaseLost`] when the lease had been lost before or the server held nothing
    /// (the release is sent anyway). A release is retried after a connection failure; if
    /// the first attempt did release and only its reply was lost, the retry finds nothing
    /// and this reports [`Error::LeaseLost`] too.
    pub async fn unlock(mut self) -> Result<()> {
        self.task.abort();
        self.released = true;
        let before = self.lease.ensure_held();
        let released_all = self.lease.release().await;
        self.lease.state.send_if_modified(|state| {
            let changed = *state == LeaseState::Held;
            if changed {
                *state = LeaseState::Released;
            }
            changed
        });
        before?;
        match released_all {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::LeaseLost(LostReason::NotHeld)),
            Err(err) => Err(err),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.task.abort();
        if self.released {
            return;
        }
        let lease = self.lease.clone();
        self.lease.inner.handle.spawn(async move {
            // Nobody is left to hear the answer; a hold that is not released here ends with
            // its lease.
            let _ = lease.release().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{Conn, ConnConfig};
    use crate::hold::Kind;

    /// A client whose connection is never opened (these tests send nothing).
    fn offline() -> Arc<Inner> {
        let node = redis::Client::open("redis://127.0.0.1:1/").expect("url");
        let config = ConnConfig {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            retry_timeout: Duration::from_secs(1),
        };
        Arc::new(Inner {
            conn: Conn::new(vec![node], config).expect("lazy connection"),
            handle: tokio::runtime::Handle::current(),
            default_ttl: Duration::from_secs(30),
        })
    }

    fn lock_hold(ttl_ms: u64) -> Hold {
        Hold {
            kind: Kind::Lock,
            keys: vec![b"k".to_vec()],
            owner: "o".into(),
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_watchdog_the_lease_is_lost_when_its_time_is_up() {
        let guard = LockGuard::new(offline(), lock_hold(1000), vec![7], Instant::now(), false);
        let lost = guard.lost();
        // Valid for the lease less 1 % + 2 ms of drift allowance: 968 ms.
        tokio::time::advance(Duration::from_millis(967)).await;
        assert!(guard.is_held());
        assert_eq!(guard.state(), LeaseState::Held);
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(lost.await, LostReason::Expired);
        assert!(matches!(
            guard.ensure_held(),
            Err(Error::LeaseLost(LostReason::Expired))
        ));
        assert_eq!(guard.state(), LeaseState::Lost(LostReason::Expired));
        // Dropping it would send a release to the offline node; nothing to see there.
        std::mem::forget(guard);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_lease_stays_lost_and_a_second_loss_changes_nothing() {
        let guard = LockGuard::new(offline(), lock_hold(1000), vec![7], Instant::now(), false);
        let mut watch = guard.watch();
        guard.lease.mark_lost(LostReason::NotHeld);
        guard.lease.mark_lost(LostReason::Expired);
        assert_eq!(
            *watch.borrow_and_update(),
            LeaseState::Lost(LostReason::NotHeld)
        );
        assert_eq!(guard.lost().await, LostReason::NotHeld);
        // A renewal of a lost lease is refused without asking the server again.
        assert!(matches!(
            guard.refresh().await,
            Err(Error::LeaseLost(LostReason::NotHeld))
        ));
        std::mem::forget(guard);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_keys_and_owner_are_the_grant_s() {
        let hold = Hold {
            kind: Kind::Multi,
            keys: vec![b"a".to_vec(), b"b".to_vec()],
            owner: "me".into(),
            ttl: Duration::from_secs(3),
        };
        let guard = LockGuard::new(offline(), hold, vec![5, 6], Instant::now(), false);
        assert_eq!(guard.token(), 5);
        assert_eq!(guard.tokens(), [5, 6]);
        assert_eq!(guard.key(), b"a");
        assert_eq!(guard.owner(), "me");
        assert_eq!(guard.ttl(), Duration::from_secs(3));
        std::mem::forget(guard);
    }
}
