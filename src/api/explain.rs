//! `Supervisor.ExplainInteraction` and `ExplainAgent`: the engine's explanations as protobuf,
//! with their plain-words summaries.

use switchboard_engine::{AgentExplanation, InteractionExplanation};

use super::pb;
use super::{channel_to_pb, interaction_to_pb, presence_to_pb, ts};
use crate::model::explain::{Decision, Passed, WaitingNow, agent_summary};
use crate::model::{EscalationAction, InteractionState};

fn decision_to_pb(d: &Decision) -> pb::RoutingDecision {
    let (queue, stage) = d.queue_stage().map_or((String::new(), 0), |(q, s)| (q.to_string(), s));
    pb::RoutingDecision {
        at: Some(ts(d.at)),
        via: serde_json::to_value(d.via).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        agent_id: d.agent.clone(),
        queue,
        stage,
        strategy: d.strategy.clone().unwrap_or_default(),
        skill: d.skill,
        occupancy_permille: d.occupancy,
        idle_since: d.idle_since.filter(|t| *t > 0).map(ts),
        considered: d.considered.unwrap_or(0),
        eligible: d.eligible.unwrap_or(0),
        priority: d.priority.unwrap_or(0),
        enqueued: d.enqueued.filter(|t| *t > 0).map(ts),
        pools: d.pools.unwrap_or(0),
        candidates: d.candidates.unwrap_or(0),
        passed: d.passed.iter().map(passed_to_pb).collect(),
    }
}

fn passed_to_pb(p: &Passed) -> pb::PassedOver {
    let (queue, stage) = p
        .pool
        .as_deref()
        .and_then(|pool| pool.rsplit_once('#'))
        .map_or((String::new(), 0), |(q, s)| (q.to_string(), s.parse().unwrap_or(0)));
    pb::PassedOver {
        agent_id: p.agent.clone().unwrap_or_default(),
        interaction_id: p.ix.clone().unwrap_or_default(),
        why: p.why.clone(),
        skill: p.skill,
        occupancy_permille: p.occupancy,
        idle_since: p.idle_since.filter(|t| *t > 0).map(ts),
        queue,
        stage,
        priority: p.priority.unwrap_or(0),
        enqueued: p.enqueued.filter(|t| *t > 0).map(ts),
    }
}

fn waiting_to_pb(w: &WaitingNow) -> pb::WaitingExplanation {
    pb::WaitingExplanation {
        stage: w.stage,
        requirements: w.requirements.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        candidates: w
            .candidates
            .iter()
            .map(|c| pb::CandidateAgent { agent_id: c.agent_id.clone(), standing: c.standing.as_str().into() })
            .collect(),
        counts: w.counts().into_iter().map(|(s, n)| (s.as_str().to_string(), n)).collect(),
        ahead: w.ahead,
        queue_closed: w.closed.is_some(),
        opens: w.closed.flatten().map(ts),
        not_before: w.not_before_ms.map(ts),
        named_agent_id: w.named_agent.clone().unwrap_or_default(),
        next_step: w.next_step.as_ref().map(|n| {
            let (action, skill, min_level, overflow_queue) = match &n.action {
                EscalationAction::DropSkill(s) => ("drop_skill", s.clone(), 0, String::new()),
                EscalationAction::LowerLevel(r) => ("lower_level", r.skill.clone(), r.min_level, String::new()),
                EscalationAction::Overflow(q) => ("overflow", String::new(), 0, q.clone()),
            };
            pb::NextEscalationStep {
                at: Some(ts(n.at_ms)),
                action: action.into(),
                skill,
                min_level,
                overflow_queue,
                eligible_after: n.eligible_after,
            }
        }),
    }
}

pub fn interaction_explanation_to_pb(e: &InteractionExplanation) -> pb::InteractionExplanation {
    let ix = &e.interaction;
    let mut summary = Vec::new();
    match ix.state {
        InteractionState::Queued => {
            if let Some(w) = &e.waiting {
                summary.extend(w.summary(ix.channel, e.now_ms));
            }
        }
        InteractionState::Offered => summary.push(match ix.offer_expires_ms {
            Some(t) => format!(
                "Offered to {}; the offer runs out in {}.",
                ix.agent_id,
                crate::model::explain::span(t.saturating_sub(e.now_ms))
            ),
            None => format!("Offered to {}.", ix.agent_id),
        }),
        InteractionState::Active => summary.push(format!("With {}.", ix.agent_id)),
        InteractionState::WrapUp => summary.push(format!("{} is wrapping it up.", ix.agent_id)),
        _ => summary.push(format!("Ended ({}).", state_word(ix.state))),
    }
    if let Some(d) = e.decisions.last() {
        summary.push(format!("Last decision: {}", d.describe()));
    } else if ix.state == InteractionState::Queued {
        summary.push("Not offered to anyone yet.".into());
    }
    pb::InteractionExplanation {
        interaction: Some(interaction_to_pb(ix)),
        decisions: e.decisions.iter().map(decision_to_pb).collect(),
        waiting: e.waiting.as_ref().map(waiting_to_pb),
        summary,
        now: Some(ts(e.now_ms)),
    }
}

fn state_word(s: InteractionState) -> &'static str {
    match s {
        InteractionState::Completed => "completed",
        InteractionState::Abandoned => "abandoned",
        _ => "ended",
    }
}

/// `queues`: the queues the caller may see (None: all).
pub fn agent_explanation_to_pb(
    e: &AgentExplanation,
    queues: Option<&std::collections::HashSet<String>>,
) -> pb::AgentExplanation {
    let pools: Vec<_> = e.queues.iter().filter(|p| queues.is_none_or(|q| q.contains(&p.queue))).cloned().collect();
    let presence = e.facts.presence.clone().unwrap_or(crate::model::Presence::Offline);
    let p = presence_to_pb(&presence);
    pb::AgentExplanation {
        agent_id: e.agent_id.clone(),
        presence: p.state,
        presence_reason: p.reason,
        connected: e.facts.connected,
        phone: e.facts.phone.clone(),
        channels: e
            .standing
            .iter()
            .map(|(ch, st)| pb::ChannelStanding {
                channel: channel_to_pb(*ch) as i32,
                load: e.facts.load.get(ch).copied().unwrap_or(0),
                capacity: e.facts.capacity.get(ch).copied().unwrap_or(0),
                standing: st.as_str().into(),
            })
            .collect(),
        queues: pools
            .iter()
            .map(|p| pb::QueueStanding {
                queue: p.queue.clone(),
                stage: p.stage,
                lacks: p.lacks.clone(),
                closed: p.closed,
                channels: p
                    .channels
                    .iter()
                    .map(|(ch, waiting, st)| pb::QueueChannel {
                        channel: channel_to_pb(*ch) as i32,
                        waiting: *waiting,
                        standing: st.as_str().into(),
                    })
                    .collect(),
            })
            .collect(),
        summary: agent_summary(&e.facts, &pools),
        now: Some(ts(e.now_ms)),
    }
}
