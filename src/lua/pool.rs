//! The script threads: a fixed set of OS threads that run scripts (and other long
//! synchronous work, such as KEYS) so that the runtime's I/O workers never do.
//!
//! Why: a script may run until `--lua-time-limit-ms`; on an I/O worker it would stall
//! every connection that worker serves, and as many runaway scripts as workers would stall
//! the whole server. Here a runaway script occupies one script thread; connections waiting
//! for a script wait in the queue, while PING, LOCK and the rest are served as usual.
//! The number of threads also bounds the number of Lua VMs (one per thread), which is what
//! makes the Lua memory limit hold server-wide (see [`super::EngineConfig`]).
//!
//! Jobs are queued on a `std::sync::mpsc` channel whose receiver the threads share under a
//! mutex: the standard library's queue is enough for a handful of consumers. The threads
//! start on the first job and end when the pool (its sender) is dropped.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

/// One unit of work.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Stack of a script thread: Lua's C stack and the pattern matcher's recursion.
const STACK_BYTES: usize = 8 << 20;

/// A fixed set of threads fed from one queue.
#[derive(Debug)]
pub struct Pool {
    threads: usize,
    sender: OnceLock<Sender<Job>>,
}

impl Pool {
    /// A pool of `threads` (at least one) threads, started lazily.
    pub fn new(threads: usize) -> Self {
        Pool {
            threads: threads.max(1),
            sender: OnceLock::new(),
        }
    }

    /// How many threads run jobs.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queues `job`; false if no thread could be started.
    pub fn submit(&self, job: Job) -> bool {
        let sender = self.sender.get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.threads {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("baton-script-{i}"))
                    .stack_size(STACK_BYTES)
                    .spawn(move || work(&rx));
                if let Err(err) = spawned {
                    tracing::error!("cannot start a script thread: {err}");
                }
            }
            tx
        });
        sender.send(job).is_ok()
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        // A panicking job loses its reply (the caller sees the channel closed), not the
        // thread.
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a script-thread job panicked");
        }
    }
}
