//! One received text → routing: a message in the customer's open conversation, a follow-up of a
//! recently completed one (waiting for the same agent first), a new interaction, an opt-out /
//! opt-in, an answer to HELP, or nothing (a duplicate, a number nobody owns).
//!
//! Texts of one conversation are processed one at a time (a short lock in Redis), so two texts
//! arriving together cannot start two interactions. Every step is idempotent by the provider's
//! message id, so a webhook retried or an SMSC redelivery after a crash changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use switchboard_engine::EngineError;
use switchboard_engine::sms::conversation_key;
use switchboard_model::sms::{Keyword, keyword};
use tracing::{info, warn};

use super::SmsChannel;
use super::gateway::{InboundSms, OutSms, ReceiveError, Received};
use crate::model::{Channel, InteractionState, NewInteraction};

/// How long one text may hold its conversation; a crashed holder frees it after this.
const LOCK_TTL: Duration = Duration::from_secs(15);
/// How long a text waits for its conversation before the provider is told to retry.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Where a text is going, once the numbers are known.
struct Target {
    /// Our number as configured (the conversation's half that is ours).
    ours: String,
    customer: String,
    queue: String,
    priority: Option<i32>,
}

impl SmsChannel {
    /// The customer's number in E.164 (the same phone identity as voice), or why not.
    pub(crate) fn customer_number(&self, raw: &str) -> Result<String, String> {
        let region = (!self.cfg.default_region.is_empty()).then_some(self.cfg.default_region.as_str());
        switchboard_crm::identity::normalize(Channel::Sms, raw, region).map_err(|e| e.to_string())
    }

    fn target(&self, sms: &InboundSms) -> Result<Target, String> {
        let customer = self.customer_number(&sms.from).map_err(|e| format!("sender: {e}"))?;
        match self.cfg.number(&sms.to) {
            Some(n) => Ok(Target { ours: n.number.clone(), customer, queue: n.queue.clone(), priority: n.priority }),
            None if !self.cfg.default_queue.is_empty() => Ok(Target {
                ours: sms.to.trim().to_string(),
                customer,
                queue: self.cfg.default_queue.clone(),
                priority: None,
            }),
            None => Err("the number it was sent to belongs to no queue (and sms.default_queue is not set)".into()),
        }
    }

    pub(crate) async fn ingest(&self, sms: InboundSms) -> Result<Received, ReceiveError> {
        let t = match self.target(&sms) {
            Ok(t) => t,
            Err(reason) => {
                // Neither number nor body: both are personal data.
                warn!(message = "Text refused.", gateway = %sms.gateway, %reason);
                metrics::counter!("switchboard_sms_received_total", "gateway" => sms.gateway.clone(), "outcome" => "refused")
                    .increment(1);
                return Ok(Received::Refused(reason));
            }
        };
        let conv = conversation_key(&t.ours, &t.customer);
        let holder = format!("{}|{}", self.instance, uuid::Uuid::new_v4());
        let started = tokio::time::Instant::now();
        while !self.state.lock(&conv, &holder, LOCK_TTL.as_millis() as u64).await? {
            if started.elapsed() > LOCK_WAIT {
                return Err(ReceiveError(EngineError::Retry("the conversation is busy; try again".into())));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let r = self.ingest_locked(&sms, &t).await;
        match &r {
            Ok(Received::Created(iid) | Received::FollowUp { interaction_id: iid, .. }) => {
                self.answer_if_closed(iid, true).await;
            }
            Ok(Received::Appended(iid)) => self.answer_if_closed(iid, false).await,
            _ => {}
        }
        if let Err(error) = self.state.unlock(&conv, &holder).await {
            warn!(message = "Could not release an SMS conversation; it frees itself shortly.", %error);
        }
        let r = r?;
        metrics::counter!("switchboard_sms_received_total", "gateway" => sms.gateway.clone(), "outcome" => r.label())
            .increment(1);
        info!(message = "Text received.", gateway = %sms.gateway, outcome = r.label(), interaction = received_ix(&r));
        Ok(r)
    }

    async fn ingest_locked(&self, sms: &InboundSms, t: &Target) -> Result<Received, ReceiveError> {
        let new_key = format!("sms-new|{}|{}", sms.gateway, sms.provider_id);
        let append_key = format!("sms-in|{}|{}", sms.gateway, sms.provider_id);
        if let Some(iid) = self.state.seen(&new_key, &append_key).await? {
            return Ok(Received::Duplicate(iid));
        }
        let conv = conversation_key(&t.ours, &t.customer);
        let open = self.open_interaction(&conv).await?;
        let body = body_with_media(sms);
        match keyword(&sms.body) {
            Some(Keyword::OptOut | Keyword::OptIn) => {
                let out = keyword(&sms.body) == Some(Keyword::OptOut);
                // The agent of an open conversation sees the words; nothing else of it changes.
                let iid = match &open {
                    Some((iid, st)) if !st.ended => match self.append(iid, &body, &append_key).await {
                        Ok(appended) => appended.then(|| iid.clone()),
                        // Ended meanwhile: the opt-out stands on its own.
                        Err(ReceiveError(EngineError::FailedPrecondition(_))) => None,
                        Err(e) => return Err(e),
                    },
                    _ => None,
                };
                let changed = self
                    .state
                    .set_opt_out(iid.as_deref().unwrap_or(""), &t.ours, &t.customer, out, sms.body.trim())
                    .await?;
                let answer = if out { &self.cfg.opt_out_text } else { &self.cfg.opt_in_text };
                if changed && !answer.is_empty() {
                    self.auto_answer(&sms.gateway, t, &append_key, answer).await;
                }
                // Later retries of this text are duplicates, whatever became of it.
                if iid.is_none() {
                    self.state.mark_seen(&append_key).await?;
                }
                return Ok(if out {
                    Received::OptedOut { interaction_id: iid }
                } else {
                    Received::OptedIn { interaction_id: iid }
                });
            }
            Some(Keyword::Help) if open.as_ref().is_none_or(|(_, st)| st.ended) && !self.cfg.help_text.is_empty() => {
                self.auto_answer(&sms.gateway, t, &append_key, &self.cfg.help_text.clone()).await;
                self.state.mark_seen(&append_key).await?;
                return Ok(Received::Help);
            }
            _ => {}
        }
        if let Some((iid, st)) = &open
            && !st.ended
            && self.is_callback_keyword(&sms.body)
            && let Some(r) = self.callback_instead(iid, t, &append_key, &sms.gateway).await?
        {
            return Ok(r);
        }
        let previous = match open {
            Some((iid, ix_state)) if !ix_state.ended => match self.append(&iid, &body, &append_key).await {
                Ok(true) => return Ok(Received::Appended(iid)),
                Ok(false) => return Ok(Received::Duplicate(iid)),
                // Ended between the look-up and the append: a follow-up.
                Err(ReceiveError(EngineError::FailedPrecondition(_))) => Some((iid, ix_state.agent)),
                Err(e) => return Err(e),
            },
            Some((iid, ix_state)) => {
                let now = self.engine.now_ms().await?;
                let window = u64::from(self.cfg.reopen_window_mins) * 60_000;
                (now.saturating_sub(ix_state.ended_ms) <= window).then_some((iid, ix_state.agent))
            }
            None => None,
        };
        self.create(sms, t, &new_key, &body, previous).await
    }

    /// The conversation's latest interaction and where it stands.
    async fn open_interaction(&self, conv: &str) -> Result<Option<(String, Standing)>, ReceiveError> {
        let Some(iid) = self.state.conversation(conv).await? else { return Ok(None) };
        let ix = match self.engine.get_interaction(&iid, false).await {
            Ok(ix) => ix,
            Err(EngineError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let ended = matches!(ix.state, InteractionState::Completed | InteractionState::Abandoned);
        let ended_ms = ix.timestamps.values().copied().max().unwrap_or(0);
        Ok(Some((iid, Standing { ended, ended_ms, agent: ix.agent_id })))
    }

    /// Appends the customer's words once per provider message (false: appended before).
    async fn append(&self, iid: &str, body: &str, key: &str) -> Result<bool, ReceiveError> {
        let (_, appended) = self.engine.append_customer_message_once(iid, body, key).await?;
        Ok(appended)
    }

    async fn create(
        &self,
        sms: &InboundSms,
        t: &Target,
        key: &str,
        body: &str,
        previous: Option<(String, String)>,
    ) -> Result<Received, ReceiveError> {
        let mut attributes = BTreeMap::new();
        attributes.insert("sms.number".to_string(), t.ours.clone());
        attributes.insert("sms.gateway".to_string(), sms.gateway.clone());
        if !sms.media.is_empty() {
            attributes.insert("sms.media".to_string(), sms.media.len().to_string());
        }
        let (preferred, wait) = match &previous {
            Some((prev, agent)) => {
                attributes.insert("sms.previous_interaction".to_string(), prev.clone());
                (agent.clone(), if agent.is_empty() { 0 } else { self.cfg.sticky_wait_secs })
            }
            None => (String::new(), 0),
        };
        let new = NewInteraction {
            idempotency_key: key.to_string(),
            channel: Some(Channel::Sms),
            customer_address: t.customer.clone(),
            subject: String::new(),
            attributes,
            queue: t.queue.clone(),
            priority: t.priority,
            body: body.to_string(),
            preferred_agent_id: preferred,
            preferred_agent_wait_secs: wait,
            ..NewInteraction::default()
        };
        let (ix, created) = self.engine.create_interaction(&new).await?;
        self.state.set_conversation(&conversation_key(&t.ours, &t.customer), &ix.id).await?;
        // The callback offer, once, to a conversation that waits (not one its closed queue ends).
        if created
            && !self.cfg.callback_prompt.is_empty()
            && ix.state == crate::model::InteractionState::Queued
            && self.voice.dials_chat_callbacks()
        {
            self.auto_answer(&sms.gateway, t, key, &self.cfg.callback_prompt.clone()).await;
        }
        Ok(match (created, previous) {
            (false, _) => Received::Duplicate(ix.id),
            (true, Some((previous, _))) => Received::FollowUp { interaction_id: ix.id, previous },
            (true, None) => Received::Created(ix.id),
        })
    }

    /// After hours: a text that started (`new`) or joined a waiting interaction in a closed queue
    /// whose rule for SMS has a message is answered with it, once per interaction and closed
    /// period (the system message's key: of several instances only the one that stored it
    /// sends). The answer is in the thread and leaves through the normal reply path (delivery
    /// states). A new one the rule refuses then ends (`end_reason` "closed"); otherwise it waits.
    /// A failure is logged; the customer's text is stored either way.
    async fn answer_if_closed(&self, iid: &str, new: bool) {
        if let Err(error) = self.try_answer_closed(iid, new).await {
            warn!(message = "After-hours SMS answer not sent.", interaction = %iid, %error);
        }
    }

    async fn try_answer_closed(&self, iid: &str, new: bool) -> Result<(), String> {
        crate::channels::after_hours::answer_if_closed(
            &self.engine,
            Channel::Sms,
            iid,
            new,
            |ix, text| async move { self.vet_reply(&ix, &text).await.map_err(|e| e.to_string()) },
            |ix, msg| async move { self.deliver_reply(&ix, &msg).await },
        )
        .await
    }

    /// The whole text is the callback keyword (case and punctuation aside), when one is set.
    fn is_callback_keyword(&self, body: &str) -> bool {
        let k = &self.cfg.callback_keyword;
        let word: String = body.chars().filter(|c| c.is_alphanumeric()).collect();
        !k.is_empty() && word.eq_ignore_ascii_case(k) && body.split_whitespace().count() == 1
    }

    /// The texter of waiting conversation `iid` takes a callback to their number instead. None:
    /// the conversation is not waiting any more (an agent has it: the word is a message for
    /// them) or callbacks cannot be dialled; it goes into the thread as any text.
    async fn callback_instead(
        &self,
        iid: &str,
        t: &Target,
        key: &str,
        gateway: &str,
    ) -> Result<Option<Received>, ReceiveError> {
        if !self.voice.dials_chat_callbacks() {
            return Ok(None);
        }
        let ix = self.engine.get_interaction(iid, false).await?;
        if !matches!(ix.state, crate::model::InteractionState::Queued | crate::model::InteractionState::Offered) {
            return Ok(None);
        }
        let by = crate::model::Actor { who: "channel:sms".into(), from: String::new() };
        use crate::channels::voice::VoiceError;
        let made = match self.voice.callback_instead(&ix, &t.customer, 0, by).await {
            Ok(made) => made,
            // Redis failing: the provider retries the text.
            Err(VoiceError::Engine(e @ (EngineError::Redis(_) | EngineError::Retry(_) | EngineError::Corrupt(_)))) => {
                return Err(ReceiveError(e));
            }
            // Refused (the queue takes no calls, say): the text stays a text for the agent.
            Err(error) => {
                warn!(message = "A texter's callback could not be made; the text waits for an agent.", interaction = %iid, %error);
                return Ok(None);
            }
        };
        self.state.mark_seen(key).await?;
        let number = made.interaction.callback.as_ref().map(|c| c.number.clone()).unwrap_or_default();
        if !self.cfg.callback_text.is_empty() {
            self.auto_answer(gateway, t, key, &self.cfg.callback_text.replace("{number}", &number)).await;
        }
        Ok(Some(Received::Callback(made.interaction.id)))
    }

    /// The channel's own answer (HELP, an opt-out confirmation): sent once per received text, not
    /// part of any conversation. A failure is logged; the customer's text is stored either way.
    async fn auto_answer(&self, gateway: &str, t: &Target, key: &str, text: &str) {
        let gateway = self.cfg.number(&t.ours).map(|n| n.gateway.clone()).unwrap_or_else(|| gateway.to_string());
        let Some(sender) = self.sender(&gateway) else { return };
        let out =
            OutSms { key: format!("auto|{key}"), from: t.ours.clone(), to: t.customer.clone(), body: text.to_string() };
        match self.state.claim_once(&out.key).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                warn!(message = "Automatic SMS answer not sent.", %gateway, %error);
                return;
            }
        }
        if let Err(error) = sender.send(&out).await {
            warn!(message = "Automatic SMS answer not sent.", %gateway, %error);
        }
    }
}

struct Standing {
    ended: bool,
    ended_ms: u64,
    agent: String,
}

/// The text, with links to its media (MMS) after it for the agent.
fn body_with_media(sms: &InboundSms) -> String {
    let mut body = sms.body.clone();
    for url in &sms.media {
        if !body.is_empty() {
            body.push('\n');
        }
        body.push_str("[media] ");
        body.push_str(url);
    }
    body
}

fn received_ix(r: &Received) -> &str {
    match r {
        Received::Created(i) | Received::Appended(i) | Received::Duplicate(i) | Received::Callback(i) => i,
        Received::FollowUp { interaction_id, .. } => interaction_id,
        Received::OptedOut { interaction_id } | Received::OptedIn { interaction_id } => {
            interaction_id.as_deref().unwrap_or("")
        }
        Received::Help | Received::Refused(_) => "",
    }
}
