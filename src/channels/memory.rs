//! An in-process channel: replies are kept in memory and broadcast to subscribers. It proves the
//! outbound path end to end (tests, demos, embedding Switchboard as a library).

use std::sync::Mutex;

use tokio::sync::broadcast;

use super::{DeliveryError, OutboundChannel};
use crate::model::{Channel, Interaction, Message};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub interaction_id: String,
    pub customer_address: String,
    pub seq: u64,
    pub body: String,
}

pub struct MemoryChannel {
    channel: Channel,
    delivered: Mutex<Vec<Delivered>>,
    tx: broadcast::Sender<Delivered>,
    fail_with: Mutex<Option<String>>,
}

impl MemoryChannel {
    pub fn new(channel: Channel) -> Self {
        MemoryChannel {
            channel,
            delivered: Mutex::new(Vec::new()),
            tx: broadcast::channel(1024).0,
            fail_with: Mutex::new(None),
        }
    }

    pub fn delivered(&self) -> Vec<Delivered> {
        self.delivered.lock().expect("lock").clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Delivered> {
        self.tx.subscribe()
    }

    /// Make the next deliveries fail permanently (None: succeed again).
    pub fn fail_with(&self, reason: Option<&str>) {
        *self.fail_with.lock().expect("lock") = reason.map(String::from);
    }
}

#[async_trait::async_trait]
impl OutboundChannel for MemoryChannel {
    fn channel(&self) -> Channel {
        self.channel
    }

    async fn deliver(&self, interaction: &Interaction, message: &Message) -> Result<(), DeliveryError> {
        if let Some(reason) = self.fail_with.lock().expect("lock").clone() {
            return Err(DeliveryError::Permanent(reason));
        }
        let d = Delivered {
            interaction_id: interaction.id.clone(),
            customer_address: interaction.customer_address.clone(),
            seq: message.seq,
            body: message.body.clone(),
        };
        self.delivered.lock().expect("lock").push(d.clone());
        let _ = self.tx.send(d);
        Ok(())
    }
}
