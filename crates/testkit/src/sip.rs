//! A SIP platform for voice tests: Kamailio (Debian `kamailio`, with `kamailio-extra-modules` for
//! evapi and jansson) on free ports in a temp dir, and SIPp (`sip-tester`) as callers and agents'
//! phones. Kamailio runs in the foreground in its own process group, which is killed on drop (its
//! workers with it) — never by name.

use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::wait::{POLL_INTERVAL, free_port};

const READY_WITHIN: Duration = Duration::from_secs(15);

/// A UDP port nobody holds right now (SIP runs over UDP here).
pub fn free_udp_port() -> u16 {
    loop {
        let p = free_port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok() {
            return p;
        }
    }
}

/// What a test changes of `deploy/kamailio/kamailio.cfg` (its `#!trydef`s, given with `-A`).
#[derive(Debug, Clone)]
pub struct KamailioOptions {
    pub node_id: String,
    /// Where calls go that Switchboard sends to the default destination without a URI, or
    /// Kamailio sends there itself.
    pub fallback_uri: String,
    pub ring_timeout_ms: u64,
    /// Dialled numbers Switchboard routes (a regular expression on the request URI's user).
    pub numbers: String,
}

impl Default for KamailioOptions {
    fn default() -> Self {
        KamailioOptions {
            node_id: "kam1".into(),
            fallback_uri: "sip:voicemail@127.0.0.1:5999".into(),
            ring_timeout_ms: 4000,
            numbers: "^(support|sales|[0-9]{3,6})$".into(),
        }
    }
}

pub struct Kamailio {
    pub sip_port: u16,
    pub evapi_port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Kamailio {
    /// Starts Kamailio with `cfg` (the shipped `deploy/kamailio/kamailio.cfg`) and waits until
    /// it answers SIP and its evapi socket accepts connections.
    pub fn start(cfg: &Path, opts: &KamailioOptions) -> Kamailio {
        let dir = tempfile::tempdir().expect("temp dir");
        let (sip_port, evapi_port) = (free_udp_port(), free_port());
        let log = std::fs::File::create(dir.path().join("kamailio.log")).expect("log file");
        let mut cmd = Command::new(kamailio_path());
        cmd.arg("-f")
            .arg(cfg)
            .arg("-Y")
            .arg(dir.path())
            .args(["-E", "-DD", "-m", "64", "-M", "8"])
            .args(["-A", &format!("SIP_PORT={sip_port}")])
            .args(["-A", &format!("EVAPI_BIND=\"127.0.0.1:{evapi_port}\"")])
            .args(["-A", &format!("NODE_ID=\"{}\"", opts.node_id)])
            .args(["-A", &format!("FALLBACK_URI=\"{}\"", opts.fallback_uri)])
            .args(["-A", &format!("RING_TIMEOUT_MS={}", opts.ring_timeout_ms)])
            .args(["-A", &format!("SB_NUMBERS=\"{}\"", opts.numbers)])
            .args(["-A", "CHILDREN=2"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("kamailio (apt-get install kamailio kamailio-extra-modules)");
        let mut k = Kamailio { sip_port, evapi_port, child, dir };
        let started = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, evapi_port)).is_err() {
            if let Ok(Some(status)) = k.child.try_wait() {
                panic!("kamailio exited at start ({status}):\n{}", k.log());
            }
            assert!(started.elapsed() < READY_WITHIN, "kamailio not ready within {READY_WITHIN:?}:\n{}", k.log());
            std::thread::sleep(POLL_INTERVAL);
        }
        k
    }

    pub fn evapi(&self) -> String {
        format!("127.0.0.1:{}", self.evapi_port)
    }

    /// Kamailio's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The group created with process_group(0): the main process and its workers.
            let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{}", self.child.id())).status();
            let _ = self.child.wait();
        }
    }
}

fn kamailio_path() -> &'static str {
    if Path::new("/usr/sbin/kamailio").exists() { "/usr/sbin/kamailio" } else { "kamailio" }
}

/// One SIPp process playing a scenario (a caller, a phone, a registration).
pub struct Sipp {
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sipp {
    /// `sipp 127.0.0.1:<proxy> -sf <scenario> -s <service> -p <port> -m 1` with `-set` values.
    pub fn start(proxy_port: u16, scenario: &Path, service: &str, port: u16, set: &[(&str, &str)]) -> Sipp {
        Sipp::start_calls(proxy_port, scenario, service, port, set, 1)
    }

    /// [`Sipp::start`] playing the scenario `calls` times (a phone that takes several calls).
    pub fn start_calls(
        proxy_port: u16,
        scenario: &Path,
        service: &str,
        port: u16,
        set: &[(&str, &str)],
        calls: u32,
    ) -> Sipp {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("sipp.log");
        let mut cmd = Command::new("sipp");
        cmd.arg(format!("127.0.0.1:{proxy_port}"))
            .arg("-sf")
            .arg(scenario)
            .args(["-s", service, "-i", "127.0.0.1", "-p", &port.to_string(), "-m", &calls.to_string(), "-nostdin"])
            .args(["-timeout", "120s", "-trace_logs", "-log_file"])
            .arg(&log)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in set {
            cmd.args(["-set", k, v]);
        }
        let child = cmd.spawn().expect("sipp (apt-get install sip-tester)");
        Sipp { child: Some(child), port, log, _dir: dir }
    }

    /// Waits for the scenario to end (at most `within`); its exit status (0: it went as written).
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("sipp status") {
                return status;
            }
            assert!(started.elapsed() < within, "sipp did not finish within {within:?}; log:\n{}", self.log());
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// [`Sipp::wait`] for async tests: the runtime's threads keep serving meanwhile.
    pub async fn finished(&mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("sipp status") {
                return status;
            }
            assert!(started.elapsed() < within, "sipp did not finish within {within:?}; log:\n{}", self.log());
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Whether the scenario is still playing.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// What the scenario logged (`-trace_logs`: its `<log>` actions).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take()
            && let Ok(None) = c.try_wait()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
