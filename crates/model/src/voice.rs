//! Calls as telephony systems report them (the CTI hook), in the routing core's terms: a call is
//! a voice interaction; what happens to it on the phone moves the interaction.

use std::collections::BTreeMap;

use crate::validate::{ValidationError, validate_line};

/// What a telephony system reports about a call after it reached a routing point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallUpdate {
    /// The call rings at the agent's phone.
    Ringing,
    /// The agent's phone answered: the offer is accepted.
    Answered,
    Held,
    Retrieved,
    /// The agent's phone did not take the call: back to the queue, never to this agent again.
    RingFailed(RingFailure),
    /// Hung up. Waiting or ringing: abandoned. Talking: after-call work, then completed.
    Released {
        cause: String,
        by: HungUpBy,
    },
    /// The caller gave up while waiting or ringing.
    Abandoned {
        cause: String,
    },
    /// Moved on the phone to a queue or an agent (a blind transfer) by the agent holding it.
    Transferred {
        to: TransferTo,
        attended: bool,
    },
    Conferenced,
}

impl CallUpdate {
    /// The name the engine and the log use.
    pub fn kind(&self) -> &'static str {
        match self {
            CallUpdate::Ringing => "ringing",
            CallUpdate::Answered => "answered",
            CallUpdate::Held => "held",
            CallUpdate::Retrieved => "retrieved",
            CallUpdate::RingFailed(_) => "ring_failed",
            CallUpdate::Released { .. } => "released",
            CallUpdate::Abandoned { .. } => "abandoned",
            CallUpdate::Transferred { .. } => "transferred",
            CallUpdate::Conferenced => "conferenced",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingFailure {
    /// Rang out (the agent goes not ready, as for a missed offer).
    NoAnswer,
    /// The phone was busy or declined.
    Busy,
    /// Not registered, unreachable, or any other failure to ring.
    Unreachable,
}

impl RingFailure {
    pub fn as_str(&self) -> &'static str {
        match self {
            RingFailure::NoAnswer => "no_answer",
            RingFailure::Busy => "busy",
            RingFailure::Unreachable => "unreachable",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HungUpBy {
    Caller,
    Agent,
    Unknown,
}

impl HungUpBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HungUpBy::Caller => "caller",
            HungUpBy::Agent => "agent",
            HungUpBy::Unknown => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTo {
    Queue(String),
    Agent(String),
    /// A number outside Switchboard (the call leaves).
    External(String),
}

/// An agent's phone, as the telephony system sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneState {
    Registered,
    Unregistered,
    /// Do not disturb.
    Dnd,
    /// On a call Switchboard did not route.
    Busy,
}

impl PhoneState {
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneState::Registered => "registered",
            PhoneState::Unregistered => "unregistered",
            PhoneState::Dnd => "dnd",
            PhoneState::Busy => "busy",
        }
    }
}

/// The most user-data entries a call carries, and their sizes.
pub const MAX_USER_DATA: usize = 50;
pub const MAX_USER_DATA_KEY: usize = 64;
pub const MAX_USER_DATA_VALUE: usize = 1024;

/// Free-form data a telephony system attaches to a call (IVR choices, an account number).
pub fn validate_user_data(field: &str, data: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if data.len() > MAX_USER_DATA {
        return Err(ValidationError::new(field, format!("at most {MAX_USER_DATA} entries")));
    }
    for (k, v) in data {
        if k.is_empty() {
            return Err(ValidationError::new(field, "an empty key"));
        }
        validate_line(&format!("{field}.{k}"), k, MAX_USER_DATA_KEY)?;
        validate_line(&format!("{field}.{k}"), v, MAX_USER_DATA_VALUE)?;
    }
    Ok(())
}
