//! The SMS channel's bookkeeping in Redis (key formats in `keys.rs`): which interaction a
//! conversation (our number with the customer's) is on, who is handling a conversation's inbound
//! text right now, parts of concatenated texts, opt-outs, and the state of each reply we send —
//! with the provider's message ids that status reports and receipts name.

use std::collections::HashMap;

use redis::AsyncCommands;
use switchboard_model::DeliveryState;

use crate::ops::argv::argv;
use crate::{Engine, EngineError, Keys, SharedConnection};

/// A conversation is followed a little longer than interactions live (7 days).
const CONV_TTL_SECS: u64 = 8 * 86_400;
/// Reply records and provider ids: receipts can come days later (SMSC validity periods).
const OUT_TTL_SECS: u64 = 8 * 86_400;
/// A report that came before its reply's record is kept this long for it.
const EARLY_TTL_SECS: u64 = 600;
/// A text that created nothing is remembered this long (as the routing functions' idempotency keys).
const SEEN_TTL_SECS: u64 = 30 * 86_400;

argv! {
    struct DeliveryArgs<'a> {
        iid: &'a str,
        seq: u64,
        state: &'a str,
        rank: u32,
        code: &'a str,
        segs: u32,
    }
}

argv! {
    struct PartArgs<'a> {
        reply: &'a str,
        pid: &'a str,
        state: &'a str,
        rank: u32,
    }
}

argv! {
    struct OptOutArgs<'a> {
        conv: &'a str,
        iid: &'a str,
        ours: &'a str,
        customer: &'a str,
        out: bool,
        keyword: &'a str,
    }
}

/// The conversation key: our number (or short code, or sender id) with the customer's.
pub fn conversation_key(ours: &str, customer: &str) -> String {
    format!("{ours}|{customer}")
}

/// The key of one agent reply: its interaction and its place in the thread. It names every
/// attempt to send it, so it is sent at most once whatever retries and crashes happen.
pub fn reply_key(interaction_id: &str, seq: u64) -> String {
    format!("{interaction_id}|{seq}")
}

/// One reply's sending record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutRecord {
    /// `pending` (not yet accepted by a provider), `accepted`, `failed` (will not be sent).
    pub state: String,
    pub gateway: String,
    pub from: String,
    pub to: String,
    pub segments: u32,
    pub attempts: u64,
    pub created_ms: u64,
    pub error: String,
    /// The provider's ids for it (one per part for SMPP), in order.
    pub provider_ids: Vec<String>,
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
            gateway: s("gw"),
            from: s("from"),
            to: s("to"),
            segments: n("segs") as u32,
            attempts: n("attempts"),
            created_ms: n("created"),
            error: s("error"),
            provider_ids: serde_json::from_str(&s("ids")).unwrap_or_default(),
        })
    }

    pub fn interaction_and_seq(reply_key: &str) -> Option<(&str, u64)> {
        let (iid, seq) = reply_key.rsplit_once('|')?;
        Some((iid, seq.parse().ok()?))
    }
}

#[derive(Clone)]
pub struct SmsState {
    engine: Engine,
    con: SharedConnection,
    keys: Keys,
}

type R<T> = Result<T, EngineError>;

impl SmsState {
    pub fn new(engine: &Engine) -> Self {
        SmsState { engine: engine.clone(), con: engine.connection(), keys: engine.keys().clone() }
    }

    /// The latest interaction of a conversation, if any within its TTL.
    pub async fn conversation(&self, conv: &str) -> R<Option<String>> {
        let mut con = self.con.clone();
        Ok(con.get(self.keys.sms_conv(conv)).await?)
    }

    pub async fn set_conversation(&self, conv: &str, interaction_id: &str) -> R<()> {
        let mut con = self.con.clone();
        let _: () = con.set_ex(self.keys.sms_conv(conv), interaction_id, CONV_TTL_SECS).await?;
        Ok(())
    }

    /// Takes (or renews) the right to process a conversation's inbound text for `ttl_ms`.
    pub async fn lock(&self, conv: &str, holder: &str, ttl_ms: u64) -> R<bool> {
        self.engine.lease(crate::Lease::SmsConversation(conv), holder, Some(ttl_ms)).await
    }

    pub async fn unlock(&self, conv: &str, holder: &str) -> R<()> {
        self.engine.lease(crate::Lease::SmsConversation(conv), holder, None).await.map(|_| ())
    }

    pub async fn opted_out(&self, conv: &str) -> R<bool> {
        let mut con = self.con.clone();
        Ok(con.exists(self.keys.sms_optout(conv)).await?)
    }

    /// Marks the customer opted out of (or back into) texts from `ours`, logging it on the
    /// interaction the text arrived on. True if that changed anything.
    pub async fn set_opt_out(
        &self,
        interaction_id: &str,
        ours: &str,
        customer: &str,
        out: bool,
        keyword: &str,
    ) -> R<bool> {
        let conv = &conversation_key(ours, customer);
        let r = self.engine.run(OptOutArgs { conv, iid: interaction_id, ours, customer, out, keyword }).await?;
        Ok(r.first().is_some_and(|s| s == "1"))
    }

    /// Keeps part `index` of `total` of a concatenated text under `key`; once every part is in,
    /// returns them in order (the caller stores the whole text, then calls [`Self::drop_parts`]).
    pub async fn add_part(&self, key: &str, total: u8, index: u8, text: &str, ttl_secs: u64) -> R<Option<Vec<String>>> {
        let mut con = self.con.clone();
        let k = self.keys.sms_parts(key);
        let (_, _, parts): ((), (), HashMap<u8, String>) =
            redis::pipe().hset(&k, index, text).expire(&k, ttl_secs as i64).hgetall(&k).query_async(&mut con).await?;
        if (1..=total).all(|i| parts.contains_key(&i)) {
            return Ok(Some((1..=total).map(|i| parts[&i].clone()).collect()));
        }
        Ok(None)
    }

    pub async fn drop_parts(&self, key: &str) -> R<()> {
        let mut con = self.con.clone();
        let _: () = con.del(self.keys.sms_parts(key)).await?;
        Ok(())
    }

    pub async fn out(&self, reply_key: &str) -> R<Option<OutRecord>> {
        let mut con = self.con.clone();
        let h: HashMap<String, String> = con.hgetall(self.keys.sms_out(reply_key)).await?;
        Ok(OutRecord::from_hash(&h))
    }

    /// Creates the record as `pending` unless it exists; returns it either way.
    pub async fn open_out(
        &self,
        reply_key: &str,
        gateway: &str,
        from: &str,
        to: &str,
        segments: u32,
        now_ms: u64,
    ) -> R<OutRecord> {
        let fields = [
            ("state", "pending".to_string()),
            ("gw", gateway.to_string()),
            ("from", from.to_string()),
            ("to", to.to_string()),
            ("segs", segments.to_string()),
            ("created", now_ms.to_string()),
        ];
        let h = crate::hash_open(&self.con, &self.keys.sms_out(reply_key), &fields, OUT_TTL_SECS).await?;
        OutRecord::from_hash(&h).ok_or_else(|| EngineError::Corrupt("sms out record vanished".into()))
    }

    /// The right to attempt sending a reply, for `ttl_ms` (one instance at a time; a crash frees it).
    pub async fn claim_send(&self, reply_key: &str, holder: &str, ttl_ms: u64) -> R<bool> {
        self.engine.lease(crate::Lease::SmsConversation(&format!("out|{reply_key}")), holder, Some(ttl_ms)).await
    }

    pub async fn release_send(&self, reply_key: &str, holder: &str) -> R<()> {
        self.engine.lease(crate::Lease::SmsConversation(&format!("out|{reply_key}")), holder, None).await.map(|_| ())
    }

    pub async fn count_attempt(&self, reply_key: &str) -> R<u64> {
        let mut con = self.con.clone();
        Ok(con.hincr(self.keys.sms_out(reply_key), "attempts", 1).await?)
    }

    /// The provider took the reply: its ids lead status reports back to it.
    pub async fn accepted(&self, reply_key: &str, gateway: &str, provider_ids: &[String]) -> R<()> {
        let mut con = self.con.clone();
        let k = self.keys.sms_out(reply_key);
        let ids = serde_json::to_string(provider_ids).expect("ids serialize");
        let mut p = redis::pipe();
        p.hset_multiple(&k, &[("state", "accepted"), ("ids", ids.as_str()), ("error", "")]).ignore();
        for id in provider_ids {
            p.hset_nx(&k, format!("p:{id}"), "").ignore();
            p.set_ex(self.keys.sms_pid(&format!("{gateway}|{id}")), reply_key, OUT_TTL_SECS).ignore();
        }
        p.zrem(self.keys.sms_retry(), reply_key).ignore();
        let _: () = p.query_async(&mut con).await?;
        Ok(())
    }

    /// Moves a reply's record to `state`: `sending` (an attempt is under way: if this process
    /// dies now, nobody knows whether the provider took it), `pending` (not taken; retried),
    /// `failed` (will not be sent) or `uncertain` (may have been sent; never retried). Only
    /// `pending` stays on the retry schedule.
    pub async fn mark(&self, reply_key: &str, state: &str, error: &str) -> R<()> {
        let mut con = self.con.clone();
        let mut p = redis::pipe();
        p.hset_multiple(self.keys.sms_out(reply_key), &[("state", state), ("error", error)]).ignore();
        if state != "pending" {
            p.zrem(self.keys.sms_retry(), reply_key).ignore();
        }
        let _: () = p.query_async(&mut con).await?;
        Ok(())
    }

    /// Whether a text with this creation or append key was stored before: the interaction it
    /// created, or `Some("")` when it was appended somewhere.
    pub async fn seen(&self, new_key: &str, append_key: &str) -> R<Option<String>> {
        let mut con = self.con.clone();
        let (created, appended): (Option<String>, Option<String>) =
            redis::pipe().get(self.keys.idem(new_key)).get(self.keys.idem(append_key)).query_async(&mut con).await?;
        Ok(created.or(appended.map(|_| String::new())))
    }

    /// Records a text that went nowhere (an opt-out with no conversation, HELP) as stored, so a
    /// retried delivery of it is a duplicate.
    pub async fn mark_seen(&self, append_key: &str) -> R<()> {
        let mut con = self.con.clone();
        let _: () = con.set_ex(self.keys.idem(append_key), "-", SEEN_TTL_SECS).await?;
        Ok(())
    }

    /// True the first time for `key` (within a month): for what must happen at most once.
    pub async fn claim_once(&self, key: &str) -> R<bool> {
        let mut con = self.con.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.idem(&format!("once|{key}")))
            .arg("1")
            .arg("NX")
            .arg("EX")
            .arg(SEEN_TTL_SECS)
            .query_async(&mut con)
            .await?;
        Ok(set.is_some())
    }

    /// The id of a text known only by its content (an SMPP customer text): `candidate` the first
    /// time within `window_secs`, and the first copy's id for any copy after it within that time.
    pub async fn first_id(&self, content_hash: &str, candidate: &str, window_secs: u64) -> R<String> {
        let mut con = self.con.clone();
        let k = self.keys.sms_mo(content_hash);
        let (id,): (Option<String>,) = redis::pipe()
            .cmd("SET")
            .arg(&k)
            .arg(candidate)
            .arg("NX")
            .arg("EX")
            .arg(window_secs)
            .ignore()
            .get(&k)
            .query_async(&mut con)
            .await?;
        Ok(id.unwrap_or_else(|| candidate.to_string()))
    }

    /// Keeps a report on a provider id no reply names yet, for the reply to pick up once its
    /// record does (see [`Self::take_early`]).
    pub async fn park_early(&self, gateway: &str, provider_id: &str, state: DeliveryState, code: &str) -> R<()> {
        let mut con = self.con.clone();
        let k = self.keys.sms_early(&format!("{gateway}|{provider_id}"));
        let _: () = redis::pipe()
            .hset(&k, state.as_str(), code)
            .ignore()
            .expire(&k, EARLY_TTL_SECS as i64)
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// The reports parked for a provider id, taken (each is handed to one caller).
    pub async fn take_early(&self, gateway: &str, provider_id: &str) -> R<Vec<(DeliveryState, String)>> {
        let mut con = self.con.clone();
        let k = self.keys.sms_early(&format!("{gateway}|{provider_id}"));
        let (h,): (HashMap<String, String>,) =
            redis::pipe().atomic().hgetall(&k).del(&k).ignore().query_async(&mut con).await?;
        Ok(h.into_iter().filter_map(|(s, c)| Some((DeliveryState::parse(&s)?, c))).collect())
    }

    /// Which reply a provider's message id belongs to.
    pub async fn reply_for(&self, gateway: &str, provider_id: &str) -> R<Option<String>> {
        let mut con = self.con.clone();
        Ok(con.get(self.keys.sms_pid(&format!("{gateway}|{provider_id}"))).await?)
    }

    /// Records one part's state (unless it had a higher-ranked one already) and returns every
    /// part's, in the reply's part order, with the number of segments the reply was sent as.
    pub async fn part_state(
        &self,
        reply_key: &str,
        provider_id: &str,
        state: DeliveryState,
    ) -> R<(Vec<Option<DeliveryState>>, u32)> {
        // In one function call, not a plain HSET: a part never goes back to a lower-ranked state
        // (receipts of one part may come out of order; see lua/sms_part.lua).
        let r = self
            .engine
            .run(PartArgs { reply: reply_key, pid: provider_id, state: state.as_str(), rank: state.rank().into() })
            .await?;
        let h: HashMap<String, String> = r.chunks_exact(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect();
        let ids: Vec<String> = h.get("ids").and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
        let ids = if ids.is_empty() { vec![provider_id.to_string()] } else { ids };
        let segs = h.get("segs").and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((ids.iter().map(|id| h.get(&format!("p:{id}")).and_then(|s| DeliveryState::parse(s))).collect(), segs))
    }

    /// Shows a reply's delivery state on its message (logged, pushed to the agent) unless what is
    /// recorded ranks as high already. True if it applied.
    pub async fn delivery(
        &self,
        interaction_id: &str,
        seq: u64,
        state: DeliveryState,
        code: &str,
        segments: u32,
    ) -> R<bool> {
        let r = self
            .engine
            .run(DeliveryArgs {
                iid: interaction_id,
                seq,
                state: state.as_str(),
                rank: state.rank().into(),
                code,
                segs: segments,
            })
            .await?;
        Ok(r.first().is_some_and(|s| s == "1"))
    }

    pub async fn schedule_retry(&self, reply_key: &str, at_ms: u64) -> R<()> {
        let mut con = self.con.clone();
        let _: () = con.zadd(self.keys.sms_retry(), reply_key, at_ms).await?;
        Ok(())
    }

    /// Due retries; the caller claims each with [`Self::claim_send`] before sending.
    pub async fn due_retries(&self, now_ms: u64, max: usize) -> R<Vec<String>> {
        let mut con = self.con.clone();
        Ok(redis::cmd("ZRANGE")
            .arg(self.keys.sms_retry())
            .arg("-inf")
            .arg(now_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(max)
            .query_async(&mut con)
            .await?)
    }
}
