//! Ring instructions for one telephony system, from the event log: every offer of one of its calls
//! ("ring agent X for call Y now"), and every offer withdrawn before the phone was answered
//! (rejected on the desktop, rung out, moved by a supervisor, the agent logged out). The API layer
//! follows the instance's shared tail of the log and asks [`Voice::instructions`] what each batch
//! means for a system.

use std::collections::HashMap;

use switchboard_engine::LoggedEvent;

use super::{ATTR_CALL, ATTR_SYSTEM, Result, Ring, Voice, route_id};
use crate::model::{Channel, EventKind, Interaction, InteractionState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Ring { call_id: String, interaction_id: String, ring: Ring },
    Cancel { call_id: String, interaction_id: String, agent_id: String, device: String, reason: String },
}

fn is_voice_offer(e: &LoggedEvent) -> bool {
    e.kind() == Some(EventKind::Offered)
        && serde_json::from_str::<serde_json::Value>(&e.details)
            .ok()
            .and_then(|d| d.get("channel").and_then(|c| c.as_str()).map(|c| c == Channel::Voice.as_str()))
            .unwrap_or(false)
}

fn is_withdrawal(e: &LoggedEvent) -> bool {
    matches!(e.kind(), Some(EventKind::Rejected | EventKind::Missed | EventKind::Revoked))
}

fn detail(e: &LoggedEvent, key: &str) -> Option<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&e.details).ok()?.get(key).cloned()
}

impl Voice {
    /// What a batch of the log means for `system`'s platform, in log order.
    pub async fn instructions(&self, system: &str, batch: &[LoggedEvent]) -> Result<Vec<Instruction>> {
        let relevant: Vec<&LoggedEvent> =
            batch.iter().filter(|e| !e.interaction_id.is_empty() && (is_voice_offer(e) || is_withdrawal(e))).collect();
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
            let call_id = ix.attributes.get(ATTR_CALL).cloned().unwrap_or_default();
            if !devices.contains_key(&e.agent_id) {
                devices.insert(e.agent_id.clone(), self.device_of(&e.agent_id).await?);
            }
            let device = devices[&e.agent_id].clone();
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
                let reason =
                    detail(e, "reason").and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| e.typ.clone());
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
