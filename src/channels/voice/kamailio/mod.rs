//! The bridge to Kamailio (`deploy/kamailio/`): one instance at a time (a lease per node) connects
//! to the node's evapi socket and turns its questions and call events into the CTI hook's
//! operations, and Switchboard's ring instructions into answers to the calls Kamailio holds
//! suspended. The protocol is `deploy/kamailio/README.md`.
//!
//! Kamailio asks (`route`, and `ring_failed` after a phone did not take a call) and waits: the
//! INVITE stays suspended until Switchboard answers `ring`, `default` or `reject`, for as long as
//! the call waits in its queue. A held call's answer comes from the log: the offer that the engine
//! makes when an agent frees up becomes `ring` for the question Kamailio holds open.

pub mod netstring;

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::watch::Instruction;
use super::{CallReport, CallReportKind};
use super::{RouteAction, RouteCall, Voice, VoiceError};
use crate::model::Actor;
use crate::model::voice::{CallUpdate, HungUpBy, PhoneState, RingFailure};
use switchboard_engine::events::EventTail;
use switchboard_engine::{CallOutcome, Lease};

/// One Kamailio node Switchboard bridges (`[[cti.kamailio]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KamailioNode {
    /// The node's NODE_ID (its messages say it); also the lease's name.
    pub node: String,
    /// Its evapi listener, `host:port`.
    pub evapi: String,
    /// The telephony system its calls belong to (call ids are scoped by it). Several nodes in
    /// front of one set of phones share one.
    #[serde(default = "default_system")]
    pub system: String,
}

fn default_system() -> String {
    "kamailio".into()
}

const LEASE_TTL: Duration = Duration::from_secs(10);
const LEASE_RENEW: Duration = Duration::from_secs(3);

/// A question Kamailio holds a call suspended for.
#[derive(Debug, Clone)]
struct Question {
    tindex: Value,
    tlabel: Value,
    attempt: Value,
}

/// One message from Kamailio: what every message has, and the rest as it came.
#[derive(Debug, Clone, Deserialize)]
struct Message {
    event: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    call_id: String,
    #[serde(default)]
    agent: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

impl Message {
    fn str(&self, k: &str) -> &str {
        self.rest.get(k).and_then(Value::as_str).unwrap_or_default()
    }

    fn question(&self) -> Option<Question> {
        Some(Question {
            tindex: self.rest.get("tindex")?.clone(),
            tlabel: self.rest.get("tlabel")?.clone(),
            attempt: self.rest.get("attempt").cloned().unwrap_or(Value::from(1)),
        })
    }

    /// The node's message counter (`<node>-<boot>-<n>`): increasing within a boot, so it orders a
    /// call's events (a call does not outlive its node's restart).
    fn sequence(&self) -> u64 {
        self.id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0)
    }
}

/// Keeps one node bridged while this instance holds its lease.
pub async fn run(voice: Voice, node: KamailioNode, instance: String, cancel: CancellationToken) {
    let engine = voice.engine().clone();
    let mut delay = Duration::from_millis(200);
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let held = engine.lease(Lease::SipNode(&node.node), &instance, Some(LEASE_TTL.as_millis() as u64)).await;
        match held {
            Ok(true) => match Bridge::connect(&voice, &node, &instance).await {
                Ok((bridge, rd, tail)) => {
                    info!(message = "Bridging Kamailio.", node = %node.node, evapi = %node.evapi);
                    delay = Duration::from_millis(200);
                    if let Err(error) = bridge.serve(rd, tail, &cancel).await {
                        warn!(message = "Kamailio bridge ended.", node = %node.node, %error);
                    }
                }
                Err(error) => warn!(message = "Cannot reach Kamailio's evapi.", node = %node.node, %error),
            },
            Ok(false) => delay = LEASE_RENEW,
            Err(error) => warn!(message = "Kamailio bridge lease failed.", node = %node.node, %error),
        }
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = engine.lease(Lease::SipNode(&node.node), &instance, None).await;
                return;
            }
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

struct Bridge<'a> {
    voice: &'a Voice,
    node: &'a KamailioNode,
    instance: &'a str,
    wr: OwnedWriteHalf,
    by: Actor,
    waiting: HashMap<String, Question>,
    /// The route id of the ring each call is at.
    ringing: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
enum BridgeError {
    #[error("evapi: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] netstring::NetstringError),
    #[error("routing state: {0}")]
    Engine(#[from] switchboard_engine::EngineError),
    #[error("the lease passed to another instance")]
    LeaseLost,
}

impl<'a> Bridge<'a> {
    async fn connect(
        voice: &'a Voice,
        node: &'a KamailioNode,
        instance: &'a str,
    ) -> Result<(Bridge<'a>, OwnedReadHalf, EventTail), BridgeError> {
        // The tail first: what is logged from here on is seen.
        let tail = EventTail::from_now(voice.engine()).await?;
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&node.evapi))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let from = stream.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        let by = Actor { who: format!("telephony:{}", node.system), from };
        let (rd, wr) = stream.into_split();
        let bridge = Bridge { voice, node, instance, wr, by, waiting: HashMap::new(), ringing: HashMap::new() };
        Ok((bridge, rd, tail))
    }

    async fn serve(
        mut self,
        mut rd: OwnedReadHalf,
        mut tail: EventTail,
        cancel: &CancellationToken,
    ) -> Result<(), BridgeError> {
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        let mut renew = tokio::time::interval(LEASE_RENEW);
        renew.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                n = rd.read(&mut chunk) => {
                    let n = n?;
                    if n == 0 {
                        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "Kamailio closed the connection").into());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(frame) = netstring::decode(&mut buf)? {
                        match serde_json::from_slice::<Message>(&frame) {
                            Ok(m) => self.on_message(m).await?,
                            Err(error) => warn!(message = "Kamailio sent a message that is not one.", node = %self.node.node, %error),
                        }
                    }
                }
                batch = tail.next(Duration::from_millis(500), 500) => {
                    let batch = batch?;
                    let instructions = match self.voice.instructions(&self.node.system, &batch).await {
                        Ok(i) => i,
                        Err(error) => {
                            warn!(message = "Ring instructions could not be read.", %error);
                            Vec::new()
                        }
                    };
                    for i in instructions {
                        self.on_instruction(i).await?;
                    }
                }
                _ = renew.tick() => {
                    let engine = self.voice.engine();
                    let lease = Lease::SipNode(&self.node.node);
                    if !engine.lease(lease, self.instance, Some(LEASE_TTL.as_millis() as u64)).await? {
                        return Err(BridgeError::LeaseLost);
                    }
                }
            }
        }
    }

    async fn send(&mut self, v: Value) -> Result<(), BridgeError> {
        debug!(message = "To Kamailio.", node = %self.node.node, action = %v["action"]);
        self.wr.write_all(&netstring::encode(v.to_string().as_bytes())).await?;
        Ok(())
    }

    /// Answers the question Kamailio holds `call_id` suspended for.
    async fn answer(&mut self, call_id: &str, q: &Question, action: Value) -> Result<(), BridgeError> {
        let mut v = action;
        v["call_id"] = call_id.into();
        v["tindex"] = q.tindex.clone();
        v["tlabel"] = q.tlabel.clone();
        v["attempt"] = q.attempt.clone();
        self.send(v).await
    }

    /// Asks the routing where a suspended call rings now, and answers Kamailio (or keeps the
    /// question open while the call waits).
    async fn decide(&mut self, call: RouteCall, q: Question) -> Result<(), BridgeError> {
        let call_id = call.call_id.clone();
        match self.voice.route_call(&self.node.system, &self.by, &call).await {
            Ok(d) => match d.action {
                RouteAction::Ring(r) => {
                    let secs = ring_secs(r.ring_until_ms);
                    self.ringing.insert(call_id.clone(), r.route_id);
                    self.waiting.remove(&call_id);
                    self.answer(&call_id, &q, json!({ "action": "ring", "agent": r.agent_id, "ring_timeout": secs }))
                        .await?;
                }
                RouteAction::Hold { .. } => {
                    self.waiting.insert(call_id, q);
                }
                RouteAction::Default { destination, .. } => {
                    self.waiting.remove(&call_id);
                    self.answer(&call_id, &q, json!({ "action": "default", "uri": destination })).await?;
                }
            },
            Err(VoiceError::NotFound(reason)) => {
                info!(message = "A call nobody routes is refused.", node = %self.node.node, %reason);
                self.waiting.remove(&call_id);
                self.answer(&call_id, &q, json!({ "action": "reject", "code": 404, "reason": "No queue" })).await?;
            }
            Err(error) => {
                // Kamailio's own fallback (its FALLBACK_URI) is better than a caller left waiting.
                warn!(message = "Routing a call failed; it goes to Kamailio's fallback.", %error);
                self.waiting.remove(&call_id);
                self.answer(&call_id, &q, json!({ "action": "default" })).await?;
            }
        }
        Ok(())
    }

    async fn on_instruction(&mut self, i: Instruction) -> Result<(), BridgeError> {
        match i {
            Instruction::Ring { call_id, ring, .. } => {
                // Only a call Kamailio holds a question open for can be sent to a phone now; one
                // already ringing somewhere gets there when that ring fails.
                if let Some(q) = self.waiting.remove(&call_id) {
                    self.ringing.insert(call_id.clone(), ring.route_id.clone());
                    let action = json!({ "action": "ring", "agent": ring.agent_id, "ring_timeout": ring_secs(ring.ring_until_ms) });
                    self.answer(&call_id, &q, action).await?;
                }
            }
            Instruction::Cancel { call_id, agent_id, reason, .. } => {
                debug!(message = "An offer of a ringing call was withdrawn; its phone rings until it times out.", %call_id, agent = %agent_id, %reason);
            }
            // Kamailio is a proxy: it relays calls but cannot originate one with two legs. A
            // callback's dial needs a B2BUA or PBX (FreeSWITCH, Asterisk) on the CTI hook; the
            // attempt fails after cti.callback_dial_timeout_secs and is retried, as documented.
            Instruction::Dial { call_id, dial, .. } => {
                warn!(message = "A callback cannot be dialled through Kamailio; it needs a platform that places calls.", %call_id, agent = %dial.agent_id);
            }
        }
        Ok(())
    }

    async fn on_message(&mut self, m: Message) -> Result<(), BridgeError> {
        let seq = m.sequence();
        let event_id = m.id.clone();
        match m.event.as_str() {
            "route" => {
                let Some(q) = m.question() else { return Ok(()) };
                let mut user_data = std::collections::BTreeMap::new();
                if !m.str("from_name").is_empty() {
                    user_data.insert("caller_name".to_string(), m.str("from_name").to_string());
                }
                let call = RouteCall {
                    call_id: m.call_id.clone(),
                    caller: m.str("from").to_string(),
                    dialled: m.str("to").to_string(),
                    user_data,
                    ..RouteCall::default()
                };
                self.decide(call, q).await?;
            }
            "ring_failed" => {
                let status = m.rest.get("status").and_then(Value::as_u64).unwrap_or(0);
                let failure = match status {
                    486 | 600 | 603 => RingFailure::Busy,
                    408 | 480 | 487 => RingFailure::NoAnswer,
                    _ => RingFailure::Unreachable,
                };
                if let Some(route_id) = self.ringing.remove(&m.call_id) {
                    let r = self
                        .voice
                        .report_route(&self.node.system, &self.by, &m.call_id, &route_id, Some(failure))
                        .await;
                    log_refusal("ring_failed", &m.call_id, r.map(|_| ()));
                }
                let is_final = m.rest.get("final").and_then(Value::as_bool).unwrap_or(false);
                if let (false, Some(q)) = (is_final, m.question()) {
                    let call = RouteCall { call_id: m.call_id.clone(), ..RouteCall::default() };
                    self.decide(call, q).await?;
                }
            }
            "ringing" => self.call_event(&m, seq, &event_id, CallUpdate::Ringing).await,
            "answered" if !m.agent.is_empty() => {
                self.ringing.remove(&m.call_id);
                self.call_event(&m, seq, &event_id, CallUpdate::Answered).await;
            }
            "released" if !m.agent.is_empty() => {
                let by = match m.str("by") {
                    "caller" => HungUpBy::Caller,
                    "agent" => HungUpBy::Agent,
                    _ => HungUpBy::Unknown,
                };
                let cause = if m.str("by") == "timeout" { "dialog_timeout" } else { "normal_clearing" };
                self.call_event(&m, seq, &event_id, CallUpdate::Released { cause: cause.into(), by }).await;
            }
            "abandoned" | "failed" | "defaulted" => {
                self.waiting.remove(&m.call_id);
                self.ringing.remove(&m.call_id);
                let cause = match m.event.as_str() {
                    "abandoned" => format!("caller_hung_up_{}", m.str("while")),
                    "failed" => format!("failed_{}", m.rest.get("status").and_then(Value::as_u64).unwrap_or(0)),
                    _ => format!("defaulted_{}", m.str("reason")),
                };
                self.call_event(&m, seq, &event_id, CallUpdate::Abandoned { cause }).await;
            }
            "phone" => {
                let state = match m.str("state") {
                    "registered" => PhoneState::Registered,
                    "unregistered" => PhoneState::Unregistered,
                    "busy" => PhoneState::Busy,
                    other => {
                        debug!(message = "A phone state Switchboard does not use.", state = other);
                        return Ok(());
                    }
                };
                let r = self.voice.phone_event(&self.by, &m.agent, "", state).await;
                log_refusal("phone", &m.agent, r.map(|_| ()));
            }
            "ignored" => {
                warn!(message = "Kamailio dropped an answer.", reason = m.str("reason"), call = %m.call_id, state = m.str("state"));
            }
            // Answered or released at the fallback (voicemail): no agent's business.
            "answered" | "released" | "pong" => {}
            other => debug!(message = "A Kamailio event Switchboard does not use.", event = other),
        }
        Ok(())
    }

    async fn call_event(&self, m: &Message, seq: u64, event_id: &str, update: CallUpdate) {
        let report = CallReport {
            call_id: m.call_id.clone(),
            sequence: seq.max(1),
            agent_id: m.agent.clone(),
            device: String::new(),
            kind: CallReportKind::Update(update),
            details: json!({ "node": self.node.node }),
        };
        let r = self.voice.call_event(&self.node.system, &self.by, event_id, &report).await;
        match r {
            Ok(a) if a.outcome != CallOutcome::Applied => {
                debug!(message = "Kamailio event not applied.", event = %m.event, call = %m.call_id, outcome = a.outcome.as_str());
            }
            Ok(_) => {}
            Err(e) => log_refusal(&m.event, &m.call_id, Err(e)),
        }
    }
}

fn log_refusal(what: &str, about: &str, r: Result<(), VoiceError>) {
    if let Err(error) = r {
        match error {
            VoiceError::NotFound(_) | VoiceError::Invalid(_) => {
                debug!(message = "Kamailio event refused.", what, about, %error);
            }
            VoiceError::Engine(_) => warn!(message = "Kamailio event failed.", what, about, %error),
        }
    }
}

/// Whole seconds from now until `until_ms` (at least 1): how long the phone may ring.
fn ring_secs(until_ms: u64) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    until_ms.saturating_sub(now).div_ceil(1000).clamp(1, 600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_keeps_what_it_does_not_name_and_orders_by_its_counter() {
        let m: Message = serde_json::from_str(
            r#"{"event":"route","call_id":"c1","from":"+4930111","to":"support","tindex":7,"tlabel":123,"attempt":2,"node":"kam1","id":"kam1-1700000000-42","at":1.5}"#,
        )
        .unwrap();
        assert_eq!(
            (m.event.as_str(), m.call_id.as_str(), m.str("from"), m.str("to")),
            ("route", "c1", "+4930111", "support")
        );
        assert_eq!(m.sequence(), 42);
        let q = m.question().unwrap();
        assert_eq!((q.tindex, q.tlabel, q.attempt), (json!(7), json!(123), json!(2)));
        let phone: Message =
            serde_json::from_str(r#"{"event":"phone","agent":"ann","state":"registered","id":"x"}"#).unwrap();
        assert_eq!((phone.agent.as_str(), phone.sequence(), phone.question().is_none()), ("ann", 0, true));
    }

    #[test]
    fn a_ring_lasts_whole_seconds_within_bounds() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        assert_eq!(ring_secs(now + 19_500), 20);
        assert_eq!(ring_secs(0), 1);
        assert_eq!(ring_secs(now + 10_000_000), 600);
    }
}
