//! The history of a Jepsen-style run: one record per client operation, with its
//! invocation and completion on one monotonic clock, the node it was sent to, and what
//! came back.
//!
//! An outcome is `Ok` (a reply that says what happened), `Fail` (a reply that says the
//! operation did not happen: LOCK's nil) or `Info` (unknown: timeout, closed connection,
//! or any error reply such as `-TRYAGAIN`, since an error from a replicated server does
//! not prove that the command's log entry will never commit).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `LOCK key owner ttl [WAIT ms]`.
    Lock {
        /// The lease asked for, ms.
        ttl: u64,
        /// The WAIT argument, if any.
        wait: Option<u64>,
    },
    /// `REFRESH key owner ttl`.
    Refresh {
        /// The lease asked for, ms.
        ttl: u64,
    },
    /// `UNLOCK key owner`.
    Unlock,
    /// `LOCK.INFO key` (owner empty).
    Info,
}

/// One holder as LOCK.INFO lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The owner.
    pub owner: String,
    /// `exclusive`, `read`, `shared-write`.
    pub mode: String,
    /// Its fencing token.
    pub token: i64,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// LOCK granted with this token.
    Granted(i64),
    /// REFRESH/UNLOCK's integer (1 = done, 0 = the owner held nothing).
    Int(i64),
    /// LOCK.INFO's holders (empty for nil).
    Holders(Vec<Holder>),
    /// LOCK's nil: definitely not granted.
    NotGranted,
    /// Unknown outcome, with the reason (timeout, closed, an error reply).
    Unknown(String),
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Op {
    /// The client (worker) that ran it; `usize::MAX` for the auditor.
    pub client: usize,
    /// The node it was sent to.
    pub node: u64,
    /// The key.
    pub key: String,
    /// The owner (empty for LOCK.INFO).
    pub owner: String,
    /// What was asked.
    pub call: Call,
    /// When it was sent (since the history's start).
    pub invoke: Duration,
    /// When its reply came, or when the client gave up (Unknown).
    pub complete: Duration,
    /// What came back.
    pub outcome: Outcome,
}

/// A fault or another event of the run, for the history file.
#[derive(Debug, Clone)]
pub struct Event {
    /// When.
    pub at: Duration,
    /// What.
    pub what: String,
}

/// A shared, append-only history.
#[derive(Clone)]
pub struct History {
    start: Instant,
    inner: Arc<Mutex<(Vec<Op>, Vec<Event>)>>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    /// An empty history whose clock starts now.
    pub fn new() -> History {
        History {
            start: Instant::now(),
            inner: Arc::new(Mutex::new((Vec::new(), Vec::new()))),
        }
    }

    /// Time since the start.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Appends a finished operation.
    pub fn push(&self, op: Op) {
        self.inner.lock().0.push(op);
    }

    /// Notes an event (a fault, a heal).
    pub fn event(&self, what: impl Into<String>) {
        let at = self.now();
        self.inner.lock().1.push(Event {
            at,
            what: what.into(),
        });
    }

    /// A copy of the operations, in completion order.
    pub fn ops(&self) -> Vec<Op> {
        self.inner.lock().0.clone()
    }

    /// A copy of the events.
    pub fn events(&self) -> Vec<Event> {
        self.inner.lock().1.clone()
    }

    /// The whole history as text, one line per operation or event, by invocation time.
    pub fn render(&self) -> String {
        let (ops, events) = {
            let g = self.inner.lock();
            (g.0.clone(), g.1.clone())
        };
        let mut lines: Vec<(Duration, String)> = ops
            .iter()
            .map(|op| (op.invoke, render_op(op)))
            .chain(events.iter().map(|e| {
                (
                    e.at,
                    format!("{:>10.3} ---------- EVENT {}", ms(e.at), e.what),
                )
            }))
            .collect();
        lines.sort_by_key(|(at, _)| *at);
        let mut out = String::from(
            "# invoke_ms complete_ms client node key owner call -> outcome (times since start)\n",
        );
        for (_, line) in lines {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// Milliseconds as a float, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One operation as a history line.
pub fn render_op(op: &Op) -> String {
    let client = if op.client == usize::MAX {
        "audit".to_string()
    } else {
        format!("c{}", op.client)
    };
    let call = match &op.call {
        Call::Lock { ttl, wait: None } => format!("LOCK {ttl}"),
        Call::Lock { ttl, wait: Some(w) } => format!("LOCK {ttl} WAIT {w}"),
        Call::Refresh { ttl } => format!("REFRESH {ttl}"),
        Call::Unlock => "UNLOCK".to_string(),
        Call::Info => "LOCK.INFO".to_string(),
    };
    let outcome = match &op.outcome {
        Outcome::Granted(t) => format!("ok token={t}"),
        Outcome::Int(i) => format!("ok {i}"),
        Outcome::Holders(h) => {
            let mut s = String::from("ok [");
            for (i, h) in h.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{} {} {}", h.owner, h.mode, h.token);
            }
            s.push(']');
            s
        }
        Outcome::NotGranted => "fail nil".to_string(),
        Outcome::Unknown(why) => format!("info ({why})"),
    };
    format!(
        "{:>10.3} {:>10.3} {} n{} {} {} {} -> {}",
        ms(op.invoke),
        ms(op.complete),
        client,
        op.node,
        op.key,
        if op.owner.is_empty() { "-" } else { &op.owner },
        call,
        outcome
    )
}
