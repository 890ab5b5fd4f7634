//! Channel adapters. An adapter only creates interactions, appends customer messages (both through
//! the same API the gRPC `Interactions` service uses) and delivers agent replies through
//! [`OutboundChannel`]. One module per adapter.

pub mod after_hours;
pub mod email;
pub mod memory;
pub mod sms;
pub mod voice;
pub mod webchat;

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Channel, Interaction, Message};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying later (connection lost, 4xx from SMTP, ...).
    #[error("temporary delivery failure: {0}")]
    Transient(String),
    /// Will not succeed as is (unknown recipient, rejected content, ...).
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

/// Why a reply may not be sent at all; said to the agent before the reply is stored.
#[derive(Debug, thiserror::Error)]
pub enum VetError {
    /// The reply itself is wrong (too long for the channel).
    #[error("{0}")]
    Invalid(String),
    /// The conversation does not allow it (the customer opted out).
    #[error("{0}")]
    Refused(String),
    /// Could not be checked now.
    #[error("{0}")]
    Unavailable(String),
}

/// Delivers agent replies to the customer on one channel.
#[async_trait::async_trait]
pub trait OutboundChannel: Send + Sync {
    fn channel(&self) -> Channel;
    /// Checks a reply before it is stored; most channels take any.
    async fn vet(&self, _interaction: &Interaction, _body: &str) -> Result<(), VetError> {
        Ok(())
    }
    async fn deliver(&self, interaction: &Interaction, message: &Message) -> Result<(), DeliveryError>;
}

/// The adapters of this instance, by channel. A channel without an adapter keeps replies in the
/// interaction's thread only (voice, or a deployment that reads threads through the API).
#[derive(Clone, Default)]
pub struct Channels {
    by_channel: HashMap<Channel, Arc<dyn OutboundChannel>>,
}

impl Channels {
    pub fn with(mut self, adapter: Arc<dyn OutboundChannel>) -> Self {
        self.by_channel.insert(adapter.channel(), adapter);
        self
    }

    pub async fn vet(&self, interaction: &Interaction, body: &str) -> Result<(), VetError> {
        match self.by_channel.get(&interaction.channel) {
            Some(a) => a.vet(interaction, body).await,
            None => Ok(()),
        }
    }

    pub async fn deliver(&self, interaction: &Interaction, message: &Message) -> Result<(), DeliveryError> {
        match self.by_channel.get(&interaction.channel) {
            Some(a) => {
                let r = a.deliver(interaction, message).await;
                let outcome = if r.is_ok() { "ok" } else { "error" };
                metrics::counter!("switchboard_replies_delivered_total", "channel" => interaction.channel.as_str(), "outcome" => outcome)
                    .increment(1);
                r
            }
            None => {
                tracing::debug!(message = "No outbound adapter; reply kept in the thread.", channel = %interaction.channel);
                Ok(())
            }
        }
    }
}
