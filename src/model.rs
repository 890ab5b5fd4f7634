//! Domain types shared by every layer: channels, agents, queues, interactions, presence.
//!
//! Pure data and validation; no I/O. Validation errors name the offending field so the API
//! and the config loader can hand them to users unchanged.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Highest priority accepted; a waiting interaction's score folds priority and age into one number.
pub const MAX_PRIORITY: i32 = 1000;
pub const MAX_LEVEL: u32 = 10;
/// Genesys allows up to 25 per media type; more than that is a configuration mistake.
pub const MAX_CAPACITY: u32 = 25;
pub const MAX_ID_LEN: usize = 64;
pub const MAX_NAME_LEN: usize = 200;
pub const MAX_SUBJECT_LEN: usize = 1_000;
pub const MAX_ADDRESS_LEN: usize = 320;
pub const MAX_BODY_LEN: usize = 64 * 1024;
pub const MAX_ATTRIBUTES: usize = 64;
pub const MAX_ATTRIBUTE_LEN: usize = 1_024;
pub const MAX_SKILLS: usize = 100;
pub const MAX_ESCALATION_STEPS: usize = 20;
pub const MAX_TIMEOUT_SECS: u32 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Voice,
    Chat,
    Sms,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Voice, Channel::Chat, Channel::Sms, Channel::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Voice => "voice",
            Channel::Chat => "chat",
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
}

impl AgentSpec {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_id("id", &self.id)?;
        validate_len("name", &self.name, MAX_NAME_LEN)?;
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
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    LongestIdle,
    MostSkilled,
    LeastOccupied,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest_idle",
            Strategy::MostSkilled => "most_skilled",
            Strategy::LeastOccupied => "least_occupied",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        [Strategy::LongestIdle, Strategy::MostSkilled, Strategy::LeastOccupied].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub skill: String,
    pub min_level: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EscalationAction {
    DropSkill(String),
    LowerLevel(Requirement),
    Overflow(String),
}

// No deny_unknown_fields here: serde does not support it together with `flatten`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationStep {
    pub after_secs: u32,
    #[serde(flatten)]
    pub action: EscalationAction,
}

fn default_offer_timeout() -> u32 {
    20
}
fn default_sl() -> u32 {
    20
}
fn default_channels() -> Vec<Channel> {
    Channel::ALL.to_vec()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    pub name: String,
    #[serde(default = "default_channels")]
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default = "default_offer_timeout")]
    pub offer_timeout_secs: u32,
    #[serde(default)]
    pub wrap_up_secs: u32,
    #[serde(default = "default_sl")]
    pub service_level_secs: u32,
    #[serde(default)]
    pub escalation: Vec<EscalationStep>,
}

/// One escalation transition as the Redis scripts run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompiledStep {
    pub at_ms: u64,
    /// Stage the interaction moves to (relaxing steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
    /// Queue the interaction overflows to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overflow: Option<String>,
}

impl QueueSpec {
    pub fn new(name: impl Into<String>) -> Self {
        QueueSpec {
            name: name.into(),
            channels: default_channels(),
            requirements: Vec::new(),
            priority: 0,
            strategy: Strategy::LongestIdle,
            offer_timeout_secs: default_offer_timeout(),
            wrap_up_secs: 0,
            service_level_secs: default_sl(),
            escalation: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_id("name", &self.name)?;
        if self.channels.is_empty() {
            return Err(ValidationError::new("channels", "at least one channel is required"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.requirements.iter().enumerate() {
            let f = format!("requirements[{i}]");
            validate_skill_name(&format!("{f}.skill"), &r.skill)?;
            validate_level(&format!("{f}.min_level"), r.min_level)?;
            if !seen.insert(r.skill.as_str()) {
                return Err(ValidationError::new(format!("{f}.skill"), format!("skill {:?} is listed twice", r.skill)));
            }
        }
        validate_priority("priority", self.priority)?;
        validate_secs("offer_timeout_secs", self.offer_timeout_secs, 1)?;
        validate_secs("wrap_up_secs", self.wrap_up_secs, 0)?;
        validate_secs("service_level_secs", self.service_level_secs, 1)?;
        if self.escalation.len() > MAX_ESCALATION_STEPS {
            return Err(ValidationError::new("escalation", format!("at most {MAX_ESCALATION_STEPS} steps")));
        }
        let mut reqs: BTreeMap<&str, u32> = self.requirements.iter().map(|r| (r.skill.as_str(), r.min_level)).collect();
        let mut last_after = None;
        for (i, step) in self.escalation.iter().enumerate() {
            let f = format!("escalation[{i}]");
            validate_secs(&format!("{f}.after_secs"), step.after_secs, 1)?;
            if let Some(prev) = last_after
                && step.after_secs <= prev
            {
                return Err(ValidationError::new(
                    format!("{f}.after_secs"),
                    format!("must be greater than the previous step's {prev}"),
                ));
            }
            last_after = Some(step.after_secs);
            match &step.action {
                EscalationAction::DropSkill(skill) => {
                    if reqs.remove(skill.as_str()).is_none() {
                        return Err(ValidationError::new(
                            format!("{f}.drop_skill"),
                            format!("skill {skill:?} is not required at that point"),
                        ));
                    }
                }
                EscalationAction::LowerLevel(r) => {
                    validate_level(&format!("{f}.lower_level.min_level"), r.min_level)?;
                    match reqs.get_mut(r.skill.as_str()) {
                        None => {
                            return Err(ValidationError::new(
                                format!("{f}.lower_level.skill"),
                                format!("skill {:?} is not required at that point", r.skill),
                            ));
                        }
                        Some(cur) if r.min_level >= *cur => {
                            return Err(ValidationError::new(
                                format!("{f}.lower_level.min_level"),
                                format!("must be lower than the current minimum {cur}"),
                            ));
                        }
                        Some(cur) => *cur = r.min_level,
                    }
                }
                EscalationAction::Overflow(target) => {
                    validate_id(&format!("{f}.overflow"), target)?;
                    if target == &self.name {
                        return Err(ValidationError::new(format!("{f}.overflow"), "a queue cannot overflow to itself"));
                    }
                    if i + 1 != self.escalation.len() {
                        return Err(ValidationError::new(
                            format!("{f}.overflow"),
                            "overflow must be the last escalation step",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Requirements at each escalation stage; stage 0 is the queue's own requirements.
    pub fn stage_requirements(&self) -> Vec<BTreeMap<String, u32>> {
        let mut cur: BTreeMap<String, u32> = self.requirements.iter().map(|r| (r.skill.clone(), r.min_level)).collect();
        let mut out = vec![cur.clone()];
        for step in &self.escalation {
            match &step.action {
                EscalationAction::DropSkill(s) => {
                    cur.remove(s);
                }
                EscalationAction::LowerLevel(r) => {
                    cur.insert(r.skill.clone(), r.min_level);
                }
                EscalationAction::Overflow(_) => continue,
            }
            out.push(cur.clone());
        }
        out
    }

    pub fn compiled_steps(&self) -> Vec<CompiledStep> {
        let mut stage = 0;
        self.escalation
            .iter()
            .map(|s| {
                let at_ms = u64::from(s.after_secs) * 1000;
                match &s.action {
                    EscalationAction::Overflow(q) => CompiledStep { at_ms, stage: None, overflow: Some(q.clone()) },
                    _ => {
                        stage += 1;
                        CompiledStep { at_ms, stage: Some(stage), overflow: None }
                    }
                }
            })
            .collect()
    }
}

/// Does an agent with `skills` meet `reqs`? Also used to compute an agent's pools.
pub fn meets(skills: &BTreeMap<String, u32>, reqs: &BTreeMap<String, u32>) -> bool {
    reqs.iter().all(|(s, min)| skills.get(s).is_some_and(|l| l >= min))
}

/// Sum of the agent's levels on the required skills: the "most skilled" ranking.
pub fn skill_score(skills: &BTreeMap<String, u32>, reqs: &BTreeMap<String, u32>) -> u32 {
    reqs.keys().filter_map(|s| skills.get(s)).sum()
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
    /// only where asked for ([`crate::store::Store::with_exclusions`]); empty otherwise.
    pub excluded_agents: Vec<String>,
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
        validate_len("customer_address", &self.customer_address, MAX_ADDRESS_LEN)?;
        validate_len("subject", &self.subject, MAX_SUBJECT_LEN)?;
        validate_id("queue", &self.queue)?;
        if let Some(p) = self.priority {
            validate_priority("priority", p)?;
        }
        validate_len("body", &self.body, MAX_BODY_LEN)?;
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
        validate_len(&format!("attributes.{k}"), v, MAX_ATTRIBUTE_LEN)?;
    }
    Ok(())
}

pub fn validate_id(field: &str, v: &str) -> Result<(), ValidationError> {
    if v.is_empty() {
        return Err(ValidationError::new(field, "is required"));
    }
    if v.len() > MAX_ID_LEN {
        return Err(ValidationError::new(field, format!("must be at most {MAX_ID_LEN} bytes, got {}", v.len())));
    }
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@')) {
        return Err(ValidationError::new(field, format!("{v:?} may only contain letters, digits, '-', '_', '.', '@'")));
    }
    Ok(())
}

pub fn validate_skill_name(field: &str, v: &str) -> Result<(), ValidationError> {
    validate_id(field, v)
}

pub fn validate_level(field: &str, level: u32) -> Result<(), ValidationError> {
    if !(1..=MAX_LEVEL).contains(&level) {
        return Err(ValidationError::new(field, format!("level must be 1..={MAX_LEVEL}, got {level}")));
    }
    Ok(())
}

pub fn validate_priority(field: &str, p: i32) -> Result<(), ValidationError> {
    if !(0..=MAX_PRIORITY).contains(&p) {
        return Err(ValidationError::new(field, format!("must be 0..={MAX_PRIORITY}, got {p}")));
    }
    Ok(())
}

pub fn validate_secs(field: &str, v: u32, min: u32) -> Result<(), ValidationError> {
    if v < min || v > MAX_TIMEOUT_SECS {
        return Err(ValidationError::new(field, format!("must be {min}..={MAX_TIMEOUT_SECS} seconds, got {v}")));
    }
    Ok(())
}

pub fn validate_len(field: &str, v: &str, max: usize) -> Result<(), ValidationError> {
    if v.len() > max {
        return Err(ValidationError::new(field, format!("must be at most {max} bytes, got {}", v.len())));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // scenario tables
mod tests {
    use super::*;

    fn q() -> QueueSpec {
        let mut q = QueueSpec::new("sales");
        q.requirements = vec![
            Requirement { skill: "english".into(), min_level: 5 },
            Requirement { skill: "billing".into(), min_level: 8 },
        ];
        q
    }

    #[test]
    fn stages_apply_steps_in_order() {
        let mut q = q();
        q.escalation = vec![
            EscalationStep {
                after_secs: 30,
                action: EscalationAction::LowerLevel(Requirement { skill: "billing".into(), min_level: 4 }),
            },
            EscalationStep { after_secs: 60, action: EscalationAction::DropSkill("billing".into()) },
            EscalationStep { after_secs: 120, action: EscalationAction::Overflow("general".into()) },
        ];
        q.validate().unwrap();
        let st = q.stage_requirements();
        assert_eq!(st.len(), 3);
        assert_eq!(st[0]["billing"], 8);
        assert_eq!(st[1]["billing"], 4);
        assert!(!st[2].contains_key("billing"));
        assert_eq!(st[2]["english"], 5);
        let steps = q.compiled_steps();
        assert_eq!(steps[0].stage, Some(1));
        assert_eq!(steps[1].stage, Some(2));
        assert_eq!(steps[2].overflow.as_deref(), Some("general"));
        assert_eq!(steps[2].at_ms, 120_000);
    }

    #[test]
    fn invalid_queues_name_the_field() {
        let cases: Vec<(Box<dyn Fn(&mut QueueSpec)>, &str)> = vec![
            (Box::new(|q| q.name = String::new()), "name"),
            (Box::new(|q| q.name = "a b".into()), "name"),
            (Box::new(|q| q.channels.clear()), "channels"),
            (Box::new(|q| q.requirements[0].min_level = 11), "requirements[0].min_level"),
            (Box::new(|q| q.requirements[1].skill = "english".into()), "requirements[1].skill"),
            (Box::new(|q| q.priority = -1), "priority"),
            (Box::new(|q| q.offer_timeout_secs = 0), "offer_timeout_secs"),
            (
                Box::new(|q| {
                    q.escalation =
                        vec![EscalationStep { after_secs: 5, action: EscalationAction::DropSkill("french".into()) }];
                }),
                "escalation[0].drop_skill",
            ),
            (
                Box::new(|q| {
                    q.escalation = vec![
                        EscalationStep { after_secs: 5, action: EscalationAction::DropSkill("english".into()) },
                        EscalationStep { after_secs: 5, action: EscalationAction::DropSkill("billing".into()) },
                    ];
                }),
                "escalation[1].after_secs",
            ),
            (
                Box::new(|q| {
                    q.escalation = vec![
                        EscalationStep { after_secs: 5, action: EscalationAction::Overflow("x".into()) },
                        EscalationStep { after_secs: 9, action: EscalationAction::DropSkill("billing".into()) },
                    ];
                }),
                "escalation[0].overflow",
            ),
            (
                Box::new(|q| {
                    q.escalation = vec![EscalationStep {
                        after_secs: 5,
                        action: EscalationAction::LowerLevel(Requirement { skill: "billing".into(), min_level: 9 }),
                    }];
                }),
                "escalation[0].lower_level.min_level",
            ),
            (
                Box::new(|q| {
                    q.escalation =
                        vec![EscalationStep { after_secs: 5, action: EscalationAction::Overflow("sales".into()) }];
                }),
                "escalation[0].overflow",
            ),
        ];
        for (mutate, field) in cases {
            let mut q = q();
            mutate(&mut q);
            let err = q.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn invalid_agents_name_the_field() {
        let ok = AgentSpec {
            id: "a1".into(),
            name: "Ann".into(),
            skills: [("english".to_string(), 7)].into(),
            capacity: Capacity::default(),
            cross_channel_blocking: None,
            token: "t".into(),
        };
        ok.validate().unwrap();
        let mut a = ok.clone();
        a.skills.insert("billing".into(), 0);
        assert_eq!(a.validate().unwrap_err().field, "skills.billing");
        let mut a = ok.clone();
        a.capacity.chat = 26;
        assert_eq!(a.validate().unwrap_err().field, "capacity.chat");
        let mut a = ok.clone();
        a.id = "x".repeat(65);
        assert_eq!(a.validate().unwrap_err().field, "id");
        let mut a = ok;
        a.name = "n".repeat(201);
        assert_eq!(a.validate().unwrap_err().field, "name");
    }

    #[test]
    fn matching_and_skill_score() {
        let skills: BTreeMap<String, u32> = [("a".to_string(), 5), ("b".to_string(), 9)].into();
        let table: Vec<(Vec<(&str, u32)>, bool, u32)> = vec![
            (vec![], true, 0),
            (vec![("a", 5)], true, 5),
            (vec![("a", 6)], false, 5),
            (vec![("a", 1), ("b", 9)], true, 14),
            (vec![("c", 1)], false, 0),
        ];
        for (reqs, eligible, score) in table {
            let r: BTreeMap<String, u32> = reqs.iter().map(|(s, l)| (s.to_string(), *l)).collect();
            assert_eq!(meets(&skills, &r), eligible, "{reqs:?}");
            assert_eq!(skill_score(&skills, &r), score, "{reqs:?}");
        }
    }

    #[test]
    fn new_interaction_validation() {
        let ok = NewInteraction {
            channel: Some(Channel::Chat),
            customer_address: "visitor-1".into(),
            queue: "sales".into(),
            ..Default::default()
        };
        assert_eq!(ok.validate().unwrap(), Channel::Chat);
        let mut n = ok.clone();
        n.channel = None;
        assert_eq!(n.validate().unwrap_err().field, "channel");
        let mut n = ok.clone();
        n.body = "x".repeat(MAX_BODY_LEN + 1);
        assert_eq!(n.validate().unwrap_err().field, "body");
        let mut n = ok.clone();
        n.priority = Some(1001);
        assert_eq!(n.validate().unwrap_err().field, "priority");
        let mut n = ok;
        n.subject = "s".repeat(MAX_SUBJECT_LEN + 1);
        assert_eq!(n.validate().unwrap_err().field, "subject");
    }
}
