//! Throwaway PostgreSQL servers for integration tests: [`PgServer`].
//!
//! Every server gets its own temp dir (data dir, Unix-socket dir and log), its own free port on 127.0.0.1 and trust
//! authentication for the `postgres` superuser. The postmaster is a child process we spawned ourselves (not daemonized
//! by `pg_ctl`), so it is stopped by signalling exactly that PID, never by name.
//!
//! # Running as root
//!
//! `initdb` and `postgres` refuse to run as root, so when the tests run as root both are started through util-linux
//! `setpriv --reuid=postgres --regid=postgres --init-groups`, which switches user and then `exec`s: the PID of the
//! spawned child *is* the postmaster's PID. `runuser -u postgres --` is not usable here: it forks and waits (it opens
//! a PAM session), so its PID is not the postmaster's. On SIGTERM it forwards the signal to the server but stays
//! around itself, and on SIGKILL it dies while the server lives on, orphaned. (Checked with util-linux 2.38.1 on
//! Debian 12.) When the tests do not run as root, the binaries are run directly.
//!
//! # Stopping
//!
//! A graceful stop sends SIGINT ("fast shutdown": disconnects clients, writes a checkpoint and exits, ~60 ms), not
//! SIGTERM: SIGTERM is PostgreSQL's "smart shutdown", which waits for every client to disconnect by itself, so a
//! leftover connection pool would stall each drop until the SIGKILL fallback. [`PgServer::kill`] is a SIGKILL of the
//! postmaster, i.e. a crash; its backends notice the postmaster's death and exit on their own, and the next start runs
//! crash recovery. Committed transactions survive it: `synchronous_commit` stays `on` (see [`launch`]).
//!
//! # TLS
//!
//! [`PgServer::start_tls`] starts a server with `ssl = on` on a certificate for 127.0.0.1 and localhost signed by a CA
//! made for it ([`PgTlsFiles`], rcgen with ring); the settings are in the cluster's `postgresql.conf`, so they survive
//! restarts. Its `pg_hba.conf` refuses TCP connections without TLS (`hostnossl ... reject`), so a client that gets in
//! over TCP did use TLS; the Unix socket stays open to trust as before.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::wait::free_port;

/// How long a freshly spawned postmaster may take to answer a query (first start is ~0.1 s, crash recovery longer).
pub const PG_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop may take before the postmaster is SIGKILLed.
pub const PG_STOP_TIMEOUT: Duration = Duration::from_secs(5);

const PG_POLL_INTERVAL: Duration = Duration::from_millis(50);
const START_ATTEMPTS: u32 = 5;
const LOG_FILE: &str = "postgres.log";
const LOG_TAIL_BYTES: usize = 4096;
const SUPERUSER: &str = "postgres";
const DATABASE: &str = "switchboard";
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// Under the server's temp dir: the certificates of a TLS server.
const TLS_DIR: &str = "tls";

/// A private PostgreSQL server (postmaster child process) listening on 127.0.0.1:`port`, with its data dir, socket
/// dir and log in a temp dir that is deleted on drop. Dropping the value stops exactly this postmaster (SIGINT, then
/// SIGKILL after [`PG_STOP_TIMEOUT`]) and reaps it.
///
/// Starting is synchronous (`initdb` takes ~1 s, the server ~0.1 s), so it can be called from plain `#[test]`s as
/// well as from `#[tokio::test]`s (where it blocks the thread for that long).
pub struct PgServer {
    pub port: u16,
    /// `postgres://postgres@127.0.0.1:<port>/switchboard` (trust auth, no password; the database exists).
    pub url: String,
    /// `None` once killed/stopped.
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// `Some` for a server started with [`PgServer::start_tls`].
    tls: Option<PgTlsFiles>,
}

/// A throwaway PKI for a PostgreSQL server: a CA and a server certificate for 127.0.0.1 and localhost signed by it
/// (rcgen, ring); PEM files. The key is PKCS#8, mode 0600.
#[derive(Debug, Clone)]
pub struct PgTlsFiles {
    /// What a client is told to trust: `sslrootcert=<ca_cert>`.
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl PgTlsFiles {
    /// Makes a fresh CA and a server certificate it signs and writes them into `dir` (which must exist) as `ca.pem`,
    /// `server.pem` and `server.key`. Also useful on its own as a CA that a server does *not* use.
    pub fn generate(dir: &Path) -> PgTlsFiles {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca = CertificateParams::new(Vec::new()).expect("CA params");
        // Named after `dir`: no two of these CAs share a name, so one is never taken for the issuer of another's.
        ca.distinguished_name.push(DnType::CommonName, format!("switchboard test postgres CA {}", dir.display()));
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("self-sign the CA");

        let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("server certificate params");
        server.distinguished_name.push(DnType::CommonName, "switchboard test postgres");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = server.signed_by(&key, &ca).expect("sign the server certificate");

        let write = |name: &str, pem: &str, mode: u32| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
            path
        };
        PgTlsFiles {
            ca_cert: write("ca.pem", &ca.pem(), 0o644),
            server_cert: write("server.pem", &cert.pem(), 0o644),
            // PostgreSQL refuses a key that its group or others may read.
            server_key: write("server.key", &key.serialize_pem(), 0o600),
        }
    }
}

enum LaunchError {
    /// The postmaster exited before answering; most likely the port was taken in the meantime.
    Exited(String),
    /// The postmaster is alive but never answered (it has been killed).
    TimedOut(String),
}

impl PgServer {
    /// Creates a fresh cluster (`initdb`) in a new temp dir, starts it on a free port and creates the `switchboard`
    /// database. Panics (with the server log's tail) if that fails.
    pub fn start() -> PgServer {
        Self::start_with_tls(false)
    }

    /// Like [`PgServer::start`], with TLS on (see the module docs): [`PgServer::tls_files`] has the CA to trust and
    /// [`PgServer::tls_url`] a URL that uses it. TCP connections without TLS are refused.
    pub fn start_tls() -> PgServer {
        Self::start_with_tls(true)
    }

    fn start_with_tls(tls: bool) -> PgServer {
        let dir = tempfile::Builder::new().prefix("switchboard-pg-").tempdir().expect("create temp dir for postgres");
        std::fs::create_dir(dir.path().join("sock")).expect("create postgres socket dir");
        if let Some(ids) = postgres_ids() {
            for path in [dir.path().to_path_buf(), dir.path().join("sock")] {
                chown_to_postgres(&path, ids);
            }
        }
        init_cluster(dir.path());
        let tls = tls.then(|| enable_tls(dir.path()));

        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            match launch(port, dir.path(), attempt) {
                Ok(child) => {
                    let url = format!("postgres://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}");
                    let server = PgServer { port, url, child: Some(child), dir, tls };
                    server.run_psql("postgres", &format!("CREATE DATABASE {DATABASE}"));
                    return server;
                }
                Err(LaunchError::Exited(reason)) => failures.push(format!("attempt {attempt} (port {port}): {reason}")),
                Err(LaunchError::TimedOut(reason)) => {
                    failures.push(format!("attempt {attempt} (port {port}): {reason}"));
                    break;
                }
            }
        }
        panic!(
            "could not start postgres:\n  {}\n--- tail of {} ---\n{}",
            failures.join("\n  "),
            dir.path().join(LOG_FILE).display(),
            log_tail(dir.path())
        );
    }

    /// Kills (SIGKILL) and reaps the postmaster: a crash, no shutdown checkpoint. Idempotent. The temp dir is kept
    /// until drop, so a later [`PgServer::restart`] runs crash recovery on the same data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The child is not reaped before this, so its PID cannot have been recycled.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the postmaster gracefully (fast shutdown, see the module docs) if it is still running, then starts a new
    /// one on the same port and data dir and waits until it answers queries. Call [`PgServer::kill`] first to
    /// simulate a crash instead.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_gracefully(&mut child);
        }
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            match launch(self.port, self.dir.path(), attempt) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(LaunchError::Exited(reason)) => {
                    // E.g. backends orphaned by kill() still attached to the old shared memory; they exit shortly.
                    failures.push(format!("attempt {attempt}: {reason}"));
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(LaunchError::TimedOut(reason)) => {
                    failures.push(format!("attempt {attempt}: {reason}"));
                    break;
                }
            }
        }
        panic!(
            "could not restart postgres on port {}:\n  {}\n--- tail of {} ---\n{}",
            self.port,
            failures.join("\n  "),
            self.log_path().display(),
            log_tail(self.dir.path())
        );
    }

    /// A `psql` command connected to the `switchboard` database as `postgres` over TCP, with `-X` (no `~/.psqlrc`)
    /// and `ON_ERROR_STOP=1`; add e.g. `-At -c <sql>` and run it.
    pub fn psql_command(&self) -> Command {
        psql_command(self.port, DATABASE)
    }

    /// Runs `sql` (one or more `;`-separated statements) in the `switchboard` database with `psql -q -At` and returns
    /// its stdout: unaligned rows, `|`-separated, one per line, no headers or command tags. Panics if psql fails.
    pub fn psql(&self, sql: &str) -> String {
        self.run_psql(DATABASE, sql)
    }

    /// The temp dir holding `data/`, `sock/` and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's data directory (`-D`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file receiving the postmaster's stdout/stderr (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// PID of the current postmaster, or `None` after [`PgServer::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The CA and certificates of a server started with [`PgServer::start_tls`]; `None` for a plain one.
    pub fn tls_files(&self) -> Option<&PgTlsFiles> {
        self.tls.as_ref()
    }

    /// [`PgServer::url`] with `?sslmode=<sslmode>&sslrootcert=<this server's CA>`, e.g. `verify-full`. Panics for a
    /// server without TLS.
    pub fn tls_url(&self, sslmode: &str) -> String {
        let tls = self.tls.as_ref().expect("tls_url: this server was not started with PgServer::start_tls");
        url_with_ca(&self.url, sslmode, &tls.ca_cert)
    }

    fn run_psql(&self, database: &str, sql: &str) -> String {
        let output = psql_command(self.port, database)
            .args(["-q", "-At", "-c", sql])
            .output()
            .unwrap_or_else(|e| panic!("failed to run psql: {e}"));
        if !output.status.success() {
            panic!(
                "psql on port {} ({}) failed for {sql:?}:\n{}\n--- tail of {} ---\n{}",
                self.port,
                output.status,
                String::from_utf8_lossy(&output.stderr),
                self.log_path().display(),
                log_tail(self.dir.path())
            );
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_gracefully(&mut child);
        }
        // `dir` is removed after this, once the server is gone.
    }
}

/// Process-wide cache of the directory holding `initdb`, `postgres` and `psql`: the highest version under
/// `/usr/lib/postgresql/<version>/bin` (Debian), else wherever `initdb` is on `PATH`.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let has_binaries = |dir: &Path| ["initdb", "postgres", "psql"].iter().all(|b| dir.join(b).is_file());
        let debian = std::fs::read_dir(DEBIAN_PG_ROOT)
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                let version: Vec<u32> = name.split('.').map(str::parse).collect::<Result<_, _>>().ok()?;
                let bin = entry.path().join("bin");
                has_binaries(&bin).then_some((version, bin))
            })
            .max()
            .map(|(_, bin)| bin);
        let on_path = || {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).find(|dir| has_binaries(dir))
        };
        debian.or_else(on_path).unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, postgres, psql) were not found under {DEBIAN_PG_ROOT}/<version>/bin \
                 or on PATH, but the integration tests need them. Run scripts/setup-debian.sh (or install the \
                 postgresql and postgresql-client packages) and try again."
            )
        })
    })
}

/// `base?sslmode=<sslmode>&sslrootcert=<ca>`, the path percent-encoded (all but unreserved characters and `/`).
pub fn url_with_ca(base: &str, sslmode: &str, ca: &Path) -> String {
    let mut encoded = String::new();
    for &b in ca.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}sslmode={sslmode}&sslrootcert={encoded}")
}

/// Makes the certificates in `<dir>/tls` (owned by the postgres user when we are root), turns `ssl` on in the
/// cluster's `postgresql.conf` and refuses TCP connections without TLS in its `pg_hba.conf` (first line, so it wins).
fn enable_tls(dir: &Path) -> PgTlsFiles {
    let tls_dir = dir.join(TLS_DIR);
    std::fs::create_dir(&tls_dir).unwrap_or_else(|e| panic!("create {}: {e}", tls_dir.display()));
    let files = PgTlsFiles::generate(&tls_dir);
    if let Some(ids) = postgres_ids() {
        for path in [&tls_dir, &files.ca_cert, &files.server_cert, &files.server_key] {
            chown_to_postgres(path, ids);
        }
    }
    let data = dir.join("data");
    let quoted = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "''"));
    let conf = data.join("postgresql.conf");
    let mut file =
        OpenOptions::new().append(true).open(&conf).unwrap_or_else(|e| panic!("open {}: {e}", conf.display()));
    writeln!(
        file,
        "\n# switchboard-testkit: TLS\nssl = on\nssl_cert_file = {}\nssl_key_file = {}",
        quoted(&files.server_cert),
        quoted(&files.server_key)
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
    let hba = data.join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap_or_else(|e| panic!("read {}: {e}", hba.display()));
    std::fs::write(&hba, format!("# switchboard-testkit: TCP only with TLS\nhostnossl all all all reject\n{rules}"))
        .unwrap_or_else(|e| panic!("write {}: {e}", hba.display()));
    files
}

fn chown_to_postgres(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {} to the postgres user: {e}", path.display()));
}

/// `Some((uid, gid))` of the `postgres` user when we run as root (and so must switch to it), `None` otherwise.
fn postgres_ids() -> Option<(u32, u32)> {
    static IDS: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *IDS.get_or_init(|| {
        if id(&["-u"]) != 0 {
            return None;
        }
        Some((id(&["-u", SUPERUSER]), id(&["-g", SUPERUSER])))
    })
}

fn id(args: &[&str]) -> u32 {
    let output = Command::new("id").args(args).output().unwrap_or_else(|e| panic!("failed to run `id`: {e}"));
    let text = String::from_utf8_lossy(&output.stdout);
    match text.trim().parse() {
        Ok(id) if output.status.success() => id,
        _ => panic!(
            "`id {}` failed ({}): {}{}\nAs root the tests run PostgreSQL as the `postgres` user, which the postgresql \
             package creates; run scripts/setup-debian.sh.",
            args.join(" "),
            output.status,
            text,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// A command running the PostgreSQL binary `name` as the `postgres` user (see the module docs on `setpriv`).
fn pg_command(name: &str) -> Command {
    let program = bin_dir().join(name);
    if postgres_ids().is_some() {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={SUPERUSER}")).arg(format!("--regid={SUPERUSER}")).args(["--init-groups", "--"]);
        cmd.arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn psql_command(port: u16, database: &str) -> Command {
    let mut cmd = Command::new(bin_dir().join("psql"));
    cmd.args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", SUPERUSER])
        .arg("-p")
        .arg(port.to_string())
        .arg("-d")
        .arg(database)
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null());
    cmd
}

fn init_cluster(dir: &Path) {
    let data = dir.join("data");
    let output = pg_command("initdb")
        .arg("-D")
        .arg(&data)
        .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("failed to spawn initdb (via {:?}): {e}", pg_command("initdb")));
    if !output.status.success() {
        panic!("initdb -D {} failed ({}):\n{}", data.display(), output.status, combined(&output));
    }
}

/// Spawns the postmaster on `port` and waits until that very server answers a query. On failure the child is dead
/// and reaped.
fn launch(port: u16, dir: &Path, attempt: u32) -> Result<Child, LaunchError> {
    let log_path = dir.join(LOG_FILE);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|e| panic!("open postgres log {}: {e}", log_path.display()));
    let _ = writeln!(log, "=== harness: starting postgres on port {port} (attempt {attempt}) ===");
    let log_err = log.try_clone().expect("clone postgres log handle");

    let data = dir.join("data");
    let mut child = pg_command("postgres")
        .arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir.join("sock"))
        // fsync=off and full_page_writes=off only matter if the *machine* crashes. synchronous_commit=off is
        // deliberately not set: it acknowledges commits before their WAL leaves PostgreSQL's shared memory, so a
        // SIGKILL (`kill()`) would lose transactions committed up to ~0.6 s earlier. With fsync=off it buys nothing.
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn postgres (via {:?}): {e}", pg_command("postgres")));

    let deadline = Instant::now() + PG_READY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Err(LaunchError::Exited(format!("postgres exited early ({status})"))),
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LaunchError::TimedOut(format!("waiting for postgres failed: {e}")));
            }
        }
        if answers_from(port, &data) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LaunchError::TimedOut(format!("postgres did not answer a query within {PG_READY_TIMEOUT:?}")));
        }
        std::thread::sleep(PG_POLL_INTERVAL);
    }
}

/// Whether a server on `port` accepts TCP connections and answers `SHOW data_directory` with `data`. Checking the data
/// dir guards against a bind race where another server now owns the port and answers for us.
fn answers_from(port: u16, data: &Path) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_err() {
        return false;
    }
    let Ok(output) = psql_command(port, "postgres").args(["-q", "-At", "-c", "SHOW data_directory"]).output() else {
        return false;
    };
    if !output.status.success() {
        return false; // e.g. "the database system is starting up"
    }
    let reported = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    reported == data || matches!((reported.canonicalize(), data.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// SIGINT (fast shutdown) to exactly this child's PID, up to [`PG_STOP_TIMEOUT`] to exit, then SIGKILL; always reaps.
fn stop_gracefully(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    // Not reaped yet, so the PID still names our postmaster. std has no API for signals other than SIGKILL.
    let signalled = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if signalled {
        let deadline = Instant::now() + PG_STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(PG_POLL_INTERVAL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn combined(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
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
