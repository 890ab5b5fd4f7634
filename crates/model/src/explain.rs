//! Why routing did what it did, and why it is not doing anything now.
//!
//! Each offer records its [`Decision`] (made inside Redis, by the routing functions, and kept with
//! the interaction and in its `offered` event). What holds a waiting interaction back, or an agent
//! who gets nothing, is worked out on request from the live state: an agent's [`Standing`] on a
//! channel follows the same rules as the routing functions' `can_take` (`lib.lua`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Channel, EscalationAction, Presence};

/// How an offer's agent was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The interaction came to its queue's pool and the best available agent there took it.
    Queue,
    /// An agent became free and pulled the best interaction waiting for them.
    Pull,
    /// It waited for this agent by name (a transfer to an agent, a preferred agent).
    Named,
}

/// One routing decision, as the routing functions recorded it with the offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// When (ms, routing clock).
    pub at: u64,
    pub via: Via,
    /// The agent it was offered to.
    #[serde(default)]
    pub agent: String,
    /// The queue at its escalation stage (`sales#1`).
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub strategy: Option<String>,
    /// `via: queue`: the winner's score — skill level (most skilled), occupancy in permille of
    /// capacity (least occupied), and since when idle (ms).
    #[serde(default)]
    pub skill: Option<u32>,
    #[serde(default)]
    pub occupancy: Option<u32>,
    #[serde(default)]
    pub idle_since: Option<u64>,
    /// `via: queue`: agents able to take it that routing looked at (those ranked above the winner
    /// and the rest of the page of up to 16 it read), and agents eligible for the pool at all
    /// (ready or not).
    #[serde(default)]
    pub considered: Option<u32>,
    #[serde(default)]
    pub eligible: Option<u32>,
    /// `via: pull`: the interaction's priority and enqueue time, how many pools the agent serves
    /// and how many interactions (heads of waiting sets) competed.
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default)]
    pub enqueued: Option<u64>,
    #[serde(default)]
    pub pools: Option<u32>,
    #[serde(default)]
    pub candidates: Option<u32>,
    /// The best few that lost, and why.
    #[serde(default, deserialize_with = "lua_list")]
    pub passed: Vec<Passed>,
}

/// One that lost a decision: an agent (`via: queue`) or an interaction (`via: pull`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passed {
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub ix: Option<String>,
    /// `ranked_lower`, `excluded` (rejected or missed it before), `transferred_it` (the agent who
    /// transferred it away: offered only when nobody else can take it); for interactions
    /// `lower_priority`, `waited_less`.
    pub why: String,
    #[serde(default)]
    pub skill: Option<u32>,
    #[serde(default)]
    pub occupancy: Option<u32>,
    #[serde(default)]
    pub idle_since: Option<u64>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default)]
    pub enqueued: Option<u64>,
}

/// Lua's JSON encoder writes an empty list as `{}`.
pub fn lua_list<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrEmpty<T> {
        List(Vec<T>),
        Empty(BTreeMap<String, serde::de::IgnoredAny>),
    }
    match ListOrEmpty::deserialize(d)? {
        ListOrEmpty::List(v) => Ok(v),
        ListOrEmpty::Empty(m) if m.is_empty() => Ok(Vec::new()),
        ListOrEmpty::Empty(_) => Err(serde::de::Error::custom("expected a list")),
    }
}

impl Decision {
    /// The queue and stage of [`Decision::pool`] (`sales#1` → `sales`, 1).
    pub fn queue_stage(&self) -> Option<(&str, u32)> {
        let (q, s) = self.pool.as_deref()?.rsplit_once('#')?;
        Some((q, s.parse().ok()?))
    }

    /// For people: "Offered to ann at 14:03:05 via sales stage 0 (most skilled: skill 7, idle 35 s;
    /// 2 of 3 eligible could take it); passed over: bob (rejected or missed it before)."
    pub fn describe(&self) -> String {
        let when = chrono::DateTime::from_timestamp_millis(self.at as i64)
            .map_or_else(String::new, |t| t.format(" at %H:%M:%S UTC").to_string());
        let place = self.queue_stage().map_or(String::new(), |(q, s)| format!(" in {q} stage {s}"));
        let how = match self.via {
            Via::Named => " (it waited for this agent by name)".to_string(),
            Via::Queue => {
                let mut score = Vec::new();
                if let Some(s) = self.skill {
                    score.push(format!("skill {s}"));
                }
                if let Some(o) = self.occupancy {
                    score.push(format!("{}% occupied", o / 10));
                }
                if let Some(i) = self.idle_since.filter(|i| *i > 0 && *i <= self.at) {
                    score.push(format!("idle {}", span(self.at - i)));
                }
                format!(
                    " ({}{}{}; {} of {} eligible could take it)",
                    self.strategy.as_deref().unwrap_or("").replace('_', " "),
                    if score.is_empty() { "" } else { ": " },
                    score.join(", "),
                    self.considered.unwrap_or(0),
                    self.eligible.unwrap_or(0)
                )
            }
            Via::Pull => format!(
                " (the agent became free; it was the first of {} waiting for them{})",
                self.candidates.unwrap_or(1),
                self.enqueued
                    .filter(|e| *e > 0 && *e <= self.at)
                    .map_or(String::new(), |e| format!(", after {} in line", span(self.at - e)))
            ),
        };
        let passed: Vec<String> = self
            .passed
            .iter()
            .map(|p| {
                let who = p.agent.clone().or_else(|| p.ix.clone()).unwrap_or_default();
                let why = match p.why.as_str() {
                    "excluded" => "rejected or missed it before",
                    "transferred_it" => "transferred it away",
                    "ranked_lower" => "ranked lower",
                    "lower_priority" => "lower priority",
                    "waited_less" => "waited less",
                    other => other,
                };
                format!("{who} ({why})")
            })
            .collect();
        let passed = if passed.is_empty() { String::new() } else { format!("; passed over: {}", passed.join(", ")) };
        format!("Offered to {}{when}{place}{how}{passed}.", self.agent)
    }
}

/// What routing reads of an agent: the facts its `can_take` looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentFacts {
    pub presence: Option<Presence>,
    pub connected: bool,
    /// Cross-channel blocking applies to this agent (voice work holds the other channels).
    pub blocked_by_voice: bool,
    pub load: BTreeMap<Channel, u32>,
    pub capacity: BTreeMap<Channel, u32>,
    /// The phone's state as the telephony system reported it ("" = not reported).
    pub phone: String,
}

/// Whether an agent can take work of a channel now, and if not, the first reason.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    Available,
    /// Rejected or missed this interaction before.
    Excluded,
    AtCapacity,
    /// The agent's capacity for the channel is 0: the agent does not take it at all.
    NoCapacity,
    BlockedByVoice,
    /// The phone is not registered, on do-not-disturb, or busy on a call routing did not make.
    PhoneNotReady,
    /// Ready, but the desktop is not connected (within the grace period after a drop).
    Disconnected,
    NotReady,
    WrapUp,
    LoggedOut,
}

impl Standing {
    pub fn as_str(&self) -> &'static str {
        match self {
            Standing::Available => "available",
            Standing::Excluded => "excluded",
            Standing::AtCapacity => "at_capacity",
            Standing::NoCapacity => "no_capacity",
            Standing::BlockedByVoice => "blocked_by_voice",
            Standing::PhoneNotReady => "phone_not_ready",
            Standing::Disconnected => "disconnected",
            Standing::NotReady => "not_ready",
            Standing::WrapUp => "wrap_up",
            Standing::LoggedOut => "logged_out",
        }
    }

    /// For people: "not ready", "at capacity on chat", ...
    pub fn describe(&self, ch: Channel) -> String {
        match self {
            Standing::AtCapacity => format!("at capacity on {ch}"),
            Standing::NoCapacity => format!("takes no {ch}"),
            Standing::Excluded => "rejected or missed it before".into(),
            Standing::BlockedByVoice => format!("on a call, which holds {ch} back"),
            Standing::PhoneNotReady => "phone not ready".into(),
            other => other.as_str().replace('_', " "),
        }
    }
}

/// The agent's standing for work of channel `ch` (the order of `can_take` in `lib.lua`; an
/// exclusion is checked by routing before the rest, and reported first only when it is the one
/// thing in the way).
pub fn standing(a: &AgentFacts, ch: Channel, excluded: bool) -> Standing {
    let reason = match &a.presence {
        None | Some(Presence::Offline) => Some(Standing::LoggedOut),
        Some(Presence::NotReady(_)) => Some(Standing::NotReady),
        Some(Presence::WrapUp) => Some(Standing::WrapUp),
        Some(Presence::Ready) if !a.connected => Some(Standing::Disconnected),
        Some(Presence::Ready) => None,
    };
    let reason = reason.or_else(|| {
        let load = a.load.get(&ch).copied().unwrap_or(0);
        let cap = a.capacity.get(&ch).copied().unwrap_or(0);
        if cap == 0 {
            Some(Standing::NoCapacity)
        } else if load >= cap {
            Some(Standing::AtCapacity)
        } else if ch != Channel::Voice && a.blocked_by_voice && a.load.get(&Channel::Voice).copied().unwrap_or(0) > 0 {
            Some(Standing::BlockedByVoice)
        } else if ch == Channel::Voice && !a.phone.is_empty() && a.phone != "registered" {
            Some(Standing::PhoneNotReady)
        } else {
            None
        }
    });
    match reason {
        None if excluded => Standing::Excluded,
        None => Standing::Available,
        Some(r) => r,
    }
}

/// The next escalation step of a waiting interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct NextStep {
    /// When it is due (ms, routing clock).
    pub at_ms: u64,
    pub action: EscalationAction,
    /// Agents eligible once it applies (the next stage's pool; None for an overflow).
    pub eligible_after: Option<u32>,
}

/// One agent eligible for a waiting interaction's pool, and where they stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub agent_id: String,
    pub standing: Standing,
}

/// Why a waiting interaction is still waiting.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingNow {
    pub stage: u32,
    /// The skills and minimum levels that apply at this stage.
    pub requirements: BTreeMap<String, u32>,
    /// Every agent eligible for the pool (meets the requirements), best standing first.
    pub candidates: Vec<Candidate>,
    /// Interactions ahead of it in its waiting set.
    pub ahead: u32,
    /// The queue is closed; when it opens next (ms), if in sight.
    pub closed: Option<Option<u64>>,
    /// A callback not to be offered before this time (ms).
    pub not_before_ms: Option<u64>,
    /// It waits for this agent by name.
    pub named_agent: Option<String>,
    pub next_step: Option<NextStep>,
}

impl WaitingNow {
    /// How many candidates stand where.
    pub fn counts(&self) -> BTreeMap<Standing, u32> {
        let mut m = BTreeMap::new();
        for c in &self.candidates {
            *m.entry(c.standing.clone()).or_insert(0) += 1;
        }
        m
    }

    /// In plain words: what holds it back, and what changes next.
    pub fn summary(&self, ch: Channel, now_ms: u64) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(opens) = &self.closed {
            out.push(match opens {
                Some(t) => format!("The queue is closed; it opens in {}.", span(t.saturating_sub(now_ms))),
                None => "The queue is closed, with no opening in sight.".into(),
            });
        }
        if let Some(t) = self.not_before_ms {
            out.push(format!("A callback not to be offered for another {}.", span(t.saturating_sub(now_ms))));
        }
        if let Some(a) = &self.named_agent {
            out.push(format!("It waits for {a} by name."));
        }
        let reqs = if self.requirements.is_empty() {
            "no skill requirement".to_string()
        } else {
            self.requirements.iter().map(|(s, l)| format!("{s} ≥ {l}")).collect::<Vec<_>>().join(", ")
        };
        let counts = self.counts();
        let available = counts.get(&Standing::Available).copied().unwrap_or(0);
        if self.named_agent.is_none() {
            if self.candidates.is_empty() {
                out.push(format!("No agent meets stage {} ({reqs}).", self.stage));
            } else {
                let others: Vec<String> = counts
                    .iter()
                    .filter(|(s, _)| **s != Standing::Available)
                    .map(|(s, n)| format!("{n} {}", s.describe(ch)))
                    .collect();
                out.push(format!(
                    "{} agent{} meet{} stage {} ({reqs}): {available} available{}{}.",
                    self.candidates.len(),
                    if self.candidates.len() == 1 { "" } else { "s" },
                    if self.candidates.len() == 1 { "s" } else { "" },
                    self.stage,
                    if others.is_empty() { "" } else { ", " },
                    others.join(", ")
                ));
            }
        }
        if self.ahead > 0 {
            out.push(format!(
                "{} interaction{} ahead of it.",
                self.ahead,
                if self.ahead == 1 { " is" } else { "s are" }
            ));
        }
        if let Some(step) = &self.next_step {
            let what = match &step.action {
                EscalationAction::DropSkill(s) => format!("drops {s}"),
                EscalationAction::LowerLevel(r) => format!("lowers {} to {}", r.skill, r.min_level),
                EscalationAction::Overflow(q) => format!("moves it to queue {q}"),
            };
            let gain = step
                .eligible_after
                .map_or(String::new(), |n| format!(" ({n} agent{} eligible then)", if n == 1 { "" } else { "s" }));
            out.push(format!("In {} the next step {what}{gain}.", span(step.at_ms.saturating_sub(now_ms))));
        }
        out
    }
}

/// Why an agent gets work of a queue, or not.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentPool {
    pub queue: String,
    /// The stage from which the agent is eligible (None: at no stage).
    pub stage: Option<u32>,
    /// What the agent lacks at the queue's last stage, if not eligible ("billing ≥ 5 (has 3)").
    pub lacks: Vec<String>,
    pub closed: bool,
    /// Per channel the queue takes: interactions waiting in the agent's pools, and the agent's
    /// standing for that channel.
    pub channels: Vec<(Channel, u32, Standing)>,
}

/// In plain words: why an agent gets work or not.
pub fn agent_summary(a: &AgentFacts, pools: &[AgentPool]) -> Vec<String> {
    let mut out = Vec::new();
    out.push(match &a.presence {
        None | Some(Presence::Offline) => "Logged out: gets nothing.".to_string(),
        Some(Presence::NotReady(r)) if r.is_empty() => "Not ready: gets nothing.".to_string(),
        Some(Presence::NotReady(r)) => format!("Not ready ({r}): gets nothing."),
        Some(Presence::WrapUp) => "In wrap-up: gets nothing until it ends.".to_string(),
        Some(Presence::Ready) if !a.connected => {
            "Ready, but the desktop is not connected: gets nothing until it reconnects.".to_string()
        }
        Some(Presence::Ready) => "Ready, desktop connected.".to_string(),
    });
    for p in pools {
        let line = match p.stage {
            None => format!("{}: not eligible at any stage — lacks {}.", p.queue, p.lacks.join(", ")),
            Some(s) => {
                let chans: Vec<String> = p
                    .channels
                    .iter()
                    .filter(|(_, _, st)| *st != Standing::NoCapacity)
                    .map(|(ch, waiting, st)| match st {
                        Standing::Available => format!("{ch}: {waiting} waiting, can take"),
                        st => format!("{ch}: {waiting} waiting, {}", st.describe(*ch)),
                    })
                    .collect();
                let from = if s == 0 { "from the start".to_string() } else { format!("from stage {s}") };
                let closed = if p.closed { " (closed now)" } else { "" };
                format!("{}{closed}: eligible {from}; {}.", p.queue, chans.join("; "))
            }
        };
        out.push(line);
    }
    out
}

/// Durations for people: "45 s", "3 min", "2 h 5 min".
pub fn span(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(load: u32, cap: u32) -> AgentFacts {
        AgentFacts {
            presence: Some(Presence::Ready),
            connected: true,
            load: BTreeMap::from([(Channel::Chat, load)]),
            capacity: BTreeMap::from([(Channel::Chat, cap)]),
            ..AgentFacts::default()
        }
    }

    #[test]
    fn standing_follows_can_take() {
        assert_eq!(standing(&ready(0, 2), Channel::Chat, false), Standing::Available);
        assert_eq!(standing(&ready(0, 2), Channel::Chat, true), Standing::Excluded);
        assert_eq!(standing(&ready(2, 2), Channel::Chat, true), Standing::AtCapacity);
        assert_eq!(standing(&ready(0, 0), Channel::Email, false), Standing::NoCapacity);
        let mut a = ready(0, 2);
        a.connected = false;
        assert_eq!(standing(&a, Channel::Chat, false), Standing::Disconnected);
        a.presence = Some(Presence::NotReady("lunch".into()));
        assert_eq!(standing(&a, Channel::Chat, false), Standing::NotReady);
        a.presence = None;
        assert_eq!(standing(&a, Channel::Chat, false), Standing::LoggedOut);
        let mut v = ready(0, 2);
        v.blocked_by_voice = true;
        v.load.insert(Channel::Voice, 1);
        assert_eq!(standing(&v, Channel::Chat, false), Standing::BlockedByVoice);
        v.capacity.insert(Channel::Voice, 1);
        v.load.insert(Channel::Voice, 0);
        v.phone = "busy".into();
        assert_eq!(standing(&v, Channel::Voice, false), Standing::PhoneNotReady);
        v.phone = "registered".into();
        assert_eq!(standing(&v, Channel::Voice, false), Standing::Available);
    }

    #[test]
    fn the_summary_says_what_holds_it_back_and_what_comes_next() {
        let w = WaitingNow {
            stage: 0,
            requirements: BTreeMap::from([("sales".to_string(), 5)]),
            candidates: vec![
                Candidate { agent_id: "ann".into(), standing: Standing::AtCapacity },
                Candidate { agent_id: "bob".into(), standing: Standing::NotReady },
                Candidate { agent_id: "cat".into(), standing: Standing::NotReady },
            ],
            ahead: 2,
            closed: None,
            not_before_ms: None,
            named_agent: None,
            next_step: Some(NextStep {
                at_ms: 31_000,
                action: EscalationAction::LowerLevel(crate::Requirement { skill: "sales".into(), min_level: 3 }),
                eligible_after: Some(5),
            }),
        };
        assert_eq!(
            w.summary(Channel::Chat, 1_000),
            vec![
                "3 agents meet stage 0 (sales ≥ 5): 0 available, 1 at capacity on chat, 2 not ready.",
                "2 interactions are ahead of it.",
                "In 30 s the next step lowers sales to 3 (5 agents eligible then).",
            ]
        );
        assert_eq!(span(90_000), "2 min");
        assert_eq!(span(7_500_000), "2 h 5 min");
    }
}
