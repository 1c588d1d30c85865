//! Issue 18, against the real binary: TLS on `--tls-port`, beside or instead of the plain
//! port, with certificates made by the test (rcgen): a CA, a server certificate for
//! 127.0.0.1 and localhost, a client certificate, and a second CA the server does not trust.
//! Clients: redis-cli `--tls` (when it was built with TLS), redis-py `ssl=True` (when a
//! Python with redis-py is found; tests/interop/setup.sh makes one) and rustls in the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The PEM files of one test, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate (for `localhost`, 127.0.0.1 and `extra_ips`) and a client
    /// certificate signed by it; another CA with a client certificate of its own.
    fn new(extra_ips: &[IpAddr]) -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = make_ca("baton test CA");
        let other = make_ca("some other CA");
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(extra_ips.iter().map(IpAddr::to_string));
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).expect("write pem");
        };
        write("ca.pem", ca.pem());
        write("other-ca.pem", other.pem());
        let (cert, key) = leaf(&ca, names, ExtendedKeyUsagePurpose::ServerAuth);
        write("server.pem", cert);
        write("server.key", key);
        let (cert, key) = leaf(
            &ca,
            vec!["client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        write("client.pem", cert);
        write("client.key", key);
        let (cert, key) = leaf(
            &other,
            vec!["client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        write("stranger.pem", cert);
        write("stranger.key", key);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// `--tls-port 0 --tls-cert-file ... --tls-key-file ...` and `more`.
    fn flags(&self, more: &[&str]) -> Vec<String> {
        let mut flags = vec![
            "--tls-port".to_string(),
            "0".into(),
            "--tls-cert-file".into(),
            self.arg("server.pem"),
            "--tls-key-file".into(),
            self.arg("server.key"),
        ];
        flags.extend(more.iter().map(|s| s.to_string()));
        flags
    }
}

fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// A certificate for `names` signed by `ca`, and its key, as PEM.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(names).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "baton test");
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, ca).expect("sign");
    (cert.pem(), key.serialize_pem())
}

/// The real binary; the ports it logged as ready.
struct Baton {
    child: Child,
    plain: Option<u16>,
    tls: Option<u16>,
}

impl Baton {
    /// `baton --bind BIND --persistence off FLAGS`; waits for the TLS port's ready line.
    fn start(bind: &str, flags: &[String]) -> Baton {
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["--bind", bind, "--persistence", "off"])
            .args(flags)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn baton");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut plain = None;
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let port = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| {
                        p.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                            .parse::<u16>()
                            .ok()
                    });
                if line.contains("baton ready") {
                    plain = port;
                } else if line.contains("baton TLS ready") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send((plain, port));
                    }
                }
            }
        });
        let (plain, tls) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("baton logged its TLS port as ready");
        Baton { child, plain, tls }
    }

    fn tls_port(&self) -> u16 {
        self.tls.expect("TLS port")
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A rustls client trusting `ca`, presenting `cert` (certificate and key files) if given.
fn client_config(ca: &Path, cert: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(der.expect("ca pem")).expect("add ca");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match cert {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .expect("cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("cert pem");
            let key = PrivateKeyDer::from_pem_file(key).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert")
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `ip:port` (the handshake completes on the first read or write).
fn connect(ip: IpAddr, port: u16, config: Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect((ip, port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let name = ServerName::IpAddress(ip.into());
    let conn = rustls::ClientConnection::new(config, name).expect("client");
    rustls::StreamOwned::new(conn, tcp)
}

fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// One RESP request.
fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

/// Sends one request and reads one reply line (a bulk reply's two lines); an error when
/// the connection fails or closes first (a refused handshake shows here: TLS 1.3 lets the
/// client finish its side before the server has checked the client's certificate).
fn request<S: Read + Write>(stream: &mut S, args: &[&str]) -> Result<String, String> {
    stream
        .write_all(&resp(args))
        .and_then(|()| stream.flush())
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&got))),
            Ok(_) => got.push(byte[0]),
            Err(err) => return Err(err.to_string()),
        }
        let text = String::from_utf8_lossy(&got).to_string();
        let lines = text.matches("\r\n").count();
        let done = if text.starts_with('$') && !text.starts_with("$-1") {
            lines == 2
        } else {
            lines == 1
        };
        if done {
            return Ok(text.trim_end().to_string());
        }
    }
}

/// Whether this redis-cli was built with TLS (Debian's is).
fn redis_cli_has_tls() -> bool {
    let Ok(out) = Command::new("redis-cli").arg("--help").output() else {
        return false;
    };
    let help = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    help.contains("--tls")
}

fn redis_cli(args: &[String]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_string()
}

#[test]
fn redis_cli_tls_gets_pong() {
    if !redis_cli_has_tls() {
        eprintln!("skipped: this redis-cli was built without TLS (no --tls in its --help)");
        return;
    }
    let pki = Pki::new(&[]);
    let baton = Baton::start("127.0.0.1", &pki.flags(&["--port", "0"]));
    let port = baton.tls_port().to_string();
    let reply = redis_cli(&[
        "--tls".into(),
        "--cacert".into(),
        pki.arg("ca.pem"),
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.clone(),
        "PING".into(),
    ]);
    assert_eq!(reply, "PONG");
    // And with a client certificate, against a server that requires one.
    drop(baton);
    let baton = Baton::start(
        "127.0.0.1",
        &pki.flags(&["--port", "0", "--tls-ca-cert-file", &pki.arg("ca.pem")]),
    );
    let mut args = vec![
        "--tls".to_string(),
        "--cacert".into(),
        pki.arg("ca.pem"),
        "--cert".into(),
        pki.arg("client.pem"),
        "--key".into(),
        pki.arg("client.key"),
        "-p".into(),
        baton.tls_port().to_string(),
    ];
    args.extend(["LOCK", "k", "me", "10000"].map(String::from));
    let token: i64 = redis_cli(&args)
        .parse()
        .expect("LOCK returns a fencing token");
    assert!(token > 0);
}

#[test]
fn rust_client_locks_and_unlocks_over_tls_beside_the_plain_port() {
    let pki = Pki::new(&[]);
    // A free plain port, beside the TLS one.
    let plain = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let baton = Baton::start("127.0.0.1", &pki.flags(&["--port", &plain.to_string()]));
    assert_eq!(baton.plain, Some(plain));
    let config = client_config(&pki.path("ca.pem"), None);
    let mut tls = connect(localhost(), baton.tls_port(), config);
    let token = request(&mut tls, &["LOCK", "job", "alice", "30000"]).expect("LOCK");
    assert!(token.starts_with(':'), "{token}");
    // The plain port sees the same table.
    let mut raw = TcpStream::connect(("127.0.0.1", plain)).expect("plain");
    raw.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    assert_eq!(
        request(&mut raw, &["LOCK", "job", "bob", "30000"]).expect("LOCK"),
        "$-1"
    );
    assert_eq!(
        request(&mut tls, &["UNLOCK", "job", "alice"]).expect("UNLOCK"),
        ":1"
    );
    assert!(request(&mut raw, &["LOCK", "job", "bob", "30000"])
        .expect("LOCK")
        .starts_with(':'));
}

#[test]
fn port_zero_turns_the_plain_port_off_when_tls_is_on() {
    let pki = Pki::new(&[]);
    let baton = Baton::start("127.0.0.1", &pki.flags(&["--port", "0"]));
    assert_eq!(baton.plain, None, "a plain port was served");
    let mut tls = connect(
        localhost(),
        baton.tls_port(),
        client_config(&pki.path("ca.pem"), None),
    );
    assert_eq!(request(&mut tls, &["PING"]).expect("PING"), "+PONG");
}

#[test]
fn plain_resp_on_the_tls_port_is_refused_and_the_server_keeps_serving() {
    let pki = Pki::new(&[]);
    let baton = Baton::start("127.0.0.1", &pki.flags(&["--port", "0"]));
    let mut raw = TcpStream::connect(("127.0.0.1", baton.tls_port())).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    raw.write_all(&resp(&["PING"])).expect("write");
    let mut got = Vec::new();
    // Read to the end: the server closes (after a TLS alert); a timeout fails here.
    match raw.read_to_end(&mut got) {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("the TLS port kept a plain client open: {err}"),
    }
    assert!(
        !String::from_utf8_lossy(&got).contains("PONG"),
        "plain RESP answered on the TLS port: {got:?}"
    );
    let mut tls = connect(
        localhost(),
        baton.tls_port(),
        client_config(&pki.path("ca.pem"), None),
    );
    assert_eq!(request(&mut tls, &["PING"]).expect("PING"), "+PONG");
}

#[test]
fn a_client_that_does_not_trust_the_servers_ca_cannot_connect() {
    let pki = Pki::new(&[]);
    let baton = Baton::start("127.0.0.1", &pki.flags(&["--port", "0"]));
    let mut tls = connect(
        localhost(),
        baton.tls_port(),
        client_config(&pki.path("other-ca.pem"), None),
    );
    let err = request(&mut tls, &["PING"]).expect_err("connected to an untrusted server");
    assert!(
        err.contains("certificate") || err.contains("Unknown"),
        "{err}"
    );
}

#[test]
fn mutual_tls_required_by_default_with_a_ca() {
    let pki = Pki::new(&[]);
    let baton = Baton::start(
        "127.0.0.1",
        &pki.flags(&["--port", "0", "--tls-ca-cert-file", &pki.arg("ca.pem")]),
    );
    let port = baton.tls_port();
    let ca = pki.path("ca.pem");
    // No certificate: refused.
    let mut anonymous = connect(localhost(), port, client_config(&ca, None));
    let err = request(&mut anonymous, &["PING"]).expect_err("served without a certificate");
    assert!(!err.contains("PONG"), "{err}");
    // A certificate from another CA: refused.
    let (sp, sk) = (pki.path("stranger.pem"), pki.path("stranger.key"));
    let mut foreign = connect(localhost(), port, client_config(&ca, Some((&sp, &sk))));
    let err = request(&mut foreign, &["PING"]).expect_err("served a certificate of another CA");
    assert!(!err.contains("PONG"), "{err}");
    // The CA's client certificate: served.
    let (cp, ck) = (pki.path("client.pem"), pki.path("client.key"));
    let mut known = connect(localhost(), port, client_config(&ca, Some((&cp, &ck))));
    assert_eq!(request(&mut known, &["PING"]).expect("PING"), "+PONG");
}

#[test]
fn explicit_yes_requires_and_optional_verifies_only_if_presented() {
    let pki = Pki::new(&[]);
    let ca = pki.path("ca.pem");
    let (cp, ck) = (pki.path("client.pem"), pki.path("client.key"));
    let (sp, sk) = (pki.path("stranger.pem"), pki.path("stranger.key"));

    let yes = Baton::start(
        "127.0.0.1",
        &pki.flags(&[
            "--port",
            "0",
            "--tls-ca-cert-file",
            &pki.arg("ca.pem"),
            "--tls-auth-clients",
            "yes",
        ]),
    );
    let mut anonymous = connect(localhost(), yes.tls_port(), client_config(&ca, None));
    assert!(
        request(&mut anonymous, &["PING"]).is_err(),
        "yes: served without a certificate"
    );
    let mut known = connect(
        localhost(),
        yes.tls_port(),
        client_config(&ca, Some((&cp, &ck))),
    );
    assert_eq!(request(&mut known, &["PING"]).expect("PING"), "+PONG");
    drop(yes);

    let optional = Baton::start(
        "127.0.0.1",
        &pki.flags(&[
            "--port",
            "0",
            "--tls-ca-cert-file",
            &pki.arg("ca.pem"),
            "--tls-auth-clients",
            "optional",
        ]),
    );
    let port = optional.tls_port();
    let mut anonymous = connect(localhost(), port, client_config(&ca, None));
    assert_eq!(request(&mut anonymous, &["PING"]).expect("PING"), "+PONG");
    let mut known = connect(localhost(), port, client_config(&ca, Some((&cp, &ck))));
    assert_eq!(request(&mut known, &["PING"]).expect("PING"), "+PONG");
    // Presented but signed by another CA: still refused.
    let mut foreign = connect(localhost(), port, client_config(&ca, Some((&sp, &sk))));
    assert!(
        request(&mut foreign, &["PING"]).is_err(),
        "optional: served a foreign certificate"
    );
}

#[test]
fn max_clients_applies_to_the_tls_port() {
    let pki = Pki::new(&[]);
    let baton = Baton::start(
        "127.0.0.1",
        &pki.flags(&["--port", "0", "--max-clients", "1"]),
    );
    let config = client_config(&pki.path("ca.pem"), None);
    let mut first = connect(localhost(), baton.tls_port(), config.clone());
    assert_eq!(request(&mut first, &["PING"]).expect("PING"), "+PONG");
    let mut second = connect(localhost(), baton.tls_port(), config);
    // The refusal comes over TLS, so the client can read it.
    assert_eq!(
        request(&mut second, &["PING"]).expect("the refusal"),
        "-ERR max clients reached"
    );
}

/// This machine's address on its default route, if it has one that is not loopback.
fn non_loopback_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn protected_mode_applies_to_the_tls_port() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: no non-loopback address on this machine");
        return;
    };
    let pki = Pki::new(&[ip]);
    let baton = Baton::start("0.0.0.0", &pki.flags(&["--port", "0"]));
    let mut tls = connect(
        ip,
        baton.tls_port(),
        client_config(&pki.path("ca.pem"), None),
    );
    let reply = request(&mut tls, &["PING"]).expect("the refusal");
    assert!(
        reply.starts_with("-DENIED Redis is running in protected mode"),
        "{reply}"
    );
}

/// Runs the binary with `flags` and returns its error line (it must fail to start).
fn start_error(flags: &[String]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--bind", "127.0.0.1", "--persistence", "off", "--dir"])
        .arg(dir.path())
        .args(flags)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run baton");
    assert!(!out.status.success(), "baton started with {flags:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains(" INFO baton"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line, got: {stderr}");
    errors[0].to_string()
}

#[test]
fn a_missing_or_invalid_certificate_or_key_fails_the_start_naming_the_file() {
    let pki = Pki::new(&[]);
    let missing = pki.arg("nope.pem");
    let line = start_error(&[
        "--port".into(),
        "0".into(),
        "--tls-port".into(),
        "0".into(),
        "--tls-cert-file".into(),
        missing.clone(),
        "--tls-key-file".into(),
        pki.arg("server.key"),
    ]);
    assert!(line.starts_with("baton: TLS: "), "{line}");
    assert!(line.contains(&missing), "{line}");

    let garbage = pki.path("garbage.key");
    std::fs::write(&garbage, "not a key\n").expect("write");
    let line = start_error(
        &pki.flags(&[])
            .into_iter()
            .take(4)
            .chain(["--tls-key-file".to_string(), garbage.display().to_string()])
            .collect::<Vec<_>>(),
    );
    assert!(line.contains(&garbage.display().to_string()), "{line}");

    // A key that is not the certificate's.
    let line = start_error(
        &pki.flags(&[])
            .into_iter()
            .take(4)
            .chain(["--tls-key-file".to_string(), pki.arg("client.key")])
            .collect::<Vec<_>>(),
    );
    assert!(line.contains("client.key"), "{line}");

    // No key at all, and a CA that is not PEM.
    let line = start_error(&pki.flags(&[]).into_iter().take(4).collect::<Vec<_>>());
    assert!(line.contains("--tls-key-file"), "{line}");
    let line = start_error(&pki.flags(&["--tls-ca-cert-file", &garbage.display().to_string()]));
    assert!(line.contains("garbage.key"), "{line}");
}

#[test]
fn cluster_mode_refuses_tls_with_a_clear_error() {
    let pki = Pki::new(&[]);
    let line =
        start_error(&pki.flags(&["--port", "0", "--node-id", "1", "--peers", "1=127.0.0.1:1"]));
    assert!(line.contains("cluster mode"), "{line}");
}

#[test]
fn a_client_that_never_completes_the_handshake_is_closed_and_frees_its_slot() {
    let pki = Pki::new(&[]);
    let baton = Baton::start(
        "127.0.0.1",
        &pki.flags(&["--port", "0", "--max-clients", "1"]),
    );
    // Connects and sends nothing: it holds the one client slot until the handshake limit.
    let mut silent = TcpStream::connect(("127.0.0.1", baton.tls_port())).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let config = client_config(&pki.path("ca.pem"), None);
    let mut refused = connect(localhost(), baton.tls_port(), config.clone());
    assert_eq!(
        request(&mut refused, &["PING"]).expect("the refusal"),
        "-ERR max clients reached"
    );
    let mut buf = [0u8; 64];
    match silent.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "the server sent {:?} to a client that never said hello",
            &buf[..n]
        ),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("not closed within 30 s of the 10 s handshake limit: {err}"),
    }
    let mut next = connect(localhost(), baton.tls_port(), config);
    assert_eq!(request(&mut next, &["PING"]).expect("PING"), "+PONG");
}

/// A Python with redis-py: the interop suite's venv (tests/interop/setup.sh), else
/// `python3` if it has it.
fn python_with_redis_py() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/.venv/bin/python");
    [venv, PathBuf::from("python3")].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import redis"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn redis_py_ssl_locks_with_a_client_certificate() {
    let Some(python) = python_with_redis_py() else {
        eprintln!("skipped: no redis-py (run tests/interop/setup.sh)");
        return;
    };
    let pki = Pki::new(&[]);
    let baton = Baton::start(
        "127.0.0.1",
        &pki.flags(&["--port", "0", "--tls-ca-cert-file", &pki.arg("ca.pem")]),
    );
    let script = r#"
import sys, redis
port, ca, cert, key = sys.argv[1:5]
r = redis.Redis(host="127.0.0.1", port=int(port), ssl=True, ssl_ca_certs=ca,
                ssl_certfile=cert, ssl_keyfile=key, socket_timeout=10)
assert r.ping()
token = r.execute_command("LOCK", "py:job", "py", "10000")
assert isinstance(token, int) and token > 0, token
assert r.execute_command("UNLOCK", "py:job", "py") == 1
lock = r.lock("py:lock", timeout=5)
assert lock.acquire(blocking=False)
lock.release()
print("ok")
"#;
    let out = Command::new(&python)
        .args(["-c", script, &baton.tls_port().to_string()])
        .args([
            pki.arg("ca.pem"),
            pki.arg("client.pem"),
            pki.arg("client.key"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "redis-py over TLS: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
