//! The answer a customer gets on SMS or email while their queue is closed: the closed rule's
//! message, stored in the thread once per interaction and closed period (so one instance sends
//! it), then sent through the channel's reply path. A new contact the rule refuses then ends
//! (`end_reason` "closed"); without a message, or when the send fails for good, it waits.

use std::future::Future;

use switchboard_engine::Engine;
use tracing::warn;

use crate::channels::DeliveryError;
use crate::model::{Author, Channel, ClosedAction, Interaction, InteractionState, Message};

/// `vet`: the channel's refusal before anything is stored (an opted-out customer, too many SMS
/// segments); `deliver`: its reply path. Both take owned values: this path is rare, and owned
/// arguments keep the futures free of borrowed lifetimes.
pub(crate) async fn answer_if_closed<V, VF, D, DF>(
    engine: &Engine,
    channel: Channel,
    iid: &str,
    new: bool,
    vet: V,
    deliver: D,
) -> Result<(), String>
where
    V: FnOnce(Interaction, String) -> VF,
    VF: Future<Output = Result<(), String>>,
    D: FnOnce(Interaction, Message) -> DF,
    DF: Future<Output = Result<(), DeliveryError>>,
{
    let ix = engine.get_interaction(iid, true).await.map_err(|e| e.to_string())?;
    if ix.state != InteractionState::Queued {
        return Ok(());
    }
    let Some(answer) = engine.closed_rule(&ix.queue, channel).await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    if answer.message.is_empty() {
        return Ok(());
    }
    let text = answer.message_text();
    // The key guards against two instances; the thread against a key expired in a long closing.
    if ix.messages.iter().any(|m| m.author == Author::System && m.body == text) {
        return Ok(());
    }
    vet(ix.clone(), text.clone()).await?;
    let key = format!("closed-answer|{iid}|{}", answer.opens_at_ms.unwrap_or(0));
    let (msg, appended) = engine.append_system_message_once(iid, &text, &key).await.map_err(|e| e.to_string())?;
    if !appended {
        return Ok(());
    }
    let sent = match deliver(ix, msg).await {
        Ok(()) | Err(DeliveryError::Transient(_)) => true,
        Err(e) => {
            warn!(message = "After-hours answer not sent; the contact waits.", %channel, interaction = %iid, error = %e);
            false
        }
    };
    if sent && new && answer.action == ClosedAction::Refuse {
        engine.withdraw(iid, "closed").await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
