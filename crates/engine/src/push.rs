//! Pushes to agent desktops: the instance inbox they travel in, and their decoding into domain
//! data (one pipelined read for everything a batch refers to that its entries do not carry).
//!
//! A routing function pushes to the inbox stream of the instance holding the agent's session
//! (`notify` in `lib.lua`); that instance's hub reads it with an [`Inbox`] and hands each
//! [`Push`] to the session. Pushes for the session whose request it was come back with the reply
//! instead (see `caller`) and are decoded the same way.

use std::time::{Duration, Instant};

use redis::streams::{StreamReadOptions, StreamReadReply};
use switchboard_model::{Interaction, Message, Presence, PushKind};
use tracing::warn;

use crate::{DedicatedConnection, Engine, EngineError, INBOX_MAXLEN, Result, interaction_from_push};

#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    Offer(Interaction),
    Revoked {
        interaction_id: String,
        reason: String,
    },
    Assigned(Interaction),
    CustomerMessage {
        interaction_id: String,
        message: Message,
    },
    CustomerTyping {
        interaction_id: String,
        on: bool,
    },
    Ended {
        interaction_id: String,
        state: String,
        reason: String,
    },
    Presence {
        presence: Presence,
        cause: String,
    },
    Closed {
        reason: String,
    },
    /// Voice: the call on an interaction the agent holds is `state` (ringing, talking, held)
    /// since `since_ms`; `hold_ms` is the time on hold before.
    Call {
        interaction_id: String,
        state: String,
        since_ms: u64,
        hold_ms: u64,
    },
    /// A reply's delivery state changed (SMS).
    Delivery {
        interaction_id: String,
        seq: u64,
        delivery: switchboard_model::Delivery,
    },
}

/// An inbox entry id ("<ms>-<seq>"), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct InboxId(u64, u64);

impl InboxId {
    /// Later than any entry: for what the hub sends that is not an entry (closing the sessions).
    pub const LAST: InboxId = InboxId(u64::MAX, u64::MAX);

    pub fn parse(id: &str) -> Option<InboxId> {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        Some(InboxId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

/// One push as the inbox holds it (or as a reply returned it: then with no id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxEntry {
    pub id: String,
    pub agent: String,
    pub session: String,
    pub kind: String,
    pub data: String,
}

/// An instance's inbox, read in order on a connection of its own (reads block).
pub struct Inbox {
    engine: Engine,
    key: String,
    con: Option<DedicatedConnection>,
    last: String,
    untrimmed: usize,
    trimmed_at: Instant,
}

impl Inbox {
    pub fn new(engine: &Engine, instance: &str) -> Inbox {
        Inbox {
            engine: engine.clone(),
            key: engine.keys().inbox(instance),
            con: None,
            last: "0".to_string(),
            untrimmed: 0,
            trimmed_at: Instant::now(),
        }
    }

    /// The entries after the last one acknowledged ([`Inbox::delivered`]), waiting up to `block`
    /// for some; empty if none came. After an error the connection is made again on the next call.
    pub async fn read(&mut self, block: Duration) -> Result<Vec<InboxEntry>> {
        if self.con.is_none() {
            self.con = Some(self.engine.dedicated_connection().await?);
        }
        let con = self.con.as_mut().expect("connection");
        let opts = StreamReadOptions::default().block(block.as_millis() as usize).count(500);
        let read = redis::AsyncCommands::xread_options::<_, _, Option<StreamReadReply>>(
            con,
            &[self.key.as_str()],
            &[self.last.as_str()],
            &opts,
        )
        .await;
        let reply = match read {
            Ok(r) => r,
            Err(error) => {
                self.con = None;
                return Err(error.into());
            }
        };
        Ok(reply
            .map(|r| {
                r.keys
                    .into_iter()
                    .flat_map(|sk| sk.ids)
                    .map(|entry| InboxEntry {
                        agent: entry.get("agent").unwrap_or_default(),
                        session: entry.get("session").unwrap_or_default(),
                        kind: entry.get("kind").unwrap_or_default(),
                        data: entry.get("data").unwrap_or_default(),
                        id: entry.id,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Entries up to `newest` are handed over: the next read starts after it, and they are
    /// trimmed away (once a second or every thousand entries: trimming after every read would
    /// add a round trip to each push when they come one at a time).
    pub async fn delivered(&mut self, newest: &str, count: usize) {
        self.last = newest.to_string();
        self.untrimmed += count;
        if self.untrimmed >= 1000 || self.trimmed_at.elapsed() >= Duration::from_secs(1) {
            if let Some(con) = self.con.as_mut() {
                let _: std::result::Result<i64, _> =
                    redis::cmd("XTRIM").arg(&self.key).arg("MINID").arg(&self.last).query_async(con).await;
            }
            (self.untrimmed, self.trimmed_at) = (0, Instant::now());
        }
    }
}

impl Engine {
    /// Puts a push into an instance's inbox, as the routing functions do (a push a reply returned
    /// for a session that could not be shown from there).
    pub async fn push(&self, instance: &str, aid: &str, session: &str, kind: &str, data: &str) -> Result<()> {
        let mut con = self.con.clone();
        let _: String = redis::cmd("XADD")
            .arg(self.keys.inbox(instance))
            .arg("MAXLEN")
            .arg("~")
            .arg(INBOX_MAXLEN)
            .arg("*")
            .arg(&[("agent", aid), ("session", session), ("kind", kind), ("data", data)])
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Resolves a batch of pushes with one pipelined read for everything they refer to (the
    /// interactions offered or assigned, the customer messages), in order.
    pub async fn resolve_pushes(&self, raw: &[InboxEntry]) -> Result<Vec<Result<Option<Push>>>> {
        let parsed: Vec<Result<serde_json::Value>> = raw
            .iter()
            .map(|r| serde_json::from_str(&r.data).map_err(|e| EngineError::Corrupt(format!("push data: {e}"))))
            .collect();
        let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
        let mut ix_ids = Vec::new();
        let mut msg_refs = Vec::new();
        // Offers and assignments carry their interaction (a long thread aside): no read for those.
        let mut carried: Vec<Option<switchboard_model::Interaction>> = Vec::with_capacity(raw.len());
        for (r, v) in raw.iter().zip(&parsed) {
            let Ok(v) = v else {
                carried.push(None);
                continue;
            };
            let ix = match PushKind::parse(&r.kind) {
                Some(PushKind::Offer | PushKind::Assigned) => interaction_from_push(v).unwrap_or_else(|error| {
                    warn!(message = "A push carried an unreadable interaction; reading it instead.", %error);
                    None
                }),
                _ => None,
            };
            match PushKind::parse(&r.kind) {
                Some(PushKind::Offer | PushKind::Assigned) if ix.is_none() => ix_ids.push(s(v, "ix")),
                Some(PushKind::Message) => {
                    msg_refs.push((s(v, "ix"), v.get("seq").and_then(serde_json::Value::as_u64).unwrap_or(0)));
                }
                _ => {}
            }
            carried.push(ix);
        }
        let (interactions, messages) = self.interactions_and_messages(&ix_ids, &msg_refs).await?;
        let mut interactions = interactions.into_iter();
        let mut messages = messages.into_iter();
        let mut shown =
            |carried: Option<switchboard_model::Interaction>| carried.or_else(|| interactions.next().flatten());
        Ok(raw
            .iter()
            .zip(parsed)
            .zip(carried)
            .map(|((r, v), carried)| {
                let v = v?;
                let Some(kind) = PushKind::parse(&r.kind) else {
                    return Err(EngineError::Corrupt(format!("unknown push kind {:?}", r.kind)));
                };
                Ok(Some(match kind {
                    PushKind::Offer => match shown(carried) {
                        // A carried interaction is the offer as it was made; if it has ended since,
                        // the push that ended it follows in the inbox. One read here may show the
                        // offer gone already, or the interaction offered again, even to someone
                        // else: only the very offer is shown.
                        Some(ix)
                            if ix.state == switchboard_model::InteractionState::Offered
                                && ix.agent_id == r.agent
                                && Some(ix.offer_seq) == v.get("seq").and_then(serde_json::Value::as_u64) =>
                        {
                            Push::Offer(ix)
                        }
                        _ => return Ok(None),
                    },
                    PushKind::Assigned => match shown(carried) {
                        Some(ix) => Push::Assigned(ix),
                        None => {
                            return Err(EngineError::NotFound(format!(
                                "interaction_id: no interaction {:?}",
                                s(&v, "ix")
                            )));
                        }
                    },
                    PushKind::Revoked => Push::Revoked { interaction_id: s(&v, "ix"), reason: s(&v, "reason") },
                    PushKind::Message => match messages.next() {
                        Some(Some(message)) => Push::CustomerMessage { interaction_id: s(&v, "ix"), message },
                        _ => return Err(EngineError::NotFound(format!("message of {:?}", s(&v, "ix")))),
                    },
                    PushKind::Typing => Push::CustomerTyping {
                        interaction_id: s(&v, "ix"),
                        on: v.get("on").and_then(serde_json::Value::as_bool).unwrap_or(false),
                    },
                    PushKind::Ended => {
                        Push::Ended { interaction_id: s(&v, "ix"), state: s(&v, "state"), reason: s(&v, "reason") }
                    }
                    PushKind::Presence => Push::Presence {
                        presence: Presence::from_parts(&s(&v, "state"), &s(&v, "reason"))
                            .ok_or_else(|| EngineError::Corrupt(format!("presence {:?}", s(&v, "state"))))?,
                        cause: s(&v, "cause"),
                    },
                    PushKind::Closed => Push::Closed { reason: s(&v, "reason") },
                    PushKind::Call => Push::Call {
                        interaction_id: s(&v, "ix"),
                        state: s(&v, "state"),
                        since_ms: v.get("since").and_then(serde_json::Value::as_u64).unwrap_or(0),
                        hold_ms: v.get("hold_ms").and_then(serde_json::Value::as_u64).unwrap_or(0),
                    },
                    PushKind::Delivery => Push::Delivery {
                        interaction_id: s(&v, "ix"),
                        seq: v.get("seq").and_then(serde_json::Value::as_u64).unwrap_or(0),
                        delivery: switchboard_model::Delivery {
                            state: switchboard_model::DeliveryState::parse(&s(&v, "state"))
                                .ok_or_else(|| EngineError::Corrupt(format!("delivery state {:?}", s(&v, "state"))))?,
                            code: s(&v, "code"),
                            segments: v.get("segments").and_then(serde_json::Value::as_u64).unwrap_or(0) as u32,
                        },
                    },
                }))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::InboxId;

    #[test]
    fn inbox_ids_order_as_redis_orders_them() {
        let id = |s: &str| InboxId::parse(s).unwrap();
        assert!(id("1700000000000-0") < id("1700000000000-1"));
        assert!(id("1700000000000-9") < id("1700000000001-0"));
        assert!(id("99-0") < id("100-0"), "numerically, not as text");
        assert_eq!(id("0"), InboxId::default());
        assert!(id("5-5") < InboxId::LAST);
        assert!(InboxId::parse("x-1").is_none());
        assert!(InboxId::parse("1-").is_none());
    }
}
