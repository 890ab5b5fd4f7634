//! Voice: calls from telephony systems through the CTI hook (`switchboard.cti.v1`, served by
//! `api/cti.rs`). A call is a voice interaction created on its first route request or `offered`
//! event (keyed by the system and its call id); what happens on the phone — ringing, answered,
//! held, hung up, rung out — moves the interaction (`call_event.lua`); an agent's phone state gates
//! voice routing (`phone.lua`). Offers reach the platform as ring instructions ([`watch`]).
//!
//! | call                         | interaction                                    |
//! |------------------------------|------------------------------------------------|
//! | reached a routing point      | created, queued, offered if an agent is free   |
//! | ringing at the agent's phone | offered (the desktop shows the caller)         |
//! | answered                     | active (accepted)                              |
//! | rang out / busy / unreachable| back to the queue keeping its age; agent excluded (rang out: agent not ready) |
//! | hung up while waiting/ringing| abandoned                                      |
//! | hung up after answer         | after-call work (wrap-up), then completed      |
//! | blind transfer to a queue    | transferred: queued there, routed again        |
//!
//! A call to a closed queue (opening hours) meets the queue's rule for voice (default: refuse).
//! Refused, it is recorded as an interaction that ends at once (`end_reason` "closed") and
//! RouteCall answers the default destination with reason "closed"; overflowed, it is created in
//! the other queue; held, it waits like any call.
//!
//! A waiting caller may ask to be called back instead ([`callback`]): the interaction keeps its
//! place, is accepted on a desktop, and the platform is told to dial (`DialCallback`).

pub mod callback;
pub mod config;
pub mod kamailio;
pub mod watch;

use std::collections::{BTreeMap, HashMap};

use switchboard_engine::{CallOrder, CallOutcome, Engine, EngineError, IfRefused, call_key};

use crate::model::voice::{CallUpdate, PhoneState, TransferTo, validate_user_data};
use crate::model::{Actor, Channel, Interaction, InteractionState, NewInteraction};
pub use config::CtiConfig;

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

type Result<T> = std::result::Result<T, VoiceError>;

/// A call that reached a routing point, asking where to ring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteCall {
    pub call_id: String,
    pub caller: String,
    pub dialled: String,
    pub routing_point: String,
    pub user_data: BTreeMap<String, String>,
    pub queue: String,
    pub priority: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    pub agent_id: String,
    pub device: String,
    pub route_id: String,
    pub ring_until_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    Ring(Ring),
    Hold { queue: String, position: u32 },
    Default { destination: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    pub interaction_id: String,
    pub action: RouteAction,
}

/// One call event as the platform sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    pub call_id: String,
    pub sequence: u64,
    /// Who it is about: by id, or by device.
    pub agent_id: String,
    pub device: String,
    pub kind: CallReportKind,
    /// Logged with the event (leg, linked call, user data).
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallReportKind {
    Offered(RouteCall),
    Update(CallUpdate),
}

/// What became of an event, and the call's interaction if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub outcome: CallOutcome,
    pub interaction_id: String,
}

/// The voice channel of one instance: the CTI hook's logic over the engine.
#[derive(Clone)]
pub struct Voice {
    engine: Engine,
    cfg: CtiConfig,
    /// For caller numbers written without a country code (as the CRM normalizes them).
    default_region: Option<String>,
    /// Agents' first devices, briefly: a ring names one, and reading the agent's record for
    /// every ring would add a round trip to every route answer.
    devices: std::sync::Arc<std::sync::Mutex<HashMap<String, (String, std::time::Instant)>>>,
}

/// How long a device read is reused: an agent's changed phone rings within this.
const DEVICE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The default route's reason, and the end reason, of a call its closed queue refused.
pub const CLOSED: &str = "closed";

/// Attributes a call's interaction carries besides the platform's user data.
pub const ATTR_SYSTEM: &str = "cti.system";
pub const ATTR_CALL: &str = "cti.call_id";
pub const ATTR_DIALLED: &str = "cti.dialled";
/// The caller as sticky routing knows them (see `caller_key`), for the engine to remember who
/// talked to them when the call ends.
pub const ATTR_STICKY: &str = "cti.sticky";

impl Voice {
    pub fn new(engine: Engine, cfg: CtiConfig, default_region: Option<String>) -> Voice {
        Voice { engine, cfg, default_region, devices: std::sync::Arc::default() }
    }

    /// A caller as sticky routing remembers them: the number in E.164 where it can be read as one,
    /// so "0151 ..." and "+49 151 ..." are one caller.
    fn caller_key(&self, caller: &str) -> String {
        let n = switchboard_crm::identity::normalize(Channel::Voice, caller, self.default_region.as_deref())
            .unwrap_or_else(|_| caller.to_string());
        format!("voice|{n}")
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Where the call should ring, creating its interaction the first time.
    pub async fn route_call(&self, system: &str, by: &Actor, call: &RouteCall) -> Result<RouteDecision> {
        validate_call_id(&call.call_id)?;
        let caller = self.sticky_caller(&call.caller);
        let (existing, last_agent) = self.engine.call_lookup(system, &call.call_id, caller.as_deref()).await?;
        let ix = match existing {
            Some(id) => self.engine.get_interaction(&id, false).await?,
            None => match self.create(system, by, call, caller, last_agent).await? {
                Some(ix) => ix,
                None => return self.default_route("", "no_queue"),
            },
        };
        self.decision(ix).await
    }

    /// The caller's sticky-routing key, when sticky routing is on and the caller has a number.
    fn sticky_caller(&self, caller: &str) -> Option<String> {
        (self.cfg.sticky_minutes > 0 && !caller.is_empty() && caller != "anonymous").then(|| self.caller_key(caller))
    }

    fn sticky_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.cfg.sticky_minutes) * 60)
    }

    /// Creates the call's interaction (or finds it: the call key is its idempotency key). None
    /// when no queue takes the call.
    async fn create(
        &self,
        system: &str,
        by: &Actor,
        call: &RouteCall,
        caller: Option<String>,
        last_agent: Option<String>,
    ) -> Result<Option<Interaction>> {
        validate_call_id(&call.call_id)?;
        validate_user_data("user_data", &call.user_data).map_err(|e| VoiceError::Invalid(e.to_string()))?;
        for (field, v) in [("caller", &call.caller), ("dialled", &call.dialled), ("routing_point", &call.routing_point)]
        {
            switchboard_model::validate_line(field, v, 256).map_err(|e| VoiceError::Invalid(e.to_string()))?;
        }
        let rp = self.cfg.routing_point(&call.routing_point, &call.dialled);
        let queue = if call.queue.is_empty() { rp.map(|rp| rp.queue.clone()) } else { Some(call.queue.clone()) };
        let Some(queue) = queue else { return Ok(None) };
        let mut attributes = call.user_data.clone();
        attributes.insert(ATTR_SYSTEM.into(), system.into());
        attributes.insert(ATTR_CALL.into(), call.call_id.clone());
        if !call.dialled.is_empty() {
            attributes.insert(ATTR_DIALLED.into(), call.dialled.clone());
        }
        if let Some(c) = caller {
            attributes.insert(ATTR_STICKY.into(), c);
        }
        // A repeat caller rings the agent they talked to last first, if that was recently.
        let preferred = last_agent.unwrap_or_default();
        let new = NewInteraction {
            idempotency_key: call_key(system, &call.call_id),
            preferred_agent_wait_secs: if preferred.is_empty() { 0 } else { self.cfg.sticky_wait_secs },
            preferred_agent_id: preferred,
            channel: Some(Channel::Voice),
            // A withheld number is still a caller.
            customer_address: if call.caller.is_empty() { "anonymous".into() } else { call.caller.clone() },
            attributes,
            queue,
            priority: call.priority.or_else(|| rp.and_then(|rp| rp.priority)),
            ..NewInteraction::default()
        };
        let engine = self.engine.acting_as(by.clone());
        let (ix, _) = engine.create_interaction_if_refused(&new, IfRefused::End).await?;
        Ok(Some(ix))
    }

    async fn decision(&self, ix: Interaction) -> Result<RouteDecision> {
        // The call became a callback: the caller is to be called back, not put through.
        if ix.callback.is_some() {
            return self.default_route(&ix.id, "callback");
        }
        let action = match ix.state {
            InteractionState::Offered => RouteAction::Ring(self.ring(&ix).await?),
            InteractionState::Queued => {
                let position = self.engine.waiting_position(&ix).await?.unwrap_or(0);
                RouteAction::Hold { queue: ix.queue.clone(), position: position as u32 }
            }
            // Its queue is closed and refuses calls: it ended as it was created.
            InteractionState::Abandoned if ix.end_reason == CLOSED => return self.default_route(&ix.id, CLOSED),
            // Answered already (a repeated request) or over: nothing to ring.
            _ => return self.default_route(&ix.id, "ended"),
        };
        Ok(RouteDecision { interaction_id: ix.id, action })
    }

    /// The ring for an interaction's current offer.
    pub async fn ring(&self, ix: &Interaction) -> Result<Ring> {
        Ok(Ring {
            agent_id: ix.agent_id.clone(),
            device: self.device_of(&ix.agent_id).await?,
            route_id: route_id(&ix.id, ix.offer_seq),
            ring_until_ms: ix.offer_expires_ms.unwrap_or(0),
        })
    }

    /// The phone an agent's calls ring: their first device ("" if none).
    pub async fn device_of(&self, agent: &str) -> Result<String> {
        if let Some((d, at)) = self.devices.lock().expect("device cache").get(agent)
            && at.elapsed() < DEVICE_TTL
        {
            return Ok(d.clone());
        }
        let device = match self.engine.get_agent(agent).await {
            Ok(spec) => spec.devices.into_iter().next().unwrap_or_default(),
            Err(EngineError::NotFound(_)) => String::new(),
            Err(e) => return Err(e.into()),
        };
        let mut cache = self.devices.lock().expect("device cache");
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(agent.to_string(), (device.clone(), std::time::Instant::now()));
        Ok(device)
    }

    fn default_route(&self, interaction_id: &str, reason: &str) -> Result<RouteDecision> {
        if self.cfg.default_destination.is_empty() {
            return Err(match reason {
                "no_queue" => VoiceError::NotFound(
                    "routing_point: no queue takes this call, and cti.default_destination is not set".into(),
                ),
                CLOSED => VoiceError::Engine(EngineError::FailedPrecondition(format!(
                    "queue: the call's queue is closed and refuses calls (its interaction {interaction_id:?} ended), \
                     and cti.default_destination is not set"
                ))),
                "callback" => VoiceError::Engine(EngineError::FailedPrecondition(format!(
                    "call: the caller asked to be called back (interaction {interaction_id:?}): hang up, \
                     and cti.default_destination is not set"
                ))),
                _ => VoiceError::NotFound(format!("call: its interaction {interaction_id:?} has ended")),
            });
        }
        Ok(RouteDecision {
            interaction_id: interaction_id.to_string(),
            action: RouteAction::Default {
                destination: self.cfg.default_destination.clone(),
                reason: reason.to_string(),
            },
        })
    }

    /// Applies one call event.
    pub async fn call_event(&self, system: &str, by: &Actor, event_id: &str, r: &CallReport) -> Result<Applied> {
        validate_call_id(&r.call_id)?;
        let event_key = if event_id.is_empty() { String::new() } else { format!("{system}|{event_id}") };
        let update = match &r.kind {
            CallReportKind::Offered(call) => {
                let caller = self.sticky_caller(&call.caller);
                let (existed, last_agent) = self.engine.call_lookup(system, &r.call_id, caller.as_deref()).await?;
                let ix = match existed {
                    Some(id) => return Ok(Applied { outcome: CallOutcome::Duplicate, interaction_id: id }),
                    None => self.create(system, by, call, caller, last_agent).await?,
                };
                let ix = ix.ok_or_else(|| {
                    VoiceError::NotFound("routing_point: no queue takes this call (cti.routing_points)".into())
                })?;
                return Ok(Applied { outcome: CallOutcome::Applied, interaction_id: ix.id });
            }
            CallReportKind::Update(u) => u,
        };
        let iid = self.interaction_of_call(system, &r.call_id).await?;
        let agent = self.agent_of(&r.agent_id, &r.device).await?;
        let engine = self.engine.acting_as(by.clone());
        let order = CallOrder::Sequence(r.sequence);
        let outcome = match update {
            CallUpdate::Transferred { to: TransferTo::Queue(q), .. } => {
                self.engine.get_queue(q).await.map_err(|e| match e {
                    EngineError::NotFound(_) => {
                        VoiceError::NotFound(format!("transferred.queue: no queue named {q:?}"))
                    }
                    e => e.into(),
                })?;
                let (outcome, holder) =
                    self.count_transfer(&engine, &iid, &event_key, order, &agent, update, r).await?;
                if outcome == CallOutcome::Applied {
                    engine.transfer(&holder, &iid, &switchboard_engine::TransferTarget::Queue(q.clone()), 0).await?;
                }
                outcome
            }
            CallUpdate::Transferred { to: TransferTo::Agent(a), .. } => {
                let (outcome, holder) =
                    self.count_transfer(&engine, &iid, &event_key, order, &agent, update, r).await?;
                if outcome == CallOutcome::Applied {
                    let wait = std::time::Duration::from_secs(u64::from(self.cfg.transfer_agent_wait_secs));
                    let target = switchboard_engine::TransferTarget::Agent { id: a.clone(), wait };
                    engine.transfer(&holder, &iid, &target, 0).await?;
                }
                outcome
            }
            // Out of Switchboard's reach: the call is over for the agent.
            CallUpdate::Transferred { to: TransferTo::External(_), .. } => {
                let released = CallUpdate::Released {
                    cause: "transferred_external".into(),
                    by: crate::model::voice::HungUpBy::Agent,
                };
                engine
                    .call_event(&iid, &r.call_id, &event_key, order, &agent, &released, &r.details, self.sticky_ttl())
                    .await?
                    .0
            }
            u => {
                engine
                    .call_event(&iid, &r.call_id, &event_key, order, &agent, u, &r.details, self.sticky_ttl())
                    .await?
                    .0
            }
        };
        Ok(Applied { outcome, interaction_id: iid })
    }

    /// Counts a transfer in the call's order; returns the outcome and the agent who held the call.
    #[allow(clippy::too_many_arguments)]
    async fn count_transfer(
        &self,
        engine: &Engine,
        iid: &str,
        event_key: &str,
        order: CallOrder,
        agent: &str,
        update: &CallUpdate,
        r: &CallReport,
    ) -> Result<(CallOutcome, String)> {
        let ix = self.engine.get_interaction(iid, false).await?;
        if ix.state != InteractionState::Active {
            return Err(VoiceError::Invalid(format!(
                "transferred: the call is {} — only a call an agent has answered is transferred",
                ix.state.as_str()
            )));
        }
        let holder = if agent.is_empty() { ix.agent_id.clone() } else { agent.to_string() };
        let (outcome, _) = engine
            .call_event(iid, &r.call_id, event_key, order, &holder, update, &r.details, self.sticky_ttl())
            .await?;
        Ok((outcome, holder))
    }

    /// How a ring instruction went (`route_id` from RingAgent).
    pub async fn report_route(
        &self,
        system: &str,
        by: &Actor,
        call_id: &str,
        route_id: &str,
        failure: Option<crate::model::voice::RingFailure>,
    ) -> Result<CallOutcome> {
        validate_call_id(call_id)?;
        let iid = self.interaction_of_call(system, call_id).await?;
        let (rid_ix, oseq) = parse_route_id(route_id)
            .ok_or_else(|| VoiceError::Invalid(format!("route_id: {route_id:?} is not a route id Switchboard gave")))?;
        if rid_ix != iid {
            return Err(VoiceError::Invalid(format!("route_id: {route_id:?} is not a route of call {call_id:?}")));
        }
        let update = match failure {
            None => CallUpdate::Ringing,
            Some(f) => CallUpdate::RingFailed(f),
        };
        let engine = self.engine.acting_as(by.clone());
        let details = serde_json::json!({ "route_id": route_id });
        let order = CallOrder::Offer(oseq);
        Ok(engine.call_event(&iid, call_id, "", order, "", &update, &details, self.sticky_ttl()).await?.0)
    }

    /// The interaction of `system`'s call `call_id`; NOT_FOUND naming the call if it has none.
    pub(crate) async fn interaction_of_call(&self, system: &str, call_id: &str) -> Result<String> {
        self.engine
            .call_interaction(system, call_id)
            .await?
            .ok_or_else(|| VoiceError::NotFound(format!("call_id: no call {call_id:?} from this system")))
    }

    /// An agent's phone changed state.
    pub async fn phone_event(&self, by: &Actor, agent_id: &str, device: &str, state: PhoneState) -> Result<bool> {
        let agent = self.agent_of(agent_id, device).await?;
        if agent.is_empty() {
            return Err(VoiceError::Invalid("phone: agent_id or device is required".into()));
        }
        Ok(self.engine.acting_as(by.clone()).phone_state(&agent, state).await?)
    }

    /// The agent an event names, by id or by device ("" if neither is given).
    async fn agent_of(&self, agent_id: &str, device: &str) -> Result<String> {
        if !agent_id.is_empty() {
            switchboard_model::validate_id("agent_id", agent_id).map_err(|e| VoiceError::Invalid(e.to_string()))?;
            return Ok(agent_id.to_string());
        }
        if device.is_empty() {
            return Ok(String::new());
        }
        switchboard_model::validate_line("device", device, switchboard_model::MAX_DEVICE_LEN)
            .map_err(|e| VoiceError::Invalid(e.to_string()))?;
        self.engine
            .agent_for_device(device)
            .await?
            .ok_or_else(|| VoiceError::NotFound(format!("device: no agent has device {device:?}")))
    }
}

fn validate_call_id(call_id: &str) -> Result<()> {
    if call_id.is_empty() {
        return Err(VoiceError::Invalid("call_id: is required".into()));
    }
    switchboard_model::validate_line("call_id", call_id, 256).map_err(|e| VoiceError::Invalid(e.to_string()))
}

/// A ring's id: the interaction and its offer number.
pub fn route_id(interaction_id: &str, offer_seq: u64) -> String {
    format!("{interaction_id}#{offer_seq}")
}

pub fn parse_route_id(route_id: &str) -> Option<(&str, u64)> {
    let (ix, seq) = route_id.rsplit_once('#')?;
    if ix.is_empty() {
        return None;
    }
    Some((ix, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_ids_round_trip_and_nothing_else_parses() {
        assert_eq!(parse_route_id(&route_id("0192-ab", 3)), Some(("0192-ab", 3)));
        for bad in ["", "#3", "abc", "abc#", "abc#x", "abc#-1"] {
            assert_eq!(parse_route_id(bad), None, "{bad:?}");
        }
    }
}
