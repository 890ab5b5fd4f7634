//! Interactions: one customer contact on one channel, its state and its thread.

use std::collections::BTreeMap;

use crate::channel::Channel;
use crate::validate::{
    MAX_ADDRESS_LEN, MAX_ATTRIBUTE_LEN, MAX_ATTRIBUTES, MAX_BODY_LEN, MAX_SUBJECT_LEN, ValidationError, validate_id,
    validate_len, validate_line, validate_priority, validate_secs, validate_text,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InteractionState {
    Queued,
    Offered,
    Active,
    WrapUp,
    Completed,
    Abandoned,
    Transferred,
}

impl InteractionState {
    pub const ALL: [InteractionState; 7] = [
        InteractionState::Queued,
        InteractionState::Offered,
        InteractionState::Active,
        InteractionState::WrapUp,
        InteractionState::Completed,
        InteractionState::Abandoned,
        InteractionState::Transferred,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InteractionState::Queued => "queued",
            InteractionState::Offered => "offered",
            InteractionState::Active => "active",
            InteractionState::WrapUp => "wrap_up",
            InteractionState::Completed => "completed",
            InteractionState::Abandoned => "abandoned",
            InteractionState::Transferred => "transferred",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    Customer,
    Agent,
    System,
}

impl Author {
    pub fn as_str(self) -> &'static str {
        match self {
            Author::Customer => "customer",
            Author::Agent => "agent",
            Author::System => "system",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Author::Customer, Author::Agent, Author::System].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub seq: u64,
    pub author: Author,
    pub agent_id: String,
    pub body: String,
    pub sent_ms: u64,
    /// Agent replies on channels that report it (SMS): whether the customer got it.
    pub delivery: Option<crate::Delivery>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    pub id: String,
    pub channel: Channel,
    pub customer_address: String,
    pub subject: String,
    pub attributes: BTreeMap<String, String>,
    pub queue: String,
    pub priority: i32,
    pub state: InteractionState,
    pub agent_id: String,
    pub enqueued_ms: u64,
    pub timestamps: BTreeMap<String, u64>,
    pub stage: u32,
    pub disposition: String,
    pub notes: String,
    pub end_reason: String,
    pub messages: Vec<Message>,
    /// Offer expiry while offered.
    pub offer_expires_ms: Option<u64>,
    /// Counts offers of this interaction; tells a current offer from a stale one.
    pub offer_seq: u64,
    /// The agent who last transferred it away: offered it again only when nobody else is free.
    pub transferred_by: String,
    /// Agents it is never offered to again (they rejected it or let its offer time out). Read
    /// only where asked for ([`switchboard_engine::Engine::with_exclusions`]); empty otherwise.
    pub excluded_agents: Vec<String>,
    /// Set when the customer is to be called back rather than waiting on the line.
    pub callback: Option<crate::Callback>,
}

/// What a channel adapter or integration asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewInteraction {
    pub idempotency_key: String,
    pub channel: Option<Channel>,
    pub customer_address: String,
    pub subject: String,
    pub attributes: BTreeMap<String, String>,
    pub queue: String,
    pub priority: Option<i32>,
    pub body: String,
    pub preferred_agent_id: String,
    pub preferred_agent_wait_secs: u32,
    /// A callback from the start (an IVR's): the number to call and how.
    pub callback: Option<crate::CallbackPlan>,
    /// When the customer started waiting, if before now (an IVR's caller): the place in line it
    /// keeps. None: now.
    pub waiting_since_ms: Option<u64>,
}

impl NewInteraction {
    pub fn validate(&self) -> Result<Channel, ValidationError> {
        if !self.idempotency_key.is_empty() {
            validate_len("idempotency_key", &self.idempotency_key, 200)?;
        }
        let channel = self.channel.ok_or_else(|| ValidationError::new("channel", "is required"))?;
        if self.customer_address.is_empty() {
            return Err(ValidationError::new("customer_address", "is required"));
        }
        validate_line("customer_address", &self.customer_address, MAX_ADDRESS_LEN)?;
        validate_line("subject", &self.subject, MAX_SUBJECT_LEN)?;
        validate_id("queue", &self.queue)?;
        if let Some(p) = self.priority {
            validate_priority("priority", p)?;
        }
        validate_text("body", &self.body, MAX_BODY_LEN)?;
        if channel == Channel::Voice && !self.body.is_empty() {
            return Err(ValidationError::new("body", "voice interactions carry no messages"));
        }
        validate_attributes(&self.attributes)?;
        if !self.preferred_agent_id.is_empty() {
            validate_id("preferred_agent_id", &self.preferred_agent_id)?;
            validate_secs("preferred_agent_wait_secs", self.preferred_agent_wait_secs, 0)?;
        }
        Ok(channel)
    }
}

pub fn validate_attributes(attrs: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if attrs.len() > MAX_ATTRIBUTES {
        return Err(ValidationError::new("attributes", format!("at most {MAX_ATTRIBUTES} attributes")));
    }
    for (k, v) in attrs {
        if k.is_empty() || k.len() > 128 {
            return Err(ValidationError::new("attributes", format!("key {k:?} must be 1..=128 bytes")));
        }
        if k.chars().any(char::is_control) {
            return Err(ValidationError::new("attributes", format!("key {k:?} must not contain control characters")));
        }
        validate_text(&format!("attributes.{k}"), v, MAX_ATTRIBUTE_LEN)?;
    }
    Ok(())
}
