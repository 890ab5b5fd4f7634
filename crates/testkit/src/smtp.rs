//! Throwaway SMTP servers for the email tests: [`SmtpServer`], a real `aiosmtpd` (Debian's
//! `python3-aiosmtpd`) on a free 127.0.0.1 port in a temp dir, stopped by PID.
//!
//! Every accepted message is written to `<dir>/mail/<n>.eml` (atomically, in arrival order).
//! AUTH (PLAIN/LOGIN) is required with [`SMTP_USER`] / [`SMTP_PASSWORD`], without TLS (local
//! only). A test scripts failures with [`SmtpServer::plan`]: each line answers one DATA command
//! instead of accepting it (`451 4.3.0 Try later`, `550 5.1.1 No such user`, or `drop` to close
//! the connection without an answer); once the plan is used up, mail is accepted again.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::wait::free_port;

pub const SMTP_USER: &str = "support";
pub const SMTP_PASSWORD: &str = "smtp-secret";
const READY_TIMEOUT: Duration = Duration::from_secs(15);

// Debian's python modules are visible to /usr/bin/python3 only (another python3 may come first
// on PATH).
const PYTHON: &str = "/usr/bin/python3";

const SCRIPT: &str = r#"
import os, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

import ssl
port, root, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode(), sys.argv[4].encode()
mode, cert, key = sys.argv[5], sys.argv[6], sys.argv[7]
lock = threading.Lock()

def next_planned():
    path = os.path.join(root, "plan.txt")
    with lock:
        try:
            with open(path) as f:
                lines = [l.rstrip("\n") for l in f if l.strip()]
        except FileNotFoundError:
            return None
        if not lines:
            return None
        with open(path + ".tmp", "w") as f:
            f.write("".join(l + "\n" for l in lines[1:]))
        os.replace(path + ".tmp", path)
        return lines[0]

class Handler:
    # Numbering goes on after a restart (the mail dir is kept).
    count = len([n for n in os.listdir(os.path.join(root, "mail")) if n.endswith(".eml")])
    async def handle_DATA(self, server, session, envelope):
        with open(os.path.join(root, "attempts.log"), "a") as f:
            f.write("DATA\n")
        planned = next_planned()
        if planned == "drop":
            server.transport.close()
            return "421 closing"
        if planned:
            return planned
        Handler.count += 1
        name = os.path.join(root, "mail", "%06d.eml" % Handler.count)
        with open(name + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.replace(name + ".tmp", name)
        return "250 2.0.0 Ok: queued"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
    return AuthResult(success=ok)

kw = dict(hostname="127.0.0.1", port=port, authenticator=authenticator, auth_required=True, decode_data=False)
if mode == "plain":
    kw.update(auth_require_tls=False)
else:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if mode == "starttls":
        kw.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
    else:
        kw.update(ssl_context=ctx, auth_require_tls=False)
c = Controller(Handler(), **kw)
c.start()
print("ready", flush=True)
threading.Event().wait()
"#;

pub struct SmtpServer {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    mode: SmtpMode,
    certs: Option<(PathBuf, PathBuf)>,
}

/// How the test SMTP server talks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    Plain,
    /// STARTTLS required before AUTH and MAIL.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        Self::start_with(SmtpMode::Plain, None)
    }

    /// `certs` (certificate, key) are required for the TLS modes.
    pub fn start_with(mode: SmtpMode, certs: Option<(&Path, &Path)>) -> SmtpServer {
        assert!(Path::new(PYTHON).exists(), "{PYTHON} is missing; run scripts/setup-debian.sh");
        let dir = tempfile::Builder::new().prefix("switchboard-smtp-").tempdir().expect("temp dir for smtp");
        fs::create_dir(dir.path().join("mail")).unwrap();
        fs::write(dir.path().join("server.py"), SCRIPT).unwrap();
        let certs = certs.map(|(c, k)| (c.to_path_buf(), k.to_path_buf()));
        let mut failures = Vec::new();
        for attempt in 1..=5 {
            let port = free_port();
            match launch(dir.path(), port, mode, certs.as_ref()) {
                Ok(child) => return SmtpServer { port, child, dir, mode, certs },
                Err(e) => failures.push(format!("attempt {attempt} (port {port}): {e}")),
            }
        }
        let log = fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        panic!("could not start aiosmtpd:\n  {}\n--- log ---\n{log}", failures.join("\n  "));
    }

    /// Kills (SIGKILL, by PID) and starts the server again on the same port, keeping the mail
    /// received so far (an SMTP server restart). Returns once it takes connections.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match launch(self.dir.path(), self.port, self.mode, self.certs.as_ref()) {
                Ok(child) => {
                    self.child = child;
                    return;
                }
                Err(e) if Instant::now() > deadline => panic!("aiosmtpd did not start again: {e}\n{}", self.log()),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Answers for the next DATA commands, one per line (see the module docs).
    pub fn plan(&self, answers: &[&str]) {
        let p = self.dir.path().join("plan.txt");
        let tmp = self.dir.path().join("plan.txt.new");
        fs::write(&tmp, answers.iter().map(|a| format!("{a}\n")).collect::<String>()).unwrap();
        fs::rename(tmp, p).unwrap();
    }

    /// Accepted messages, in arrival order.
    pub fn received(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<PathBuf> = fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names.iter().map(|p| fs::read(p).unwrap()).collect()
    }

    /// DATA commands seen (accepted or not).
    pub fn data_attempts(&self) -> usize {
        fs::read_to_string(self.dir.path().join("attempts.log")).map(|s| s.lines().count()).unwrap_or(0)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        // By PID: exactly the child we spawned.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the script on `port` and waits until it takes connections.
fn launch(dir: &Path, port: u16, mode: SmtpMode, certs: Option<&(PathBuf, PathBuf)>) -> Result<Child, String> {
    let log = fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
    let before = fs::read_to_string(dir.join("server.log"))
        .map(|l| l.lines().filter(|x| x.trim() == "ready").count())
        .unwrap_or(0);
    let mut child = Command::new(PYTHON)
        .arg(dir.join("server.py"))
        .arg(port.to_string())
        .arg(dir)
        .arg(SMTP_USER)
        .arg(SMTP_PASSWORD)
        .arg(match mode {
            SmtpMode::Plain => "plain",
            SmtpMode::Starttls => "starttls",
            SmtpMode::Tls => "tls",
        })
        .arg(certs.map_or(Path::new("-"), |c| c.0.as_path()))
        .arg(certs.map_or(Path::new("-"), |c| c.1.as_path()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn aiosmtpd");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("exited early ({st})"));
        }
        // The script prints "ready" once its listener answers (in any mode).
        let readies = fs::read_to_string(dir.join("server.log"))
            .map(|l| l.lines().filter(|x| x.trim() == "ready").count())
            .unwrap_or(0);
        if readies > before && accepts(port) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("no greeting".to_string());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_millis(250)).is_ok()
}

/// The value of header `name` in a raw message (first occurrence, unfolded).
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut out: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(v) = out.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.eq_ignore_ascii_case(name)
        {
            out = Some(v.trim().to_string());
        }
    }
    out
}
