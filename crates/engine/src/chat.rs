//! Web chat sessions: the Redis side of the web chat channel (`channels::webchat`).
//!
//! A session maps the SHA-256 of a visitor's token to its interaction; the token itself is never
//! stored, so reading Redis does not let anyone take over a chat. `chat_live` records when each
//! unfinished chat last had a visitor connected, on any instance; whichever instance first sees a
//! chat left alone past the resume window withdraws it.

use std::collections::HashMap;

use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};

use crate::decode::{interaction_from_hash, parse_message};
use crate::ops::argv::argv;
use crate::{Caller, Engine, EngineError, Result, keys};
use switchboard_model::{Interaction, Message};

type StreamEntry = (String, HashMap<String, String>);

argv! {
    /// Typing is a chat's, but goes through the routing functions: only they know whom to show it.
    struct TypingArgs<'a> {
        who: &'a str,
        iid: &'a str,
        aid: &'a str,
        on: bool,
    }
}

/// What a session token unlocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatSession {
    pub interaction_id: String,
    pub visitor: String,
    pub created_ms: u64,
}

/// Something that happened to a web chat, read from the event log or the signal stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatSignal {
    /// The interaction changed (state, thread): re-read it.
    Changed {
        interaction_id: String,
    },
    AgentTyping {
        interaction_id: String,
        on: bool,
    },
}

/// Where the tail of the event log and signal stream was read up to.
#[derive(Debug, Clone)]
pub struct ChatCursor {
    events: String,
    signals: String,
}

impl Engine {
    pub async fn create_chat_session(&self, token_hash: &str, s: &ChatSession, ttl_secs: u64) -> Result<()> {
        let mut con = self.con.clone();
        let key = self.keys.chat(token_hash);
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("ix", s.interaction_id.clone()),
                    ("visitor", s.visitor.clone()),
                    ("created_ms", s.created_ms.to_string()),
                ],
            )
            .expire(&key, ttl_secs as i64)
            .query_async::<()>(&mut con)
            .await?;
        Ok(())
    }

    pub async fn chat_session(&self, token_hash: &str) -> Result<Option<ChatSession>> {
        let mut con = self.con.clone();
        let h: HashMap<String, String> = con.hgetall(self.keys.chat(token_hash)).await?;
        if h.is_empty() {
            return Ok(None);
        }
        let s = |k: &str| h.get(k).cloned().unwrap_or_default();
        Ok(Some(ChatSession {
            interaction_id: s("ix"),
            visitor: s("visitor"),
            created_ms: s("created_ms").parse().unwrap_or(0),
        }))
    }

    /// Keeps sessions readable for `ttl_secs` from now (reload after the end shows the transcript).
    pub async fn touch_chat_sessions(&self, token_hashes: &[String], ttl_secs: u64) -> Result<()> {
        if token_hashes.is_empty() {
            return Ok(());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for h in token_hashes {
            pipe.expire(self.keys.chat(h), ttl_secs as i64).ignore();
        }
        pipe.query_async::<()>(&mut con).await?;
        Ok(())
    }

    /// Records that visitors of these chats are connected now (times only move forward, so
    /// instances racing each other cannot make a chat look older).
    pub async fn chat_seen(&self, interaction_ids: &[String], now_ms: u64) -> Result<()> {
        if interaction_ids.is_empty() {
            return Ok(());
        }
        let mut con = self.con.clone();
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.keys.chat_live()).arg("GT");
        for id in interaction_ids {
            cmd.arg(now_ms).arg(id);
        }
        cmd.query_async::<()>(&mut con).await?;
        Ok(())
    }

    /// When a visitor of this chat was last connected (None: not tracked, i.e. ended or withdrawn).
    pub async fn chat_last_seen(&self, interaction_id: &str) -> Result<Option<u64>> {
        let mut con = self.con.clone();
        let s: Option<f64> = con.zscore(self.keys.chat_live(), interaction_id).await?;
        Ok(s.map(|v| v as u64))
    }

    /// Stops tracking a chat (it ended).
    pub async fn chat_forget(&self, interaction_id: &str) -> Result<()> {
        let mut con = self.con.clone();
        let _: i64 = con.zrem(self.keys.chat_live(), interaction_id).await?;
        Ok(())
    }

    /// Chats nobody has been connected to since `before_ms`, each claimed by this caller alone
    /// (the ZREM decides which instance acts on it).
    pub async fn claim_abandoned_chats(&self, before_ms: u64, max: usize) -> Result<Vec<String>> {
        let mut con = self.con.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.chat_live())
            .arg("-inf")
            .arg(before_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(max)
            .query_async(&mut con)
            .await?;
        let mut claimed = Vec::new();
        for id in ids {
            let removed: i64 = con.zrem(self.keys.chat_live(), &id).await?;
            if removed == 1 {
                claimed.push(id);
            }
        }
        Ok(claimed)
    }

    /// The interaction and its messages with `seq >= from_seq`, in one round trip.
    pub async fn interaction_with_messages_from(
        &self,
        iid: &str,
        from_seq: u64,
    ) -> Result<(Interaction, Vec<Message>)> {
        let mut con = self.con.clone();
        let start = from_seq.max(1) as isize - 1;
        let (h, raw): (HashMap<String, String>, Vec<String>) = redis::pipe()
            .hgetall(self.keys.ix(iid))
            .lrange(self.keys.ix_msgs(iid), start, -1)
            .query_async(&mut con)
            .await?;
        if h.is_empty() {
            return Err(EngineError::NotFound(format!("interaction_id: no interaction {iid:?}")));
        }
        Ok((interaction_from_hash(iid, &h)?, raw.iter().map(|s| parse_message(s)).collect::<Result<_>>()?))
    }

    /// 1-based place among the interactions waiting in the same pool and channel (None when it is
    /// not waiting in a pool, e.g. held for one agent).
    pub async fn waiting_position(&self, ix: &Interaction) -> Result<Option<u64>> {
        let mut con = self.con.clone();
        let key = self.keys.wait(&keys::pool(&ix.queue, ix.stage as usize), ix.channel.as_str());
        let rank: Option<u64> = con.zrank(key, &ix.id).await?;
        Ok(rank.map(|r| r + 1))
    }

    /// 1-based place among everything waiting in its queue by age (what a supervisor's waiting
    /// list shows), callbacks not yet due included; None when it is not waiting.
    pub async fn place_in_queue(&self, ix: &Interaction) -> Result<Option<u64>> {
        let mut con = self.con.clone();
        let rank: Option<u64> = con.zrank(self.keys.qwait(&ix.queue), &ix.id).await?;
        Ok(rank.map(|r| r + 1))
    }

    /// Interactions answered in `queue` over the figures window, and the window in seconds.
    pub async fn answered_recently(&self, queue: &str) -> Result<(u64, u64)> {
        let now = self.now_ms().await?;
        let window = self.opts.figures_window.as_secs().max(60);
        let this_minute = now / 60_000;
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        crate::ops::figures::read_minutes(&mut pipe, &self.keys, queue, this_minute, window / 60);
        let replies: Vec<redis::Value> = pipe.query_async(&mut con).await?;
        let sums = crate::ops::figures::sum_minutes(&replies)?;
        Ok((sums.get("accepted").copied().unwrap_or(0), window))
    }

    /// The customer is typing (shown to the assigned agent while the interaction is active).
    pub async fn customer_typing(&self, iid: &str, on: bool) -> Result<()> {
        self.run(TypingArgs { who: "customer", iid, aid: "", on }).await?;
        Ok(())
    }

    /// The agent is typing (shown to a web chat visitor).
    pub async fn agent_typing(&self, aid: &str, iid: &str, on: bool) -> Result<()> {
        self.agent_typing_by(None, aid, iid, on).await
    }

    pub(crate) async fn agent_typing_by(&self, by: Option<&Caller>, aid: &str, iid: &str, on: bool) -> Result<()> {
        self.run_by(by, TypingArgs { who: "agent", iid, aid, on }).await?;
        Ok(())
    }

    /// Where a tail of the event log and the chat signals starts: after their latest entries.
    /// (Concrete ids rather than `$`, so nothing added between two reads is skipped.)
    pub async fn chat_cursor_now(&self) -> Result<ChatCursor> {
        let mut con = self.con.clone();
        let (e, s): (Vec<StreamEntry>, Vec<StreamEntry>) = redis::pipe()
            .cmd("XREVRANGE")
            .arg(self.keys.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .cmd("XREVRANGE")
            .arg(self.keys.chat_signals())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut con)
            .await?;
        let last =
            |v: Vec<(String, HashMap<String, String>)>| v.into_iter().next().map_or("0-0".to_string(), |(id, _)| id);
        Ok(ChatCursor { events: last(e), signals: last(s) })
    }

    /// Waits up to `block_ms` for what happens to interactions next. Uses its own connection
    /// because the read blocks.
    pub async fn read_chat_signals(
        &self,
        con: &mut super::DedicatedConnection,
        cursor: &mut ChatCursor,
        block_ms: usize,
    ) -> Result<Vec<ChatSignal>> {
        let events = self.keys.events();
        let signals = self.keys.chat_signals();
        let opts = StreamReadOptions::default().block(block_ms).count(1000);
        let keys = [events.as_str(), signals.as_str()];
        let ids = [cursor.events.as_str(), cursor.signals.as_str()];
        let reply: Option<StreamReadReply> = con.xread_options(&keys, &ids, &opts).await?;
        let mut out = Vec::new();
        for sk in reply.map(|r| r.keys).unwrap_or_default() {
            let from_events = sk.key == events;
            for entry in sk.ids {
                if from_events {
                    cursor.events = entry.id.clone();
                    let logged = crate::events::entries_events(std::slice::from_ref(&entry));
                    for e in logged.into_iter().filter(|e| !e.interaction_id.is_empty()) {
                        out.push(ChatSignal::Changed { interaction_id: e.interaction_id });
                    }
                    continue;
                }
                cursor.signals = entry.id.clone();
                let iid: String = entry.get("ix").unwrap_or_default();
                if iid.is_empty() {
                    continue;
                }
                let kind: String = entry.get("kind").unwrap_or_default();
                let on: String = entry.get("on").unwrap_or_default();
                match kind.as_str() {
                    "typing" => out.push(ChatSignal::AgentTyping { interaction_id: iid, on: on == "1" }),
                    other => return Err(EngineError::Corrupt(format!("chat signal kind {other:?}"))),
                }
            }
        }
        Ok(out)
    }
}
