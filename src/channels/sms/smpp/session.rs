//! One bound SMPP session: connecting and binding as transceiver, matching responses to requests
//! by sequence number, keeping the link alive with enquire_link, answering what the SMSC asks,
//! and unbinding on the way out.
//!
//! A [`Link`] is shared by senders (submit_sm) and the session's own tasks; it is dead once the
//! TCP connection is, and a new bind makes a new one, so a sequence number never outlives the
//! connection it was given on.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::pdu::{self, Bind, Body, Header, Pdu, ShortMessage};
use crate::channels::sms::config::SmppConfig;

/// How long an unbind on the way out waits for its unbind_resp: some SMSCs just close.
const UNBIND_WAIT: Duration = Duration::from_secs(2);
/// deliver_sm waiting for the receiver; beyond it they are answered "try again later".
pub const INBOUND_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("no connection to {addr} within {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    #[error("bind_transceiver refused: {} (0x{status:08X})", pdu::status_name(*status))]
    Refused { status: u32 },
    #[error("no bind_transceiver_resp within {0:?}")]
    Timeout(Duration),
    #[error("bind: {0}")]
    Io(#[from] std::io::Error),
}

impl BindError {
    pub fn label(&self) -> &'static str {
        match self {
            BindError::Refused { .. } => "refused",
            BindError::Timeout(_) => "timeout",
            _ => "connect_failed",
        }
    }
}

/// Why a request got no answer to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// It never left: the link was down or the write failed.
    #[error("not sent: {0}")]
    NotSent(String),
    /// It left, and no response came in time.
    #[error("no response within {0:?}")]
    NoResponse(Duration),
    /// It left, and the link died before the response came.
    #[error("link lost before the response")]
    Lost,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Cancelled,
    /// The SMSC unbound us (answered with unbind_resp).
    Unbound,
    /// The connection closed or failed, or the SMSC stopped answering enquire_link.
    Failed(String),
}

/// A deliver_sm waiting for the receiver: answered with its sequence number once it is stored.
pub struct Delivered {
    pub sequence: u32,
    pub sm: ShortMessage,
}

pub struct Link {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Mutex<HashMap<u32, oneshot::Sender<Pdu>>>,
    next_seq: AtomicU32,
    /// Milliseconds since `born` when a PDU last came in: the SMSC's sign of life.
    last_heard: AtomicU64,
    born: Instant,
    dead: CancellationToken,
    why: Mutex<Option<String>>,
    timeout: Duration,
}

impl Link {
    fn new(writer: OwnedWriteHalf, timeout: Duration, next_seq: u32) -> Link {
        Link {
            writer: tokio::sync::Mutex::new(writer),
            pending: Mutex::new(HashMap::new()),
            next_seq: AtomicU32::new(next_seq),
            last_heard: AtomicU64::new(0),
            born: Instant::now(),
            dead: CancellationToken::new(),
            why: Mutex::new(None),
            timeout,
        }
    }

    pub fn is_dead(&self) -> bool {
        self.dead.is_cancelled()
    }

    /// Marks the link dead (the first reason is kept) and fails every request waiting on it.
    pub fn kill(&self, why: impl Into<String>) {
        {
            let mut w = self.why.lock().expect("link reason");
            if w.is_none() {
                *w = Some(why.into());
            }
        }
        self.dead.cancel();
        // Dropping the senders wakes each waiting request with `Lost`.
        self.pending.lock().expect("pending map").clear();
    }

    fn reason(&self) -> String {
        self.why.lock().expect("link reason").clone().unwrap_or_else(|| "link closed".into())
    }

    /// Sequence numbers run 1..=0x7FFFFFFF and wrap (SMPP 3.4 §3.2).
    fn sequence(&self) -> u32 {
        loop {
            let s = self.next_seq.fetch_add(1, Ordering::Relaxed) & 0x7FFF_FFFF;
            if s != 0 {
                return s;
            }
        }
    }

    fn heard(&self) {
        self.last_heard.store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        self.born.elapsed().saturating_sub(Duration::from_millis(self.last_heard.load(Ordering::Relaxed)))
    }

    /// Sends a request and waits (at most the response timeout) for its response, whatever its
    /// command_status.
    pub async fn request(&self, body: Body) -> Result<Pdu, RequestError> {
        self.request_within(body, self.timeout).await
    }

    async fn request_within(&self, body: Body, within: Duration) -> Result<Pdu, RequestError> {
        if self.is_dead() {
            return Err(RequestError::NotSent(self.reason()));
        }
        let seq = self.sequence();
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending map").insert(seq, tx);
        // Whatever happens below, the entry goes (a late response then finds nothing).
        struct Forget<'a>(&'a Link, u32);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.pending.lock().expect("pending map").remove(&self.1);
            }
        }
        let _forget = Forget(self, seq);
        if let Err(e) = self.write(&Pdu::request(seq, body).encode()).await {
            // A PDU this small goes to the kernel in one write, so a failed write sent nothing.
            return Err(RequestError::NotSent(e.to_string()));
        }
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(pdu)) => Ok(pdu),
            Ok(Err(_)) => Err(RequestError::Lost),
            Err(_) => Err(RequestError::NoResponse(within)),
        }
    }

    /// Answers a request of the SMSC's.
    pub async fn respond(&self, sequence: u32, status: u32, body: Body) -> std::io::Result<()> {
        self.write(&Pdu { status, sequence, body }.encode()).await
    }

    async fn respond_as(&self, command_id: u32, sequence: u32, status: u32) -> std::io::Result<()> {
        self.write(&Pdu { status, sequence, body: Body::Other(Vec::new()) }.encode_as(command_id)).await
    }

    async fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        if self.is_dead() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotConnected, self.reason()));
        }
        let mut w = self.writer.lock().await;
        // An SMSC that stops reading would otherwise hold every sender here forever.
        let r = match tokio::time::timeout(self.timeout, w.write_all(bytes)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out")),
        };
        if let Err(e) = &r {
            self.kill(format!("write failed: {e}"));
        }
        r
    }

    fn complete(&self, pdu: Pdu) {
        let waiting = self.pending.lock().expect("pending map").remove(&pdu.sequence);
        match waiting {
            Some(tx) => {
                let _ = tx.send(pdu);
            }
            None => debug!(message = "SMPP response to no waiting request (late or unknown).", sequence = pdu.sequence),
        }
    }

    async fn shutdown(&self) {
        let _ = self.writer.lock().await.shutdown().await;
    }
}

/// Connects and binds as transceiver. The link's sequence numbers continue after the bind's.
pub async fn bind(cfg: &SmppConfig) -> Result<(Arc<Link>, OwnedReadHalf), BindError> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let timeout = Duration::from_secs(cfg.response_timeout_secs.max(1).into());
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(BindError::Connect { addr, source }),
        Err(_) => return Err(BindError::ConnectTimeout { addr, after: timeout }),
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let bind = Pdu::request(
        1,
        Body::BindTransceiver(Bind {
            system_id: cfg.system_id.clone(),
            password: cfg.password.expose().to_string(),
            system_type: cfg.system_type.clone(),
            interface_version: 0x34,
            ..Bind::default()
        }),
    );
    writer.write_all(&bind.encode()).await?;
    let answer = async {
        loop {
            let Some(frame) = pdu::read_frame(&mut reader).await? else {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "SMSC closed the connection").into());
            };
            let h = Header::parse(&frame).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            match h.command_id {
                pdu::BIND_TRANSCEIVER_RESP | pdu::GENERIC_NACK if h.sequence == 1 => {
                    return if h.status == pdu::ESME_ROK && h.command_id == pdu::BIND_TRANSCEIVER_RESP {
                        Ok(())
                    } else {
                        // A generic_nack with ESME_ROK still means "not bound".
                        Err(BindError::Refused { status: h.status.max(1) })
                    };
                }
                pdu::ENQUIRE_LINK => {
                    let resp = Pdu { status: 0, sequence: h.sequence, body: Body::EnquireLinkResp };
                    writer.write_all(&resp.encode()).await?;
                }
                _ => {}
            }
        }
    };
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(BindError::Timeout(timeout)),
    }
    let link = Arc::new(Link::new(writer, timeout, 2));
    link.heard();
    Ok((link, reader))
}

/// Serves a bound link until it ends: routes responses to their requests, answers
/// enquire_link, unbind and unknown commands, hands deliver_sm to `inbound` (whose task answers
/// them once they are stored), and sends enquire_link after `idle` without a word from the SMSC.
/// On `cancel` it unbinds. The link is dead when this returns.
pub async fn serve(
    gateway: &str,
    link: Arc<Link>,
    reader: OwnedReadHalf,
    inbound: mpsc::Sender<Delivered>,
    idle: Duration,
    cancel: &CancellationToken,
) -> End {
    let (frames_tx, mut frames) = mpsc::channel(16);
    // Reading whole frames in their own task: a half-read frame must never be dropped by a
    // select! branch winning.
    let reading = tokio::spawn(read_frames(reader, frames_tx));
    let keepalive = tokio::spawn(keepalive(link.clone(), idle));
    let end = loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                unbind(gateway, &link, &mut frames).await;
                break End::Cancelled;
            }
            () = link.dead.cancelled() => break End::Failed(link.reason()),
            frame = frames.recv() => {
                let frame = match frame {
                    Some(Ok(f)) => f,
                    Some(Err(e)) => break End::Failed(e),
                    None => break End::Failed("reader stopped".into()),
                };
                link.heard();
                if let Some(end) = on_frame(gateway, &link, &frame, &inbound).await {
                    break end;
                }
            }
        }
    };
    keepalive.abort();
    reading.abort();
    link.kill(match &end {
        End::Cancelled => "unbound on shutdown".to_string(),
        End::Unbound => "unbound by the SMSC".to_string(),
        End::Failed(e) => e.clone(),
    });
    link.shutdown().await;
    end
}

async fn read_frames(mut reader: OwnedReadHalf, out: mpsc::Sender<Result<Vec<u8>, String>>) {
    loop {
        let r = match pdu::read_frame(&mut reader).await {
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err("the SMSC closed the connection".to_string()),
            Err(e) => Err(format!("reading from the SMSC: {e}")),
        };
        let last = r.is_err();
        if out.send(r).await.is_err() || last {
            return;
        }
    }
}

/// One PDU from the SMSC; `Some` when it ends the session.
async fn on_frame(gateway: &str, link: &Link, frame: &[u8], inbound: &mpsc::Sender<Delivered>) -> Option<End> {
    let h = Header::parse(frame).ok()?;
    let pdu = match Pdu::decode(frame) {
        Ok(p) => p,
        Err(e) => {
            warn!(message = "Malformed SMPP PDU.", gateway, command = pdu::name(h.command_id), error = %e);
            // A broken response stays unmatched: its request times out as uncertain, which it is.
            if !h.is_response() {
                let _ = link.respond_as(pdu::GENERIC_NACK, h.sequence, pdu::ESME_RINVCMDLEN).await;
            }
            return None;
        }
    };
    if h.is_response() {
        link.complete(pdu);
        return None;
    }
    match pdu.body {
        Body::EnquireLink => {
            let _ = link.respond(pdu.sequence, pdu::ESME_ROK, Body::EnquireLinkResp).await;
        }
        Body::DeliverSm(sm) => {
            if let Err(e) = inbound.try_send(Delivered { sequence: pdu.sequence, sm }) {
                // Full (or closing): the SMSC keeps it and delivers it again later.
                let d = match e {
                    mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d) => d,
                };
                warn!(message = "Inbound SMPP queue full; deliver_sm answered try-again.", gateway);
                let _ = link.respond(d.sequence, pdu::ESME_RX_T_APPN, Body::DeliverSmResp).await;
            }
        }
        Body::Unbind => {
            let _ = link.respond(pdu.sequence, pdu::ESME_ROK, Body::UnbindResp).await;
            return Some(End::Unbound);
        }
        // Commands an ESME is never sent (submit_sm, bind, ...) or does not know.
        _ => {
            debug!(
                message = "SMPP command not handled; generic_nack.",
                gateway,
                command_id = format!("0x{:08X}", h.command_id)
            );
            let _ = link.respond_as(pdu::GENERIC_NACK, h.sequence, pdu::ESME_RINVCMDID).await;
        }
    }
    None
}

async fn keepalive(link: Arc<Link>, idle: Duration) {
    loop {
        let wait = idle.saturating_sub(link.silent_for());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
            continue;
        }
        match link.request(Body::EnquireLink).await {
            Ok(_) => {}
            Err(RequestError::NotSent(_)) => return,
            Err(e) => {
                link.kill(format!("enquire_link unanswered: {e}"));
                return;
            }
        }
        // Answered: the response itself counted as hearing from the SMSC.
    }
}

/// Unbinds and waits briefly for unbind_resp, routing the responses that still come in.
async fn unbind(gateway: &str, link: &Arc<Link>, frames: &mut mpsc::Receiver<Result<Vec<u8>, String>>) {
    if link.is_dead() {
        return;
    }
    let within = UNBIND_WAIT.min(link.timeout);
    let request = link.request_within(Body::Unbind, within);
    tokio::pin!(request);
    loop {
        tokio::select! {
            r = &mut request => {
                match r {
                    Ok(_) => debug!(message = "SMPP unbound.", gateway),
                    Err(e) => debug!(message = "No unbind_resp; closing anyway.", gateway, error = %e),
                }
                return;
            }
            frame = frames.recv() => {
                let Some(Ok(frame)) = frame else {
                    // Closed without unbind_resp: some SMSCs do that, and it is as good.
                    return;
                };
                let Ok(h) = Header::parse(&frame) else { continue };
                if h.is_response() {
                    if let Ok(p) = Pdu::decode(&frame) {
                        link.complete(p);
                    }
                } else if h.command_id == pdu::DELIVER_SM {
                    // Not taken now: the SMSC keeps it for the next bind.
                    let _ = link.respond(h.sequence, pdu::ESME_RX_T_APPN, Body::DeliverSmResp).await;
                } else if h.command_id == pdu::ENQUIRE_LINK {
                    let _ = link.respond(h.sequence, pdu::ESME_ROK, Body::EnquireLinkResp).await;
                }
            }
        }
    }
}
