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

    /// Sends a command and waits until the driver has carried it out (so a hold or a reject is
    /// in force before the ESME's next submit can arrive); its id.
    async fn send(&self, mut cmd: Value) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        cmd["id"] = json!(id);
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin.lock().expect("smsc stdin").write_all(line.as_bytes()).expect("write to the SMSC driver");
        let what = format!("the SMSC driver to carry out {}", cmd["cmd"]);
        let failed = self
            .wait_for(&what, |e| match e["ev"].as_str() {
                Some("ack") if e["cmd_id"] == id => Some(None),
                Some("error") if e["cmd_id"] == id => Some(Some(e["error"].to_string())),
                _ => None,
            })
            .await;
        if let Some(error) = failed {
            panic!("the SMSC driver failed {cmd}: {error}\n{}", self.log());
        }
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

    /// Every submit_sm seen, in arrival order (held ones included, as held): every one the
    /// driver reported before now. (A round trip to the driver first: its report of a submit
    /// can reach us after its answer reached the ESME.)
    pub async fn submits(&self) -> Vec<Submit> {
        self.send(json!({"cmd": "sync"})).await;
        self.events.lock().expect("events").iter().filter(|e| e["ev"] == "submit").map(submit).collect()
    }

    /// Pushes a deliver_sm; returns its id for [`Smsc::deliver_status`].
    pub async fn mo(&self, mo: &Mo) -> u64 {
        let tlvs: Vec<Value> = mo.tlvs.iter().map(|(t, v)| json!([t, hex(v)])).collect();
        self.send(json!({
            "cmd": "mo", "from": mo.from, "ton": mo.from_ton, "to": mo.to, "esm_class": mo.esm_class,
            "coding": mo.data_coding, "hex": hex(&mo.short_message), "tlvs": tlvs,
        }))
        .await
    }

    /// Pushes a delivery receipt for `message_id` (`stat` as in the receipt text: DELIVRD,
    /// UNDELIV, ...; `err` its code), with the receipted_message_id and message_state TLVs when
    /// `tlvs`, else the text alone.
    pub async fn receipt(&self, message_id: &str, stat: &str, err: &str, tlvs: bool) -> u64 {
        self.send(json!({"cmd": "receipt", "message_id": message_id, "stat": stat, "err": err, "tlvs": tlvs})).await
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
    pub async fn drop_link(&self) {
        self.send(json!({"cmd": "drop"})).await;
    }

    /// Stops passing anything either way on the current connections (the SMSC hangs).
    pub async fn mute(&self) {
        self.send(json!({"cmd": "mute"})).await;
    }

    /// Leaves the next `n` submit_sm unanswered (to fill the ESME's window).
    pub async fn hold_submits(&self, n: usize) {
        self.send(json!({"cmd": "hold_submits", "n": n})).await;
    }

    /// Accepts every held submit_sm and stops holding.
    pub async fn release(&self) {
        self.send(json!({"cmd": "release"})).await;
    }

    /// Answers the next submit_sm with this command_status.
    pub async fn reject_next(&self, status: u32) {
        self.reject_after(0, status).await;
    }

    /// Lets `after` more submit_sm pass as usual, then answers the next with this
    /// command_status (a long text refused part-way).
    pub async fn reject_after(&self, after: usize, status: u32) {
        self.send(json!({"cmd": "reject", "after": after, "status": status})).await;
    }

    /// Sends the ESME an enquire_link; its answer comes as an `enquire_link_resp` event.
    pub async fn enquire_link(&self) {
        self.send(json!({"cmd": "enquire_link"})).await;
    }

    /// Sends the ESME an unbind; its unbind_resp comes as an `unbind_resp` event, then the
    /// connection is closed.
    pub async fn unbind(&self) {
        self.send(json!({"cmd": "unbind"})).await;
    }

    /// Sends the ESME a command it cannot know; its answer comes as a `generic_nack` event.
    pub async fn unknown_command(&self) {
        self.send(json!({"cmd": "unknown"})).await;
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    fn pdu(command_id: u32, status: u32, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        for w in [16 + body.len() as u32, command_id, status, seq] {
            p.extend_from_slice(&w.to_be_bytes());
        }
        p.extend_from_slice(body);
        p
    }

    /// (command_id, status, sequence, body)
    fn read_pdu(s: &mut TcpStream) -> Option<(u32, u32, u32, Vec<u8>)> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).ok()?;
        let mut rest = vec![0u8; u32::from_be_bytes(len) as usize - 4];
        s.read_exact(&mut rest).ok()?;
        let w = |i: usize| u32::from_be_bytes(rest[i..i + 4].try_into().unwrap());
        Some((w(0), w(4), w(8), rest[12..].to_vec()))
    }

    /// A hand-made ESME, so the simulator is checked on its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_esme_binds_submits_and_receives() {
        let smsc = Smsc::start();
        let mut s = TcpStream::connect(("127.0.0.1", smsc.port())).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(&pdu(0x09, 0, 1, b"esme\0pw\0\0\x34\x00\x00\0")).unwrap();
        assert_eq!(read_pdu(&mut s).unwrap().0, 0x8000_0009);
        smsc.wait_binds(1).await;

        let submit = b"\0\x01\x014930\0\x01\x01491511\0\x00\x00\x00\0\0\x01\x00\x00\x00\x05Hello";
        s.write_all(&pdu(0x04, 0, 2, submit)).unwrap();
        let (id, status, seq, body) = read_pdu(&mut s).unwrap();
        assert_eq!((id, status, seq), (0x8000_0004, 0, 2));
        let got = smsc.submits().await;
        assert_eq!(body, format!("{}\0", got[0].message_id.clone().unwrap()).into_bytes());
        assert_eq!((got[0].source.as_str(), got[0].dest.as_str(), got[0].text.as_str()), ("4930", "491511", "Hello"));

        let d = smsc.mo(&Mo::ascii("+491511", "4930", "Hi")).await;
        let (id, _, seq, _) = read_pdu(&mut s).unwrap();
        assert_eq!(id, 0x05);
        s.write_all(&pdu(0x8000_0005, 0x64, seq, b"\0")).unwrap();
        assert_eq!(smsc.deliver_status(d).await, 0x64);

        smsc.enquire_link().await;
        let (id, _, seq, _) = read_pdu(&mut s).unwrap();
        assert_eq!(id, 0x15);
        s.write_all(&pdu(0x8000_0015, 0, seq, b"")).unwrap();
        smsc.wait_count("enquire_link_resp", 1).await;

        smsc.drop_link().await;
        assert!(read_pdu(&mut s).is_none(), "the link is closed");
    }
}
