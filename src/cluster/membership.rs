//! The membership: which nodes vote, and the peer address each was added with.
//!
//! raft-rs keeps the voters (its `ConfState`) and changes them with conf-change entries,
//! one node at a time (`ConfChange` `AddNode` / `RemoveNode`, applied when committed, as
//! etcd does). The peer address of an added node travels in the conf change's `context`,
//! so every node that applies the entry learns it. The addresses are kept with the
//! `ConfState` wherever raft-rs keeps it:
//!
//! - in a snapshot, as an envelope around the table's records
//!   ([`wrap`]/[`split`]): `0u32 | len: u32 LE | "1=host:port,2=..." | records`. A record
//!   frame never starts with a zero length, so a snapshot without the envelope (an older
//!   data directory) still reads as records alone;
//! - in `raft.log`, the bootstrap membership (from `--peers`) as the first frame of a new
//!   log, for the entries before the first snapshot (see `storage`).

use super::{parse_peers, Peers};

/// Bytes before the membership text in a snapshot's data.
const ENVELOPE_HEADER: usize = 8;

/// `1=host:port,2=host:port` (the `--peers` syntax).
pub(crate) fn encode(peers: &Peers) -> String {
    peers
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The snapshot data for `peers` and the table's record frames.
pub(crate) fn wrap(peers: &Peers, records: &[u8]) -> Vec<u8> {
    let text = encode(peers);
    let mut out = Vec::with_capacity(ENVELOPE_HEADER + text.len() + records.len());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(records);
    out
}

/// The membership a snapshot's data carries (None: an older snapshot without it, or a
/// damaged envelope) and the table's record frames.
pub(crate) fn split(data: &[u8]) -> (Option<Peers>, &[u8]) {
    let Some(header) = data.get(..ENVELOPE_HEADER) else {
        return (None, data);
    };
    if header[..4] != [0, 0, 0, 0] {
        return (None, data);
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let Some(text) = data.get(ENVELOPE_HEADER..ENVELOPE_HEADER + len) else {
        return (None, &[]);
    };
    let peers = std::str::from_utf8(text)
        .ok()
        .and_then(|t| parse_peers(t).ok());
    (peers, &data[ENVELOPE_HEADER + len..])
}

/// Checks a peer address given to `CLUSTER ADDNODE`: `host:port`, a port of 1 to 65535,
/// no spaces or commas (the address is stored in the `--peers` syntax).
pub(crate) fn valid_addr(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && !addr.contains([',', '=', ' ', '\r', '\n'])
        && port.parse::<u16>().is_ok_and(|p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_round_trips_and_older_snapshots_read_as_records() {
        let peers: Peers = [(1, "127.0.0.1:7101".into()), (4, "h:7104".into())].into();
        let data = wrap(&peers, b"\x05\0\0\0records");
        let (got, rest) = split(&data);
        assert_eq!(got, Some(peers));
        assert_eq!(rest, b"\x05\0\0\0records");
        let (got, rest) = split(b"\x05\0\0\0records");
        assert_eq!(got, None);
        assert_eq!(rest, b"\x05\0\0\0records");
        assert_eq!(split(b"").1, b"");
    }

    #[test]
    fn addresses() {
        assert!(valid_addr("127.0.0.1:7104"));
        assert!(valid_addr("node4.local:1"));
        assert!(valid_addr("[::1]:7104"));
        assert!(!valid_addr("127.0.0.1"));
        assert!(!valid_addr(":7104"));
        assert!(!valid_addr("h:0"));
        assert!(!valid_addr("h:70000"));
        assert!(!valid_addr("a,b:1"));
    }
}
