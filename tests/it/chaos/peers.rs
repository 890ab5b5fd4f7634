//! The run's own peers: the CRM store as a separate `switchboard crm` process (killed and started
//! again on the same port and database), and the way Kannel reaches the daemons (a TCP relay to
//! whichever instance takes the connection, as a load balancer in front of them would).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::CRM_KEY;
use crate::common::*;

pub struct CrmProcess {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl CrmProcess {
    pub async fn start() -> CrmProcess {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("crm.toml"),
            format!("[[auth.keys]]\nname = \"switchboard\"\nrole = \"crm\"\nkey = \"{CRM_KEY}\"\n"),
        )
        .unwrap();
        let mut crm = CrmProcess { port: free_port(), child: None, dir };
        crm.spawn();
        crm.wait_serving().await;
        crm
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn database_url(&self) -> String {
        format!("sqlite://{}/crm.db?mode=rwc", self.dir.path().display())
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("crm.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["crm", "--config"])
            .arg(self.dir.path().join("crm.toml"))
            .args(["--database", &self.database_url(), "--listen", &format!("127.0.0.1:{}", self.port)])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn switchboard crm");
        self.child = Some(child);
    }

    /// Until the port takes connections again.
    pub async fn wait_serving(&self) {
        Self::wait_serving_on(self.port).await;
    }

    pub async fn wait_serving_on(port: u16) {
        let addr = format!("127.0.0.1:{port}");
        eventually("the CRM listens", Duration::from_secs(30), || async {
            tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ())
        })
        .await;
    }

    /// kill -9, by PID.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for CrmProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Forwards each TCP connection to the first of the daemons (in turn) that takes it.
pub struct Relay {
    pub addr: SocketAddr,
    targets: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Relay {
    pub fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let targets: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let t = targets.clone();
        std::thread::spawn(move || {
            for (turn, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { return };
                let all = t.lock().unwrap().clone();
                let server = (0..all.len()).find_map(|i| {
                    TcpStream::connect_timeout(&all[(turn + i) % all.len()], Duration::from_millis(300)).ok()
                });
                let Some(server) = server else { continue };
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Relay { addr, targets }
    }

    pub fn to(&self, daemons: Vec<SocketAddr>) {
        *self.targets.lock().unwrap() = daemons;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
