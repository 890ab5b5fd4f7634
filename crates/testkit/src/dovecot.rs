//! Throwaway Dovecot IMAP servers for the email tests: [`Dovecot`].
//!
//! Each server runs `dovecot -F` (foreground: the child we spawn *is* the master) with its own
//! config, auth files, state, log and Maildirs in a temp dir, listening on a free 127.0.0.1 port.
//! It is stopped by signalling exactly that PID (SIGTERM; its children notice the master's death
//! and exit), never by name. One user, `support` / `secret`; mail files belong to uid 65534
//! (`nobody`), so the temp dir is made traversable for it.
//!
//! Tests put mail in with IMAP APPEND ([`Dovecot::append`]) — the same thing a delivery agent does
//! as far as an IMAP client can tell: an IDLE client sees `* N EXISTS` within about half a second.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;

use crate::wait::free_port;

pub const IMAP_USER: &str = "support";
pub const IMAP_PASSWORD: &str = "secret";
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const START_ATTEMPTS: u32 = 5;
const MAIL_UID: u32 = 65534;

pub struct Dovecot {
    /// Plain IMAP (STARTTLS offered when started with TLS).
    pub port: u16,
    /// Implicit TLS (IMAPS), when started with [`Dovecot::start_tls`].
    pub tls_port: Option<u16>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// A throwaway CA and a server certificate for 127.0.0.1 signed by it (made with `openssl`).
pub struct TestCerts {
    /// PEM of the CA: what a client is told to trust.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCerts {
    pub fn generate() -> TestCerts {
        let dir = tempfile::Builder::new().prefix("switchboard-certs-").tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let p = |n: &str| dir.path().join(n);
        let ext = p("server.ext");
        fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("run openssl");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Switchboard test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat());
        run(&[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat());
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        for f in ["server.key", "server.pem", "ca.pem"] {
            fs::set_permissions(p(f), fs::Permissions::from_mode(0o644)).unwrap();
        }
        TestCerts { ca: p("ca.pem"), cert: p("server.pem"), key: p("server.key"), _dir: dir }
    }
}

fn dovecot_path() -> PathBuf {
    for p in ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!(
        "dovecot was not found, but the email tests need it. Run scripts/setup-debian.sh \
         (or apt-get install dovecot-imapd) and try again."
    )
}

fn config(dir: &Path, port: u16, tls: Option<(&TestCerts, u16)>) -> String {
    let d = dir.display();
    let (ssl, imaps_port) = match tls {
        Some((c, p)) => (format!("ssl = yes\nssl_cert = <{}\nssl_key = <{}\n", c.cert.display(), c.key.display()), p),
        None => ("ssl = no\n".to_string(), 0),
    };
    format!(
        "base_dir = {d}/run\n\
         state_dir = {d}/state\n\
         log_path = {d}/dovecot.log\n\
         protocols = imap\n\
         listen = 127.0.0.1\n\
         {ssl}\
         disable_plaintext_auth = no\n\
         auth_mechanisms = plain login\n\
         auth_username_format = %Ln\n\
         mail_location = maildir:~/Maildir\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
         service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
           inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps_port}\n    ssl = yes\n  }}\n}}\n\
         service anvil {{\n  chroot =\n}}\n"
    )
}

impl Dovecot {
    pub fn start() -> Dovecot {
        Self::launch_with(None, "")
    }

    /// With extra configuration lines, e.g. `imap_capability = IMAP4rev1 UIDPLUS` for a server
    /// that offers neither IDLE nor MOVE after login.
    pub fn start_with_config(extra: &str) -> Dovecot {
        Self::launch_with(None, extra)
    }

    /// With TLS: STARTTLS on [`Dovecot::port`], implicit TLS on [`Dovecot::tls_port`].
    pub fn start_tls(certs: &TestCerts) -> Dovecot {
        Self::launch_with(Some(certs), "")
    }

    fn launch_with(certs: Option<&TestCerts>, extra: &str) -> Dovecot {
        let dir = tempfile::Builder::new().prefix("switchboard-dovecot-").tempdir().expect("temp dir for dovecot");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["run", "state", "mail"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::os::unix::fs::chown(dir.path().join("mail"), Some(MAIL_UID), Some(MAIL_UID)).expect("chown mail dir");
        fs::write(
            dir.path().join("users"),
            format!(
                "{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}:{MAIL_UID}:{MAIL_UID}::{}/mail/{IMAP_USER}\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let tls_port = certs.map(|_| free_port());
            let conf = dir.path().join("dovecot.conf");
            fs::write(&conf, config(dir.path(), port, certs.zip(tls_port)) + extra + "\n").unwrap();
            match launch(&conf, port) {
                Ok(child) => return Dovecot { port, tls_port, child: Some(child), dir },
                Err(e) => failures.push(format!("attempt {attempt} (port {port}): {e}")),
            }
        }
        let log = fs::read_to_string(dir.path().join("dovecot.log")).unwrap_or_default();
        panic!("could not start dovecot:\n  {}\n--- log ---\n{log}", failures.join("\n  "));
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Stops the server (SIGTERM to exactly our master, then SIGKILL after 5 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // By PID: exactly the master we spawned (not reaped yet, so the PID is still ours).
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops and starts again on the same port and data (an IMAP server restart).
    pub fn restart(&mut self) {
        self.stop();
        let conf = self.dir.path().join("dovecot.conf");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match launch(&conf, self.port) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() > deadline => panic!("dovecot restart failed: {e}\n{}", self.log()),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// A logged-in test client (plain IMAP).
    pub async fn client(&self) -> async_imap::Session<tokio::net::TcpStream> {
        client_at(self.port).await
    }

    /// Delivers a message into `folder` (created if missing).
    pub async fn append(&self, folder: &str, raw: &[u8]) {
        append_at(self.port, folder, raw).await;
    }

    /// UIDs in `folder`, ascending.
    pub async fn uids(&self, folder: &str) -> Vec<u32> {
        let mut s = self.client().await;
        s.select(folder).await.expect("SELECT");
        let mut v: Vec<u32> = s.uid_search("ALL").await.expect("SEARCH").into_iter().collect();
        v.sort_unstable();
        let _ = s.logout().await;
        v
    }

    /// UIDs in `folder` carrying `keyword`.
    pub async fn uids_with(&self, folder: &str, keyword: &str) -> Vec<u32> {
        let mut s = self.client().await;
        s.select(folder).await.expect("SELECT");
        let mut v: Vec<u32> = s.uid_search(format!("KEYWORD {keyword}")).await.expect("SEARCH").into_iter().collect();
        v.sort_unstable();
        let _ = s.logout().await;
        v
    }

    /// Deletes and re-creates `folder`: the server gives it a new UIDVALIDITY.
    pub async fn recreate(&self, folder: &str) -> u32 {
        let mut s = self.client().await;
        let before = s.select(folder).await.expect("SELECT").uid_validity;
        s.close().await.expect("CLOSE");
        s.delete(folder).await.expect("DELETE");
        s.create(folder).await.expect("CREATE");
        let after = s.select(folder).await.expect("SELECT").uid_validity.expect("uidvalidity");
        assert_ne!(before, Some(after), "the server kept the UIDVALIDITY");
        let _ = s.logout().await;
        after
    }

    /// Full raw messages of `folder`.
    pub async fn messages(&self, folder: &str) -> Vec<Vec<u8>> {
        let mut s = self.client().await;
        s.select(folder).await.expect("SELECT");
        let f: Vec<_> = s.fetch("1:*", "BODY.PEEK[]").await.expect("FETCH").try_collect().await.unwrap_or_default();
        let out = f.iter().filter_map(|m| m.body().map(<[u8]>::to_vec)).collect();
        drop(f);
        let _ = s.logout().await;
        out
    }
}

/// A logged-in test client of the Dovecot on `port`.
pub async fn client_at(port: u16) -> async_imap::Session<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to dovecot");
    let mut c = async_imap::Client::new(tcp);
    c.read_response().await.expect("greeting");
    c.login(IMAP_USER, IMAP_PASSWORD).await.map_err(|(e, _)| e).expect("login")
}

/// Delivers a message into `folder` (created if missing) of the Dovecot on `port`; usable from a
/// spawned task.
pub async fn append_at(port: u16, folder: &str, raw: &[u8]) {
    let mut s = client_at(port).await;
    let _ = s.create(folder).await;
    s.append(folder, None, None, raw).await.expect("APPEND");
    let _ = s.logout().await;
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

fn launch(conf: &Path, port: u16) -> Result<Child, String> {
    let log = conf.with_file_name("dovecot.stdout");
    let out = fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
    let err = out.try_clone().unwrap();
    let mut child = Command::new(dovecot_path())
        .arg("-c")
        .arg(conf)
        .arg("-F")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawn dovecot: {e}"))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("dovecot exited early ({status}): {}", fs::read_to_string(&log).unwrap_or_default()));
        }
        if greets(port) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no IMAP greeting within {READY_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn greets(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(250)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    let mut buf = [0u8; 256];
    let ok = matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"* OK") && buf[..n].windows(7).any(|w| w == b"Dovecot"));
    let _ = s.write_all(b"a LOGOUT\r\n");
    ok
}
