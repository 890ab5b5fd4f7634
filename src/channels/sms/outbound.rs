//! Agent replies out as texts. A reply is vetted before it is stored (an opted-out customer, more
//! segments than allowed), then stored (the thread), then sent through the gateway of the number
//! the conversation is on.
//!
//! Each reply has a record under its reply key (`<interaction>|<seq>`): `pending` → `sending` →
//! `accepted` | `failed` | `uncertain`, or back to `pending` when the provider did not take it.
//! One instance at a time may attempt it (a short lease), and a record found `sending` — a process
//! died in the middle of a request — is never sent again: nobody knows whether the provider took
//! it, and a text sent twice cannot be taken back. So a reply the provider accepted is never sent
//! twice; the agent is told about the rare one that may not have gone.

use std::time::Duration;

use switchboard_engine::EngineError;
use switchboard_engine::sms::{OutRecord, conversation_key, reply_key};
use switchboard_model::DeliveryState;
use switchboard_model::sms::segments;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::SmsChannel;
use super::gateway::{OutSms, SendError};
use crate::channels::{DeliveryError, VetError};
use crate::model::{Interaction, InteractionState, Message};

/// In-line attempts before a reply is left to the background retries.
const INLINE_BUDGET: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long one attempt may hold a reply (longer than any gateway's request timeout).
const SEND_LEASE: Duration = Duration::from_secs(120);
/// A reply not taken by then is given up (the customer has moved on).
const GIVE_UP_AFTER: Duration = Duration::from_secs(6 * 3600);
const RETRY_SWEEP: Duration = Duration::from_secs(2);

/// Which number a conversation's replies leave from, and through which gateway.
struct Route {
    ours: String,
    gateway: String,
}

enum Attempt {
    Accepted,
    /// Not taken; try again later.
    Again(String),
    Failed(DeliveryError),
    /// Someone else is sending it right now.
    Busy,
}

fn transient(e: EngineError) -> DeliveryError {
    DeliveryError::Transient(e.to_string())
}

impl SmsChannel {
    fn route(&self, ix: &Interaction) -> Result<Route, DeliveryError> {
        let by_attr = ix.attributes.get("sms.number").map(String::as_str);
        if let Some(n) = by_attr.and_then(|n| self.cfg.number(n)) {
            return Ok(Route { ours: n.number.clone(), gateway: n.gateway.clone() });
        }
        // Texts to an unlisted number (the default queue) are answered from it, through the
        // gateway they came in on.
        if let (Some(ours), Some(gw)) = (by_attr, ix.attributes.get("sms.gateway"))
            && self.sender(gw).is_some()
        {
            return Ok(Route { ours: ours.to_string(), gateway: gw.clone() });
        }
        // An interaction started through the API: the queue's number, else the first.
        self.cfg
            .numbers
            .iter()
            .find(|n| n.queue == ix.queue)
            .or(self.cfg.numbers.first())
            .map(|n| Route { ours: n.number.clone(), gateway: n.gateway.clone() })
            .ok_or_else(|| DeliveryError::Permanent("no SMS number is configured to reply from".into()))
    }

    pub(crate) async fn vet_reply(&self, ix: &Interaction, body: &str) -> Result<(), VetError> {
        let s = segments(body);
        if s.count > self.cfg.max_segments as usize {
            return Err(VetError::Invalid(format!(
                "body: {} characters need {} SMS segments ({}, {} per segment); at most {} are allowed",
                s.units,
                s.count,
                s.encoding.as_str(),
                s.per_segment,
                self.cfg.max_segments
            )));
        }
        let route = self.route(ix).map_err(|e| VetError::Refused(e.to_string()))?;
        let customer =
            self.customer_number(&ix.customer_address).map_err(|e| VetError::Refused(format!("customer: {e}")))?;
        let opted_out = self
            .state
            .opted_out(&conversation_key(&route.ours, &customer))
            .await
            .map_err(|e| VetError::Unavailable(e.to_string()))?;
        if opted_out {
            return Err(VetError::Refused(format!(
                "the customer opted out of texts from {} (they can text START to opt back in)",
                route.ours
            )));
        }
        Ok(())
    }

    pub(crate) async fn deliver_reply(&self, ix: &Interaction, msg: &Message) -> Result<(), DeliveryError> {
        let route = self.route(ix)?;
        let customer = self.customer_number(&ix.customer_address).map_err(DeliveryError::Permanent)?;
        let key = reply_key(&ix.id, msg.seq);
        let now = self.engine.now_ms().await.map_err(transient)?;
        let segs = segments(&msg.body).count as u32;
        let rec =
            self.state.open_out(&key, &route.gateway, &route.ours, &customer, segs, now).await.map_err(transient)?;
        match rec.state.as_str() {
            "pending" => {}
            "failed" | "uncertain" => return Err(DeliveryError::Permanent(rec.error)),
            _ => return Ok(()),
        }
        let out = OutSms { key: key.clone(), from: rec.from.clone(), to: rec.to.clone(), body: msg.body.clone() };
        let started = tokio::time::Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.attempt(&rec, &out, ix, msg.seq).await? {
                Attempt::Accepted | Attempt::Busy => return Ok(()),
                Attempt::Failed(e) => return Err(e),
                Attempt::Again(e) => {
                    if started.elapsed() + backoff > INLINE_BUDGET {
                        let at = now + started.elapsed().as_millis() as u64 + backoff.as_millis() as u64;
                        self.state.schedule_retry(&key, at).await.map_err(transient)?;
                        warn!(message = "SMS reply deferred.", interaction = %ix.id, gateway = %rec.gateway, error = %e);
                        return Err(DeliveryError::Transient(format!("{e}; it will be retried")));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One attempt to hand a reply to its gateway, under the reply's lease.
    async fn attempt(
        &self,
        rec: &OutRecord,
        out: &OutSms,
        ix: &Interaction,
        seq: u64,
    ) -> Result<Attempt, DeliveryError> {
        let holder = format!("{}|{}", self.instance, uuid::Uuid::new_v4());
        if !self.state.claim_send(&out.key, &holder, SEND_LEASE.as_millis() as u64).await.map_err(transient)? {
            return Ok(Attempt::Busy);
        }
        let r = self.attempt_claimed(rec, out, ix, seq).await;
        if let Err(error) = self.state.release_send(&out.key, &holder).await {
            warn!(message = "Could not release an SMS reply's lease; it frees itself.", %error);
        }
        r
    }

    async fn attempt_claimed(
        &self,
        rec: &OutRecord,
        out: &OutSms,
        ix: &Interaction,
        seq: u64,
    ) -> Result<Attempt, DeliveryError> {
        // Read again under the lease: another instance may have finished it meanwhile.
        let now_rec = self.state.out(&out.key).await.map_err(transient)?.unwrap_or_else(|| rec.clone());
        match now_rec.state.as_str() {
            "pending" => {}
            "accepted" => return Ok(Attempt::Accepted),
            "sending" => {
                let reason = "an earlier attempt was interrupted; it may or may not have been sent".to_string();
                self.uncertain(ix, rec, &out.key, seq, &reason).await.map_err(transient)?;
                return Ok(Attempt::Failed(DeliveryError::Permanent(reason)));
            }
            _ => return Ok(Attempt::Failed(DeliveryError::Permanent(now_rec.error))),
        }
        let Some(sender) = self.sender(&rec.gateway) else {
            let reason = format!("gateway {:?} is not configured", rec.gateway);
            self.give_up(ix, rec, &out.key, seq, &reason, "").await.map_err(transient)?;
            return Ok(Attempt::Failed(DeliveryError::Permanent(reason)));
        };
        self.state.count_attempt(&out.key).await.map_err(transient)?;
        self.state.mark(&out.key, "sending", "").await.map_err(transient)?;
        let started = std::time::Instant::now();
        let result = sender.send(out).await;
        metrics::histogram!("switchboard_sms_send_seconds", "gateway" => rec.gateway.clone())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(accepted) => {
                self.state.accepted(&out.key, &rec.gateway, &accepted.provider_ids).await.map_err(transient)?;
                metrics::counter!("switchboard_sms_sent_total", "gateway" => rec.gateway.clone(), "outcome" => "accepted")
                    .increment(1);
                info!(message = "SMS reply accepted.", interaction = %ix.id, seq, gateway = %rec.gateway, parts = accepted.provider_ids.len());
                if let Err(e) = self.state.delivery(&ix.id, seq, DeliveryState::Accepted, "", rec.segments).await
                    && !matches!(e, EngineError::NotFound(_))
                {
                    warn!(message = "Could not show a reply as accepted.", interaction = %ix.id, error = %e);
                }
                if let Err(e) = self.apply_early(&rec.gateway, &out.key, &accepted.provider_ids).await {
                    warn!(message = "Could not apply reports that came before the provider's answer.", interaction = %ix.id, error = %e);
                }
                Ok(Attempt::Accepted)
            }
            Err(SendError::Transient(e)) => {
                self.state.mark(&out.key, "pending", &e).await.map_err(transient)?;
                metrics::counter!("switchboard_sms_sent_total", "gateway" => rec.gateway.clone(), "outcome" => "transient")
                    .increment(1);
                Ok(Attempt::Again(e))
            }
            Err(SendError::Permanent { code, reason }) => {
                self.give_up(ix, rec, &out.key, seq, &reason, &code).await.map_err(transient)?;
                Ok(Attempt::Failed(DeliveryError::Permanent(format!(
                    "refused by the provider (code {code}): {reason}"
                ))))
            }
            Err(SendError::Uncertain(e)) => {
                self.uncertain(ix, rec, &out.key, seq, &e).await.map_err(transient)?;
                Ok(Attempt::Failed(DeliveryError::Permanent(format!("may not have been sent: {e}"))))
            }
        }
    }

    /// A reply that will not go out: recorded, shown as failed, and noted on the conversation.
    async fn give_up(
        &self,
        ix: &Interaction,
        rec: &OutRecord,
        key: &str,
        seq: u64,
        reason: &str,
        code: &str,
    ) -> Result<(), EngineError> {
        self.state.mark(key, "failed", reason).await?;
        metrics::counter!("switchboard_sms_sent_total", "gateway" => rec.gateway.clone(), "outcome" => "failed")
            .increment(1);
        warn!(message = "SMS reply failed.", interaction = %ix.id, seq, code, %reason);
        match self.state.delivery(&ix.id, seq, DeliveryState::Failed, code, 0).await {
            Ok(_) | Err(EngineError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A reply that may or may not have gone: never retried; the agent is told to check.
    async fn uncertain(
        &self,
        ix: &Interaction,
        rec: &OutRecord,
        key: &str,
        seq: u64,
        reason: &str,
    ) -> Result<(), EngineError> {
        self.state.mark(key, "uncertain", reason).await?;
        metrics::counter!("switchboard_sms_sent_total", "gateway" => rec.gateway.clone(), "outcome" => "uncertain")
            .increment(1);
        warn!(message = "SMS reply may not have been sent.", interaction = %ix.id, seq, %reason);
        if !matches!(ix.state, InteractionState::Completed | InteractionState::Abandoned) {
            let note = format!("[delivery unknown] Reply {seq} may not have reached the customer: {reason}");
            let note: String = note.chars().take(2_000).collect();
            match self.engine.append_system_message_once(&ix.id, &note, &format!("sms-uncertain|{key}")).await {
                Ok(_) | Err(EngineError::NotFound(_) | EngineError::FailedPrecondition(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Retries deferred replies until `cancel`.
    pub(crate) async fn retry_loop(&self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(RETRY_SWEEP) => {}
            }
            if let Err(error) = self.retry_due().await {
                warn!(message = "SMS retry sweep failed.", %error);
            }
        }
    }

    /// One pass over deferred replies that are due; how many were attempted.
    pub async fn retry_due(&self) -> Result<usize, EngineError> {
        let now = self.engine.now_ms().await?;
        let due = self.state.due_retries(now, 20).await?;
        for key in &due {
            let Some(rec) = self.state.out(key).await? else {
                self.state.mark(key, "failed", "record expired").await?;
                continue;
            };
            if rec.state != "pending" {
                self.state.mark(key, &rec.state, &rec.error).await?;
                continue;
            }
            let Some((iid, seq)) = OutRecord::interaction_and_seq(key) else {
                self.state.mark(key, "failed", "not a reply").await?;
                continue;
            };
            let ix = match self.engine.get_interaction(iid, false).await {
                Ok(ix) => ix,
                Err(EngineError::NotFound(_)) => {
                    self.state.mark(key, "failed", "interaction expired").await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let msg = self.engine.message(iid, seq).await?;
            let out = OutSms { key: key.clone(), from: rec.from.clone(), to: rec.to.clone(), body: msg.body.clone() };
            let age = Duration::from_millis(now.saturating_sub(rec.created_ms));
            match self.attempt(&rec, &out, &ix, seq).await {
                Ok(Attempt::Again(e)) if age > GIVE_UP_AFTER => {
                    self.give_up(
                        &ix,
                        &rec,
                        key,
                        seq,
                        &format!("not taken after {} minutes: {e}", age.as_secs() / 60),
                        "",
                    )
                    .await?;
                }
                Ok(Attempt::Again(_)) => {
                    let delay = FIRST_BACKOFF.saturating_mul(1 << rec.attempts.min(12)).min(MAX_BACKOFF);
                    self.state.schedule_retry(key, now + delay.as_millis() as u64).await?;
                }
                Ok(_) => {}
                Err(e) => warn!(message = "SMS retry failed.", interaction = %iid, error = %e),
            }
        }
        Ok(due.len())
    }
}
