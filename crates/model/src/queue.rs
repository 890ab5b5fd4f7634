//! Queues: required skills, strategy, timeouts, escalation steps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::validate::{
    MAX_ESCALATION_STEPS, ValidationError, validate_id, validate_level, validate_priority, validate_secs,
    validate_skill_name,
};

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
        if let Some(calendar) = &self.calendar {
            validate_id("calendar", calendar)?;
        }
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
