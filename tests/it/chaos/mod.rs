//! The fault run (issue #21): steady traffic on four channels — web chat and phone calls through
//! the APIs, email through a real Dovecot (IMAP) with replies to a real SMTP server, texts
//! through a real Kannel with replies back to the phone — into three real `switchboard serve`
//! processes, with desktops accepting, rejecting, missing, replying and completing, and the
//! interaction log delivered to a `switchboard crm` process, while faults are injected one after
//! another and then overlapping. Checked from outside at the end (the API, the CRM store's
//! database, Redis): nothing acknowledged lost, nothing doubled, no double offer or over-capacity
//! in the replayed log, every CRM event there once, everything acknowledged ended.
//!
//! Two runs, each a test: [`standalone`] (one Redis with AOF: instance kill -9 and SIGSTOP, Redis
//! kill -9 with `appendfsync always` and with `everysec`, Redis SIGSTOP, the CRM down, overlapping)
//! and [`sentinel`] (Redis behind Sentinel: a failover; Dovecot, the SMTP server and Kannel
//! restarted; the CRM down; overlapping). Short in the suite; `scripts/chaos.sh` runs them long
//! with `SWITCHBOARD_CHAOS_SECS`, `SWITCHBOARD_CHAOS_ROUNDS`, `SWITCHBOARD_CHAOS_CRM_DOWN_SECS`
//! and `SWITCHBOARD_CHAOS_REPORT_DIR`.

mod agents;
mod check;
mod peers;
mod sentinel;
mod standalone;
mod traffic;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

pub const AGENTS: usize = 6;
/// Each agent's capacity on chat, email and SMS (no agent takes calls: they wait and are
/// abandoned by the caller).
pub const CAPACITY: u32 = 2;
pub const QUEUE: &str = "chaos";
pub const VOICE_QUEUE: &str = "chaos-voice";
pub const SUPPORT_LINE: &str = "+49 30 1000";
pub const OUR_NUMBER: &str = "+4930901820";
pub const CRM_KEY: &str = "chaos-crm-key-0123456789abcdef0123456789ab";
pub const KANNEL_HOOK_USER: &str = "kannel";
pub const KANNEL_HOOK_PASSWORD: &str = "kannel-webhook-secret";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ch {
    Chat,
    Email,
    Sms,
    Voice,
}

impl Ch {
    pub fn of(pb_channel: i32) -> Option<Ch> {
        use switchboard::api::pb::Channel;
        match Channel::try_from(pb_channel).ok()? {
            Channel::Chat => Some(Ch::Chat),
            Channel::Email => Some(Ch::Email),
            Channel::Sms => Some(Ch::Sms),
            Channel::Voice => Some(Ch::Voice),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Ch> {
        match s {
            "chat" => Some(Ch::Chat),
            "email" => Some(Ch::Email),
            "sms" => Some(Ch::Sms),
            "voice" => Some(Ch::Voice),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Ch::Chat => "chat",
            Ch::Email => "email",
            Ch::Sms => "sms",
            Ch::Voice => "voice",
        }
    }
}

/// How long and how hard: from the environment (the long run), else the suite's short run.
#[derive(Clone, Debug)]
pub struct Knobs {
    pub secs: u64,
    pub rounds: u32,
    pub crm_down: Duration,
    pub report_dir: Option<std::path::PathBuf>,
}

impl Knobs {
    pub fn from_env(default_secs: u64) -> Knobs {
        let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        Knobs {
            secs: num("SWITCHBOARD_CHAOS_SECS").unwrap_or(default_secs),
            rounds: num("SWITCHBOARD_CHAOS_ROUNDS").unwrap_or(1).max(1) as u32,
            crm_down: Duration::from_secs(num("SWITCHBOARD_CHAOS_CRM_DOWN_SECS").unwrap_or(5)),
            report_dir: std::env::var_os("SWITCHBOARD_CHAOS_REPORT_DIR").map(Into::into),
        }
    }
}

/// An item a customer sent, once its channel acknowledged it.
pub struct Sent {
    pub at: Duration,
    /// Interaction ids the API answered with (chat, calls); empty for email and SMS.
    pub ids: HashSet<String>,
}

/// What the clients saw.
#[derive(Default)]
pub struct Seen {
    /// Per channel: the customer's address (one per item) → when acknowledged and with what.
    pub acked: BTreeMap<Ch, BTreeMap<String, Sent>>,
    /// Items whose sending was never acknowledged (given up after retrying).
    pub unacked: BTreeMap<Ch, u64>,
    /// Failed client calls: "what: code" → count.
    pub codes: BTreeMap<String, u64>,
    /// When agents received offers (since the start).
    pub offers_at: Vec<Duration>,
    pub accepted: BTreeMap<Ch, u64>,
    pub rejected: BTreeMap<Ch, u64>,
    pub ignored: BTreeMap<Ch, u64>,
    pub completed: BTreeMap<Ch, u64>,
    /// Customers whose reply the daemon acknowledged.
    pub replied: BTreeMap<Ch, BTreeSet<String>>,
}

pub type Shared = Arc<Mutex<Seen>>;

pub fn count(seen: &Shared, what: &str, code: tonic::Code) {
    *seen.lock().unwrap().codes.entry(format!("{what}: {code:?}")).or_default() += 1;
}

pub fn acked(seen: &Shared, ch: Ch, customer: &str, at: Duration, id: Option<String>) {
    let mut s = seen.lock().unwrap();
    let e = s.acked.entry(ch).or_default().entry(customer.to_string()).or_insert(Sent { at, ids: HashSet::new() });
    e.ids.extend(id);
}

/// One fault as injected: what, when it started and when it was repaired (since the start), and
/// whether it may lose acknowledged writes (Redis `everysec` crash, failover: asynchronous).
pub struct Fault {
    pub what: String,
    pub start: Duration,
    pub end: Duration,
    pub lossy: bool,
}

/// One `switchboard serve` process, restartable on the same ports.
pub struct Instance {
    pub id: String,
    pub grpc: u16,
    pub http: u16,
    child: Option<Child>,
    config: std::path::PathBuf,
    redis_url: String,
    env: Vec<(String, String)>,
    log: std::path::PathBuf,
}

impl Instance {
    pub fn new(id: &str, config: &std::path::Path, redis_url: &str, env: &[(String, String)]) -> Instance {
        Instance {
            id: id.into(),
            grpc: free_port(),
            http: free_port(),
            child: None,
            config: config.to_path_buf(),
            redis_url: redis_url.into(),
            env: env.to_vec(),
            log: config.with_file_name(format!("{id}.log")),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.args(["serve", "--config"])
            .arg(&self.config)
            .env("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY)
            .env("SWITCHBOARD_REDIS_URL", &self.redis_url)
            .env("SWITCHBOARD_INSTANCE_ID", &self.id)
            .env("SWITCHBOARD_GRPC_LISTEN", format!("127.0.0.1:{}", self.grpc))
            .env("SWITCHBOARD_HTTP_LISTEN", format!("127.0.0.1:{}", self.http))
            .env("RUST_LOG", std::env::var("SWITCHBOARD_CHAOS_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for i in 0..AGENTS {
            cmd.env(format!("SWITCHBOARD_AGENT_TOKEN_A{i}"), format!("tok-a{i}"));
        }
        self.child = Some(cmd.spawn().expect("spawn switchboard serve"));
    }

    pub async fn ready(&self) -> bool {
        http_get(&format!("http://127.0.0.1:{}/readyz", self.http)).await.is_ok_and(|(c, _)| c == 200)
    }

    /// Sends `sig` (e.g. `-STOP`) to exactly this process.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args([sig, &c.id().to_string()]).status();
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill();
    }
}

/// Sends `sig` to the process `pid` (one of ours).
pub fn signal_pid(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// Starts the instances and waits until each is ready.
pub async fn start_instances(instances: &mut [Instance]) {
    for inst in instances.iter_mut() {
        inst.spawn();
    }
    for inst in instances.iter() {
        eventually(&format!("{} ready", inst.id), Duration::from_secs(60), || async {
            inst.ready().await.then_some(())
        })
        .await;
    }
}

/// What the serve config holds beyond the queues and agents.
#[derive(Default)]
pub struct Extra {
    pub crm_endpoint: String,
    /// `[email]` and `[sms]` sections.
    pub channels: String,
}

pub fn config_toml(extra: &Extra) -> String {
    let mut s = format!(
        "[routing]\ntimer_poll_ms = 50\nheartbeat_secs = 1\npresence_grace_secs = 5\n\
         [crm]\nenabled = true\nendpoint = \"{crm}\"\napi_key = \"{CRM_KEY}\"\ndelivery_timeout_ms = 2000\n\
         screen_pop_deadline_ms = 200\n\
         [[auth.keys]]\nname = \"chaos-channel\"\nrole = \"channel\"\nkey = \"{CHANNEL_KEY}\"\n\
         [[auth.keys]]\nname = \"pbx-1\"\nrole = \"telephony\"\nkey = \"{TELEPHONY_KEY}\"\n\
         [cti]\ndefault_destination = \"sip:voicemail@pbx.test\"\n\
         [[cti.routing_points]]\nname = \"line\"\ndialled = [\"{SUPPORT_LINE}\"]\nqueue = \"{VOICE_QUEUE}\"\n\
         [[queues]]\nname = \"{QUEUE}\"\noffer_timeout_secs = 3\nwrap_up_secs = 0\n\
         [[queues]]\nname = \"{VOICE_QUEUE}\"\nrequirements = [{{ skill = \"phones\", min_level = 1 }}]\n",
        crm = extra.crm_endpoint,
    );
    for i in 0..AGENTS {
        s.push_str(&format!(
            "[[agents]]\nid = \"a{i}\"\ncapacity = {{ voice = 1, chat = {CAPACITY}, email = {CAPACITY}, sms = {CAPACITY} }}\n"
        ));
    }
    s.push_str(&extra.channels);
    s
}

/// The faults as they happen, and the CRM's outages, which run alongside the other faults.
pub struct Schedule {
    pub start: Instant,
    pub faults: Vec<Fault>,
    gap: Duration,
    crm_down: Duration,
    /// Outages under way: the fault's index and the task that ends it (returning when).
    crm_out: Vec<(usize, tokio::task::JoinHandle<Duration>)>,
}

impl Schedule {
    /// `steps` faults spread evenly over `knobs.secs`.
    pub fn new(start: Instant, knobs: &Knobs, steps: usize) -> Schedule {
        let gap = Duration::from_secs_f64(knobs.secs as f64 / (steps as f64 + 1.0));
        Schedule { start, faults: Vec::new(), gap, crm_down: knobs.crm_down, crm_out: Vec::new() }
    }

    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// A fault that began at `began` and is over now.
    pub fn record(&mut self, what: impl Into<String>, began: Duration, lossy: bool) {
        self.faults.push(Fault { what: what.into(), start: began, end: self.now(), lossy });
    }

    /// Paces to the `j`th fault's turn, and at least half a gap after the last fault ended: a
    /// slow fault (a Kannel restart can take 15 s) would otherwise have the overdue ones follow it
    /// back to back, unplanned. (It did: Kannel restarted the moment a failover ended, and two
    /// texts it was still retrying — refused during the failover — were never delivered.)
    pub async fn turn(&self, j: usize) {
        let slot = self.start + self.gap * (j as u32 + 1);
        let settled = self.faults.last().map_or(slot, |f| self.start + f.end + self.gap / 2);
        tokio::time::sleep_until(slot.max(settled).into()).await;
    }

    /// The CRM killed (-9), started again `crm_down` later (while other faults go on), unless an
    /// outage is under way already.
    pub fn crm_down(&mut self, crm: &Arc<Mutex<peers::CrmProcess>>) {
        if self.crm_out.iter().any(|(_, t)| !t.is_finished()) {
            return;
        }
        crm.lock().unwrap().kill();
        let what = format!("CRM store process kill -9, down {} s", self.crm_down.as_secs());
        self.faults.push(Fault { what, start: self.now(), end: self.now(), lossy: false });
        let (crm, down, start) = (crm.clone(), self.crm_down, self.start);
        let back = tokio::spawn(async move {
            tokio::time::sleep(down).await;
            crm.lock().unwrap().spawn();
            let port = crm.lock().unwrap().port;
            peers::CrmProcess::wait_serving_on(port).await;
            start.elapsed()
        });
        self.crm_out.push((self.faults.len() - 1, back));
    }

    /// Until `at` since the start, then every CRM outage over.
    pub async fn finish(&mut self, at: Duration) {
        tokio::time::sleep_until((self.start + at).into()).await;
        for (i, back) in std::mem::take(&mut self.crm_out) {
            self.faults[i].end = back.await.unwrap();
        }
    }
}

/// Milliseconds since the epoch now.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The run's directory (config, the instances' logs): kept when `SWITCHBOARD_CHAOS_KEEP` is set.
pub struct RunDir {
    _dir: Option<tempfile::TempDir>,
    path: std::path::PathBuf,
}

impl RunDir {
    pub fn new() -> RunDir {
        let dir = tempfile::Builder::new().prefix("switchboard-chaos-").tempdir().unwrap();
        if std::env::var_os("SWITCHBOARD_CHAOS_KEEP").is_some() {
            eprintln!("chaos: logs in {}", dir.path().display());
            let path = dir.keep();
            return RunDir { _dir: None, path };
        }
        let path = dir.path().to_path_buf();
        RunDir { _dir: Some(dir), path }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}
