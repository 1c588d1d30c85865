//! Raw-socket clients that misbehave, on their own threads: slowloris clients (a command
//! one byte at a time, very slowly) and a client that never reads its replies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// `PING` as a RESP array: 14 bytes.
pub const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// Slowloris clients: each sends `PING` one byte every `gap` on its own connection,
/// reads the `+PONG`, and starts over until stopped.
pub struct Slowloris {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<u64, String>>>,
}

impl Slowloris {
    /// Starts `clients` of them against `addr`.
    pub fn start(addr: SocketAddr, clients: usize, gap: Duration) -> Slowloris {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || slow_client(addr, gap, &stop))
            })
            .collect();
        Slowloris { stop, threads }
    }

    /// Stops them (each finishes its current command); per client, the PINGs answered, or
    /// what went wrong.
    pub fn finish(self) -> Vec<Result<u64, String>> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    }
}

fn slow_client(addr: SocketAddr, gap: Duration, stop: &AtomicBool) -> Result<u64, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    let mut answered = 0;
    while !stop.load(Ordering::Relaxed) {
        for byte in PING {
            s.write_all(&[*byte])
                .map_err(|e| format!("write after {answered} PINGs: {e}"))?;
            std::thread::sleep(gap);
        }
        let mut reply = [0u8; 7];
        s.read_exact(&mut reply)
            .map_err(|e| format!("reply after {answered} PINGs: {e}"))?;
        if &reply != b"+PONG\r\n" {
            return Err(format!("reply {:?}", String::from_utf8_lossy(&reply)));
        }
        answered += 1;
    }
    Ok(answered)
}

/// A client that pipelines `request` over and over and never reads a reply, until the
/// server stops reading it (its writes block) or closes it.
pub struct NonReader {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<NonReaderFigures>,
}

/// What the non-reading client saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct NonReaderFigures {
    /// Requests written (whole or in part).
    pub requests: u64,
    /// Writes that timed out: the server had stopped reading.
    pub blocked_writes: u64,
    /// Whether a write failed: the server closed the connection.
    pub closed: bool,
}

impl NonReader {
    /// Starts it against `addr`.
    pub fn start(addr: SocketAddr, request: Vec<u8>) -> NonReader {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut figures = NonReaderFigures::default();
            let Ok(mut s) = TcpStream::connect(addr) else {
                figures.closed = true;
                return figures;
            };
            let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
            let batch = request.repeat(256);
            while !flag.load(Ordering::Relaxed) {
                match s.write(&batch) {
                    Ok(0) => {
                        figures.closed = true;
                        break;
                    }
                    Ok(n) => figures.requests += n.div_ceil(request.len()) as u64,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        figures.blocked_writes += 1
                    }
                    Err(_) => {
                        figures.closed = true;
                        break;
                    }
                }
            }
            figures
        });
        NonReader { stop, thread }
    }

    /// Stops it (closing its connection) and returns what it saw.
    pub fn finish(self) -> NonReaderFigures {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}
