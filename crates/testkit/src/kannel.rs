//! Kannel 1.4.5 (Debian `kannel`, `kannel-extras`) as an SMS operator: bearerbox + smsbox, and
//! `fakesmsc` on bearerbox's fake SMSC as the phone network. On free 127.0.0.1 ports in a temp
//! dir; each process in its own process group, stopped through it (never by name).
//!
//! Facts this relies on (checked here):
//! - Start-up takes well under a second: bearerbox's admin page (`/status.txt`) answers, lists
//!   the fake SMSC (listening) and, once smsbox has connected, a `smsbox:` box; the SMSC shows
//!   `online` once fakesmsc is connected.
//! - fakesmsc with no message arguments reads lines `FROM TO text MESSAGE` from stdin
//!   (`ucs2 <url-encoded UTF-16BE>` for other texts; `udh-text <url-encoded UDH> TEXT` for a
//!   part of a concatenated text) and logs each MT as `Got message N: <FROM TO text TEXT>`
//!   (`ucs-2 <url-encoded UTF-16BE>`; `udh <udh> data <bytes>` for each part of a long text,
//!   which does not say its coding) at debug level. It reads stdin into a 256-byte buffer: a
//!   longer line becomes two texts. It waits for stdin with select() but reads it through stdio,
//!   so of two lines written at once the second waits for a third: [`Kannel::phone_sends`]
//!   writes a line only once fakesmsc logged the one before as sent. It reads the network only
//!   between lines (at least every second). It exits when bearerbox goes away (and, with a
//!   double free, on end of stdin).
//! - bearerbox's fake SMSC takes one client at a time; an MT for a phone network that is away is
//!   queued (sendsms answers `202 3: Queued for later delivery`) and sent when it is back.
//! - DLRs: fakesmsc never sends any; bearerbox's fake SMSC makes them itself for each MT it
//!   writes to fakesmsc: `8` (SMSC ack) and `1` (delivered), one pair for a text of several
//!   parts, in either order. No other type is ever produced (no failures to test against).
//! - smsbox calls the `get-url`/`post-url` with the URL's userinfo as Basic auth, retries a
//!   failed call (5xx, 4xx or no connection) `http-request-retry` times `http-queue-delay` apart
//!   with the same `%I`, and joins concatenated texts before calling.
//! - When bearerbox is stopped (SIGTERM) it tells smsbox to stop too; when bearerbox dies,
//!   smsbox closes its sendsms port (connection refused) and restarts itself about 10 s later in
//!   a new process of the same process group.
//! - Texts in bearerbox's queues survive a restart (`store-type = file`); DLR bookkeeping is in
//!   memory (`dlr-storage = internal`), which the fake SMSC's immediate DLRs never need.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::wait::{POLL_INTERVAL, free_port};

const READY_WITHIN: Duration = Duration::from_secs(20);
/// smsbox restarts itself ~10 s after losing bearerbox.
const SMSBOX_SELF_RESTART_WITHIN: Duration = Duration::from_secs(30);
const BEARERBOX: &str = "/usr/sbin/bearerbox";
const SMSBOX: &str = "/usr/sbin/smsbox";
const FAKESMSC: &str = "/usr/lib/kannel/test/fakesmsc";
const ADMIN_PASSWORD: &str = "kannel-admin";
/// The id of the fake SMSC in Kannel (`%i`).
pub const SMSC_ID: &str = "fake1";
/// fakesmsc's stdin buffer holds a line of 255 bytes and its end.
const MAX_LINE: usize = 255;

/// What a test chooses of Kannel's configuration.
#[derive(Debug, Clone)]
pub struct KannelOptions {
    /// The sms-service's URL for customers' texts, with Kannel's escapes and the webhook's
    /// credentials (`http://user:pw@127.0.0.1:P/sms/kannel/inbound?from=%p&...`).
    pub mo_url: String,
    /// `post-url` (the text as the body) instead of `get-url`.
    pub post: bool,
    pub sendsms_user: String,
    pub sendsms_password: String,
    /// smsbox's retries of a failed webhook call, `http_queue_delay_secs` apart.
    pub http_request_retry: u32,
    pub http_queue_delay_secs: u32,
    /// Pass UCS-2 texts on as UTF-8 (else as UTF-16BE with coding 2).
    pub mo_recode: bool,
    /// Parts a sent text may be split into (the sendsms-user's `max-messages`).
    pub max_parts: u32,
}

impl Default for KannelOptions {
    fn default() -> Self {
        KannelOptions {
            mo_url: String::new(),
            post: false,
            sendsms_user: "switchboard".into(),
            sendsms_password: "sendsms-secret".into(),
            http_request_retry: 10,
            http_queue_delay_secs: 1,
            mo_recode: true,
            max_parts: 10,
        }
    }
}

/// A text the phone network received (an MT), concatenated parts joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mt {
    pub from: String,
    pub to: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    admin: u16,
    smsbox: u16,
    smsc: u16,
    sendsms: u16,
}

impl Ports {
    fn pick() -> Ports {
        Ports { admin: free_port(), smsbox: free_port(), smsc: free_port(), sendsms: free_port() }
    }
}

/// The phone network's side: fakesmsc, and what was written while it was away.
#[derive(Default)]
struct Phone {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Lines not yet handed to a running fakesmsc.
    pending: Vec<String>,
    /// The reference of the next concatenated text.
    next_ref: u8,
}

pub struct Kannel {
    ports: Ports,
    dir: tempfile::TempDir,
    bearerbox: Option<Child>,
    smsbox: Option<Child>,
    /// smsbox's process group (it lives on in a new process when smsbox restarts itself).
    smsbox_group: Option<u32>,
    phone: Mutex<Phone>,
}

impl Kannel {
    /// Starts bearerbox, smsbox and fakesmsc and waits until a text can go both ways.
    pub fn start(opts: KannelOptions) -> Kannel {
        for p in [BEARERBOX, SMSBOX, FAKESMSC] {
            assert!(Path::new(p).exists(), "{p} is missing: apt-get install kannel kannel-extras");
        }
        assert!(!opts.mo_url.is_empty(), "KannelOptions::mo_url is required");
        let dir = tempfile::Builder::new().prefix("switchboard-kannel-").tempdir().expect("temp dir");
        let mut k = Kannel {
            ports: Ports::pick(),
            dir,
            bearerbox: None,
            smsbox: None,
            smsbox_group: None,
            phone: Mutex::default(),
        };
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            fs::write(k.dir.path().join("kannel.conf"), config(k.dir.path(), k.ports, &opts)).expect("kannel.conf");
            match k.try_start() {
                Ok(()) => return k,
                Err(e) => {
                    // Most likely a port taken meanwhile: others next time.
                    failures.push(format!("attempt {attempt}: {e}"));
                    k.kill_all();
                    k.ports = Ports::pick();
                }
            }
        }
        panic!("Kannel did not start:\n  {}", failures.join("\n  "));
    }

    fn try_start(&mut self) -> Result<(), String> {
        self.start_bearerbox()?;
        self.start_smsbox();
        self.ready_within(READY_WITHIN)
    }

    fn start_bearerbox(&mut self) -> Result<(), String> {
        self.bearerbox = Some(self.spawn(BEARERBOX, "bearerbox.out"));
        // The fake SMSC listens once the admin page lists it; only then may fakesmsc connect.
        let started = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.bearerbox.as_mut().map(Child::try_wait) {
                return Err(format!("bearerbox exited ({status}):\n{}", self.log("bearerbox.log")));
            }
            if self.status_page().is_some_and(|s| s.contains(&format!("{SMSC_ID}[{SMSC_ID}]"))) {
                break;
            }
            if started.elapsed() > READY_WITHIN {
                return Err(format!("bearerbox not up within {READY_WITHIN:?}:\n{}", self.log("bearerbox.log")));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        self.start_phone();
        Ok(())
    }

    fn start_smsbox(&mut self) {
        let child = self.spawn(SMSBOX, "smsbox.out");
        self.smsbox_group = Some(child.id());
        self.smsbox = Some(child);
    }

    fn spawn(&self, program: &str, out: &str) -> Child {
        let log = fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join(out)).expect("log file");
        let mut cmd = Command::new(program);
        cmd.args(["-v", "1"])
            .arg(self.dir.path().join("kannel.conf"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.spawn().unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    /// Starts fakesmsc (the phone network) and hands it what phones sent while it was away.
    fn start_phone(&self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("fakesmsc.log"))
            .expect("fakesmsc log");
        let mut cmd = Command::new(FAKESMSC);
        cmd.args(["-H", "127.0.0.1", "-r", &self.ports.smsc.to_string(), "-i", "0", "-v", "0"])
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("fakesmsc (apt-get install kannel-extras)");
        let stdin = child.stdin.take();
        let mut phone = self.phone.lock().unwrap();
        phone.child = Some(child);
        phone.stdin = stdin;
        for line in std::mem::take(&mut phone.pending) {
            self.feed(&mut phone, line);
        }
    }

    /// Hands one line to fakesmsc and waits until it has sent it: fakesmsc reads stdin through
    /// a stdio buffer but waits for it with select(), so a second line written at once would sit
    /// in the buffer until a third arrives. Kept for later if fakesmsc is not running.
    fn feed(&self, phone: &mut Phone, line: String) {
        let running = phone.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        let before = self.phone_sent();
        let written = running && phone.stdin.as_mut().is_some_and(|s| s.write_all(line.as_bytes()).is_ok());
        if !written {
            phone.pending.push(line);
            return;
        }
        let started = Instant::now();
        while self.phone_sent() <= before {
            if started.elapsed() > Duration::from_secs(10) {
                panic!("fakesmsc did not send {line:?}:\n{}", tail(&self.log("fakesmsc.log")));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Texts fakesmsc has sent, over all its runs.
    fn phone_sent(&self) -> usize {
        self.log("fakesmsc.log").lines().filter(|l| l.contains("fakesmsc: sent message ")).count()
    }

    /// Until smsbox is connected, the phone network is online and sendsms takes connections.
    fn ready_within(&mut self, within: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.bearerbox.as_mut().map(Child::try_wait) {
                return Err(format!("bearerbox exited ({status}):\n{}", self.log("bearerbox.log")));
            }
            let page = self.status_page().unwrap_or_default();
            let smsc_online =
                page.lines().any(|l| l.contains(&format!("{SMSC_ID}[{SMSC_ID}]")) && l.contains("(online"));
            let smsbox_connected = page.contains("smsbox:");
            if smsc_online && smsbox_connected && accepts(self.ports.sendsms) {
                return Ok(());
            }
            if started.elapsed() > within {
                return Err(format!(
                    "not ready within {within:?} (smsc online: {smsc_online}, smsbox connected: {smsbox_connected})\n\
                     --- bearerbox ---\n{}\n--- smsbox ---\n{}\n--- fakesmsc ---\n{}",
                    tail(&self.log("bearerbox.log")),
                    tail(&self.log("smsbox.log")),
                    tail(&self.log("fakesmsc.log"))
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// smsbox's `sendsms` CGI.
    pub fn sendsms_url(&self) -> String {
        format!("http://127.0.0.1:{}/cgi-bin/sendsms", self.ports.sendsms)
    }

    /// bearerbox's admin status page (`/status.txt`), if it answers.
    pub fn status_page(&self) -> Option<String> {
        http_get(self.ports.admin, &format!("/status.txt?password={ADMIN_PASSWORD}"))
    }

    /// A phone sends a text: plain text when it is printable ASCII (as several concatenated
    /// parts over 160 characters, as a phone does), UCS-2 otherwise. While the phone network is
    /// down (Kannel stopped) it waits and goes out when it is back.
    pub fn phone_sends(&self, from: &str, to: &str, text: &str) {
        assert!(
            !from.contains(' ') && !to.contains(' ') && !from.is_empty() && !to.is_empty(),
            "numbers without spaces"
        );
        let mut phone = self.phone.lock().unwrap();
        let lines: Vec<String> = if text.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            if text.len() <= 160 {
                vec![format!("{from} {to} text {text}\n")]
            } else {
                phone.next_ref = phone.next_ref.wrapping_add(1);
                let parts: Vec<&str> = text.as_bytes().chunks(153).map(|c| std::str::from_utf8(c).unwrap()).collect();
                let n = parts.len();
                assert!(n <= 255, "text too long");
                parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let udh = format!("%05%00%03%{:02X}%{n:02X}%{:02X}", phone.next_ref, i + 1);
                        format!("{from} {to} udh-text {udh} {p}\n")
                    })
                    .collect()
            }
        } else {
            let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
            vec![format!("{from} {to} ucs2 {}\n", url_encode(&bytes))]
        };
        for line in lines {
            assert!(line.len() <= MAX_LINE, "fakesmsc reads lines of at most {MAX_LINE} bytes: {line:?}");
            self.feed(&mut phone, line);
        }
    }

    /// The texts the phone network received so far, in order (parts joined once all arrived).
    pub fn phone_received(&self) -> Vec<Mt> {
        parse_mts(&self.log("fakesmsc.log"))
    }

    /// Stops Kannel as an operator would (SIGTERM to bearerbox, which stops smsbox; fakesmsc
    /// ends with it), queued texts kept in the store for [`Kannel::start_again`].
    pub fn stop(&mut self) {
        if let Some(bb) = self.bearerbox.as_mut()
            && let Ok(None) = bb.try_wait()
        {
            let _ = Command::new("kill").arg("-TERM").arg(bb.id().to_string()).status();
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            let bb_done = self.bearerbox.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            let sb_done = self.smsbox_group.is_none_or(|g| !group_alive(g));
            if bb_done && sb_done {
                break;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        self.kill_all();
    }

    /// Starts Kannel again after [`Kannel::stop`], on the same ports with the same store.
    pub fn start_again(&mut self) {
        self.try_start().unwrap_or_else(|e| panic!("Kannel did not start again: {e}"));
    }

    /// [`Kannel::stop`] then [`Kannel::start_again`].
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// bearerbox dies (SIGKILL) and is started again at once; smsbox notices, closes its sendsms
    /// port and restarts itself (~10 s); the phone network reconnects. Returns once ready.
    pub fn restart_bearerbox(&mut self) {
        self.crash_bearerbox();
        self.wait_ready();
    }

    /// The first half of [`Kannel::restart_bearerbox`]: bearerbox killed and started again, the
    /// phone network back, smsbox not yet (sendsms refuses connections; texts from phones wait
    /// in bearerbox until smsbox is back). [`Kannel::wait_ready`] waits for smsbox.
    pub fn crash_bearerbox(&mut self) {
        if let Some(mut bb) = self.bearerbox.take() {
            kill_group(bb.id());
            let _ = bb.wait();
        }
        self.stop_phone();
        // The first smsbox exits on its own; its successor keeps the process group.
        self.start_bearerbox().unwrap_or_else(|e| panic!("bearerbox did not start again: {e}"));
    }

    /// Until smsbox is connected (after restarting itself, up to ~10 s), the phone network is
    /// online and sendsms takes connections.
    pub fn wait_ready(&mut self) {
        self.ready_within(SMSBOX_SELF_RESTART_WITHIN).unwrap_or_else(|e| panic!("Kannel not back: {e}"));
    }

    fn stop_phone(&self) {
        let mut phone = self.phone.lock().unwrap();
        phone.stdin = None;
        if let Some(mut c) = phone.child.take() {
            kill_group(c.id());
            let _ = c.wait();
        }
    }

    fn kill_all(&mut self) {
        self.stop_phone();
        if let Some(mut bb) = self.bearerbox.take() {
            kill_group(bb.id());
            let _ = bb.wait();
        }
        if let Some(g) = self.smsbox_group.take() {
            kill_group(g);
        }
        if let Some(mut sb) = self.smsbox.take() {
            let _ = sb.wait();
        }
    }

    /// One of Kannel's logs (`bearerbox.log`, `smsbox.log`, `fakesmsc.log`, `access.log`).
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Kannel {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn config(dir: &Path, ports: Ports, o: &KannelOptions) -> String {
    let d = dir.display();
    let url_kind = if o.post { "post-url" } else { "get-url" };
    format!(
        r#"group = core
admin-port = {admin}
admin-interface = 127.0.0.1
admin-password = {ADMIN_PASSWORD}
status-password = {ADMIN_PASSWORD}
smsbox-port = {smsbox}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{d}/bearerbox.log"
log-level = 0
access-log = "{d}/access.log"
dlr-storage = internal
store-type = file
store-location = "{d}/kannel.store"
sms-resend-freq = 1
sms-resend-retry = -1

group = smsc
smsc = fake
smsc-id = {SMSC_ID}
port = {smsc}
our-host = 127.0.0.1
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{d}/smsbox.log"
log-level = 0
mo-recode = {recode}
http-request-retry = {retry}
http-queue-delay = {delay}

group = sendsms-user
username = "{user}"
password = "{password}"
concatenation = true
max-messages = {parts}

group = sms-service
keyword = default
catch-all = yes
max-messages = 0
send-sender = true
{url_kind} = "{url}"
"#,
        admin = ports.admin,
        smsbox = ports.smsbox,
        smsc = ports.smsc,
        sendsms = ports.sendsms,
        recode = o.mo_recode,
        retry = o.http_request_retry,
        delay = o.http_queue_delay_secs,
        user = o.sendsms_user,
        password = o.sendsms_password,
        parts = o.max_parts,
        url = o.mo_url,
    )
}

/// Every process of a group, by the group's id (the PID it was started with).
fn kill_group(pgid: u32) {
    let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{pgid}")).stderr(Stdio::null()).status();
}

fn group_alive(pgid: u32) -> bool {
    Command::new("kill")
        .arg("-0")
        .arg("--")
        .arg(format!("-{pgid}"))
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_millis(250)).is_ok()
}

fn http_get(port: u16, target: &str) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).to_string();
    text.starts_with("HTTP/1.").then(|| text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn url_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn url_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn utf16be(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])).collect();
    String::from_utf16_lossy(&units)
}

/// The bytes of a part whose line does not say its coding (`udh ... data ...`): UTF-8 text has
/// no control characters; UTF-16BE of almost any text has them (the high bytes of Latin,
/// Cyrillic, Greek, Arabic ... are below 0x20) or is not UTF-8 at all.
fn guess_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\r') => s.to_string(),
        _ => utf16be(bytes),
    }
}

/// One part of a concatenated text: (reference, total, index) from its UDH.
fn concat_of(udh: &[u8]) -> Option<(u16, u8, u8)> {
    let mut i = 1;
    while i + 1 < udh.len() {
        let (iei, len) = (udh[i], udh[i + 1] as usize);
        let ie = udh.get(i + 2..i + 2 + len)?;
        match (iei, len) {
            (0x00, 3) => return Some((ie[0].into(), ie[1], ie[2])),
            (0x08, 4) => return Some((u16::from_be_bytes([ie[0], ie[1]]), ie[2], ie[3])),
            _ => i += 2 + len,
        }
    }
    None
}

/// The MTs in fakesmsc's log (`Got message N: <FROM TO kind DATA>`), in order.
fn parse_mts(log: &str) -> Vec<Mt> {
    struct Part {
        from: String,
        to: String,
        concat: Option<(u16, u8, u8)>,
        text: String,
    }
    let mut parts: Vec<Part> = Vec::new();
    for line in log.lines() {
        let Some(at) = line.find("Got message ") else { continue };
        let rest = &line[at..];
        let Some(open) = rest.find(": <") else { continue };
        let body = rest[open + 3..].strip_suffix('>').unwrap_or(&rest[open + 3..]);
        let mut f = body.splitn(4, ' ');
        let (from, to, kind, data) =
            (f.next().unwrap_or(""), f.next().unwrap_or(""), f.next().unwrap_or(""), f.next().unwrap_or(""));
        let (concat, text) = match kind {
            "text" => (None, data.to_string()),
            "ucs-2" | "ucs2" => (None, utf16be(&url_decode(data))),
            "data" => (None, guess_text(&url_decode(data))),
            "udh" => {
                let (udh, rest) = data.split_once(' ').unwrap_or((data, ""));
                let payload = rest.strip_prefix("data ").unwrap_or(rest);
                (concat_of(&url_decode(udh)), guess_text(&url_decode(payload)))
            }
            _ => {
                // The rest of a text that had a line break (fakesmsc reads line by line).
                if let Some(last) = parts.last_mut() {
                    last.text.push('\n');
                    last.text.push_str(body);
                }
                continue;
            }
        };
        parts.push(Part { from: from.into(), to: to.into(), concat, text });
    }
    let mut out = Vec::new();
    let mut used = vec![false; parts.len()];
    for i in 0..parts.len() {
        if used[i] {
            continue;
        }
        let p = &parts[i];
        let Some((reference, total, _)) = p.concat else {
            used[i] = true;
            out.push(Mt { from: p.from.clone(), to: p.to.clone(), text: p.text.clone() });
            continue;
        };
        let mut found: Vec<(u8, usize)> = (i..parts.len())
            .filter(|&j| {
                !used[j]
                    && parts[j].from == p.from
                    && parts[j].to == p.to
                    && parts[j].concat.is_some_and(|(r, t, _)| r == reference && t == total)
            })
            .map(|j| (parts[j].concat.map_or(0, |c| c.2), j))
            .collect();
        found.sort();
        found.dedup_by_key(|(idx, _)| *idx);
        if found.len() == usize::from(total) {
            let text: String = found.iter().map(|&(_, j)| parts[j].text.as_str()).collect();
            for &(_, j) in &found {
                used[j] = true;
            }
            out.push(Mt { from: p.from.clone(), to: p.to.clone(), text });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::sync::Arc;

    use super::*;

    /// A webhook receiver: records each request's target and `Authorization`, answers 200.
    struct Hooks {
        port: u16,
        seen: Arc<Mutex<Vec<(String, String)>>>,
    }

    impl Hooks {
        fn start() -> Hooks {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = seen.clone();
            std::thread::spawn(move || {
                for s in listener.incoming() {
                    let Ok(mut s) = s else { return };
                    let log = log.clone();
                    std::thread::spawn(move || {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&buf).to_string();
                        let target = head.split(' ').nth(1).unwrap_or_default().to_string();
                        let auth = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Authorization: "))
                            .unwrap_or_default()
                            .trim()
                            .to_string();
                        log.lock().unwrap().push((target, auth));
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    });
                }
            });
            Hooks { port, seen }
        }

        fn url(&self, path_and_query: &str) -> String {
            format!("http://hook:pw@127.0.0.1:{}{path_and_query}", self.port)
        }

        fn calls(&self, prefix: &str) -> Vec<(String, String)> {
            self.seen.lock().unwrap().iter().filter(|(t, _)| t.starts_with(prefix)).cloned().collect()
        }

        /// Waits for `n` calls under `prefix` and returns them.
        fn wait(&self, prefix: &str, n: usize, within: Duration) -> Vec<(String, String)> {
            let started = Instant::now();
            loop {
                let c = self.calls(prefix);
                if c.len() >= n {
                    return c;
                }
                assert!(started.elapsed() < within, "{n} calls of {prefix} not within {within:?}: {c:?}");
                std::thread::sleep(POLL_INTERVAL);
            }
        }
    }

    fn wait_mts(k: &Kannel, n: usize) -> Vec<Mt> {
        let started = Instant::now();
        loop {
            let got = k.phone_received();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{n} MTs not received: {got:?}\n{}",
                k.log("fakesmsc.log")
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn sendsms(k: &Kannel, hooks: &Hooks, key: &str, to: &str, text: &str, ucs2: bool) -> Option<(u16, String)> {
        let dlr = hooks.url(&format!("/dlr?key={key}&type=%d"));
        let mut target = format!(
            "/cgi-bin/sendsms?username=switchboard&password=sendsms-secret&from=4900000&to={}&text={}&charset=UTF-8&dlr-mask=31&dlr-url={}",
            url_encode(to.as_bytes()),
            url_encode(text.as_bytes()),
            url_encode(dlr.as_bytes())
        );
        if ucs2 {
            target.push_str("&coding=2");
        }
        let mut s = TcpStream::connect(("127.0.0.1", k.ports.sendsms)).ok()?;
        s.write_all(format!("GET {target} HTTP/1.0\r\n\r\n").as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split(' ').nth(1)?.parse().ok()?;
        Some((code, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
    }

    fn options(hooks: &Hooks) -> KannelOptions {
        KannelOptions {
            mo_url: hooks.url("/in?from=%p&to=%P&text=%b&id=%I&coding=%c&charset=%C"),
            ..KannelOptions::default()
        }
    }

    #[test]
    fn kannel_carries_texts_both_ways_and_reports_delivery() {
        let hooks = Hooks::start();
        let k = Kannel::start(options(&hooks));

        k.phone_sends("+4915112345678", "4900000", "Hallo  Welt");
        let calls = hooks.wait("/in?", 1, Duration::from_secs(15));
        assert!(calls[0].0.starts_with("/in?from=%2B4915112345678&to=4900000&text=Hallo++Welt&id="), "{calls:?}");
        assert_eq!(calls[0].1, "Basic aG9vazpwdw==", "the URL's userinfo as Basic auth");
        k.phone_sends("+4915112345678", "4900000", "Привет 😀");
        let calls = hooks.wait("/in?", 2, Duration::from_secs(15));
        assert!(calls[1].0.contains("text=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82+%F0%9F%98%80&"), "mo-recode: {calls:?}");
        let long = format!("{}.", "word ".repeat(60));
        k.phone_sends("+4915112345678", "4900000", &long);
        let calls = hooks.wait("/in?", 3, Duration::from_secs(15));
        assert!(calls[2].0.contains(&format!("text={}.&", "word+".repeat(60))), "joined by Kannel: {calls:?}");

        assert_eq!(sendsms(&k, &hooks, "k1", "+4915112345678", "Hi [there] €", false).unwrap().0, 202);
        assert_eq!(sendsms(&k, &hooks, "k2", "+4915112345678", "Привет 😀", true).unwrap().0, 202);
        let long = "x".repeat(200) + " end";
        assert_eq!(sendsms(&k, &hooks, "k3", "+4915112345678", &long, false).unwrap().0, 202);
        let mts = wait_mts(&k, 3);
        let texts: Vec<&str> = mts.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["Hi [there] €", "Привет 😀", long.as_str()]);
        assert_eq!((mts[0].from.as_str(), mts[0].to.as_str()), ("4900000", "+4915112345678"));

        let dlrs = hooks.wait("/dlr?", 6, Duration::from_secs(15));
        for key in ["k1", "k2", "k3"] {
            for t in [8, 1] {
                let want = format!("/dlr?key={key}&type={t}");
                assert_eq!(dlrs.iter().filter(|(d, _)| *d == want).count(), 1, "{want} once: {dlrs:?}");
            }
        }
        assert!(dlrs.iter().all(|(_, auth)| auth == "Basic aG9vazpwdw=="));
        let (code, body) = sendsms(&k, &hooks, "k4", "", "x", false).unwrap();
        assert_eq!((code, body.as_str()), (400, "Empty receiver number not allowed, rejected"));
    }

    #[test]
    fn kannel_restarted_keeps_what_was_sent_meanwhile() {
        let hooks = Hooks::start();
        let mut k = Kannel::start(options(&hooks));

        k.stop();
        assert!(sendsms(&k, &hooks, "k1", "+4915112345678", "x", false).is_none(), "sendsms refused while down");
        k.phone_sends("+4915112345678", "4900000", "sent while Kannel was down");
        k.start_again();
        let calls = hooks.wait("/in?", 1, Duration::from_secs(15));
        assert!(calls[0].0.contains("text=sent+while+Kannel+was+down"), "{calls:?}");

        let started = Instant::now();
        k.restart_bearerbox();
        eprintln!("bearerbox restarted, smsbox back after {:?}", started.elapsed());
        k.phone_sends("+4915112345678", "4900000", "after the crash");
        assert_eq!(sendsms(&k, &hooks, "k2", "+4915112345678", "reply after the crash", false).unwrap().0, 202);
        hooks.wait("/in?", 2, Duration::from_secs(15));
        assert_eq!(wait_mts(&k, 1)[0].text, "reply after the crash");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(hooks.calls("/in?").len(), 2, "each text once");
    }

    #[test]
    fn mts_as_fakesmsc_logs_them() {
        // Lines as fakesmsc 1.4.5 logged them (the long text was split by Kannel, 153 + 148).
        let a = "A".repeat(150);
        let b = "B".repeat(148);
        let log = format!(
            "2026-12-07 08:28:54 [11535] [0] DEBUG: Got message 1: <4900000 +4915112345678 text Hello from agent [ok] {{x}} €>\n\
             2026-12-07 08:28:54 [11535] [0] DEBUG: Got message 2: <4900000 +4915112345678 ucs-2 %04%1F%04%40%048%042%045%04B%00+%D8%3D%DE%00>\n\
             2026-12-07 08:29:24 [11535] [0] DEBUG: fakesmsc: sent message 3\n\
             2026-12-07 08:29:24 [11535] [0] DEBUG: Got message 3: <4900000 +4915112345678 udh %05%00%03%02%02%01 data {a}+BB>\n\
             2026-12-07 08:29:24 [11535] [0] DEBUG: Got message 4: <4900000 +4915112345678 udh %05%00%03%02%02%02 data {b}>\n\
             2026-12-07 08:29:25 [11535] [0] DEBUG: Got message 5: <4900000 +4915112345678 udh %05%00%03%09%02%01 data %04%1F>\n"
        );
        let got = parse_mts(&log);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].text, "Hello from agent [ok] {x} €");
        assert_eq!((got[0].from.as_str(), got[0].to.as_str()), ("4900000", "+4915112345678"));
        assert_eq!(got[1].text, "Привет 😀");
        assert_eq!(got[2].text, format!("{a} BB{b}"));
    }

    #[test]
    fn continuation_lines_and_ucs2_parts() {
        let log = "x DEBUG: Got message 1: <1 2 text first line>\n\
                   x DEBUG: Got message 2: <second line>\n\
                   x DEBUG: Got message 3: <1 2 udh %06%08%04%01%02%02%02 data %04%40%00k>\n\
                   x DEBUG: Got message 4: <1 2 udh %06%08%04%01%02%02%01 data %04%1F>\n";
        let got = parse_mts(log);
        assert_eq!(got[0].text, "first line\nsecond line");
        assert_eq!(got[1].text, "Прk");
    }
}
