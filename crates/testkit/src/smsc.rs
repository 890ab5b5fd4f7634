//! An SMPP 3.4 SMSC for the SMS tests: [`Smsc`], PyPI `smpp34`'s server run by a small Python
//! driver (`smsc.py`, written to a temp dir at start) on a free 127.0.0.1 port, in its own
//! process group, stopped by PID on drop.
//!
//! The driver puts a transparent TCP proxy in front of smpp34 so a test can also break the link
//! ([`Smsc::drop_link`], [`Smsc::mute`]) and send the ESME what smpp34's API cannot
//! ([`Smsc::enquire_link`], [`Smsc::unbind`], [`Smsc::unknown_command`]). Commands go to its
//! stdin and events come back on its stdout, one JSON object a line; every event is kept, in
//! order, for [`Smsc::events`] and the waits.
//!
//! The interpreter: `SWITCHBOARD_SMSC_PYTHON` if set, else the venv that
//! `scripts/setup-debian.sh` makes (`${XDG_DATA_HOME:-~/.local/share}/switchboard/py`), else a
//! `python3` on PATH that can `import smpp34`.
//!
//! What smpp34 (1.5.0) does, for reading the tests: it accepts any system_id and password; it
//! answers enquire_link and sends its own after 30 s idle; it waits as long as it takes for a
//! deliver_sm_resp; a submit it is given no answer for stays unanswered ([`Smsc::hold_submits`]);
//! on the ESME's unbind it closes TCP without unbind_resp.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::wait::{PATIENCE, eventually};

const SCRIPT: &str = include_str!("smsc.py");
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A submit_sm as the SMSC saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// The id it answered with; `None` while held or when rejected.
    pub message_id: Option<String>,
    /// The command_status it answered with (`None` while held).
    pub status: Option<u32>,
    pub held: bool,
    pub source: String,
    pub source_ton: u8,
    pub source_npi: u8,
    pub dest: String,
    pub dest_ton: u8,
    pub dest_npi: u8,
    pub esm_class: u8,
    pub data_coding: u8,
    pub registered_delivery: u8,
    /// Concatenation UDH (8-bit reference): reference, total, index.
    pub udh: Option<(u8, u8, u8)>,
    /// The user data after any UDH.
    pub payload: Vec<u8>,
    /// `payload` as text: UTF-16BE for data_coding 8, else Latin-1 (right for GSM-7 letters,
    /// digits and most punctuation).
    pub text: String,
}

/// A deliver_sm to push to the bound ESME (a customer's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mo {
    pub from: String,
    /// TON of `from` (1: international).
    pub from_ton: u8,
    pub to: String,
    pub esm_class: u8,
    pub data_coding: u8,
    /// short_message as sent (UDH included when `esm_class` has 0x40).
    pub short_message: Vec<u8>,
    pub tlvs: Vec<(u16, Vec<u8>)>,
}

impl Mo {
    /// An ASCII text (GSM-7 and ASCII agree on letters, digits and common punctuation).
    pub fn ascii(from: &str, to: &str, text: &str) -> Mo {
        assert!(text.is_ascii(), "Mo::ascii takes ASCII only; build other codings yourself");
        Mo {
            from: from.trim_start_matches('+').into(),
            from_ton: 1,
            to: to.into(),
            esm_class: 0,
            data_coding: 0,
            short_message: text.as_bytes().to_vec(),
            tlvs: Vec::new(),
        }
    }
}

pub struct Smsc {
    port: u16,
    child: Child,
    stdin: Mutex<ChildStdin>,
    events: Arc<Mutex<Vec<Value>>>,
    next_id: AtomicU64,
    dir: tempfile::TempDir,
}

impl Smsc {
    /// Starts the simulator and waits until it listens.
    pub fn start() -> Smsc {
        let python = python();
        let dir = tempfile::Builder::new().prefix("switchboard-smsc-").tempdir().expect("temp dir for the SMSC");
        let script = dir.path().join("smsc.py");
        std::fs::write(&script, SCRIPT).expect("write smsc.py");
        let log = std::fs::File::create(dir.path().join("smsc.log")).expect("smsc log");
        let mut cmd = Command::new(&python);
        cmd.arg("-u").arg(&script).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child =
            cmd.spawn().unwrap_or_else(|e| panic!("starting {} for the SMSC simulator: {e}", python.display()));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().expect("events").push(v);
                }
            }
        });
        let mut smsc = Smsc { port: 0, child, stdin: Mutex::new(stdin), events, next_id: AtomicU64::new(1), dir };
        let started = Instant::now();
        loop {
            if let Some(port) = smsc.find("ready").and_then(|e| e["port"].as_u64()) {
                smsc.port = port as u16;
                return smsc;
            }
            if let Ok(Some(status)) = smsc.child.try_wait() {
                panic!("the SMSC simulator exited at start ({status}):\n{}", smsc.log());
            }
            assert!(
                started.elapsed() < READY_WITHIN,
                "the SMSC simulator not ready within {READY_WITHIN:?}:\n{}",
                smsc.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The driver's stderr (Python tracebacks).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("smsc.log")).unwrap_or_default()
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().expect("events").clone()
    }

    fn find(&self, ev: &str) -> Option<Value> {
        self.events.lock().expect("events").iter().find(|e| e["ev"] == ev).cloned()
    }

    /// How many events named `ev` came so far.
    pub fn count(&self, ev: &str) -> usize {
        self.events.lock().expect("events").iter().filter(|e| e["ev"] == ev).count()
    }

    fn send(&self, mut cmd: Value) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        cmd["id"] = json!(id);
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin.lock().expect("smsc stdin").write_all(line.as_bytes()).expect("write to the SMSC driver");
        id
    }

    /// Waits (up to [`PATIENCE`]) for an event `f` picks, looking at every event from the first.
    pub async fn wait_for<T>(&self, what: &str, mut f: impl FnMut(&Value) -> Option<T>) -> T {
        let events = self.events.clone();
        eventually(what, PATIENCE, || {
            let found = events.lock().expect("events").iter().find_map(&mut f);
            async move { found }
        })
        .await
    }

    /// Waits until `n` events named `ev` have come.
    pub async fn wait_count(&self, ev: &str, n: usize) {
        let what = format!("{n} {ev} events from the SMSC");
        eventually(&what, PATIENCE, || async move { (self.count(ev) >= n).then_some(()) }).await;
    }

    /// Binds so far (each bind_transceiver it accepted).
    pub fn binds(&self) -> usize {
        self.count("bound")
    }

    /// Waits until `n` binds have been made in all.
    pub async fn wait_binds(&self, n: usize) {
        self.wait_count("bound", n).await;
    }

    /// Every submit_sm seen, in arrival order (held ones included, as held).
    pub fn submits(&self) -> Vec<Submit> {
        self.events.lock().expect("events").iter().filter(|e| e["ev"] == "submit").map(submit).collect()
    }

    /// Pushes a deliver_sm; returns its id for [`Smsc::deliver_status`].
    pub fn mo(&self, mo: &Mo) -> u64 {
        let tlvs: Vec<Value> = mo.tlvs.iter().map(|(t, v)| json!([t, hex(v)])).collect();
        self.send(json!({
            "cmd": "mo", "from": mo.from, "ton": mo.from_ton, "to": mo.to, "esm_class": mo.esm_class,
            "coding": mo.data_coding, "hex": hex(&mo.short_message), "tlvs": tlvs,
        }))
    }

    /// Pushes a delivery receipt for `message_id` (`stat` as in the receipt text: DELIVRD,
    /// UNDELIV, ...; `err` its code), with the receipted_message_id and message_state TLVs when
    /// `tlvs`, else the text alone.
    pub fn receipt(&self, message_id: &str, stat: &str, err: &str, tlvs: bool) -> u64 {
        self.send(json!({"cmd": "receipt", "message_id": message_id, "stat": stat, "err": err, "tlvs": tlvs}))
    }

    /// Waits for the ESME's deliver_sm_resp to the deliver_sm `id`; its command_status.
    pub async fn deliver_status(&self, id: u64) -> u32 {
        self.wait_for(&format!("deliver_sm_resp for deliver {id}"), |e| {
            if e["id"] != id {
                return None;
            }
            match e["ev"].as_str() {
                Some("deliver_resp") => Some(e["status"].as_u64().unwrap_or(u64::MAX) as u32),
                Some("deliver_error") => panic!("deliver_sm {id} failed: {}", e["error"]),
                _ => None,
            }
        })
        .await
    }

    /// Closes every ESME connection abruptly (no unbind): a dropped link.
    pub fn drop_link(&self) {
        self.send(json!({"cmd": "drop"}));
    }

    /// Stops passing anything either way on the current connections (the SMSC hangs).
    pub fn mute(&self) {
        self.send(json!({"cmd": "mute"}));
    }

    /// Leaves the next `n` submit_sm unanswered (to fill the ESME's window).
    pub fn hold_submits(&self, n: usize) {
        self.send(json!({"cmd": "hold_submits", "n": n}));
    }

    /// Accepts every held submit_sm and stops holding.
    pub fn release(&self) {
        self.send(json!({"cmd": "release"}));
    }

    /// Answers the next submit_sm with this command_status.
    pub fn reject_next(&self, status: u32) {
        self.reject_after(0, status);
    }

    /// Lets `after` more submit_sm pass as usual, then answers the next with this
    /// command_status (a long text refused part-way).
    pub fn reject_after(&self, after: usize, status: u32) {
        self.send(json!({"cmd": "reject", "after": after, "status": status}));
    }

    /// Sends the ESME an enquire_link; its answer comes as an `enquire_link_resp` event.
    pub fn enquire_link(&self) {
        self.send(json!({"cmd": "enquire_link"}));
    }

    /// Sends the ESME an unbind; its unbind_resp comes as an `unbind_resp` event, then the
    /// connection is closed.
    pub fn unbind(&self) {
        self.send(json!({"cmd": "unbind"}));
    }

    /// Sends the ESME a command it cannot know; its answer comes as a `generic_nack` event.
    pub fn unknown_command(&self) {
        self.send(json!({"cmd": "unknown"}));
    }
}

impl Drop for Smsc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The group made with process_group(0): exactly what we started.
            let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{}", self.child.id())).status();
            let _ = self.child.wait();
        }
    }
}

fn submit(e: &Value) -> Submit {
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    let n = |k: &str| e[k].as_u64().unwrap_or_default() as u8;
    let udh = e["udh"].as_array().map(|a| {
        let b = |i: usize| a.get(i).and_then(Value::as_u64).unwrap_or_default() as u8;
        (b(0), b(1), b(2))
    });
    Submit {
        message_id: e["message_id"].as_str().map(str::to_string),
        status: e["status"].as_u64().map(|v| v as u32),
        held: e["held"].as_bool().unwrap_or(false),
        source: s("source"),
        source_ton: n("source_ton"),
        source_npi: n("source_npi"),
        dest: s("dest"),
        dest_ton: n("dest_ton"),
        dest_npi: n("dest_npi"),
        esm_class: n("esm_class"),
        data_coding: n("data_coding"),
        registered_delivery: n("registered_delivery"),
        udh,
        payload: unhex(&s("hex")),
        text: s("text"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()).collect()
}

/// The interpreter that runs the driver (see the module doc).
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHBOARD_SMSC_PYTHON") {
        return PathBuf::from(p);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    if let Some(venv) = data.map(|d| d.join("switchboard/py/bin/python3"))
        && venv.exists()
    {
        return venv;
    }
    let has_smpp34 = Command::new("python3")
        .args(["-c", "import smpp34"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_smpp34,
        "no Python with smpp34 for the SMSC simulator: run scripts/setup-debian.sh (it makes the venv \
         ${{XDG_DATA_HOME:-~/.local/share}}/switchboard/py with PyPI smpp34), or set SWITCHBOARD_SMSC_PYTHON"
    );
    PathBuf::from("python3")
}
