//! Password checks for AUTH and `HELLO ... AUTH`: a comparison in constant time, the count of
//! failures, and a growing delay per connection after each failure.
//!
//! # Constant time
//! `==` on byte slices returns at the first byte that differs, so the time of a WRONGPASS
//! tells a client how long a prefix of its guess is right, and a password can be guessed
//! byte by byte. [`password_matches`] looks at every byte of the password whatever the
//! guess, through the `subtle` crate (the RustCrypto project's constant-time primitives:
//! its `ConstantTimeEq` and `Choice` keep the compiler from turning the comparison back
//! into an early exit), so its time depends on the password's length only, which is fixed.
//!
//! # Failures
//! Every WRONGPASS is counted server-wide (INFO stats `acl_access_denied_auth`, Redis 7's
//! field for failed AUTH; `baton_auth_failures_total`). A connection's failures also slow
//! down its next attempts: after `n` failures on a connection, its next AUTH (or
//! `HELLO ... AUTH`) is answered only after [`delay_after`]`(n)`: 100 ms after one failure,
//! doubling up to 2 s. The wait is the connection's own (the command returns an
//! `Effect::Await` of a timer), so no worker thread sleeps and no other connection waits;
//! the pipeline behind the attempt waits with it. A success clears the connection's count;
//! RESET does not.

use std::sync::atomic::Ordering;
use std::time::Duration;

use subtle::ConstantTimeEq;

use super::{Effect, Executed, Pending, Session, Shared};
use crate::error::RespError;
use crate::resp::Reply;

/// `-WRONGPASS ...`: Redis's text for a wrong user or password.
pub const WRONGPASS: RespError =
    RespError::fixed("WRONGPASS invalid username-password pair or user is disabled.");

/// `-ERR AUTH <password> called without any password configured ...`: AUTH while no
/// password is set (Redis's text; not counted as a failure).
pub const NO_PASSWORD: RespError = RespError::fixed(
    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
);

/// The delay after a connection's first failure; each further failure doubles it.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(2);

/// How long the next AUTH on a connection that failed `failures` times in a row waits
/// before its reply: 0, 100 ms, 200 ms, 400 ms, ... up to [`MAX_DELAY`].
pub fn delay_after(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => FIRST_DELAY
            .checked_mul(1u32.checked_shl(n - 1).unwrap_or(u32::MAX))
            .map_or(MAX_DELAY, |d| d.min(MAX_DELAY)),
    }
}

/// Whether `given` is `want`, in a time that depends on `want`'s length only.
pub fn password_matches(given: &[u8], want: &[u8]) -> bool {
    let mut same = (given.len() as u64).ct_eq(&(want.len() as u64));
    for (i, w) in want.iter().enumerate() {
        same &= given.get(i).copied().unwrap_or(0).ct_eq(w);
    }
    same.into()
}

/// Checks `user` and `pass` against the ACL users for `session`, counts a failure, and on
/// success runs the session as that user (authenticated).
///
/// Returns the check's outcome and how long its reply must wait (from the connection's
/// failures before this attempt). A disabled or unknown user is a WRONGPASS like a wrong
/// password, and its password is compared all the same.
pub fn check(
    server: &Shared,
    session: &mut Session,
    user: &[u8],
    pass: &[u8],
) -> (Result<(), RespError>, Duration) {
    let acl = &server.acl;
    if user == b"default" && acl.default_is_open() {
        return (Err(NO_PASSWORD), Duration::ZERO);
    }
    let delay = delay_after(session.auth_failures);
    let found = acl.user(&String::from_utf8_lossy(user));
    let ok = match &found {
        Some(u) => u.password_ok(pass) & u.enabled(),
        None => {
            // The same work as for a known user: the time tells nothing about names.
            let _ = crate::acl::User::new("").password_ok(pass);
            false
        }
    };
    let Some(found) = found.filter(|_| ok) else {
        session.auth_failures = session.auth_failures.saturating_add(1);
        server
            .connections
            .auth_failures
            .fetch_add(1, Ordering::Relaxed);
        return (Err(WRONGPASS), delay);
    };
    session.auth_failures = 0;
    if let Err(err) = admit(server, session, found) {
        return (Err(err), delay);
    }
    session.authenticated = true;
    (Ok(()), delay)
}

/// Runs `session` as `user`, unless `user`'s `max-connections` are all taken by other
/// connections.
///
/// # Errors
/// `-ERR max connections reached for user '<name>' (max N)`; the session is unchanged.
fn admit(
    server: &Shared,
    session: &mut Session,
    user: std::sync::Arc<crate::acl::User>,
) -> Result<(), RespError> {
    let max = user.limits().max_connections;
    if max == 0 {
        session.become_user(user);
        return Ok(());
    }
    // One AUTH of a limited user at a time: the count and the change of user are one step.
    let _gate = server.acl.auth_gate.lock();
    let me = session.id;
    let others = server
        .clients
        .count_where(|c| c.id != me && !c.kill.is_killed() && *c.user == *user.name());
    if others as u64 >= max {
        return Err(max_connections_reached(user.name(), max));
    }
    session.become_user(user);
    Ok(())
}

/// `-ERR max connections reached for user '<name>' (max N)`: AUTH as a user whose
/// `max-connections:N` are all open.
pub fn max_connections_reached(user: &str, max: u64) -> RespError {
    RespError::new(format!(
        "ERR max connections reached for user '{user}' (max {max})"
    ))
}

/// `reply`, sent after `delay` (at once when it is zero).
pub fn answer_after(delay: Duration, reply: Reply) -> Executed {
    if delay.is_zero() {
        return Executed::reply(reply);
    }
    let error = matches!(reply, Reply::Error(_));
    let work = async move {
        tokio::time::sleep(delay).await;
        reply
    };
    Executed {
        effect: Effect::Await(if error {
            Pending::failing(work)
        } else {
            Pending::new(work)
        }),
        lsn: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_second_attempt_up_to_the_cap() {
        let ms = |n| delay_after(n).as_millis();
        assert_eq!(
            (0..7).map(ms).collect::<Vec<_>>(),
            vec![0, 100, 200, 400, 800, 1600, 2000]
        );
        assert_eq!(delay_after(40), MAX_DELAY);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn passwords_match_only_when_equal() {
        assert!(password_matches(b"s3cret", b"s3cret"));
        for wrong in [
            &b""[..],
            b"s3cre",
            b"s3cret!",
            b"S3cret",
            b"s3cres",
            b"\0\0\0\0\0\0",
        ] {
            assert!(!password_matches(wrong, b"s3cret"), "{wrong:?}");
        }
        assert!(!password_matches(b"x", b""));
    }
}
