//! Queues: required skills, strategy, timeouts, escalation steps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::validate::{
    MAX_ESCALATION_STEPS, ValidationError, validate_id, validate_level, validate_priority, validate_secs,
    validate_skill_name, validate_text,
};

/// A closed queue's answer to a contact is at most this long (an SMS of a few parts).
pub const MAX_CLOSED_MESSAGE_LEN: usize = 1_000;

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
    /// The calendar whose hours the queue keeps; none: always open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// What the queue does with contacts while its calendar says closed, per channel (see
    /// [`QueueSpec::closed_rule`] for the defaults).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closed: Vec<ClosedRule>,
    /// Service level counts the time a wait spent while the queue was closed (default: open
    /// time only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub service_level_counts_closed_time: bool,
}

/// What a closed queue does with a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedAction {
    /// Take it and keep it waiting for the opening (it keeps its age).
    Hold,
    /// Send it to another queue (`overflow_queue`), e.g. a site in another time zone.
    Overflow,
    /// Do not queue it: the channel answers (a call goes to the CTI default destination).
    Refuse,
}

impl ClosedAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ClosedAction::Hold => "hold",
            ClosedAction::Overflow => "overflow",
            ClosedAction::Refuse => "refuse",
        }
    }

    pub fn parse(s: &str) -> Option<ClosedAction> {
        [ClosedAction::Hold, ClosedAction::Overflow, ClosedAction::Refuse].into_iter().find(|a| a.as_str() == s)
    }

    /// What a queue with a calendar does on a channel it has no rule for: a call or a chat is
    /// answered at once (the CTI default destination, the widget), an email or a text waits.
    pub fn default_for(channel: Channel) -> ClosedAction {
        match channel {
            Channel::Voice | Channel::Chat => ClosedAction::Refuse,
            Channel::Sms | Channel::Email => ClosedAction::Hold,
        }
    }
}

/// A queue's rule for contacts of one channel (or of every channel without a rule of its own)
/// while it is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosedRule {
    /// None: every channel without a rule of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub action: ClosedAction,
    /// Overflow: where to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub overflow_queue: String,
    /// The answer sent on email, SMS and chat; `{opens}` stands for the next opening.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl ClosedRule {
    pub fn new(channel: Option<Channel>, action: ClosedAction) -> ClosedRule {
        ClosedRule { channel, action, overflow_queue: String::new(), message: String::new() }
    }
}

/// The rule that applies to one channel, and which of the queue's rules it is (None: the default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelClosedRule {
    #[serde(rename = "a")]
    pub action: &'static str,
    #[serde(rename = "q", skip_serializing_if = "String::is_empty")]
    pub overflow_queue: String,
    #[serde(rename = "m", skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Index in `closed`, for errors that name the rule (`closed[1].overflow_queue`).
    #[serde(rename = "i", skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

/// One escalation transition as the engine's Redis functions run it.
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
            calendar: None,
            closed: Vec::new(),
            service_level_counts_closed_time: false,
        }
    }

    /// The rule for contacts of `channel` while the queue is closed: its own, else the one for
    /// every channel, else the channel's default ([`ClosedAction::default_for`]); with its index
    /// in `closed` (None for the default).
    pub fn closed_rule(&self, channel: Channel) -> (ClosedRule, Option<usize>) {
        let own = self.closed.iter().position(|r| r.channel == Some(channel));
        let any = || self.closed.iter().position(|r| r.channel.is_none());
        match own.or_else(any) {
            Some(i) => (ClosedRule { channel: Some(channel), ..self.closed[i].clone() }, Some(i)),
            None => (ClosedRule::new(Some(channel), ClosedAction::default_for(channel)), None),
        }
    }

    /// The rule of each channel the queue takes, as the engine's functions apply it (by channel name).
    pub fn compiled_closed_rules(&self) -> BTreeMap<&'static str, ChannelClosedRule> {
        self.channels
            .iter()
            .map(|&ch| {
                let (r, index) = self.closed_rule(ch);
                let rule = ChannelClosedRule {
                    action: r.action.as_str(),
                    overflow_queue: r.overflow_queue,
                    message: r.message,
                    index,
                };
                (ch.as_str(), rule)
            })
            .collect()
    }

    fn validate_closed(&self) -> Result<(), ValidationError> {
        let mut seen: BTreeMap<Option<Channel>, usize> = BTreeMap::new();
        for (i, r) in self.closed.iter().enumerate() {
            let f = format!("closed[{i}]");
            if let Some(first) = seen.insert(r.channel, i) {
                let which = r.channel.map_or("every channel".to_string(), |c| c.as_str().to_string());
                return Err(ValidationError::new(
                    format!("{f}.channel"),
                    format!("closed[{first}] is the rule for {which} already"),
                ));
            }
            if let Some(c) = r.channel
                && !self.channels.contains(&c)
            {
                return Err(ValidationError::new(
                    format!("{f}.channel"),
                    format!("the queue does not take {c} interactions"),
                ));
            }
            match r.action {
                ClosedAction::Overflow => {
                    validate_id(&format!("{f}.overflow_queue"), &r.overflow_queue).map_err(|e| {
                        ValidationError::new(e.field, format!("{} (where action overflow sends)", e.message))
                    })?;
                    if r.overflow_queue == self.name {
                        return Err(ValidationError::new(
                            format!("{f}.overflow_queue"),
                            "a queue cannot overflow to itself",
                        ));
                    }
                }
                _ if !r.overflow_queue.is_empty() => {
                    return Err(ValidationError::new(
                        format!("{f}.overflow_queue"),
                        format!("only a rule with action overflow names a queue (this one is {})", r.action.as_str()),
                    ));
                }
                _ => {}
            }
            validate_text(&format!("{f}.message"), &r.message, MAX_CLOSED_MESSAGE_LEN)?;
        }
        Ok(())
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
        if let Some(calendar) = &self.calendar {
            validate_id("calendar", calendar)?;
        }
        self.validate_closed()?;
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
