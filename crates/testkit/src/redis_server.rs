//! Throwaway `redis-server` processes.
//!
//! Every test starts its own [`RedisServer`] on its own port and temp dir, so tests can run in
//! parallel under both `cargo test` (threads) and `cargo nextest` (processes). Servers are stopped
//! by killing exactly the child process we spawned (by PID, via [`std::process::Child`]), never by
//! name.
//!
//! A server may also speak TLS only ([`RedisServer::start_tls`], on a CA and certificates made
//! for it with rcgen) or let in only an ACL user with a password
//! ([`RedisServer::start_with_user`]); [`RedisServer::start_setup`] combines both.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::wait::{POLL_INTERVAL, free_port};

/// How long a freshly spawned redis-server may take to answer `PING`.
pub const REDIS_READY_TIMEOUT: Duration = Duration::from_secs(10);

const START_ATTEMPTS: u32 = 5;
const LOG_FILE: &str = "redis-server.log";
/// A TLS-only server is probed here, in its own temp dir (plain, and surely this server's).
const SOCKET_FILE: &str = "redis.sock";
const LOG_TAIL_BYTES: usize = 4096;

/// A private `redis-server` child process listening on 127.0.0.1:`port`, with its data dir and log in a temp dir
/// that is deleted on drop. Dropping the value kills (SIGKILL) and reaps exactly this child.
///
/// Starting is synchronous (it blocks the calling thread for the few milliseconds redis needs to come up), so it can
/// be called from plain `#[test]`s as well as from `#[tokio::test]`s.
pub struct RedisServer {
    pub port: u16,
    /// `redis://127.0.0.1:<port>/`; `rediss://` for a TLS server, and `user:password@` in it
    /// for a server with an ACL user.
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    tls: Option<(RedisTlsFiles, TlsClients)>,
    user: Option<(String, String)>,
}

/// What a [`RedisServer`] is set up with beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct RedisSetup {
    /// TLS only: `--tls-port` and no plain port, with a CA and certificates made for the server
    /// ([`RedisServer::tls_files`]).
    pub tls: Option<TlsClients>,
    /// An ACL user `(name, password)` allowed every key and command. The default user is then
    /// off, so only this user gets in. The name `default` instead gives the default user this
    /// password (`requirepass`), and the URL names no user.
    pub user: Option<(String, String)>,
    /// Appended after the defaults, as with [`RedisServer::start_with`].
    pub extra_args: Vec<String>,
}

/// Whether a TLS server asks its clients for a certificate signed by its CA (`--tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsClients {
    /// `no`: any client that trusts the server gets in.
    Anyone,
    /// `yes`: a client without a certificate of the server's CA is refused.
    CertificateRequired,
}

/// A throwaway PKI: a CA, a server certificate for 127.0.0.1 and localhost, and a client
/// certificate, both signed by the CA; PEM files.
#[derive(Debug, Clone)]
pub struct RedisTlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl RedisTlsFiles {
    /// Makes a fresh CA and the certificates it signs (rcgen, ring) and writes them into `dir`.
    pub fn generate(dir: &Path) -> RedisTlsFiles {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca = CertificateParams::new(Vec::new()).expect("CA params");
        ca.distinguished_name.push(DnType::CommonName, "switchboard test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("self-sign the CA");

        let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).expect("certificate params");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("leaf key");
            let cert = params.signed_by(&key, &ca).expect("sign a leaf certificate");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            "switchboard test redis",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            vec!["switchboard-test-client".into()],
            "switchboard-test-client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );

        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        };
        RedisTlsFiles {
            ca_cert: write("ca.pem", &ca.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        read_file(&self.ca_cert)
    }

    /// What a redis client needs to trust the server and, if asked, present the client
    /// certificate.
    pub fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: read_file(&self.client_cert),
                client_key: read_file(&self.client_key),
            }),
            root_cert: Some(self.ca_pem()),
        }
    }
}

fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// How one launch listens and is probed.
struct Launch<'a> {
    extra_args: &'a [String],
    tls: Option<&'a (RedisTlsFiles, TlsClients)>,
    user: Option<&'a (String, String)>,
}

enum LaunchError {
    /// The child exited before answering; most likely the port was taken in the meantime.
    Exited(String),
    /// The child is alive but never answered (it has been killed).
    TimedOut(String),
}

impl RedisServer {
    /// Starts a fresh, non-persistent redis-server on a free port.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Like [`RedisServer::start`], with extra command-line arguments appended after the defaults (later arguments
    /// win, so e.g. `&["--appendonly", "yes"]` overrides the default `--appendonly no`). The arguments are kept and
    /// reused by [`RedisServer::restart`].
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        Self::start_setup(RedisSetup {
            extra_args: extra_args.iter().map(std::string::ToString::to_string).collect(),
            ..RedisSetup::default()
        })
    }

    /// A server that speaks TLS only, at `rediss://127.0.0.1:<port>/`, on certificates of a CA
    /// made for it: [`RedisServer::tls_files`] has the CA's PEM file (and a client certificate).
    pub fn start_tls(clients: TlsClients) -> RedisServer {
        Self::start_setup(RedisSetup { tls: Some(clients), ..RedisSetup::default() })
    }

    /// A server that lets in only the ACL user `user` with `password`, both in its
    /// [`RedisServer::url`].
    pub fn start_with_user(user: &str, password: &str) -> RedisServer {
        Self::start_setup(RedisSetup { user: Some((user.into(), password.into())), ..RedisSetup::default() })
    }

    /// A server set up as `setup` says (TLS, an ACL user, more arguments), kept across restarts.
    pub fn start_setup(setup: RedisSetup) -> RedisServer {
        let dir = tempfile::Builder::new().prefix("switchboard-redis-").tempdir().expect("create temp dir for redis");
        let RedisSetup { tls, user, extra_args } = setup;
        let tls = tls.map(|clients| (RedisTlsFiles::generate(dir.path()), clients));
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let how = Launch { extra_args: &extra_args, tls: tls.as_ref(), user: user.as_ref() };
            match launch(port, dir.path(), &how, attempt) {
                Ok(child) => {
                    let url = server_url(port, tls.is_some(), user.as_ref());
                    return RedisServer { port, url, child, dir, extra_args, tls, user };
                }
                Err(LaunchError::Exited(reason)) => failures.push(format!("attempt {attempt} (port {port}): {reason}")),
                Err(LaunchError::TimedOut(reason)) => {
                    failures.push(format!("attempt {attempt} (port {port}): {reason}"));
                    break;
                }
            }
        }
        panic!(
            "could not start redis-server (args {extra_args:?}):\n  {}\n--- tail of {} ---\n{}",
            failures.join("\n  "),
            dir.path().join(LOG_FILE).display(),
            log_tail(dir.path())
        );
    }

    /// Kills (SIGKILL) and reaps this server's process. Idempotent; the temp dir is kept until drop, so a later
    /// [`RedisServer::restart`] sees the same data files.
    pub fn kill(&mut self) {
        // std never signals a child it has already reaped, so repeated calls cannot hit a recycled PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the current process (if still running) and starts a new redis-server on the same port, data dir and
    /// arguments, waiting until it answers `PING` (i.e. finished loading). Use with `--appendonly yes` for
    /// durability tests.
    pub fn restart(&mut self) {
        self.kill();
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let how = Launch { extra_args: &self.extra_args, tls: self.tls.as_ref(), user: self.user.as_ref() };
            match launch(self.port, self.dir.path(), &how, attempt) {
                Ok(child) => {
                    self.child = child;
                    return;
                }
                Err(LaunchError::Exited(reason)) => {
                    failures.push(format!("attempt {attempt}: {reason}"));
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(LaunchError::TimedOut(reason)) => {
                    failures.push(format!("attempt {attempt}: {reason}"));
                    break;
                }
            }
        }
        panic!(
            "could not restart redis-server on port {}:\n  {}\n--- tail of {} ---\n{}",
            self.port,
            failures.join("\n  "),
            self.log_path().display(),
            log_tail(self.dir.path())
        );
    }

    /// A new multiplexed async connection to this server (over TLS, trusting its CA and with its
    /// client certificate, if it is a TLS server). Panics if it cannot connect.
    pub async fn client(&self) -> redis::aio::MultiplexedConnection {
        let client = match &self.tls {
            None => redis::Client::open(self.url.as_str()),
            Some((files, _)) => {
                // The workspace's one crypto provider; a no-op when one is set already.
                let _ = rustls::crypto::ring::default_provider().install_default();
                redis::Client::build_with_tls(self.url.as_str(), files.certificates())
            }
        }
        .unwrap_or_else(|e| panic!("invalid redis url {}: {e}", self.url));
        // The default 500 ms response timeout is too short for large reads on a loaded 2-core machine.
        let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
        client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to redis at {}: {e}", self.url))
    }

    /// The server's working/data directory (`--dir`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file receiving the server's stdout/stderr (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// PID of the current redis-server process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The PEM files of a TLS server's CA and certificates; None for a plain server.
    pub fn tls_files(&self) -> Option<&RedisTlsFiles> {
        self.tls.as_ref().map(|(files, _)| files)
    }
}

fn server_url(port: u16, tls: bool, user: Option<&(String, String)>) -> String {
    let scheme = if tls { "rediss" } else { "redis" };
    let userinfo = match user {
        None => String::new(),
        Some((name, password)) if name == "default" => format!(":{}@", percent_encode(password)),
        Some((name, password)) => format!("{}:{}@", percent_encode(name), percent_encode(password)),
    };
    format!("{scheme}://{userinfo}127.0.0.1:{port}/")
}

/// Everything but unreserved characters as `%XX`, for a URL's user info.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Process-wide cache of the `redis-server` executable location.
fn redis_server_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        find_on_path("redis-server").unwrap_or_else(|| {
            panic!(
                "`redis-server` was not found on PATH, but the integration tests need it. \
                 Run scripts/setup-debian.sh (or install the redis-server package) and try again."
            )
        })
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        candidate.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })
}

/// Spawns redis-server on `port` and waits until that very process answers. On failure the child is dead and reaped.
fn launch(port: u16, dir: &Path, how: &Launch<'_>, attempt: u32) -> Result<Child, LaunchError> {
    let log_path = dir.join(LOG_FILE);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|e| panic!("open redis log {}: {e}", log_path.display()));
    let _ = writeln!(log, "=== harness: starting redis-server on port {port} (attempt {attempt}) ===");
    let log_err = log.try_clone().expect("clone redis log handle");

    let program = redis_server_path();
    let mut cmd = Command::new(program);
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no", "--protected-mode", "no"]);
    if let Some((files, clients)) = how.tls {
        // No plain port; the harness probes through a socket file of its own instead.
        cmd.args(["--port", "0", "--tls-port"]).arg(port.to_string());
        cmd.arg("--tls-cert-file").arg(&files.server_cert);
        cmd.arg("--tls-key-file").arg(&files.server_key);
        cmd.arg("--tls-ca-cert-file").arg(&files.ca_cert);
        cmd.arg("--tls-auth-clients").arg(if *clients == TlsClients::CertificateRequired { "yes" } else { "no" });
        cmd.arg("--unixsocket").arg(dir.join(SOCKET_FILE)).args(["--unixsocketperm", "700"]);
    }
    match how.user {
        None => {}
        Some((name, password)) if name == "default" => {
            cmd.arg("--requirepass").arg(password);
        }
        // Each word of the ACL rule its own argument: redis-server quotes every argument.
        Some((name, password)) => {
            cmd.args(["--user", "default", "off", "--user"]).arg(name).args(["on", &format!(">{password}")]);
            cmd.args(["~*", "&*", "+@all"]);
        }
    }
    let mut child = cmd
        .args(how.extra_args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", program.display()));

    let deadline = Instant::now() + REDIS_READY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Err(LaunchError::Exited(format!("redis-server exited early ({status})"))),
            Ok(None) => {}
            Err(e) => {
                stop(&mut child);
                return Err(LaunchError::TimedOut(format!("waiting for redis-server failed: {e}")));
            }
        }
        // Checking the PID guards against a bind race where another server now owns the port and answers for us.
        let answered = match how.tls {
            None => tcp_stream(port).and_then(|s| probe_pid(s, how.user)),
            Some(_) => unix_stream(&dir.join(SOCKET_FILE)).and_then(|s| probe_pid(s, how.user)),
        };
        if answered == Some(child.id()) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            stop(&mut child);
            return Err(LaunchError::TimedOut(format!(
                "redis-server did not answer PING within {REDIS_READY_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

const PROBE_IO_TIMEOUT: Duration = Duration::from_millis(500);

fn tcp_stream(port: u16) -> Option<TcpStream> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(250)).ok()?;
    stream.set_read_timeout(Some(PROBE_IO_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(PROBE_IO_TIMEOUT)).ok()?;
    Some(stream)
}

fn unix_stream(path: &Path) -> Option<UnixStream> {
    let stream = UnixStream::connect(path).ok()?;
    stream.set_read_timeout(Some(PROBE_IO_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(PROBE_IO_TIMEOUT)).ok()?;
    Some(stream)
}

/// Logs in as `user` if given, sends `PING`; if it gets `+PONG` (not e.g. `-LOADING`), asks `INFO server` and returns
/// the answering server's `process_id`.
fn probe_pid<S: Read + Write>(mut stream: S, user: Option<&(String, String)>) -> Option<u32> {
    let mut buf = Vec::new();
    if let Some((name, password)) = user {
        let mut auth = Vec::new();
        let words: Vec<&str> = if name == "default" { vec!["AUTH", password] } else { vec!["AUTH", name, password] };
        auth.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
        for w in words {
            auth.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
        }
        stream.write_all(&auth).ok()?;
        read_until(&mut stream, &mut buf, |b| b.ends_with(b"\r\n"))?;
        if !buf.starts_with(b"+OK") {
            return None;
        }
        buf.clear();
    }

    stream.write_all(b"PING\r\n").ok()?;
    read_until(&mut stream, &mut buf, |b| b.ends_with(b"\r\n"))?;
    if !buf.starts_with(b"+PONG") {
        return None;
    }

    stream.write_all(b"INFO server\r\n").ok()?;
    buf.clear();
    read_until(&mut stream, &mut buf, |b| {
        let Some(header_end) = b.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        match std::str::from_utf8(&b[..header_end]).ok().and_then(|h| h.strip_prefix('$')?.parse::<usize>().ok()) {
            Some(len) => b.len() >= header_end + 2 + len + 2,
            None => true, // not a bulk string; stop reading and fail the parse below
        }
    })?;
    let text = String::from_utf8_lossy(&buf);
    text.lines().find_map(|line| line.strip_prefix("process_id:")).and_then(|pid| pid.trim().parse().ok())
}

fn read_until(stream: &mut impl Read, buf: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) -> Option<()> {
    let mut chunk = [0u8; 4096];
    while !done(buf) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    }
    Some(())
}

fn log_tail(dir: &Path) -> String {
    match std::fs::read(dir.join(LOG_FILE)) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("<could not read log: {e}>"),
    }
}
