//! Throwaway `redis-server` processes.
//!
//! Every test starts its own [`RedisServer`] on its own port and temp dir, so tests can run in
//! parallel under both `cargo test` (threads) and `cargo nextest` (processes). Servers are stopped
//! by killing exactly the child process we spawned (by PID, via [`std::process::Child`]), never by
//! name.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::wait::{POLL_INTERVAL, free_port};

/// How long a freshly spawned redis-server may take to answer `PING`.
pub const REDIS_READY_TIMEOUT: Duration = Duration::from_secs(10);

const START_ATTEMPTS: u32 = 5;
const LOG_FILE: &str = "redis-server.log";
const LOG_TAIL_BYTES: usize = 4096;

/// A private `redis-server` child process listening on 127.0.0.1:`port`, with its data dir and log in a temp dir
/// that is deleted on drop. Dropping the value kills (SIGKILL) and reaps exactly this child.
///
/// Starting is synchronous (it blocks the calling thread for the few milliseconds redis needs to come up), so it can
/// be called from plain `#[test]`s as well as from `#[tokio::test]`s.
pub struct RedisServer {
    pub port: u16,
    /// `redis://127.0.0.1:<port>/`
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
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
        let dir = tempfile::Builder::new().prefix("switchboard-redis-").tempdir().expect("create temp dir for redis");
        let extra_args: Vec<String> = extra_args.iter().map(std::string::ToString::to_string).collect();
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            match launch(port, dir.path(), &extra_args, attempt) {
                Ok(child) => {
                    return RedisServer { port, url: format!("redis://127.0.0.1:{port}/"), child, dir, extra_args };
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
            match launch(self.port, self.dir.path(), &self.extra_args, attempt) {
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

    /// A new multiplexed async connection to this server. Panics if it cannot connect.
    pub async fn client(&self) -> redis::aio::MultiplexedConnection {
        let client =
            redis::Client::open(self.url.as_str()).unwrap_or_else(|e| panic!("invalid redis url {}: {e}", self.url));
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
fn launch(port: u16, dir: &Path, extra_args: &[String], attempt: u32) -> Result<Child, LaunchError> {
    let log_path = dir.join(LOG_FILE);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|e| panic!("open redis log {}: {e}", log_path.display()));
    let _ = writeln!(log, "=== harness: starting redis-server on port {port} (attempt {attempt}) ===");
    let log_err = log.try_clone().expect("clone redis log handle");

    let program = redis_server_path();
    let mut child = Command::new(program)
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no", "--protected-mode", "no"])
        .args(extra_args)
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
        if probe_pid(port) == Some(child.id()) {
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

/// Sends `PING` over a plain TCP connection; if it gets `+PONG` (not e.g. `-LOADING`), asks `INFO server` and returns
/// the answering server's `process_id`.
fn probe_pid(port: u16) -> Option<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(250)).ok()?;
    let io_timeout = Some(Duration::from_millis(500));
    stream.set_read_timeout(io_timeout).ok()?;
    stream.set_write_timeout(io_timeout).ok()?;

    stream.write_all(b"PING\r\n").ok()?;
    let mut buf = Vec::new();
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

fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) -> Option<()> {
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
