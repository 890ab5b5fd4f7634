//! Callbacks through the CTI hook: a waiting caller asks to be called back (their call becomes a
//! callback keeping its place), or an IVR creates one for a caller who waited elsewhere. What
//! happens next — the offer, the dial on accept, retries — is the engine's.

use std::collections::BTreeMap;

use switchboard_engine::{EngineError, IfRefused, call_key};

use super::{ATTR_DIALLED, ATTR_SYSTEM, Result, Voice, VoiceError, validate_call_id};
use crate::model::callback::{CallbackPlan, MAX_WAITED_MS};
use crate::model::voice::validate_user_data;
use crate::model::{Actor, Channel, Interaction, NewInteraction};

/// An IVR's callback request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCallback {
    pub callback_id: String,
    pub number: String,
    pub queue: String,
    pub routing_point: String,
    pub dialled: String,
    /// 0: now.
    pub waiting_since_ms: u64,
    /// 0: at once.
    pub not_before_ms: u64,
    pub priority: Option<i32>,
    pub user_data: BTreeMap<String, String>,
}

/// A callback as the hook answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackMade {
    pub interaction: Interaction,
    /// In the queue's waiting list by age, 1 = the longest waiting (0: not waiting).
    pub position: u32,
    /// False: it was a callback already.
    pub created: bool,
}

/// Attribute naming the IVR's callback id.
pub const ATTR_CALLBACK_ID: &str = "cti.callback_id";
/// Attribute naming the interaction an agent scheduled the callback from.
pub const ATTR_CALLBACK_FROM: &str = "callback.from";

impl Voice {
    /// A number to call back in E.164, read in the default region when written nationally.
    fn callback_number(&self, number: &str) -> Result<String> {
        switchboard_crm::identity::normalize(Channel::Voice, number, self.default_region.as_deref()).map_err(|e| {
            let why = e.to_string();
            let why = why.strip_prefix("identity.address: ").unwrap_or(&why).to_string();
            VoiceError::Invalid(format!("number: {why}"))
        })
    }

    fn plan(&self, number: String, not_before_ms: u64) -> CallbackPlan {
        CallbackPlan {
            number,
            not_before_ms,
            max_attempts: self.cfg.callback_attempts,
            retry_ms: u64::from(self.cfg.callback_retry_secs) * 1000,
            dial_timeout_ms: u64::from(self.cfg.callback_dial_timeout_secs) * 1000,
            service_level_at: self.cfg.callback_service_level,
        }
    }

    /// The waiting call `call_id` becomes a callback to `number` (empty: the caller's).
    pub async fn request_callback(
        &self,
        system: &str,
        by: &Actor,
        call_id: &str,
        number: &str,
        not_before_ms: u64,
    ) -> Result<CallbackMade> {
        validate_call_id(call_id)?;
        let iid = self.interaction_of_call(system, call_id).await?;
        let number = if number.is_empty() {
            let ix = self.engine.get_interaction(&iid, false).await?;
            if ix.customer_address == "anonymous" {
                return Err(VoiceError::Invalid(
                    "number: is required — the caller's number is withheld, so there is none to call back".into(),
                ));
            }
            self.callback_number(&ix.customer_address)?
        } else {
            self.callback_number(number)?
        };
        let plan = self.plan(number, not_before_ms);
        let engine = self.engine.acting_as(by.clone());
        let (ix, created) = engine.request_callback(&iid, &plan).await.map_err(|e| match e {
            EngineError::InvalidArgument(m) => VoiceError::Invalid(m),
            e => e.into(),
        })?;
        let position = self.place_in_line(&ix).await?;
        Ok(CallbackMade { interaction: ix, position, created })
    }

    /// A callback from an IVR: in the queue it names (or its routing point's), keeping the place
    /// `waiting_since_ms` gives it.
    pub async fn create_callback(&self, system: &str, by: &Actor, cb: &NewCallback) -> Result<CallbackMade> {
        if cb.callback_id.is_empty() {
            return Err(VoiceError::Invalid("callback_id: is required (a retry with the same id is safe)".into()));
        }
        switchboard_model::validate_line("callback_id", &cb.callback_id, 256)
            .map_err(|e| VoiceError::Invalid(e.to_string()))?;
        validate_user_data("user_data", &cb.user_data).map_err(|e| VoiceError::Invalid(e.to_string()))?;
        for (field, v) in [("routing_point", &cb.routing_point), ("dialled", &cb.dialled)] {
            switchboard_model::validate_line(field, v, 256).map_err(|e| VoiceError::Invalid(e.to_string()))?;
        }
        if cb.number.is_empty() {
            return Err(VoiceError::Invalid("number: is required".into()));
        }
        let number = self.callback_number(&cb.number)?;
        let now = self.engine.now_ms().await?;
        if cb.waiting_since_ms > now + 5_000 {
            return Err(VoiceError::Invalid("waiting_since: is in the future".into()));
        }
        if cb.waiting_since_ms > 0 && cb.waiting_since_ms + MAX_WAITED_MS < now {
            return Err(VoiceError::Invalid("waiting_since: is more than 24 hours ago".into()));
        }
        let rp = self.cfg.routing_point(&cb.routing_point, &cb.dialled);
        let queue = if cb.queue.is_empty() { rp.map(|rp| rp.queue.clone()) } else { Some(cb.queue.clone()) };
        let Some(queue) = queue else {
            return Err(VoiceError::Invalid(
                "queue: is required (or a routing_point or dialled number that leads to one)".into(),
            ));
        };
        let plan = self.plan(number.clone(), cb.not_before_ms);
        plan.validate(now).map_err(|e| VoiceError::Invalid(e.to_string()))?;
        let mut attributes = cb.user_data.clone();
        attributes.insert(ATTR_SYSTEM.into(), system.into());
        attributes.insert(ATTR_CALLBACK_ID.into(), cb.callback_id.clone());
        if !cb.dialled.is_empty() {
            attributes.insert(ATTR_DIALLED.into(), cb.dialled.clone());
        }
        let new = NewInteraction {
            idempotency_key: call_key(system, &format!("callback|{}", cb.callback_id)),
            channel: Some(Channel::Voice),
            customer_address: number,
            attributes,
            queue,
            priority: cb.priority.or_else(|| rp.and_then(|rp| rp.priority)),
            callback: Some(plan),
            waiting_since_ms: (cb.waiting_since_ms > 0).then_some(cb.waiting_since_ms.min(now)),
            ..NewInteraction::default()
        };
        // A callback waits for the opening of a closed queue: nobody is on the line to refuse.
        let engine = self.engine.acting_as(by.clone());
        let (ix, created) = engine.create_interaction_if_refused(&new, IfRefused::Hold).await?;
        if ix.callback.is_none() {
            return Err(VoiceError::Invalid(format!(
                "callback_id: {:?} was used for something that is not a callback",
                cb.callback_id
            )));
        }
        let position = self.place_in_line(&ix).await?;
        Ok(CallbackMade { interaction: ix, position, created })
    }

    /// A callback an agent schedules for the customer of `ix` (which the agent holds): in its
    /// queue, at its place, dialled by `cti.callback_system`. One per interaction.
    pub async fn schedule_callback(
        &self,
        agent_id: &str,
        ix: &Interaction,
        number: &str,
        not_before_ms: u64,
    ) -> Result<CallbackMade> {
        if ix.agent_id != agent_id
            || !matches!(ix.state, crate::model::InteractionState::Active | crate::model::InteractionState::WrapUp)
        {
            return Err(VoiceError::Engine(EngineError::FailedPrecondition(format!(
                "interaction_id: {:?} is not assigned to you (it is {})",
                ix.id,
                ix.state.as_str()
            ))));
        }
        let by = Actor { who: format!("agent:{agent_id}"), from: String::new() };
        self.callback_from(ix, number, not_before_ms, by).await
    }

    /// A customer waiting on chat or SMS takes a callback instead (the widget's or a text's
    /// answer to the configured offer): the callback keeps the conversation's place, and the
    /// conversation leaves the queue (ended, reason `callback`, not counted as abandoned).
    pub async fn callback_instead(
        &self,
        ix: &Interaction,
        number: &str,
        not_before_ms: u64,
        by: Actor,
    ) -> Result<CallbackMade> {
        if !matches!(ix.state, crate::model::InteractionState::Queued | crate::model::InteractionState::Offered) {
            return Err(VoiceError::Engine(EngineError::FailedPrecondition(format!(
                "interaction: only a waiting conversation turns into a callback (it is {})",
                ix.state.as_str()
            ))));
        }
        let made = self.callback_from(ix, number, not_before_ms, by.clone()).await?;
        self.engine.acting_as(by).withdraw(&ix.id, "callback").await?;
        Ok(made)
    }

    /// The callback for the customer of `ix`: in its queue, at its place, dialled by
    /// `cti.callback_system`; one per interaction.
    async fn callback_from(
        &self,
        ix: &Interaction,
        number: &str,
        not_before_ms: u64,
        by: Actor,
    ) -> Result<CallbackMade> {
        let system = &self.cfg.callback_system;
        if system.is_empty() {
            return Err(VoiceError::Engine(EngineError::FailedPrecondition(
                "callback: no telephony system dials callbacks for chat and SMS customers (cti.callback_system is not set)"
                    .into(),
            )));
        }
        let number = match (number.is_empty(), ix.channel) {
            (false, _) => self.callback_number(number)?,
            (true, Channel::Sms | Channel::Voice) if ix.customer_address != "anonymous" => {
                self.callback_number(&ix.customer_address)?
            }
            (true, _) => {
                return Err(VoiceError::Invalid(
                    "number: is required (the customer's address is not a phone number)".into(),
                ));
            }
        };
        let now = self.engine.now_ms().await?;
        let plan = self.plan(number.clone(), not_before_ms);
        plan.validate(now).map_err(|e| VoiceError::Invalid(e.to_string()))?;
        let attributes = BTreeMap::from([
            (ATTR_SYSTEM.to_string(), system.clone()),
            (ATTR_CALLBACK_FROM.to_string(), ix.id.clone()),
        ]);
        let new = NewInteraction {
            idempotency_key: call_key(system, &format!("callback|from|{}", ix.id)),
            channel: Some(Channel::Voice),
            customer_address: number,
            attributes,
            queue: ix.queue.clone(),
            priority: Some(ix.priority),
            callback: Some(plan),
            waiting_since_ms: Some(ix.enqueued_ms.min(now)),
            ..NewInteraction::default()
        };
        let (made, created) = self
            .engine
            .acting_as(by)
            .create_interaction_if_refused(&new, IfRefused::Hold)
            .await
            .map_err(|e| match e {
                EngineError::InvalidArgument(m) if m.starts_with("channel:") => VoiceError::Engine(
                    EngineError::FailedPrecondition(format!("queue: {:?} takes no calls, so no callbacks", ix.queue)),
                ),
                e => e.into(),
            })?;
        let position = self.place_in_line(&made).await?;
        Ok(CallbackMade { interaction: made, position, created })
    }

    /// Whether callbacks for chat and SMS customers can be dialled (`cti.callback_system`).
    pub fn dials_chat_callbacks(&self) -> bool {
        !self.cfg.callback_system.is_empty()
    }

    async fn place_in_line(&self, ix: &Interaction) -> Result<u32> {
        Ok(self.engine.place_in_queue(ix).await?.unwrap_or(0) as u32)
    }
}
