//! The gRPC API (package `switchboard.v1`). The only layer that knows protobuf: it converts
//! between generated types and the domain model, and maps errors to status codes in one place.

pub mod access;
pub mod admin;
pub mod agent;
pub mod calendars;
pub mod cti;
pub mod explain;
pub mod feed;
pub mod grpc_web;
pub mod interactions;
pub mod policy;
pub mod supervisor;
pub mod web;

use std::collections::BTreeMap;

use tonic::Status;

use crate::crm::screen_pop::{PopStatus, ScreenPopData};
use crate::model::{self, Channel};
use switchboard_engine::{AgentStatus, EngineError, QueueFigures};

pub use switchboard_proto::v1 as pb;
pub use switchboard_proto::v1::FILE_DESCRIPTOR_SET;

/// The one place where domain errors become gRPC statuses.
pub fn status(e: EngineError) -> Status {
    match e {
        EngineError::NotFound(m) => Status::not_found(m),
        EngineError::InvalidArgument(m) => Status::invalid_argument(m),
        // Retry: admin changes racing each other past the engine's own retries; as before the
        // variant existed, a precondition the caller may try again.
        EngineError::FailedPrecondition(m) | EngineError::Retry(m) => Status::failed_precondition(m),
        EngineError::AlreadyExists(m) => Status::already_exists(m),
        EngineError::Unauthenticated(m) => Status::unauthenticated(m),
        // What went wrong inside stays in this instance's log: clients learn only what to do.
        EngineError::Redis(e) => {
            tracing::warn!(message = "Redis request failed.", error = %e);
            Status::unavailable("routing state unavailable; retry")
        }
        EngineError::Corrupt(m) => {
            tracing::error!(message = "Unexpected data in Redis.", detail = %m);
            Status::internal("internal error; see the daemon's log")
        }
    }
}

/// How a stream ends whose credential stopped being valid (a revoked key, an expired JWT).
pub fn lapsed_status() -> Status {
    Status::unauthenticated("the credential this stream was opened with is no longer valid (revoked or expired)")
}

/// An engine error for a request whose input sits in message field `field`: a refusal of the
/// input names the field path the client sent (`agent.skills`), not the engine's own name.
pub fn in_field(field: &str) -> impl Fn(EngineError) -> Status + '_ {
    move |e| match e {
        EngineError::InvalidArgument(m) => Status::invalid_argument(format!("{field}.{m}")),
        e => status(e),
    }
}

/// Like [`in_field`], for a request whose refusals of a missing name (NOT_FOUND) name its field
/// too: a queue's overflow queue (`queue.closed[1].overflow_queue`).
pub fn in_field_or_missing(field: &str) -> impl Fn(EngineError) -> Status + '_ {
    move |e| match e {
        EngineError::NotFound(m) => Status::not_found(format!("{field}.{m}")),
        e => in_field(field)(e),
    }
}

pub fn invalid(e: model::ValidationError) -> Status {
    Status::invalid_argument(e.to_string())
}

pub fn ts(ms: u64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: (ms / 1000) as i64, nanos: ((ms % 1000) * 1_000_000) as i32 }
}

pub fn channel_to_pb(c: Channel) -> pb::Channel {
    match c {
        Channel::Voice => pb::Channel::Voice,
        Channel::Chat => pb::Channel::Chat,
        Channel::Sms => pb::Channel::Sms,
        Channel::Email => pb::Channel::Email,
    }
}

pub fn channel_from_pb(field: &str, v: i32) -> Result<Channel, Status> {
    match pb::Channel::try_from(v) {
        Ok(pb::Channel::Voice) => Ok(Channel::Voice),
        Ok(pb::Channel::Chat) => Ok(Channel::Chat),
        Ok(pb::Channel::Sms) => Ok(Channel::Sms),
        Ok(pb::Channel::Email) => Ok(Channel::Email),
        Ok(pb::Channel::Unspecified) => Err(Status::invalid_argument(format!("{field}: a channel is required"))),
        Err(_) => Err(Status::invalid_argument(format!("{field}: unknown channel {v}"))),
    }
}

pub fn state_to_pb(s: model::InteractionState) -> pb::InteractionState {
    use model::InteractionState as S;
    match s {
        S::Queued => pb::InteractionState::Queued,
        S::Offered => pb::InteractionState::Offered,
        S::Active => pb::InteractionState::Active,
        S::WrapUp => pb::InteractionState::WrapUp,
        S::Completed => pb::InteractionState::Completed,
        S::Abandoned => pb::InteractionState::Abandoned,
        // A transfer is only a moment inside one Redis function call: no read ever sees it.
        #[allow(deprecated)]
        S::Transferred => pb::InteractionState::Transferred,
    }
}

pub fn presence_to_pb(p: &model::Presence) -> pb::Presence {
    let state = match p {
        model::Presence::Offline => pb::PresenceState::Offline,
        model::Presence::Ready => pb::PresenceState::Ready,
        model::Presence::NotReady(_) => pb::PresenceState::NotReady,
        model::Presence::WrapUp => pb::PresenceState::WrapUp,
    };
    pb::Presence { state: state as i32, reason: p.reason().to_string() }
}

/// Presence a client may set (wrap-up is entered by completing work, not by request).
pub fn presence_from_pb(field: &str, p: Option<&pb::Presence>) -> Result<model::Presence, Status> {
    let p = p.ok_or_else(|| Status::invalid_argument(format!("{field}: is required")))?;
    if p.reason.len() > 100 {
        return Err(Status::invalid_argument(format!("{field}.reason: must be at most 100 bytes")));
    }
    match pb::PresenceState::try_from(p.state) {
        Ok(pb::PresenceState::Offline) => Ok(model::Presence::Offline),
        Ok(pb::PresenceState::Ready) => Ok(model::Presence::Ready),
        Ok(pb::PresenceState::NotReady) => Ok(model::Presence::NotReady(p.reason.clone())),
        Ok(pb::PresenceState::WrapUp) => {
            Err(Status::invalid_argument(format!("{field}.state: wrap-up starts by completing an interaction")))
        }
        _ => Err(Status::invalid_argument(format!("{field}.state: must be OFFLINE, READY or NOT_READY"))),
    }
}

pub fn interaction_to_pb(ix: &model::Interaction) -> pb::Interaction {
    pb::Interaction {
        id: ix.id.clone(),
        channel: channel_to_pb(ix.channel) as i32,
        customer_address: ix.customer_address.clone(),
        subject: ix.subject.clone(),
        attributes: ix.attributes.clone().into_iter().collect(),
        queue: ix.queue.clone(),
        priority: ix.priority,
        state: state_to_pb(ix.state) as i32,
        agent_id: ix.agent_id.clone(),
        enqueued_at: Some(ts(ix.enqueued_ms)),
        timestamps: ix.timestamps.iter().map(|(k, v)| (k.clone(), ts(*v))).collect(),
        escalation_stage: ix.stage,
        disposition: ix.disposition.clone(),
        notes: ix.notes.clone(),
        messages: ix.messages.iter().map(message_to_pb).collect(),
        end_reason: ix.end_reason.clone(),
        transferred_by: ix.transferred_by.clone(),
        excluded_agent_ids: ix.excluded_agents.clone(),
        callback: ix.callback.as_ref().map(|c| pb::Callback {
            number: c.number.clone(),
            not_before: (c.not_before_ms > 0).then(|| ts(c.not_before_ms)),
            attempts: c.attempts,
            max_attempts: c.max_attempts,
            connected_at: (c.connected_ms > 0).then(|| ts(c.connected_ms)),
            call_id: c.call_id.clone(),
        }),
    }
}

pub fn message_to_pb(m: &model::Message) -> pb::Message {
    let author = match m.author {
        model::Author::Customer => pb::Author::Customer,
        model::Author::Agent => pb::Author::Agent,
        model::Author::System => pb::Author::System,
    };
    pb::Message {
        seq: m.seq,
        author: author as i32,
        agent_id: m.agent_id.clone(),
        body: m.body.clone(),
        sent_at: Some(ts(m.sent_ms)),
        delivery: m.delivery.as_ref().map(delivery_to_pb),
    }
}

pub fn delivery_to_pb(d: &model::Delivery) -> pb::Delivery {
    pb::Delivery { state: d.state.as_str().to_string(), code: d.code.clone(), segments: d.segments }
}

pub fn offer_to_pb(ix: &model::Interaction, pop: &ScreenPopData) -> pb::Offer {
    pb::Offer {
        interaction: Some(interaction_to_pb(ix)),
        expires_at: ix.offer_expires_ms.map(ts),
        screen_pop: Some(screen_pop_to_pb(pop)),
    }
}

fn ts_i(ms: i64) -> Option<prost_types::Timestamp> {
    (ms > 0).then(|| ts(ms as u64))
}

pub fn screen_pop_to_pb(p: &ScreenPopData) -> pb::ScreenPop {
    let status = match p.status {
        PopStatus::NotConfigured => pb::ScreenPopStatus::NotConfigured,
        PopStatus::Available => pb::ScreenPopStatus::Available,
        PopStatus::Unavailable => pb::ScreenPopStatus::Unavailable,
    };
    pb::ScreenPop {
        status: status as i32,
        contact: p.contact.as_ref().map(|c| pb::Contact {
            id: c.id.clone(),
            name: c.name.clone(),
            identities: c
                .identities
                .iter()
                .map(|(ch, a)| pb::ContactIdentity { channel: channel_to_pb(*ch) as i32, address: a.clone() })
                .collect(),
            fields: c.fields.clone().into_iter().collect(),
        }),
        history: p
            .history
            .iter()
            .map(|h| pb::HistoryEntry {
                interaction_id: h.interaction_id.clone(),
                channel: h.channel.map(channel_to_pb).unwrap_or_default() as i32,
                queue: h.queue.clone(),
                agent_id: h.agent_id.clone(),
                started_at: ts_i(h.started_ms),
                ended_at: ts_i(h.ended_ms),
                outcome: h.outcome.clone(),
                disposition: h.disposition.clone(),
                notes: h.notes.clone(),
                summary: h.summary.clone(),
            })
            .collect(),
    }
}

pub fn agent_state_to_pb(a: &AgentStatus) -> pb::AgentState {
    pb::AgentState {
        agent_id: a.id.clone(),
        name: a.name.clone(),
        presence: Some(presence_to_pb(&a.presence)),
        connected: a.connected,
        load: a.load.iter().map(|(c, n)| (c.as_str().to_string(), *n)).collect(),
        capacity: Channel::ALL.iter().map(|c| (c.as_str().to_string(), a.capacity.get(*c))).collect(),
        presence_since: Some(ts(a.presence_since_ms)),
    }
}

pub fn figures_to_pb(f: &QueueFigures) -> pb::QueueFigures {
    pb::QueueFigures {
        queue: f.queue.clone(),
        waiting: f.waiting,
        longest_wait_ms: f.longest_wait_ms,
        offered: f.offered,
        accepted: f.accepted,
        rejected: f.rejected,
        missed: f.missed,
        abandoned: f.abandoned,
        service_level_percent: f.service_level_percent,
        average_speed_of_answer_secs: f.average_speed_of_answer_secs,
        average_handle_time_secs: f.average_handle_time_secs,
        window_secs: f.window_secs,
        agents_by_presence: f.agents_by_presence.clone().into_iter().collect(),
        occupancy_percent: f.occupancy_percent,
        at: Some(ts(f.at_ms)),
        open: f.open,
        next_change: f.next_change_ms.map(ts),
        callbacks_requested: f.callbacks_requested,
        callbacks_connected: f.callbacks_connected,
        callbacks_failed: f.callbacks_failed,
    }
}

pub fn agent_spec_to_pb(a: &model::AgentSpec) -> pb::Agent {
    pb::Agent {
        id: a.id.clone(),
        name: a.name.clone(),
        skills: a.skills.clone().into_iter().collect(),
        capacity: Some(pb::Capacity {
            voice: Some(a.capacity.voice),
            chat: Some(a.capacity.chat),
            sms: Some(a.capacity.sms),
            email: Some(a.capacity.email),
        }),
        cross_channel_blocking: a.cross_channel_blocking,
        token: String::new(),
        devices: a.devices.clone(),
    }
}

pub fn agent_spec_from_pb(a: pb::Agent) -> Result<model::AgentSpec, Status> {
    let d = model::Capacity::default();
    let capacity = match a.capacity {
        Some(c) => model::Capacity {
            voice: c.voice.unwrap_or(d.voice),
            chat: c.chat.unwrap_or(d.chat),
            sms: c.sms.unwrap_or(d.sms),
            email: c.email.unwrap_or(d.email),
        },
        None => d,
    };
    let spec = model::AgentSpec {
        id: a.id,
        name: a.name,
        skills: a.skills.into_iter().collect::<BTreeMap<_, _>>(),
        capacity,
        cross_channel_blocking: a.cross_channel_blocking,
        token: a.token,
        devices: a.devices,
    };
    // Checked once, by the engine (every writer goes through it); see `in_field`.
    Ok(spec)
}

pub fn strategy_to_pb(s: model::Strategy) -> pb::Strategy {
    match s {
        model::Strategy::LongestIdle => pb::Strategy::LongestIdle,
        model::Strategy::MostSkilled => pb::Strategy::MostSkilled,
        model::Strategy::LeastOccupied => pb::Strategy::LeastOccupied,
    }
}

pub fn queue_spec_to_pb(q: &model::QueueSpec) -> pb::Queue {
    pb::Queue {
        name: q.name.clone(),
        channels: q.channels.iter().map(|c| channel_to_pb(*c) as i32).collect(),
        requirements: q
            .requirements
            .iter()
            .map(|r| pb::SkillRequirement { skill: r.skill.clone(), min_level: r.min_level })
            .collect(),
        priority: q.priority,
        strategy: strategy_to_pb(q.strategy) as i32,
        offer_timeout_secs: q.offer_timeout_secs,
        wrap_up_secs: q.wrap_up_secs,
        service_level_secs: q.service_level_secs,
        escalation: q
            .escalation
            .iter()
            .map(|s| pb::EscalationStep {
                after_secs: s.after_secs,
                action: Some(match &s.action {
                    model::EscalationAction::DropSkill(k) => pb::escalation_step::Action::DropSkill(k.clone()),
                    model::EscalationAction::LowerLevel(r) => {
                        pb::escalation_step::Action::LowerLevel(pb::SkillRequirement {
                            skill: r.skill.clone(),
                            min_level: r.min_level,
                        })
                    }
                    model::EscalationAction::Overflow(q) => pb::escalation_step::Action::OverflowQueue(q.clone()),
                }),
            })
            .collect(),
        calendar: q.calendar.clone().unwrap_or_default(),
        closed: q
            .closed
            .iter()
            .map(|r| pb::ClosedRule {
                channel: r.channel.map_or(pb::Channel::Unspecified, channel_to_pb) as i32,
                action: match r.action {
                    model::ClosedAction::Hold => pb::ClosedAction::Hold,
                    model::ClosedAction::Overflow => pb::ClosedAction::Overflow,
                    model::ClosedAction::Refuse => pb::ClosedAction::Refuse,
                } as i32,
                overflow_queue: r.overflow_queue.clone(),
                message: r.message.clone(),
            })
            .collect(),
        service_level_counts_closed_time: q.service_level_counts_closed_time,
    }
}

/// A closed rule's channel and action; the engine checks the rest, naming `queue.closed[i]...`.
fn closed_rule_from_pb(i: usize, r: pb::ClosedRule) -> Result<model::ClosedRule, Status> {
    let channel = match pb::Channel::try_from(r.channel) {
        Ok(pb::Channel::Unspecified) => None,
        _ => Some(channel_from_pb(&format!("queue.closed[{i}].channel"), r.channel)?),
    };
    let action = match pb::ClosedAction::try_from(r.action) {
        Ok(pb::ClosedAction::Hold) => model::ClosedAction::Hold,
        Ok(pb::ClosedAction::Overflow) => model::ClosedAction::Overflow,
        Ok(pb::ClosedAction::Refuse) => model::ClosedAction::Refuse,
        Ok(pb::ClosedAction::Unspecified) => {
            return Err(Status::invalid_argument(format!(
                "queue.closed[{i}].action: is required (HOLD, OVERFLOW or REFUSE)"
            )));
        }
        Err(_) => {
            return Err(Status::invalid_argument(format!("queue.closed[{i}].action: unknown action {}", r.action)));
        }
    };
    Ok(model::ClosedRule { channel, action, overflow_queue: r.overflow_queue, message: r.message })
}

pub fn queue_spec_from_pb(q: pb::Queue) -> Result<model::QueueSpec, Status> {
    let mut channels = Vec::new();
    for (i, c) in q.channels.iter().enumerate() {
        let c = channel_from_pb(&format!("queue.channels[{i}]"), *c)?;
        if !channels.contains(&c) {
            channels.push(c);
        }
    }
    if channels.is_empty() {
        channels = Channel::ALL.to_vec();
    }
    let strategy = match pb::Strategy::try_from(q.strategy) {
        Ok(pb::Strategy::Unspecified | pb::Strategy::LongestIdle) => model::Strategy::LongestIdle,
        Ok(pb::Strategy::MostSkilled) => model::Strategy::MostSkilled,
        Ok(pb::Strategy::LeastOccupied) => model::Strategy::LeastOccupied,
        Err(_) => return Err(Status::invalid_argument(format!("queue.strategy: unknown strategy {}", q.strategy))),
    };
    let mut escalation = Vec::new();
    for (i, s) in q.escalation.into_iter().enumerate() {
        let action = match s.action {
            Some(pb::escalation_step::Action::DropSkill(k)) => model::EscalationAction::DropSkill(k),
            Some(pb::escalation_step::Action::LowerLevel(r)) => {
                model::EscalationAction::LowerLevel(model::Requirement { skill: r.skill, min_level: r.min_level })
            }
            Some(pb::escalation_step::Action::OverflowQueue(q)) => model::EscalationAction::Overflow(q),
            None => return Err(Status::invalid_argument(format!("queue.escalation[{i}]: an action is required"))),
        };
        escalation.push(model::EscalationStep { after_secs: s.after_secs, action });
    }
    let spec = model::QueueSpec {
        name: q.name,
        channels,
        requirements: q
            .requirements
            .into_iter()
            .map(|r| model::Requirement { skill: r.skill, min_level: r.min_level })
            .collect(),
        priority: q.priority,
        strategy,
        offer_timeout_secs: if q.offer_timeout_secs == 0 { 20 } else { q.offer_timeout_secs },
        wrap_up_secs: q.wrap_up_secs,
        service_level_secs: if q.service_level_secs == 0 { 20 } else { q.service_level_secs },
        escalation,
        calendar: Some(q.calendar).filter(|c| !c.is_empty()),
        closed: q.closed.into_iter().enumerate().map(|(i, r)| closed_rule_from_pb(i, r)).collect::<Result<_, _>>()?,
        service_level_counts_closed_time: q.service_level_counts_closed_time,
    };
    Ok(spec)
}

/// The last second a Timestamp may hold (9999-12-31T23:59:59Z); past it milliseconds overflow.
const MAX_SECONDS: i64 = 253_402_300_799;

/// A timestamp the caller may leave unset (0); before the epoch or after 9999 is refused, naming
/// the field.
pub(crate) fn optional_ms(field: &str, t: Option<prost_types::Timestamp>) -> Result<u64, Status> {
    match t {
        None => Ok(0),
        Some(t) if !(0..=MAX_SECONDS).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) => {
            Err(Status::invalid_argument(format!("{field}: is not a valid time")))
        }
        Some(t) => Ok(t.seconds as u64 * 1000 + t.nanos as u64 / 1_000_000),
    }
}
