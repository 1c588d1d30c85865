//! Client for the baton lock server (the lock guards, watchdog and blocking facade are
//! being built in this crate; see the repository's issue 20).
#![warn(missing_docs)]
