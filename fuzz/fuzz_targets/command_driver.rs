//! The body of the `command` fuzz target, shared with `tests/fuzz_regressions.rs` so the
//! corpus cases kept under `fuzz/seeds/command/` run in `cargo test` as regression tests.
//!
//! Arbitrary bytes → request decoder → command parser → lock table, with a clock that moves
//! forward between commands. Checks: no panic, and the table's invariants after every
//! command (one exclusive holder, modes never mixed, tokens rising).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use baton::cmd::{self, args::ArgLimits};
use baton::persist::{HoldKind, Record};
use baton::resp::{DecodeLimits, Decoder};
use baton::table::{LockTable, Now, Outcome, TableConfig};

/// Runs one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let base = Instant::now();
    let table = LockTable::new(
        TableConfig {
            shards: 4,
            max_waiters: 64,
            origin: base,
            token_seed: 0,
        },
        None,
    );
    let limits = ArgLimits {
        max_key_bytes: 16,
        max_ttl_ms: 10_000,
    };
    let mut decoder = Decoder::new(DecodeLimits {
        max_bulk_bytes: 64,
        max_args: 16,
        max_inline_bytes: 256,
    });
    let mut buf = BytesMut::from(data);
    let mut ms = 0u64;
    let mut last_token = 0i64;
    let mut pending = Vec::new();
    while let Ok(Some(req)) = decoder.decode(&mut buf) {
        ms += u64::from(req.args.len() as u8 % 7) * 50;
        let now = Now {
            mono: base + Duration::from_millis(ms),
            wall_ms: 1_000_000 + ms,
        };
        table.expire(now, 1_000);
        let Ok(command) = cmd::parse(&req, limits) else {
            continue;
        };
        let Some(txc) = command.as_tx() else { continue };
        let keys = txc.keys();
        let ran = table.run(&keys, now, |tx| txc.apply(tx));
        if let Ok(Outcome::Blocked(b)) = ran.value {
            pending.push(b);
        }
        // Grants delivered to waiters count as grants too.
        for b in pending.iter_mut() {
            let _ = b.rx.try_recv();
        }
        check(&table, now, &mut last_token);
    }
}

fn check(table: &LockTable, now: Now, last_token: &mut i64) {
    let mut holds: HashMap<Vec<u8>, Vec<HoldKind>> = HashMap::new();
    let mut max_token = 0;
    table.dump(now, &mut |r| {
        if let Record::Grant {
            key, hold, token, ..
        } = r
        {
            holds.entry(key.to_vec()).or_default().push(hold);
            max_token = max_token.max(token);
        }
    });
    for (key, kinds) in &holds {
        let exclusive = kinds.iter().filter(|k| **k == HoldKind::Exclusive).count();
        assert!(
            exclusive <= 1 && (exclusive == 0 || kinds.len() == 1),
            "{key:?}: {kinds:?}"
        );
        let read = kinds.contains(&HoldKind::Read);
        let shared = kinds.contains(&HoldKind::SharedWrite);
        assert!(!(read && shared), "{key:?}: readers with shared writers");
    }
    assert!(table.last_token() >= *last_token, "tokens went backwards");
    *last_token = table.last_token();
    assert!(
        max_token <= table.last_token(),
        "a held token above the counter"
    );
}
