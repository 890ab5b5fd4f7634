//! TLS for the daemon's listeners (rustls, ring): certificates re-read when their files change,
//! so a renewed certificate is served without a restart; optional client certificates (mutual
//! TLS), verified against the operator's CA, whose subject common name can stand for a role.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Clients may present certificates signed by this CA ...
    pub client_ca_file: Option<PathBuf>,
    /// ... and, with this, must.
    pub require_client_cert: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA: {0}")]
    ClientCa(String),
}

/// A listener's TLS settings, swapped whole when the files change.
pub struct ServerTls {
    opts: TlsOptions,
    alpn: Vec<Vec<u8>>,
    current: RwLock<Arc<rustls::ServerConfig>>,
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

/// How long a client may take over the handshake before its connection is dropped.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

impl ServerTls {
    /// `alpn`: `h2` for gRPC, `http/1.1` for the HTTP listener.
    pub fn load(opts: TlsOptions, alpn: &[&[u8]]) -> Result<Arc<ServerTls>, TlsError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        // The times before the contents: a file renewed in between is read again at the first check.
        let stamps = stamps(&opts);
        let config = build(&opts, &alpn)?;
        Ok(Arc::new(ServerTls { opts, alpn, current: RwLock::new(Arc::new(config)), stamps: Mutex::new(stamps) }))
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().expect("tls config").clone())
    }

    pub fn options(&self) -> &TlsOptions {
        &self.opts
    }

    /// Re-reads the files if any changed; on an error the previous settings stay in force.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamps(&self.opts);
        if *self.stamps.lock().expect("tls stamps") == now {
            return Ok(false);
        }
        let config = build(&self.opts, &self.alpn)?;
        *self.current.write().expect("tls config") = Arc::new(config);
        *self.stamps.lock().expect("tls stamps") = now;
        Ok(true)
    }

    /// Watches the files every `every` until `cancel`.
    pub fn spawn_reloader(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                match self.reload_if_changed() {
                    Ok(true) => {
                        metrics::counter!("switchboard_tls_reloads_total", "result" => "ok").increment(1);
                        tracing::info!(message = "Reloaded the TLS certificate.", cert = %self.opts.cert_file.display());
                    }
                    Ok(false) => {}
                    Err(error) => {
                        metrics::counter!("switchboard_tls_reloads_total", "result" => "error").increment(1);
                        tracing::warn!(message = "Could not reload the TLS certificate; serving the previous one.", %error);
                    }
                }
            }
        });
    }

    /// Accepted connections after their handshake. Handshakes run concurrently, each within a
    /// deadline, so a slow or silent client holds up no one else.
    pub fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
        cancel: CancellationToken,
    ) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsStream<TcpStream>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = listener.accept() => match r {
                        Ok(c) => c,
                        Err(error) => {
                            tracing::warn!(message = "Accept failed.", %error);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = self.acceptor();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Ok(tls)).await;
                        }
                        Ok(Err(error)) => {
                            metrics::counter!("switchboard_tls_handshake_failures_total").increment(1);
                            tracing::debug!(message = "TLS handshake failed.", %peer, %error);
                        }
                        Err(_) => {
                            metrics::counter!("switchboard_tls_handshake_failures_total").increment(1);
                            tracing::debug!(message = "TLS handshake timed out.", %peer);
                        }
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

fn stamps(opts: &TlsOptions) -> Vec<Option<SystemTime>> {
    let mut files = vec![&opts.cert_file, &opts.key_file];
    files.extend(opts.client_ca_file.as_ref());
    files.into_iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { path: path.to_path_buf(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Pem { path: path.to_path_buf(), message: "holds no PEM certificate".into() });
    }
    Ok(certs)
}

pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| TlsError::Pem { path: path.to_path_buf(), message: format!("no PEM private key: {e}") })
}

pub fn root_store(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(path)? {
        roots.add(c).map_err(|e| TlsError::Pem { path: path.to_path_buf(), message: e.to_string() })?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(opts: &TlsOptions, alpn: &[Vec<u8>]) -> Result<rustls::ServerConfig, TlsError> {
    let chain = certs(&opts.cert_file)?;
    let key = private_key(&opts.key_file)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match &opts.client_ca_file {
        Some(ca) => {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(ca)?), provider());
            let v = if opts.require_client_cert { v } else { v.allow_unauthenticated() };
            builder.with_client_cert_verifier(v.build().map_err(|e| TlsError::ClientCa(e.to_string()))?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

/// A client's TLS settings: the operator's CA (or the web's roots) and, for mutual TLS, a certificate.
pub fn client_config(
    ca_file: Option<&Path>,
    client_cert: Option<(&Path, &Path)>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, TlsError> {
    let roots = match ca_file {
        Some(p) => root_store(p)?,
        None => rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client_cert {
        Some((cert, key)) => builder.with_client_auth_cert(certs(cert)?, private_key(key)?)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The subject common name of a client's certificate, which `[[tls.client_roles]]` maps to a role.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    parsed.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string)
}
