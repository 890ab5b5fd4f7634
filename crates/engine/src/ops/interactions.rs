//! Interactions from the customer's side (creation, messages, withdrawal) and reading them with
//! their threads.

use std::collections::HashMap;

use redis::AsyncCommands;
use switchboard_model::{Author, Interaction, Message, NewInteraction};

use super::argv::argv;
use super::hours::IfRefused;
use crate::decode::{interaction_from_hash, interaction_from_reply, parse_message, parse_u64};
use crate::{Engine, EngineError, Result};

argv! {
    struct CreateArgs<'a> {
        iid: &'a str,
        idem: &'a str,
        ch: &'a str,
        customer: &'a str,
        subject: &'a str,
        attrs: String,
        queue: &'a str,
        priority: Option<i32>,
        body: &'a str,
        preferred_agent: &'a str,
        preferred_wait_ms: u64,
        if_refused: &'static str,
        callback: String,
    }
}

argv! {
    struct MessageInArgs<'a> {
        iid: &'a str,
        body: &'a str,
        idem: &'a str,
        author: &'a str,
    }
}

argv! {
    struct WithdrawArgs<'a> {
        iid: &'a str,
        reason: &'a str,
    }
}

impl Engine {
    /// Returns the interaction and whether this call created it (false: idempotent replay). A
    /// closed queue's rule for the channel applies: overflow creates it in the other queue
    /// (attribute `closed.from`), hold and refuse create it here, where it waits for the opening
    /// (see [`Engine::create_interaction_if_refused`] to refuse).
    pub async fn create_interaction(&self, new: &NewInteraction) -> Result<(Interaction, bool)> {
        self.create_interaction_if_refused(new, IfRefused::Hold).await
    }

    /// [`Engine::create_interaction`], with what a closed queue whose rule refuses the channel
    /// does: hold it anyway, fail, or record it as ended at once.
    pub async fn create_interaction_if_refused(
        &self,
        new: &NewInteraction,
        if_refused: IfRefused,
    ) -> Result<(Interaction, bool)> {
        let channel = new.validate().map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let id = uuid::Uuid::now_v7().to_string();
        let attrs = serde_json::to_string(&new.attributes).expect("attributes serialize");
        let args = CreateArgs {
            iid: &id,
            idem: &new.idempotency_key,
            ch: channel.as_str(),
            customer: &new.customer_address,
            subject: &new.subject,
            attrs,
            queue: &new.queue,
            priority: new.priority,
            body: &new.body,
            preferred_agent: &new.preferred_agent_id,
            preferred_wait_ms: u64::from(new.preferred_agent_wait_secs) * 1000,
            if_refused: if_refused.as_str(),
            callback: new.callback.as_ref().map(|c| callback_json(c, new.waiting_since_ms)).unwrap_or_default(),
        };
        let r = self.run(args).await?;
        let created = r.get(1).is_some_and(|s| s == "1");
        let id = r.first().ok_or_else(|| EngineError::Corrupt(format!("create reply {r:?}")))?;
        Ok((interaction_from_reply(id, r.get(2..).unwrap_or_default(), false)?, created))
    }

    pub async fn append_customer_message(&self, iid: &str, body: &str) -> Result<Message> {
        Ok(self.message_in(iid, body, "", Author::Customer).await?.0)
    }

    /// Appends a customer message once per `key`: a retry with the same key returns the first
    /// message and `false`.
    pub async fn append_customer_message_once(&self, iid: &str, body: &str, key: &str) -> Result<(Message, bool)> {
        self.message_in(iid, body, key, Author::Customer).await
    }

    /// A note from a channel about the conversation (a bounce, a delivery failure), shown to the
    /// agent as a system message; once per `key` like [`Engine::append_customer_message_once`].
    pub async fn append_system_message_once(&self, iid: &str, body: &str, key: &str) -> Result<(Message, bool)> {
        self.message_in(iid, body, key, Author::System).await
    }

    async fn message_in(&self, iid: &str, body: &str, key: &str, author: Author) -> Result<(Message, bool)> {
        validate_body(body)?;
        let author_name = if author == Author::System { "system" } else { "customer" };
        let r = self.run(MessageInArgs { iid, body, idem: key, author: author_name }).await?;
        let seq = parse_u64(r.first())?;
        if r.get(2).is_some_and(|s| s == "1") {
            // Appended now: the script's reply says all there is to know about it.
            let sent_ms = parse_u64(r.get(1))?;
            let m = Message { seq, author, agent_id: String::new(), body: body.to_string(), sent_ms, delivery: None };
            return Ok((m, true));
        }
        // A replay: the first message, as stored.
        Ok((self.message(iid, seq).await?, false))
    }

    pub async fn withdraw(&self, iid: &str, reason: &str) -> Result<Interaction> {
        switchboard_model::validate_len("reason", reason, 200)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let reason = if reason.is_empty() { "customer_left" } else { reason };
        self.run(WithdrawArgs { iid, reason }).await?;
        self.get_interaction(iid, false).await
    }

    pub async fn get_interaction(&self, iid: &str, with_messages: bool) -> Result<Interaction> {
        self.interactions(&[iid.to_string()], with_messages)
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| EngineError::NotFound(format!("interaction_id: no interaction {iid:?}")))
    }

    /// Several interactions in one round trip (None where one no longer exists), in `ids` order.
    pub async fn interactions(&self, ids: &[String], with_messages: bool) -> Result<Vec<Option<Interaction>>> {
        if with_messages {
            return Ok(self.interactions_and_messages(ids, &[]).await?.0);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.ix(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut con).await?;
        ids.iter()
            .zip(&hashes)
            .map(|(id, h)| if h.is_empty() { Ok(None) } else { interaction_from_hash(id, h).map(Some) })
            .collect()
    }

    /// Interactions (with their threads) and single messages `(interaction, seq)`, all in one
    /// round trip; None where one does not exist.
    pub async fn interactions_and_messages(
        &self,
        ids: &[String],
        messages: &[(String, u64)],
    ) -> Result<(Vec<Option<Interaction>>, Vec<Option<Message>>)> {
        if ids.is_empty() && messages.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.ix(id));
            pipe.lrange(self.keys.ix_msgs(id), 0, -1);
        }
        for (id, seq) in messages {
            pipe.lindex(self.keys.ix_msgs(id), *seq as isize - 1);
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut con).await?;
        let decode = |e: redis::ParsingError| EngineError::Corrupt(e.to_string());
        let (ix_replies, msg_replies) = replies.split_at(ids.len() * 2);
        let interactions = ix_replies
            .chunks(2)
            .zip(ids)
            .map(|(r, id)| {
                let h: HashMap<String, String> = redis::from_redis_value(r[0].clone()).map_err(decode)?;
                if h.is_empty() {
                    return Ok(None);
                }
                let mut ix = interaction_from_hash(id, &h)?;
                let raw: Vec<String> = redis::from_redis_value(r[1].clone()).map_err(decode)?;
                ix.messages = raw.iter().map(|m| parse_message(m)).collect::<Result<_>>()?;
                Ok(Some(ix))
            })
            .collect::<Result<Vec<_>>>()?;
        let messages = msg_replies
            .iter()
            .map(|v| {
                let raw: Option<String> = redis::from_redis_value(v.clone()).map_err(decode)?;
                raw.map(|r| parse_message(&r)).transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((interactions, messages))
    }

    pub async fn messages(&self, iid: &str) -> Result<Vec<Message>> {
        let mut con = self.con.clone();
        let raw: Vec<String> = con.lrange(self.keys.ix_msgs(iid), 0, -1).await?;
        raw.iter().map(|s| parse_message(s)).collect()
    }

    pub async fn message(&self, iid: &str, seq: u64) -> Result<Message> {
        let mut con = self.con.clone();
        let raw: Option<String> = con.lindex(self.keys.ix_msgs(iid), seq as isize - 1).await?;
        let raw = raw.ok_or_else(|| EngineError::NotFound(format!("message {seq} of {iid}")))?;
        parse_message(&raw)
    }
}

pub(crate) fn validate_body(body: &str) -> Result<()> {
    if body.is_empty() {
        return Err(EngineError::InvalidArgument("body: is required".into()));
    }
    switchboard_model::validate_text("body", body, switchboard_model::MAX_BODY_LEN)
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))
}

/// A callback's fields as `create.lua` stores them on the interaction.
pub(crate) fn callback_json(c: &switchboard_model::CallbackPlan, waiting_since_ms: Option<u64>) -> String {
    serde_json::json!({
        "enq": waiting_since_ms.unwrap_or(0),
        "cb": c.number,
        "cb_nb": c.not_before_ms,
        "cb_max": c.max_attempts,
        "cb_retry": c.retry_ms,
        "cb_dto": c.dial_timeout_ms,
        "cb_sl": c.service_level_at.as_str(),
    })
    .to_string()
}
