//! Ring instructions for one telephony system, from the event log: every offer of one of its calls
//! ("ring agent X for call Y now"), and every offer withdrawn before the phone was answered
//! (rejected on the desktop, rung out, moved by a supervisor, the agent logged out), and every
//! callback an agent accepted ("dial the customer from this phone"). The API layer
//! follows the instance's shared tail of the log and asks [`Voice::instructions`] what each batch
//! means for a system.

use std::collections::HashMap;

use switchboard_engine::LoggedEvent;

use super::{ATTR_CALL, ATTR_SYSTEM, Result, Ring, Voice, route_id};
use crate::model::{Channel, EventKind, Interaction, InteractionState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Ring {
        call_id: String,
        interaction_id: String,
        ring: Ring,
    },
    Cancel {
        call_id: String,
        interaction_id: String,
        agent_id: String,
        device: String,
        reason: String,
    },
    /// Place a callback's call: from the agent's device to the customer, under `call_id` (ours).
    Dial {
        call_id: String,
        interaction_id: String,
        dial: Dial,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub agent_id: String,
    pub device: String,
    pub number: String,
    pub route_id: String,
    pub attempt: u32,
    pub max_attempts: u32,
    /// The number the customer first called, if they did.
    pub dialled: String,
}

/// A voice offer rings a phone; a callback's does not (the agent accepts it on the desktop).
fn is_voice_offer(e: &LoggedEvent) -> bool {
    e.kind() == Some(EventKind::Offered)
        && serde_json::from_str::<serde_json::Value>(&e.details)
            .ok()
            .map(|d| {
                d.get("channel").and_then(|c| c.as_str()) == Some(Channel::Voice.as_str())
                    && d.get("callback").is_none_or(serde_json::Value::is_null)
            })
            .unwrap_or(false)
}

fn is_withdrawal(e: &LoggedEvent) -> bool {
    matches!(e.kind(), Some(EventKind::Rejected | EventKind::Missed | EventKind::Revoked))
}

fn is_dial(e: &LoggedEvent) -> bool {
    e.kind() == Some(EventKind::Dialing)
}

fn detail(e: &LoggedEvent, key: &str) -> Option<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&e.details).ok()?.get(key).cloned()
}

impl Voice {
    /// What a batch of the log means for `system`'s platform, in log order.
    pub async fn instructions(&self, system: &str, batch: &[LoggedEvent]) -> Result<Vec<Instruction>> {
        let relevant: Vec<&LoggedEvent> = batch
            .iter()
            .filter(|e| !e.interaction_id.is_empty() && (is_voice_offer(e) || is_withdrawal(e) || is_dial(e)))
            .collect();
        if relevant.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<String> = relevant.iter().map(|e| e.interaction_id.clone()).collect();
        ids.sort();
        ids.dedup();
        let found = self.engine.interactions(&ids, false).await?;
        let calls: HashMap<String, Interaction> = ids
            .into_iter()
            .zip(found)
            .filter_map(|(id, ix)| ix.map(|ix| (id, ix)))
            .filter(|(_, ix)| {
                ix.channel == Channel::Voice && ix.attributes.get(ATTR_SYSTEM).is_some_and(|s| s == system)
            })
            .collect();
        let mut devices: HashMap<String, String> = HashMap::new();
        let mut out = Vec::new();
        for e in relevant {
            let Some(ix) = calls.get(&e.interaction_id) else { continue };
            // A callback's live call is the attempt being dialled, ours; a call's is the platform's.
            let call_id = match &ix.callback {
                Some(cb) if !cb.call_id.is_empty() => cb.call_id.clone(),
                _ => ix.attributes.get(ATTR_CALL).cloned().unwrap_or_default(),
            };
            let connected = ix.callback.as_ref().is_some_and(|cb| cb.connected_ms > 0);
            if !devices.contains_key(&e.agent_id) {
                devices.insert(e.agent_id.clone(), self.device_of(&e.agent_id).await?);
            }
            let device = devices[&e.agent_id].clone();
            if is_dial(e) {
                let text = |k: &str| detail(e, k).and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
                let count = |k: &str| detail(e, k).and_then(|v| v.as_u64()).unwrap_or(0) as u32;
                let dial = Dial {
                    agent_id: e.agent_id.clone(),
                    device,
                    number: text("number"),
                    route_id: text("route"),
                    attempt: count("attempt"),
                    max_attempts: count("max_attempts"),
                    dialled: ix.attributes.get(super::ATTR_DIALLED).cloned().unwrap_or_default(),
                };
                out.push(Instruction::Dial { call_id: text("call_id"), interaction_id: ix.id.clone(), dial });
                continue;
            }
            let reason =
                detail(e, "reason").and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| e.typ.clone());
            // A callback's offer rang no phone: there is nothing to stop, unless it was a call
            // ringing when the caller asked for the callback.
            if !is_voice_offer(e) && ix.callback.is_some() && !connected && reason != "callback" {
                continue;
            }
            if is_voice_offer(e) {
                let seq = detail(e, "seq").and_then(|v| v.as_u64()).unwrap_or(0);
                // An offer answered, withdrawn or superseded since is not rung.
                let current = ix.offer_seq == seq && ix.state == InteractionState::Offered;
                if !current {
                    continue;
                }
                let ring_until_ms = detail(e, "expires").and_then(|v| v.as_u64()).unwrap_or(0);
                let ring =
                    Ring { agent_id: e.agent_id.clone(), device, route_id: route_id(&ix.id, seq), ring_until_ms };
                out.push(Instruction::Ring { call_id, interaction_id: ix.id.clone(), ring });
            } else {
                out.push(Instruction::Cancel {
                    call_id,
                    interaction_id: ix.id.clone(),
                    agent_id: e.agent_id.clone(),
                    device,
                    reason,
                });
            }
        }
        Ok(out)
    }
}
