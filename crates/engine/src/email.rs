//! The email channel's own bookkeeping in Redis (key formats in `keys.rs`): how far each
//! mailbox has been read, which messages were processed, which Message-IDs belong to which
//! conversation, and the state of each reply we send.

use std::collections::HashMap;

use crate::SharedConnection;
use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use crate::{Engine, EngineError, Keys};

/// Kept a little longer than interactions (7 days), so a late reply still finds its thread.
const THREAD_TTL_SECS: u64 = 8 * 86_400;
/// A processed message is remembered this long; a mailbox rescan (UIDVALIDITY change) within it
/// creates no duplicates.
const SEEN_TTL_SECS: u64 = 30 * 86_400;

/// The key part for a Message-ID: 16 bytes of its SHA-256, in hex.
pub fn id_hash(message_id: &str) -> String {
    Sha256::digest(message_id.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// One email conversation (one interaction).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    pub mailbox: String,
    pub customer: String,
    pub subject: String,
    pub token: String,
    /// The customer's latest Message-ID: what our next reply answers.
    pub last_in: String,
    /// References for our next reply, oldest first.
    pub refs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub state: String,
    pub interaction_id: String,
    pub seq: u64,
    pub attempts: u64,
    pub created_ms: u64,
    pub error: String,
}

impl OutRecord {
    fn from_hash(h: &HashMap<String, String>) -> Option<OutRecord> {
        if h.is_empty() {
            return None;
        }
        let s = |k: &str| h.get(k).cloned().unwrap_or_default();
        let n = |k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Some(OutRecord {
            state: s("state"),
            interaction_id: s("ix"),
            seq: n("seq"),
            attempts: n("attempts"),
            created_ms: n("created"),
            error: s("error"),
        })
    }
}

#[derive(Clone)]
pub struct EmailState {
    engine: Engine,
    con: SharedConnection,
    keys: Keys,
}

type R<T> = Result<T, EngineError>;

impl EmailState {
    pub fn new(engine: &Engine) -> Self {
        EmailState { engine: engine.clone(), con: engine.connection(), keys: engine.keys().clone() }
    }

    pub async fn cursor(&self, mailbox: &str) -> R<(Option<u32>, u32)> {
        let mut con = self.con.clone();
        let h: HashMap<String, u32> = con.hgetall(self.keys.email_cursor(mailbox)).await?;
        Ok((h.get("uidvalidity").copied(), h.get("last_uid").copied().unwrap_or(0)))
    }

    pub async fn set_cursor(&self, mailbox: &str, uidvalidity: u32, last_uid: u32) -> R<()> {
        let mut con = self.con.clone();
        let _: () = con
            .hset_multiple(self.keys.email_cursor(mailbox), &[("uidvalidity", uidvalidity), ("last_uid", last_uid)])
            .await?;
        Ok(())
    }

    /// Takes or renews the right to read a mailbox (one instance at a time).
    pub async fn lease(&self, mailbox: &str, holder: &str, ttl_ms: u64) -> R<bool> {
        self.engine.lease(crate::Lease::Mailbox(mailbox), holder, Some(ttl_ms)).await
    }

    pub async fn release(&self, mailbox: &str, holder: &str) -> R<()> {
        self.engine.lease(crate::Lease::Mailbox(mailbox), holder, None).await.map(|_| ())
    }

    pub async fn seen(&self, dedupe_key: &str) -> R<Option<String>> {
        let mut con = self.con.clone();
        Ok(con.get(self.keys.email_seen(dedupe_key)).await?)
    }

    pub async fn mark_seen(&self, dedupe_key: &str, value: &str) -> R<()> {
        let mut con = self.con.clone();
        let _: () = con.set_ex(self.keys.email_seen(dedupe_key), value, SEEN_TTL_SECS).await?;
        Ok(())
    }

    /// Conversation (interaction id, customer) a Message-ID belongs to.
    pub async fn lookup_ref(&self, message_id: &str) -> R<Option<(String, String)>> {
        let mut con = self.con.clone();
        let (ix, cust): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.email_ref(&id_hash(message_id)))
            .arg("ix")
            .arg("cust")
            .query_async(&mut con)
            .await?;
        Ok(ix.zip(cust))
    }

    pub async fn remember_ref(&self, message_id: &str, interaction_id: &str, customer: &str) -> R<()> {
        let mut con = self.con.clone();
        let k = self.keys.email_ref(&id_hash(message_id));
        let _: () = redis::pipe()
            .hset_multiple(&k, &[("ix", interaction_id), ("cust", customer)])
            .ignore()
            .expire(&k, THREAD_TTL_SECS as i64)
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    pub async fn lookup_token(&self, token: &str) -> R<Option<String>> {
        let mut con = self.con.clone();
        Ok(con.get(self.keys.email_token(token)).await?)
    }

    pub async fn conversation(&self, interaction_id: &str) -> R<Option<Conversation>> {
        let mut con = self.con.clone();
        let h: HashMap<String, String> = con.hgetall(self.keys.email_conv(interaction_id)).await?;
        if h.is_empty() {
            return Ok(None);
        }
        let s = |k: &str| h.get(k).cloned().unwrap_or_default();
        Ok(Some(Conversation {
            mailbox: s("mailbox"),
            customer: s("cust"),
            subject: s("subject"),
            token: s("token"),
            last_in: s("last_in"),
            refs: serde_json::from_str(&s("refs")).unwrap_or_default(),
        }))
    }

    /// Writes the conversation and its subject token.
    pub async fn put_conversation(&self, interaction_id: &str, c: &Conversation) -> R<()> {
        let mut con = self.con.clone();
        let k = self.keys.email_conv(interaction_id);
        let refs = serde_json::to_string(&c.refs).expect("refs serialize");
        let tk = self.keys.email_token(&c.token);
        let _: () = redis::pipe()
            .hset_multiple(
                &k,
                &[
                    ("mailbox", c.mailbox.as_str()),
                    ("cust", c.customer.as_str()),
                    ("subject", c.subject.as_str()),
                    ("token", c.token.as_str()),
                    ("last_in", c.last_in.as_str()),
                    ("refs", refs.as_str()),
                ],
            )
            .ignore()
            .expire(&k, THREAD_TTL_SECS as i64)
            .ignore()
            .set_ex(&tk, interaction_id, THREAD_TTL_SECS)
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    pub async fn out_record(&self, message_id: &str) -> R<Option<OutRecord>> {
        let mut con = self.con.clone();
        let h: HashMap<String, String> = con.hgetall(self.keys.email_out(&id_hash(message_id))).await?;
        Ok(OutRecord::from_hash(&h))
    }

    /// Creates the record as `pending` unless it exists; returns it either way.
    pub async fn open_out_record(&self, message_id: &str, interaction_id: &str, seq: u64, now_ms: u64) -> R<OutRecord> {
        let fields = [
            ("state", "pending".to_string()),
            ("ix", interaction_id.to_string()),
            ("seq", seq.to_string()),
            ("created", now_ms.to_string()),
            ("mid", message_id.to_string()),
        ];
        let k = self.keys.email_out(&id_hash(message_id));
        let h = crate::hash_open(&self.con, &k, &fields, THREAD_TTL_SECS).await?;
        OutRecord::from_hash(&h).ok_or_else(|| EngineError::Corrupt("email out record vanished".into()))
    }

    pub async fn count_attempt(&self, message_id: &str) -> R<u64> {
        let mut con = self.con.clone();
        Ok(con.hincr(self.keys.email_out(&id_hash(message_id)), "attempts", 1).await?)
    }

    pub async fn finish_out(&self, message_id: &str, state: &str, error: &str) -> R<()> {
        let mut con = self.con.clone();
        let _: () = redis::pipe()
            .hset_multiple(self.keys.email_out(&id_hash(message_id)), &[("state", state), ("error", error)])
            .ignore()
            .zrem(self.keys.email_retry(), message_id)
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    pub async fn schedule_retry(&self, message_id: &str, at_ms: u64) -> R<()> {
        let mut con = self.con.clone();
        let _: () = con.zadd(self.keys.email_retry(), message_id, at_ms).await?;
        Ok(())
    }

    /// Claims due retries: each due entry's score moves `lease_ms` ahead, and only the caller
    /// whose ZADD changed it owns it (an instance that dies mid-send leaves it due again later).
    pub async fn claim_due_retries(&self, now_ms: u64, lease_ms: u64, max: usize) -> R<Vec<String>> {
        let mut con = self.con.clone();
        let due: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.keys.email_retry())
            .arg("-inf")
            .arg(now_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(max)
            .arg("WITHSCORES")
            .query_async(&mut con)
            .await?;
        let mut out = Vec::new();
        for (mid, score) in due {
            let changed: i64 = redis::cmd("ZADD")
                .arg(self.keys.email_retry())
                .arg("XX")
                .arg("GT")
                .arg("CH")
                .arg(score as u64 + lease_ms)
                .arg(&mid)
                .query_async(&mut con)
                .await?;
            if changed == 1 {
                out.push(mid);
            }
        }
        Ok(out)
    }
}
