//! Agents: skills, capacity per channel, presence.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::validate::{
    MAX_CAPACITY, MAX_NAME_LEN, MAX_SKILLS, ValidationError, validate_id, validate_level, validate_line,
    validate_skill_name,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Capacity {
    pub voice: u32,
    pub chat: u32,
    pub sms: u32,
    pub email: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity { voice: 1, chat: 3, sms: 3, email: 5 }
    }
}

impl Capacity {
    pub fn get(&self, c: Channel) -> u32 {
        match c {
            Channel::Voice => self.voice,
            Channel::Chat => self.chat,
            Channel::Sms => self.sms,
            Channel::Email => self.email,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub skills: BTreeMap<String, u32>,
    #[serde(default)]
    pub capacity: Capacity,
    /// `None`: the global setting.
    #[serde(default)]
    pub cross_channel_blocking: Option<bool>,
    /// Desktop login token. Config files usually take it from the environment.
    #[serde(default)]
    pub token: String,
    /// The agent's phones as the telephony system names them (an extension, a SIP URI): call
    /// events naming a device are the agent's, and a call routed to the agent rings the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
}

/// The most phones one agent has.
pub const MAX_DEVICES: usize = 8;
/// The longest device name (a SIP URI with parameters fits).
pub const MAX_DEVICE_LEN: usize = 256;

impl AgentSpec {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_id("id", &self.id)?;
        validate_line("name", &self.name, MAX_NAME_LEN)?;
        if self.skills.len() > MAX_SKILLS {
            return Err(ValidationError::new("skills", format!("at most {MAX_SKILLS} skills")));
        }
        for (skill, level) in &self.skills {
            validate_skill_name(&format!("skills.{skill}"), skill)?;
            validate_level(&format!("skills.{skill}"), *level)?;
        }
        for c in Channel::ALL {
            let v = self.capacity.get(c);
            if v > MAX_CAPACITY {
                return Err(ValidationError::new(
                    format!("capacity.{c}"),
                    format!("must be at most {MAX_CAPACITY}, got {v}"),
                ));
            }
        }
        if self.token.len() > 256 {
            return Err(ValidationError::new("token", "must be at most 256 bytes"));
        }
        if self.devices.len() > MAX_DEVICES {
            return Err(ValidationError::new("devices", format!("at most {MAX_DEVICES}")));
        }
        for (i, d) in self.devices.iter().enumerate() {
            if d.trim().is_empty() || d.trim() != d || d.contains(char::is_whitespace) {
                return Err(ValidationError::new(format!("devices[{i}]"), "must be a name without spaces"));
            }
            validate_line(&format!("devices[{i}]"), d, MAX_DEVICE_LEN)?;
            if self.devices[..i].contains(d) {
                return Err(ValidationError::new(format!("devices[{i}]"), format!("{d:?} is listed twice")));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Offline,
    Ready,
    NotReady(String),
    WrapUp,
}

impl Presence {
    pub fn state_str(&self) -> &'static str {
        match self {
            Presence::Offline => "offline",
            Presence::Ready => "ready",
            Presence::NotReady(_) => "not_ready",
            Presence::WrapUp => "wrap_up",
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Presence::NotReady(r) => r,
            _ => "",
        }
    }

    pub fn from_parts(state: &str, reason: &str) -> Option<Presence> {
        Some(match state {
            "offline" => Presence::Offline,
            "ready" => Presence::Ready,
            "not_ready" => Presence::NotReady(reason.to_string()),
            "wrap_up" => Presence::WrapUp,
            _ => return None,
        })
    }
}
