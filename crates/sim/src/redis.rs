//! A private `redis-server` for one run: its own temp dir and a Unix socket in it (no TCP port: a
//! simulation is one long chain of round trips, and a local socket makes each cheaper), no
//! persistence, stopped (killed and reaped by its PID) when dropped. The simulation never touches
//! a Redis it did not start.

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
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocketperm", "700"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("starting redis-server (is it installed?): {e}")))?;
        let url = format!("redis+unix://{}", socket.display());
        let mut redis = PrivateRedis { url, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
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
