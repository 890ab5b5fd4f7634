//! TLS on the daemon's listeners, with certificates made here (rcgen, ring): gRPC and HTTP over
//! TLS only, client certificates (mutual TLS) that stand for a role, a renewed certificate served
//! without a restart, clients that stall before or inside a request, and the daemon's CRM client
//! reaching a store over https with a client certificate of its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::common::*;
use switchboard::api::pb;
use switchboard::config::{Config, Secret};
use switchboard::http::HEADER_READ_TIMEOUT;
use switchboard::model::Role;
use switchboard::tls::{ClientRole, TlsConfig};
use switchboard_auth::{Authenticator, Credential, ServerTls, StaticKey, TlsOptions};

// ---------------------------------------------------------------------------------------------
// Certificates and the files the daemon reads them from

/// A throwaway certificate authority.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, in PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { pem, issuer: Issuer::new(params, key) }
    }

    fn issue(&self, common_name: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params = CertificateParams::new(names.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert: cert.pem(), key: key.serialize_pem() }
    }

    /// A server certificate for this machine: `localhost` and 127.0.0.1.
    fn server(&self) -> Leaf {
        self.issue("switchboard.test", &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose subject common name is `common_name`.
    fn client(&self, common_name: &str) -> Leaf {
        self.issue(common_name, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A directory of PEM files, replaced the way renewal tools do: a new file renamed over the old.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files { dir: tempfile::Builder::new().prefix("switchboard-tls-").tempdir().unwrap() }
    }

    fn put(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let new = self.dir.path().join(format!(".{name}.new"));
        std::fs::write(&new, contents).unwrap();
        std::fs::rename(&new, &path).unwrap();
        path
    }
}

/// `[tls]` serving `server` (written to `files` as cert.pem and key.pem).
fn tls_section(files: &Files, server: &Leaf) -> TlsConfig {
    TlsConfig {
        cert_file: Some(files.put("cert.pem", &server.cert)),
        key_file: Some(files.put("key.pem", &server.key)),
        ..TlsConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A gRPC client's TLS: trusting `ca` only, presenting `identity` if given.
fn grpc_tls(ca: &Ca, identity: Option<&Leaf>) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem)).domain_name("localhost");
    match identity {
        Some(id) => tls.identity(Identity::from_pem(&id.cert, &id.key)),
        None => tls,
    }
}

/// A new connection to a gRPC listener: TLS with `tls`, plain text without.
async fn connect(addr: SocketAddr, tls: Option<ClientTlsConfig>) -> Result<tonic::transport::Channel, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}")).unwrap().connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        ep = ep.tls_config(tls).map_err(|e| e.to_string())?;
    }
    match tokio::time::timeout(PATIENCE, ep.connect()).await {
        Ok(r) => r.map_err(|e| format!("{e:?}")),
        Err(_) => Err(format!("no connection within {PATIENCE:?}")),
    }
}

/// Why a call did not succeed.
#[derive(Debug)]
enum Failed {
    /// No connection, or the connection broke before any answer: refused at the TLS layer.
    Connection(#[expect(dead_code, reason = "read through Debug, in failure messages")] String),
    /// The server's own answer.
    Answer(tonic::Status),
}

impl Failed {
    fn from_status(s: tonic::Status) -> Failed {
        // What the transport reports (a refused handshake, a closed connection) versus a status
        // the server sent.
        match s.code() {
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal => {
                Failed::Connection(format!("{s:?}"))
            }
            _ => Failed::Answer(s),
        }
    }

    fn code(&self) -> Option<Code> {
        match self {
            Failed::Answer(s) => Some(s.code()),
            Failed::Connection(_) => None,
        }
    }
}

/// Admin.ListQueues on a new connection, with `key` if given.
async fn list_queues(addr: SocketAddr, tls: Option<ClientTlsConfig>, key: Option<&str>) -> Result<Vec<String>, Failed> {
    let ch = connect(addr, tls).await.map_err(Failed::Connection)?;
    let cred = key.map_or_else(Credential::none, bearer);
    let mut admin = pb::admin_client::AdminClient::with_interceptor(ch, cred);
    match tokio::time::timeout(PATIENCE, admin.list_queues(pb::ListQueuesRequest {})).await {
        Ok(Ok(r)) => Ok(r.into_inner().queues.into_iter().map(|q| q.name).collect()),
        Ok(Err(s)) => Err(Failed::from_status(s)),
        Err(_) => Err(Failed::Connection(format!("no answer within {PATIENCE:?}"))),
    }
}

/// A TLS client for the HTTP listener (rustls with ring): trusting `ca` only, presenting
/// `identity` if given, offering h2 and http/1.1 as a browser would.
fn https_client(ca: &Ca, identity: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => {
            let chain = CertificateDer::pem_slice_iter(id.cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(id.key.as_bytes()).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn tls_connect(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(client).connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

/// GET `path` over TLS: (status, body).
async fn https_get(addr: SocketAddr, path: &str, client: Arc<rustls::ClientConfig>) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let mut s = tls_connect(addr, client).await?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        let mut buf = Vec::new();
        let read = s.read_to_end(&mut buf).await;
        // A server that closes without close_notify still answered.
        if buf.is_empty() {
            read?;
        }
        Ok(parse_response(&buf))
    };
    match tokio::time::timeout(PATIENCE, exchange).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer")),
    }
}

fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let code = text.strip_prefix("HTTP/1.1 ").and_then(|t| t.get(..3)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// Starts an instance with `[tls]` on, ready once its `/readyz` answers over TLS to `probe`.
async fn start_tls(cfg: Config, probe: Arc<rustls::ClientConfig>) -> TestServer {
    cfg.validate().expect("a valid config");
    let sb = TestServer::launch(cfg).await;
    let addr = sb.http_addr;
    eventually("server ready over TLS", Duration::from_secs(30), || {
        let probe = probe.clone();
        async move { https_get(addr, "/readyz", probe).await.ok().filter(|(code, _)| *code == 200) }
    })
    .await;
    sb
}

/// `switchboard_tls_reloads_total{result="error"}` on the instance's `/metrics`.
async fn reload_errors(sb: &TestServer, client: Arc<rustls::ClientConfig>) -> u64 {
    let (code, body) = https_get(sb.http_addr, "/metrics", client).await.expect("metrics over TLS");
    assert_eq!(code, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("switchboard_tls_reloads_total{result=\"error\"} "))
        .map_or(0, |v| v.trim().parse::<f64>().expect("a counter") as u64)
}

/// Sends `partial` and then nothing more; returns once the server has closed the connection
/// (EOF or reset), panicking if it is still open after the header-read timeout and a generous margin.
async fn closed_by_server(mut s: impl AsyncRead + AsyncWrite + Unpin, partial: &[u8]) {
    s.write_all(partial).await.unwrap();
    s.flush().await.unwrap();
    let patience = HEADER_READ_TIMEOUT + Duration::from_secs(15);
    let mut buf = [0u8; 1024];
    let drained = async {
        // Whatever the server says on the way out (a 408, an alert) is read and ignored.
        while let Ok(n) = s.read(&mut buf).await
            && n > 0
        {}
    };
    tokio::time::timeout(patience, drained).await.unwrap_or_else(|_| panic!("still open after {patience:?}"));
}

/// The connection was closed by the header deadline: not before it (measured from before the
/// server could start its clock), and within the patience of [`closed_by_server`].
fn assert_closed_by_deadline(what: &str, since: Instant) {
    let after = since.elapsed();
    assert!(after >= HEADER_READ_TIMEOUT - Duration::from_millis(500), "{what}: closed after only {after:?}");
}

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_serves_only_clients_that_trust_its_ca() {
    let redis = RedisServer::start();
    let ca = Ca::new("Switchboard test CA");
    let files = Files::new();
    let mut cfg = test_config(&redis.url);
    cfg.tls = tls_section(&files, &ca.server());
    let sb = start_tls(cfg, https_client(&ca, None)).await;

    let mut admin = pb::admin_client::AdminClient::with_interceptor(
        connect(sb.grpc_addr, Some(grpc_tls(&ca, None))).await.expect("a TLS connection"),
        bearer(ADMIN_KEY),
    );
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
    let queues = list_queues(sb.grpc_addr, Some(grpc_tls(&ca, None)), Some(ADMIN_KEY)).await.expect("admin over TLS");
    assert_eq!(queues, ["sales"]);

    // TLS is not a credential: the key is still needed.
    let err = list_queues(sb.grpc_addr, Some(grpc_tls(&ca, None)), None).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated), "{err:?}");

    // A client that trusts another CA does not get a connection.
    let other = Ca::new("Another CA");
    let err = list_queues(sb.grpc_addr, Some(grpc_tls(&other, None)), Some(ADMIN_KEY)).await.unwrap_err();
    assert!(matches!(err, Failed::Connection(_)), "untrusted certificate accepted: {err:?}");

    // Nor does a client speaking plain text to the TLS port.
    let err = list_queues(sb.grpc_addr, None, Some(ADMIN_KEY)).await.unwrap_err();
    assert!(matches!(err, Failed::Connection(_)), "plain text answered: {err:?}");

    // The connection made first still works after all that.
    admin.list_queues(pb::ListQueuesRequest {}).await.unwrap();
    // And the instance stops cleanly with it open.
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_and_stand_for_their_role() {
    let redis = RedisServer::start();
    let server_ca = Ca::new("Server CA");
    let client_ca = Ca::new("Client CA");
    let rogue_ca = Ca::new("Rogue CA");
    let files = Files::new();
    let mut cfg = test_config(&redis.url);
    cfg.tls = TlsConfig {
        client_ca_file: Some(files.put("clients.pem", &client_ca.pem)),
        require_client_cert: true,
        client_roles: vec![
            ClientRole { common_name: "pbx".into(), role: Role::Channel, queues: Vec::new() },
            ClientRole { common_name: "wallboard".into(), role: Role::Supervisor, queues: vec!["sales".into()] },
        ],
        ..tls_section(&files, &server_ca.server())
    };
    // A certificate from the client CA whose name stands for no role.
    let ops = client_ca.client("ops-console");
    let sb = start_tls(cfg, https_client(&server_ca, Some(&ops))).await;
    let tls = |id: Option<&Leaf>| Some(grpc_tls(&server_ca, id));

    // No certificate, or a certificate with a mapped name from a CA the server does not know:
    // no gRPC connection, whatever key comes with it. The HTTP listener asks for none (web chat
    // visitors' browsers and probes have none), so it answers either.
    let forged_pbx = rogue_ca.client("pbx");
    for (what, id) in [("no client certificate", None), ("another CA's certificate", Some(&forged_pbx))] {
        let err = list_queues(sb.grpc_addr, tls(id), Some(ADMIN_KEY)).await.expect_err(what);
        assert!(matches!(err, Failed::Connection(_)), "gRPC, {what}: {err:?}");
        let got = https_get(sb.http_addr, "/healthz", https_client(&server_ca, id)).await;
        assert_eq!(got.expect("HTTP needs no client certificate").0, 200, "HTTP, {what}");
    }

    // A certificate that stands for no role is a connection, not a caller: the key decides.
    let err = list_queues(sb.grpc_addr, tls(Some(&ops)), None).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated), "{err:?}");
    let ops_ch = connect(sb.grpc_addr, tls(Some(&ops))).await.unwrap();
    let mut admin = pb::admin_client::AdminClient::with_interceptor(ops_ch, bearer(ADMIN_KEY));
    for q in ["sales", "support"] {
        admin.put_queue(pb::PutQueueRequest { queue: Some(queue(q, &[])), allow_update: true }).await.unwrap();
    }

    // "pbx" is a channel: it creates interactions without any key, and is refused admin calls.
    let pbx = connect(sb.grpc_addr, tls(Some(&client_ca.client("pbx")))).await.unwrap();
    let mut ixs = pb::interactions_client::InteractionsClient::with_interceptor(pbx.clone(), Credential::none());
    let created = ixs.create_interaction(new_chat("sales", "+49 151 1234567", "hello")).await.unwrap().into_inner();
    assert!(!created.id.is_empty());
    let mut pbx_admin = pb::admin_client::AdminClient::with_interceptor(pbx, Credential::none());
    let err = pbx_admin.list_queues(pb::ListQueuesRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // "wallboard" supervises the queues its mapping names, and only those.
    let wallboard = connect(sb.grpc_addr, tls(Some(&client_ca.client("wallboard")))).await.unwrap();
    let mut sup = pb::supervisor_client::SupervisorClient::with_interceptor(wallboard, Credential::none());
    let figures = sup.get_queue_figures(pb::GetQueueFiguresRequest { queue: "sales".into() }).await.unwrap();
    assert_eq!(figures.into_inner().waiting, 1);
    let err = sup.get_queue_figures(pb::GetQueueFiguresRequest { queue: "support".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // The HTTP listener asks for the same certificates.
    assert_eq!(https_get(sb.http_addr, "/healthz", https_client(&server_ca, Some(&ops))).await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let redis = RedisServer::start();
    let old_ca = Ca::new("Old CA");
    let new_ca = Ca::new("New CA");
    let files = Files::new();
    let mut cfg = test_config(&redis.url);
    cfg.tls = TlsConfig { reload_secs: 1, ..tls_section(&files, &old_ca.server()) };
    let trusts_old = https_client(&old_ca, None);
    let trusts_new = https_client(&new_ca, None);
    let sb = start_tls(cfg, trusts_old.clone()).await;
    let mut before = pb::admin_client::AdminClient::with_interceptor(
        connect(sb.grpc_addr, Some(grpc_tls(&old_ca, None))).await.unwrap(),
        bearer(ADMIN_KEY),
    );
    before.list_queues(pb::ListQueuesRequest {}).await.unwrap();

    // Half a renewal: the new certificate beside the old key. It does not load (the key does not
    // match), and the old certificate stays in force while the reloaders keep trying.
    let renewed = new_ca.server();
    let errors = reload_errors(&sb, trusts_old.clone()).await;
    files.put("cert.pem", &renewed.cert);
    eventually("the half renewal refused", Duration::from_secs(30), || async {
        (reload_errors(&sb, trusts_old.clone()).await >= errors + 2).then_some(())
    })
    .await;
    list_queues(sb.grpc_addr, Some(grpc_tls(&old_ca, None)), Some(ADMIN_KEY)).await.expect("old certificate on gRPC");
    assert_eq!(https_get(sb.http_addr, "/healthz", trusts_old.clone()).await.unwrap().0, 200);
    let err = list_queues(sb.grpc_addr, Some(grpc_tls(&new_ca, None)), Some(ADMIN_KEY)).await.unwrap_err();
    assert!(matches!(err, Failed::Connection(_)), "{err:?}");

    // The key follows: new connections get the new certificate, on both listeners.
    files.put("key.pem", &renewed.key);
    eventually("gRPC serving the renewed certificate", Duration::from_secs(30), || async {
        list_queues(sb.grpc_addr, Some(grpc_tls(&new_ca, None)), Some(ADMIN_KEY)).await.ok()
    })
    .await;
    eventually("HTTP serving the renewed certificate", Duration::from_secs(30), || async {
        https_get(sb.http_addr, "/healthz", trusts_new.clone()).await.ok().filter(|(code, _)| *code == 200)
    })
    .await;
    // Both listeners have reloaded: a client that trusts only the old CA is refused now.
    let err = list_queues(sb.grpc_addr, Some(grpc_tls(&old_ca, None)), Some(ADMIN_KEY)).await.unwrap_err();
    assert!(matches!(err, Failed::Connection(_)), "{err:?}");
    let got = https_get(sb.http_addr, "/healthz", trusts_old).await;
    assert!(got.is_err(), "{got:?}");
    // A connection made before the renewal is not cut.
    before.list_queues(pb::ListQueuesRequest {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_tls_and_never_in_plain_text() {
    let redis = RedisServer::start();
    let ca = Ca::new("Switchboard test CA");
    let files = Files::new();
    let mut cfg = test_config(&redis.url);
    cfg.tls = tls_section(&files, &ca.server());
    let client = https_client(&ca, None);
    let sb = start_tls(cfg, client.clone()).await;

    assert_eq!(https_get(sb.http_addr, "/healthz", client.clone()).await.unwrap(), (200, "ok\n".to_string()));
    // Offered h2 and http/1.1, the HTTP listener picks the one it speaks.
    let s = tls_connect(sb.http_addr, client).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(s);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(sb.http_addr).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut raw)).await.expect("closed");
    assert!(!raw.starts_with(b"HTTP/"), "plain HTTP answered: {:?} ({read:?})", String::from_utf8_lossy(&raw));

    // Nor does a client that does not trust the certificate.
    let got = https_get(sb.http_addr, "/healthz", https_client(&Ca::new("Another CA"), None)).await;
    assert!(got.is_err(), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_mid_request_line_is_disconnected() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    let since = Instant::now();
    let s = TcpStream::connect(sb.http_addr).await.unwrap();
    closed_by_server(s, b"GET /healthz HTT").await;
    assert_closed_by_deadline("half a request line", since);
    // The listener serves the next client as before.
    assert_eq!(sb.http("/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_that_stall_are_disconnected() {
    let redis = RedisServer::start();
    let ca = Ca::new("Switchboard test CA");
    let files = Files::new();
    let mut cfg = test_config(&redis.url);
    cfg.tls = tls_section(&files, &ca.server());
    let client = https_client(&ca, None);
    let sb = start_tls(cfg, client.clone()).await;

    // No ClientHello at all, on either listener; a handshake and then half a request line.
    // (The gRPC listener's handshake deadline is the same 10 s as the HTTP listener's.)
    let silent = |addr: SocketAddr, what: &'static str| async move {
        let since = Instant::now();
        closed_by_server(TcpStream::connect(addr).await.unwrap(), b"").await;
        assert_closed_by_deadline(what, since);
    };
    let half_request = async {
        let s = tls_connect(sb.http_addr, client.clone()).await.unwrap();
        let since = Instant::now();
        closed_by_server(s, b"GET /healthz HTT").await;
        assert_closed_by_deadline("TLS, half a request line", since);
    };
    tokio::join!(silent(sb.http_addr, "HTTP, no handshake"), silent(sb.grpc_addr, "gRPC, no handshake"), half_request);
    assert_eq!(https_get(sb.http_addr, "/healthz", client).await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reaches_its_crm_store_over_mutual_tls() {
    crm_over_mutual_tls(KnownBy::Key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_store_can_know_the_daemon_by_its_certificate() {
    crm_over_mutual_tls(KnownBy::Certificate).await;
}

/// How the CRM store knows the daemon.
enum KnownBy {
    /// `crm.api_key`, a key of role crm in the store's config.
    Key,
    /// No key: its client certificate's name stands for role crm there (`[[tls.client_roles]]`).
    Certificate,
}

/// An interaction's events reach a CRM store that requires client certificates, and its history
/// comes back on the next offer, all over https.
async fn crm_over_mutual_tls(known_by: KnownBy) {
    const CRM_KEY: &str = "test-crm-key-0123456789abcdef0123456789abcd";
    let redis = RedisServer::start();
    let ca = Ca::new("CRM CA");
    let files = Files::new();
    let crm_cert = ca.server();
    let daemon_cert = ca.client("switchboard");
    let ca_file = files.put("ca.pem", &ca.pem);

    // The standalone store, as `switchboard crm` runs it: TLS with client certificates required,
    // and the daemon known by its key or its certificate.
    let dir = tempfile::tempdir().unwrap();
    let db = switchboard_crm::CrmDb::open(switchboard_crm::CrmOptions {
        database_url: format!("sqlite://{}/crm.db?mode=rwc", dir.path().display()),
        default_region: Some("DE".into()),
        create_unknown_contacts: true,
    })
    .await
    .unwrap();
    let tls = ServerTls::load(
        TlsOptions {
            cert_file: files.put("crm.pem", &crm_cert.cert),
            key_file: files.put("crm.key", &crm_cert.key),
            client_ca_file: Some(ca_file.clone()),
            require_client_cert: true,
        },
        &[b"h2"],
    )
    .unwrap();
    let auth = Arc::new(match known_by {
        KnownBy::Key => {
            Authenticator::new(vec![StaticKey::new("switchboard", Role::Crm, Vec::new(), "", CRM_KEY, false).unwrap()])
        }
        KnownBy::Certificate => Authenticator::new(Vec::new()).with_client_cert("switchboard", Role::Crm, Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let crm = tokio::spawn(switchboard_crm::serve(db.clone(), listener, Some(tls), auth, stop.clone()));

    let mut cfg = test_config(&redis.url);
    cfg.crm.endpoint = format!("https://localhost:{port}");
    cfg.crm.ca_file = Some(ca_file);
    cfg.crm.client_cert_file = Some(files.put("daemon.pem", &daemon_cert.cert));
    cfg.crm.client_key_file = Some(files.put("daemon.key", &daemon_cert.key));
    if let KnownBy::Key = known_by {
        cfg.crm.api_key = Secret(CRM_KEY.into());
    }
    // The first look-up opens the connection: no deadline a slow machine could miss.
    cfg.crm.screen_pop_deadline_ms = 10_000;
    cfg.validate().expect("a valid config");
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true }).await.unwrap();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut ixs = sb.interactions().await;

    // The offer's screen-pop is the store's answer, not a look-up that failed. (Whether it
    // already holds the contact depends on whether the creation's event was delivered first.)
    let first = ixs.create_interaction(new_chat("sales", "+49 151 1234567", "My invoice is wrong")).await.unwrap();
    let first = first.into_inner().id;
    let offer = ann.wait_offer().await;
    let pop = offer.screen_pop.expect("a screen-pop");
    assert_eq!(pop.status, pb::ScreenPopStatus::Available as i32, "{pop:?}");
    assert!(pop.history.is_empty(), "{pop:?}");
    ann.accept(&first).await.unwrap();
    ann.reply(&first, "Happy to help").await.unwrap();
    ann.complete(&first, "refund issued").await.unwrap();

    // The interaction's events reach the store ...
    eventually("the events in the CRM store", Duration::from_secs(30), || async {
        let types = db.event_types(&first).await.unwrap();
        types.iter().any(|(_, t)| t == "completed").then_some(())
    })
    .await;

    // ... and come back as the contact they made and the customer's history.
    let second = ixs.create_interaction(new_chat("sales", "+49 151 1234567", "Me again")).await.unwrap();
    let second = second.into_inner().id;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, second);
    let desk = pb::agent_desktop_client::AgentDesktopClient::new(sb.with_key(ADMIN_KEY).await);
    let pop = eventually("the first interaction in the history", Duration::from_secs(30), || {
        let mut desk = desk.clone();
        let second = second.clone();
        async move {
            let pop = desk.get_screen_pop(pb::GetScreenPopRequest { interaction_id: second }).await.ok()?.into_inner();
            (pop.history.len() == 1).then_some(pop)
        }
    })
    .await;
    let contact = pop.contact.expect("the contact made on first contact");
    assert!(contact.identities.iter().any(|i| i.address.contains("151")), "{contact:?}");
    assert_eq!(pop.history[0].interaction_id, first);
    assert_eq!(pop.history[0].disposition, "refund issued");

    sb.stop().await;
    stop.cancel();
    crm.await.unwrap().unwrap();
}
