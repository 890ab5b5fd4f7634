//! JWT keys fetched from a JWKS URL, against an identity provider played by an HTTPS server
//! started here (hyper on rustls, certificates from rcgen) that counts the requests it gets:
//! tokens signed with the served key verify, a rotation is seen without waiting for the refresh
//! period, made-up key ids cause at most one fetch per cooldown, the keys held survive the
//! provider going down, a certificate from another CA is refused, and so is plain http to a host
//! that is not this one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use switchboard_auth::{
    AuthError, HttpClientError, JwksError, JwksSource, JwksUrl, JwtError, JwtOptions, JwtVerifier, Role,
};
use switchboard_testkit::{PATIENCE, eventually};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "switchboard";

// ---------------------------------------------------------------------------------------------
// Signing keys and tokens

/// An ES256 signing key of the identity provider and its public half as a JWK.
struct SigningKey {
    kid: String,
    key: KeyPair,
}

impl SigningKey {
    fn new(kid: &str) -> SigningKey {
        SigningKey { kid: kid.into(), key: KeyPair::generate().unwrap() }
    }

    fn jwk(&self) -> serde_json::Value {
        // An uncompressed P-256 point: 0x04, then x and y.
        let raw = self.key.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        })
    }

    /// A supervisor's token, signed with this key but naming `kid`.
    fn token_as(&self, kid: &str) -> String {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "lead@example", "exp": now + 300,
            "switchboard_role": "supervisor",
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        let key = EncodingKey::from_ec_der(&self.key.serialize_der());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    fn token(&self) -> String {
        self.token_as(&self.kid)
    }
}

fn jwks(keys: &[&SigningKey]) -> String {
    serde_json::json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

// ---------------------------------------------------------------------------------------------
// Certificates

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
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

    /// A server certificate for 127.0.0.1 and localhost.
    fn server(&self) -> rustls::ServerConfig {
        let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap()
    }

    fn file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.pem).unwrap();
        path
    }
}

// ---------------------------------------------------------------------------------------------
// The identity provider

#[derive(Clone)]
enum Reply {
    Jwks(String),
    Status(u16),
    /// More than a JWKS may be, with a Content-Length ...
    Huge,
    /// ... and without one (chunked, so only counting what arrives can stop it).
    Endless,
    /// Never answers.
    Hang,
}

struct Idp {
    addr: SocketAddr,
    tls: bool,
    requests: Arc<AtomicUsize>,
    reply: Arc<Mutex<Reply>>,
    task: JoinHandle<()>,
}

type Body = BoxBody<Bytes, Infallible>;

impl Idp {
    async fn start(tls: Option<rustls::ServerConfig>, reply: Reply) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let reply = Arc::new(Mutex::new(reply));
        let is_tls = tls.is_some();
        let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
        let (count, current) = (requests.clone(), reply.clone());
        let task = tokio::spawn(async move {
            // Dropped with the accept loop, so stopping the server also ends the connections
            // the client keeps open for reuse.
            let mut connections = JoinSet::new();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, count, current) = (acceptor.clone(), count.clone(), current.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |_request| {
                        count.fetch_add(1, Ordering::SeqCst);
                        let reply = current.lock().unwrap().clone();
                        async move { Ok::<_, Infallible>(respond(reply).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match &acceptor {
                        Some(acceptor) => {
                            // A client that refuses our certificate ends here, before any request.
                            let Ok(tls) = acceptor.accept(tcp).await else { return };
                            let _ = http.serve_connection(TokioIo::new(tls), service).await;
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Idp { addr, tls: is_tls, requests, reply, task }
    }

    fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/.well-known/jwks.json", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn reply(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    /// Down: connections are refused from now on.
    fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn respond(reply: Reply) -> hyper::Response<Body> {
    let full = |s: String| Full::new(Bytes::from(s)).boxed();
    match reply {
        Reply::Jwks(body) => {
            hyper::Response::builder().header("content-type", "application/jwk-set+json").body(full(body)).unwrap()
        }
        Reply::Status(code) => hyper::Response::builder().status(code).body(full("unavailable".into())).unwrap(),
        Reply::Huge => hyper::Response::new(full(" ".repeat(2 << 20))),
        Reply::Endless => {
            let chunk = Bytes::from(vec![b' '; 64 << 10]);
            let frames = tokio_stream::iter((0..64).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))));
            hyper::Response::new(StreamBody::new(frames).boxed())
        }
        Reply::Hang => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------------
// The verifier

fn url_options(url: &str, ca_file: Option<PathBuf>) -> JwksUrl {
    JwksUrl { ca_file, ..JwksUrl::new(url) }
}

fn start(jwks: JwksUrl) -> Result<JwtVerifier, JwtError> {
    JwtVerifier::start(JwtOptions {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks: JwksSource::Url(jwks),
        role_claim: "switchboard_role".into(),
        queues_claim: "switchboard_queues".into(),
        agent_claim: "switchboard_agent".into(),
        leeway_secs: 0,
    })
}

/// A provider on HTTPS with a certificate from a fresh CA, the verifier trusting that CA.
struct Setup {
    idp: Idp,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(reply: Reply) -> Setup {
    let ca = Ca::new("Test IdP CA");
    let dir = tempfile::tempdir().unwrap();
    let idp = Idp::start(Some(ca.server()), reply).await;
    Setup { idp, ca_file: ca.file(dir.path()), _dir: dir }
}

impl Setup {
    fn options(&self) -> JwksUrl {
        url_options(&self.idp.url(), Some(self.ca_file.clone()))
    }
}

async fn accepted(v: &JwtVerifier, token: &str) -> bool {
    match v.verify(token).await {
        Ok(p) => {
            assert_eq!((p.name.as_str(), p.role), ("lead@example", Role::Supervisor));
            true
        }
        Err(AuthError::Invalid) => false,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_served_key_verifies_and_a_rotation_is_seen_without_waiting() {
    let (k1, k2) = (SigningKey::new("k1"), SigningKey::new("k2"));
    let s = setup(Reply::Jwks(jwks(&[&k1]))).await;
    let v = start(s.options()).unwrap();
    // Arriving before the first fetch is done, it waits for that fetch.
    assert!(accepted(&v, &k1.token()).await);
    assert_eq!(v.key_ids(), ["k1"]);
    assert_eq!(s.idp.requests(), 1, "one fetch at start, none for a known key");

    // The provider rotates: k2 replaces k1. The refresh period (5 min) has not passed.
    s.idp.reply(Reply::Jwks(jwks(&[&k2])));
    assert!(accepted(&v, &k2.token()).await, "a token with the new kid verifies at once");
    assert_eq!(s.idp.requests(), 2);
    assert_eq!(v.key_ids(), ["k2"]);
    // The retired key no longer verifies, and asking again within the cooldown fetches nothing.
    assert!(!accepted(&v, &k1.token()).await);
    assert_eq!(s.idp.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_ids_fetch_at_most_once_per_cooldown_and_never_concurrently() {
    let k1 = SigningKey::new("k1");
    let s = setup(Reply::Jwks(jwks(&[&k1]))).await;
    let v = Arc::new(start(s.options()).unwrap());
    assert!(accepted(&v, &k1.token()).await);
    assert_eq!(s.idp.requests(), 1);

    // A burst of tokens with made-up key ids, all at once: one fetch between them.
    let mut burst = JoinSet::new();
    for i in 0..32 {
        let (v, token) = (v.clone(), k1.token_as(&format!("made-up-{i}")));
        burst.spawn(async move { v.verify(&token).await });
    }
    while let Some(result) = burst.join_next().await {
        assert_eq!(result.unwrap(), Err(AuthError::Invalid));
    }
    assert_eq!(s.idp.requests(), 2, "the burst fetched once");
    // More of them within the cooldown (30 s by default): no fetch at all.
    for i in 0..32 {
        assert!(!accepted(&v, &k1.token_as(&format!("again-{i}"))).await);
    }
    assert_eq!(s.idp.requests(), 2);
    assert!(accepted(&v, &k1.token()).await, "the known key still verifies");

    // Once the cooldown has passed, an unknown kid may fetch again (a short one, so no waiting).
    let quick = start(JwksUrl { unknown_kid_cooldown: Duration::from_millis(100), ..s.options() }).unwrap();
    assert!(accepted(&quick, &k1.token()).await);
    let before = s.idp.requests();
    eventually("an unknown kid fetches again after the cooldown", PATIENCE, || async {
        let _ = quick.verify(&k1.token_as("rotated-later")).await;
        (s.idp.requests() >= before + 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_keys_held_keep_working_while_the_idp_is_down() {
    let k1 = SigningKey::new("k1");
    let s = setup(Reply::Jwks(jwks(&[&k1]))).await;
    let v = start(JwksUrl { refresh: Duration::from_millis(50), ..s.options() }).unwrap();
    assert!(accepted(&v, &k1.token()).await);

    // Refreshed in the background every period.
    let before = s.idp.requests();
    eventually("scheduled refreshes", PATIENCE, || async { (s.idp.requests() >= before + 2).then_some(()) }).await;

    s.idp.reply(Reply::Status(503));
    let before = s.idp.requests();
    // Two more requests: the first one's failure has been handled by the time the second comes.
    eventually("failed refreshes", PATIENCE, || async { (s.idp.requests() >= before + 2).then_some(()) }).await;
    assert!(accepted(&v, &k1.token()).await);
    assert!(matches!(v.refresh_keys().await, Err(JwksError::Status { status: 503, .. })));

    s.idp.reply(Reply::Jwks("<html>maintenance</html>".into()));
    assert!(matches!(v.refresh_keys().await, Err(JwksError::NotAJwkSet { .. })));
    s.idp.reply(Reply::Jwks(r#"{"keys": []}"#.into()));
    assert!(matches!(v.refresh_keys().await, Err(JwksError::NoKeys { .. })));
    assert!(accepted(&v, &k1.token()).await);

    s.idp.stop();
    assert!(matches!(v.refresh_keys().await, Err(JwksError::Fetch { .. })));
    assert!(accepted(&v, &k1.token()).await);
    assert_eq!(v.key_ids(), ["k1"]);
}

#[tokio::test]
async fn started_while_the_idp_is_down_it_takes_the_keys_once_it_is_up() {
    let k1 = SigningKey::new("k1");
    let s = setup(Reply::Status(503)).await;
    // Retries are capped by the refresh period, short here.
    let v = start(JwksUrl { refresh: Duration::from_millis(50), ..s.options() }).expect("starts anyway");
    assert!(!accepted(&v, &k1.token()).await, "no keys, no JWT");
    assert!(v.key_ids().is_empty());

    s.idp.reply(Reply::Jwks(jwks(&[&k1])));
    eventually("the keys arrive", PATIENCE, || async { (!v.key_ids().is_empty()).then_some(()) }).await;
    assert!(accepted(&v, &k1.token()).await);
}

#[tokio::test]
async fn oversized_and_stalled_responses_are_cut_off_and_the_keys_kept() {
    let k1 = SigningKey::new("k1");
    let s = setup(Reply::Jwks(jwks(&[&k1]))).await;
    // Short enough to wait for, and should a loaded machine need longer for the first fetch, a
    // failed one is retried.
    let v = start(JwksUrl { timeout: Duration::from_secs(1), ..s.options() }).unwrap();
    eventually("the first keys", PATIENCE, || async { accepted(&v, &k1.token()).await.then_some(()) }).await;

    s.idp.reply(Reply::Huge);
    assert!(matches!(v.refresh_keys().await, Err(JwksError::TooLarge { max: 1_048_576, .. })));
    s.idp.reply(Reply::Endless);
    assert!(matches!(v.refresh_keys().await, Err(JwksError::TooLarge { .. })));
    s.idp.reply(Reply::Hang);
    let err = v.refresh_keys().await.unwrap_err();
    assert!(matches!(err, JwksError::Fetch { .. }), "{err}");
    assert!(accepted(&v, &k1.token()).await);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let k1 = SigningKey::new("k1");
    let s = setup(Reply::Jwks(jwks(&[&k1]))).await;
    let dir = tempfile::tempdir().unwrap();
    let other_ca = Ca::new("Some other CA").file(dir.path());

    for ca_file in [Some(other_ca), None] {
        let v = start(url_options(&s.idp.url(), ca_file.clone())).expect("starts anyway");
        let err = v.refresh_keys().await.unwrap_err();
        assert!(
            matches!(&err, JwksError::Fetch { message, .. } if message.contains("certificate")),
            "{ca_file:?}: {err}"
        );
        assert!(!accepted(&v, &k1.token()).await);
        assert!(v.key_ids().is_empty());
    }
    assert_eq!(s.idp.requests(), 0, "no request was sent over an untrusted connection");

    let ca = PathBuf::from("/nonexistent/ca.pem");
    assert!(matches!(start(url_options(&s.idp.url(), Some(ca))), Err(JwtError::CaFile(HttpClientError::Tls(_)))));
}

#[tokio::test]
async fn plain_http_only_to_a_loopback_address() {
    let err = start(JwksUrl::new("http://idp.example.com/.well-known/jwks.json")).err().unwrap();
    assert!(matches!(err, JwtError::Url(HttpClientError::InsecureUrl { .. })), "{err}");
    assert!(err.to_string().contains("https://"), "{err}");
    let err = start(JwksUrl::new("http://10.1.2.3/jwks")).err().unwrap();
    assert!(matches!(err, JwtError::Url(HttpClientError::InsecureUrl { .. })), "{err}");

    // A provider on this host (tests, a local one) may speak plain http.
    let k1 = SigningKey::new("k1");
    let idp = Idp::start(None, Reply::Jwks(jwks(&[&k1]))).await;
    let v = start(JwksUrl::new(idp.url())).unwrap();
    assert!(accepted(&v, &k1.token()).await);
}
