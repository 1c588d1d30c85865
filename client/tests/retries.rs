//! baton-client's retries against a real server behind a proxy that breaks connections:
//! a grant whose reply is lost is retried by the same owner and gets the same token, and
//! a lease whose server cannot be reached is reported lost when its time is up.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_client::{Client, LostReason};
use common::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MS: Duration = Duration::from_millis(1);

/// A TCP proxy in front of a server that can swallow the next reply and then close that
/// connection (a reply lost in a network failure after the server acted).
#[derive(Default)]
struct Proxy {
    /// When set, the next bytes from the server are kept here instead of forwarded, and
    /// the connection is closed.
    drop_next_reply: AtomicBool,
    dropped: Mutex<Vec<u8>>,
    connections: AtomicUsize,
}

impl Proxy {
    /// Starts the proxy on a free port in front of `server`; returns it and its URL.
    async fn start(server: std::net::SocketAddr) -> (Arc<Proxy>, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("redis://{}/", listener.local_addr().expect("addr"));
        let proxy = Arc::new(Proxy::default());
        let shared = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(shared.clone().serve(client, server));
            }
        });
        (proxy, url)
    }

    async fn serve(self: Arc<Proxy>, client: TcpStream, server: std::net::SocketAddr) {
        let Ok(upstream) = TcpStream::connect(server).await else {
            return;
        };
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = upstream.into_split();
        let to_server = async {
            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        };
        let to_client = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if self.drop_next_reply.swap(false, Ordering::SeqCst) {
                    self.dropped
                        .lock()
                        .expect("lock")
                        .extend_from_slice(&buf[..n]);
                    return;
                }
                if client_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        };
        // Either direction ending closes both sockets (they drop here).
        tokio::select! {
            () = to_server => {}
            () = to_client => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_whose_reply_was_lost_is_retried_for_the_same_token() {
    let server = Server::start();
    let (proxy, url) = Proxy::start(server.addr).await;
    let client = Client::connect(&url).await.expect("connect");
    proxy.drop_next_reply.store(true, Ordering::SeqCst);

    let guard = client.lock("k", 5000 * MS).await.expect("granted on retry");

    // The server's first answer (":<token>\r\n") never reached the client...
    let dropped = String::from_utf8(proxy.dropped.lock().expect("lock").clone()).expect("utf8");
    let first: i64 = dropped
        .trim_start_matches(':')
        .trim_end()
        .parse()
        .expect("an integer reply was dropped");
    // ...the client reconnected and asked again as the same owner: same grant, same token.
    assert!(proxy.connections.load(Ordering::SeqCst) >= 2);
    assert_eq!(guard.token(), first);
    let info = client.lock_info("k").await.expect("info").expect("held");
    assert_eq!(info.holders.len(), 1);
    assert_eq!(info.holders[0].token, first);
    guard.unlock().await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_lost_lease_when_its_time_is_up() {
    let mut server = Server::start();
    let client = Client::builder()
        .node(server.url())
        .connect_timeout(100 * MS)
        .build()
        .await
        .expect("connect");
    let guard = client.lock("k", 600 * MS).await.expect("granted");
    server.stop();
    let reason = tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .expect("reported lost");
    assert_eq!(reason, LostReason::Expired);
    assert!(std::time::Instant::now() >= guard.valid_until());
}
