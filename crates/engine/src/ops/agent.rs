//! What an agent does, from login to wrap-up: each of these is one function call. The `*_by`
//! forms are the same calls made as a desktop session's requests ([`Engine::calls`]), which
//! return the pushes for that session with the reply.

use std::time::Duration;

use switchboard_model::{Interaction, Message, Presence};

use super::argv::argv;
use super::interactions::validate_body;
use crate::decode::{interaction_from_reply, parse_u64};
use crate::{Caller, Engine, EngineError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    Queue(String),
    Agent { id: String, wait: Duration },
}

argv! {
    struct LoginArgs<'a> {
        aid: &'a str,
        token_hash: String,
        inst: &'a str,
        session: &'a str,
    }
}

argv! {
    struct DisconnectArgs<'a> {
        aid: &'a str,
        session: &'a str,
        mode: &'a str,
    }
}

argv! {
    struct PresenceArgs<'a> {
        aid: &'a str,
        state: &'a str,
        reason: &'a str,
        cause: &'a str,
        close: bool,
    }
}

argv! {
    struct AcceptArgs<'a> {
        aid: &'a str,
        iid: &'a str,
    }
}

argv! {
    struct RejectArgs<'a> {
        aid: &'a str,
        iid: &'a str,
        reason: &'a str,
    }
}

argv! {
    struct ReplyArgs<'a> {
        aid: &'a str,
        iid: &'a str,
        body: &'a str,
    }
}

argv! {
    struct CompleteArgs<'a> {
        aid: &'a str,
        iid: &'a str,
        disposition: &'a str,
        notes: &'a str,
    }
}

argv! {
    struct EndWrapArgs<'a> {
        aid: &'a str,
        iid: &'a str,
        disposition: &'a str,
        notes: &'a str,
    }
}

argv! {
    struct TransferArgs<'a> {
        aid: &'a str,
        iid: &'a str,
        kind: &'a str,
        target: &'a str,
        boost: i32,
        wait_ms: u64,
    }
}

impl Engine {
    /// Opens a desktop session. `token`: the desktop token the agent sent; `None` when the
    /// session's own credential (a key or JWT for this agent) was checked already.
    pub async fn login(&self, aid: &str, token: Option<&str>, instance: &str, session: &str) -> Result<()> {
        let token_hash = token.map(|t| switchboard_model::access::agent_token_hash(aid, t)).unwrap_or_default();
        if token.is_some_and(str::is_empty) {
            return Err(EngineError::Unauthenticated("unknown agent or wrong token".into()));
        }
        self.run(LoginArgs { aid, token_hash, inst: instance, session }).await.map(|_| ())
    }

    /// Whether `token` is the agent's desktop token (compared as salted hashes, in constant time).
    pub async fn agent_token_ok(&self, aid: &str, token: &str) -> Result<bool> {
        let mut con = self.connection();
        let stored: Option<String> = redis::AsyncCommands::hget(&mut con, self.keys().agent(aid), "token_hash").await?;
        let want = switchboard_model::access::agent_token_hash(aid, token);
        Ok(stored.is_some_and(|s| switchboard_model::access::constant_time_eq(&s, &want)))
    }

    /// Hashes the desktop tokens an older version kept in clear; returns how many. One pipelined
    /// read for all agents, not a round trip each: it runs at every start.
    pub async fn hash_clear_tokens(&self) -> Result<usize> {
        let mut con = self.connection();
        let ids: Vec<String> = redis::AsyncCommands::smembers(&mut con, self.keys().agents()).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut read = redis::pipe();
        for aid in &ids {
            read.hget(self.keys().agent(aid), "token");
        }
        let clear: Vec<Option<String>> = read.query_async(&mut con).await?;
        let mut write = redis::pipe();
        write.atomic();
        let mut n = 0;
        for (aid, t) in ids.iter().zip(clear) {
            if let Some(t) = t.filter(|t| !t.is_empty()) {
                let key = self.keys().agent(aid);
                write
                    .hset(&key, "token_hash", switchboard_model::access::agent_token_hash(aid, &t))
                    .hdel(&key, "token");
                n += 1;
            }
        }
        if n > 0 {
            write.query_async::<()>(&mut con).await?;
        }
        Ok(n)
    }

    /// The desktop stream ended: the agent goes offline after the grace period unless it
    /// reconnects. `release_offers` (this instance is shutting down): its pending offers go back to
    /// the queue now instead of waiting out the grace period.
    pub async fn disconnect(&self, aid: &str, session: &str, release_offers: bool) -> Result<()> {
        let mode = if release_offers { "release" } else { "" };
        self.run(DisconnectArgs { aid, session, mode }).await.map(|_| ())
    }

    pub async fn set_presence(&self, aid: &str, presence: &Presence, cause: &str) -> Result<()> {
        self.set_presence_by(None, aid, presence, cause).await
    }

    pub(crate) async fn set_presence_by(
        &self,
        by: Option<&Caller>,
        aid: &str,
        presence: &Presence,
        cause: &str,
    ) -> Result<()> {
        switchboard_model::validate_len("presence.reason", presence.reason(), 100)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let args = PresenceArgs { aid, state: presence.state_str(), reason: presence.reason(), cause, close: false };
        self.run_by(by, args).await.map(|_| ())
    }

    /// Supervisor logout: offline now (pending offers go back), and the desktop stream is closed.
    pub async fn logout(&self, aid: &str) -> Result<()> {
        let args = PresenceArgs { aid, state: "offline", reason: "", cause: "supervisor", close: true };
        self.run(args).await.map(|_| ())
    }

    /// Accepts an offer; the agent's session is told with an `assigned` push (made through
    /// [`Engine::calls`], it comes back with the reply like any other).
    pub async fn accept(&self, aid: &str, iid: &str) -> Result<Interaction> {
        self.accept_by(None, aid, iid).await
    }

    pub(crate) async fn accept_by(&self, by: Option<&Caller>, aid: &str, iid: &str) -> Result<Interaction> {
        let r = self.run_by(by, AcceptArgs { aid, iid }).await?;
        interaction_from_reply(iid, &r, true)
    }

    pub async fn reject(&self, aid: &str, iid: &str, reason: &str) -> Result<()> {
        self.reject_by(None, aid, iid, reason).await
    }

    pub(crate) async fn reject_by(&self, by: Option<&Caller>, aid: &str, iid: &str, reason: &str) -> Result<()> {
        switchboard_model::validate_len("reason", reason, 200)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        self.run_by(by, RejectArgs { aid, iid, reason }).await.map(|_| ())
    }

    pub async fn reply(&self, aid: &str, iid: &str, body: &str) -> Result<Message> {
        self.reply_by(None, aid, iid, body).await
    }

    pub(crate) async fn reply_by(&self, by: Option<&Caller>, aid: &str, iid: &str, body: &str) -> Result<Message> {
        validate_body(body)?;
        let r = self.run_by(by, ReplyArgs { aid, iid, body }).await?;
        self.message(iid, parse_u64(r.first())?).await
    }

    pub async fn complete(&self, aid: &str, iid: &str, disposition: &str, notes: &str) -> Result<Interaction> {
        self.complete_by(None, aid, iid, disposition, notes).await
    }

    pub(crate) async fn complete_by(
        &self,
        by: Option<&Caller>,
        aid: &str,
        iid: &str,
        disposition: &str,
        notes: &str,
    ) -> Result<Interaction> {
        validate_disposition(disposition, notes)?;
        let r = self.run_by(by, CompleteArgs { aid, iid, disposition, notes }).await?;
        interaction_from_reply(iid, &r, false)
    }

    pub async fn end_wrap_up(&self, aid: &str, iid: &str, disposition: &str, notes: &str) -> Result<Interaction> {
        self.end_wrap_up_by(None, aid, iid, disposition, notes).await
    }

    pub(crate) async fn end_wrap_up_by(
        &self,
        by: Option<&Caller>,
        aid: &str,
        iid: &str,
        disposition: &str,
        notes: &str,
    ) -> Result<Interaction> {
        validate_disposition(disposition, notes)?;
        self.run_by(by, EndWrapArgs { aid, iid, disposition, notes }).await?;
        self.get_interaction(iid, false).await
    }

    pub async fn transfer(
        &self,
        aid: &str,
        iid: &str,
        target: &TransferTarget,
        priority_boost: i32,
    ) -> Result<Interaction> {
        self.transfer_by(None, aid, iid, target, priority_boost).await
    }

    pub(crate) async fn transfer_by(
        &self,
        by: Option<&Caller>,
        aid: &str,
        iid: &str,
        target: &TransferTarget,
        priority_boost: i32,
    ) -> Result<Interaction> {
        if !(-switchboard_model::MAX_PRIORITY..=switchboard_model::MAX_PRIORITY).contains(&priority_boost) {
            return Err(EngineError::InvalidArgument(format!(
                "priority_boost: must be within ±{}, got {priority_boost}",
                switchboard_model::MAX_PRIORITY
            )));
        }
        let (kind, target, wait_ms) = match target {
            TransferTarget::Queue(q) => {
                switchboard_model::validate_id("queue", q).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
                ("queue", q.as_str(), 0)
            }
            TransferTarget::Agent { id, wait } => {
                switchboard_model::validate_id("agent_id", id)
                    .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
                ("agent", id.as_str(), wait.as_millis() as u64)
            }
        };
        self.run_by(by, TransferArgs { aid, iid, kind, target, boost: priority_boost, wait_ms }).await?;
        self.get_interaction(iid, false).await
    }
}

fn validate_disposition(disposition: &str, notes: &str) -> Result<()> {
    switchboard_model::validate_len("disposition", disposition, 100)
        .and_then(|_| switchboard_model::validate_len("notes", notes, 10_000))
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))
}
