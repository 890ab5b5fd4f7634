//! A private `redis-server` for one run: its own temp dir and port on 127.0.0.1, no persistence,
//! stopped (killed and reaped by its PID) when dropped. The simulation never touches a Redis it
//! did not start.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateRedis {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub fn start() -> std::io::Result<PrivateRedis> {
        let dir = tempfile::Builder::new().prefix("switchboard-sim-").tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("starting redis-server (is it installed?): {e}")))?;
        let mut redis = PrivateRedis { url: format!("redis://127.0.0.1:{port}/"), child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = redis.child.try_wait()? {
                return Err(std::io::Error::other(format!("redis-server exited at start ({status})")));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("redis-server did not listen within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
