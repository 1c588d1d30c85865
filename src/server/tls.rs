//! TLS for client connections (`--tls-port`): the certificate, key and client-certificate
//! policy of the configuration as a `TlsAcceptor`, and the handshake of one connection.
//!
//! Built on `tokio-rustls` (rustls, with the `ring` provider): a memory-safe TLS stack that
//! plugs straight into tokio's `AsyncRead`/`AsyncWrite`, with no system OpenSSL to link or
//! match versions against; `ring` rather than `aws-lc-rs` because it builds without cmake
//! or a C++ toolchain. Certificates and keys are read as PEM (what Redis's `tls-cert-file`,
//! `tls-key-file` and `tls-ca-cert-file` take), through rustls's own PEM reader.
//!
//! The handshake runs in the connection's own task (never in the accept loop) and is
//! bounded by [`HANDSHAKE_TIMEOUT`], so a client that connects and never completes it holds
//! nothing but its socket, and that only for so long.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, TlsAuthClients};
use crate::error::StartupError;

/// Longest a client may take to complete the TLS handshake; then it is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The acceptor for `--tls-port`, or None when TLS is off.
///
/// # Errors
/// [`StartupError::Tls`] naming the file when a certificate or key is missing or invalid;
/// [`StartupError::Config`] when the TLS flags do not fit together or cluster mode is on.
pub fn acceptor(config: &Config) -> Result<Option<TlsAcceptor>, StartupError> {
    if config.tls_port.is_none() {
        return Ok(None);
    }
    if config.peers.is_some() {
        return Err(StartupError::Config(
            "--tls-port is not supported in cluster mode (a follower forwards its clients' \
             requests over plain TCP); put a TLS proxy in front of the nodes instead"
                .into(),
        ));
    }
    let (Some(cert_file), Some(key_file)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Err(StartupError::Config(
            "--tls-port needs --tls-cert-file and --tls-key-file (PEM)".into(),
        ));
    };
    let certs = read_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|err| tls_error(key_file, err))?;
    // rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange;
    // aws-lc-rs (which has it) needs cmake and a longer C build. Classical X25519/P-256
    // key exchange is what redis-cli and redis-py negotiate today.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| StartupError::Config(format!("TLS: {err}")))?;
    let builder = match (config.tls_auth_clients(), &config.tls_ca_cert_file) {
        (TlsAuthClients::No, _) => builder.with_no_client_auth(),
        (auth, Some(ca_file)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca_file)? {
                roots.add(cert).map_err(|err| tls_error(ca_file, err))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            let verifier = match auth {
                TlsAuthClients::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier.build().map_err(|err| tls_error(ca_file, err))?;
            builder.with_client_cert_verifier(verifier)
        }
        (_, None) => {
            return Err(StartupError::Config(
                "--tls-auth-clients yes|optional needs --tls-ca-cert-file (the CA that signs \
                 client certificates); use --tls-auth-clients no to accept clients without one"
                    .into(),
            ))
        }
    };
    let server = builder.with_single_cert(certs, key).map_err(|err| {
        tls_error(
            key_file,
            format!("does not match {}: {err}", cert_file.display()),
        )
    })?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// Every certificate of the PEM file `path` (at least one).
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, StartupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| tls_error(path, err))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| tls_error(path, err))?;
    if certs.is_empty() {
        return Err(tls_error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn tls_error(file: &Path, reason: impl std::fmt::Display) -> StartupError {
    StartupError::Tls {
        file: file.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Completes the server side of the handshake on `stream` within [`HANDSHAKE_TIMEOUT`].
///
/// # Errors
/// Why the handshake failed (a client that speaks plain RESP, a certificate the CA did
/// not sign, a missing client certificate, the timeout), for the debug log.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(format!("TLS handshake failed: {err}")),
        Err(_) => Err("TLS handshake timed out".into()),
    }
}
