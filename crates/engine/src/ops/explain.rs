//! Explaining routing from its live state: an interaction's decisions and what holds it back now,
//! an agent's standing on each queue. Read-only, off the routing path: a few pipelined reads, no
//! function call (so a snapshot of moments rather than one instant; good enough to explain).

use std::collections::{BTreeMap, HashMap, HashSet};

use redis::AsyncCommands;
use switchboard_model::explain::{AgentFacts, AgentPool, Candidate, Decision, NextStep, WaitingNow, standing};
use switchboard_model::{AgentSpec, Channel, Interaction, InteractionState, Presence, QueueSpec, routing};

use crate::decode::{decisions, interaction_from_hash};
use crate::{Engine, EngineError, Result};

/// An interaction, the routing decisions it keeps, and (while it waits) why it is still waiting.
#[derive(Debug, Clone)]
pub struct InteractionExplanation {
    pub interaction: Interaction,
    /// Oldest first; the last few (every one is in the CRM log, with its `offered` event).
    pub decisions: Vec<Decision>,
    pub waiting: Option<WaitingNow>,
    /// The routing clock when this was read (ms).
    pub now_ms: u64,
}

/// An agent's standing on every channel and every queue.
#[derive(Debug, Clone)]
pub struct AgentExplanation {
    pub agent_id: String,
    pub facts: AgentFacts,
    pub standing: BTreeMap<Channel, switchboard_model::explain::Standing>,
    pub queues: Vec<AgentPool>,
    pub now_ms: u64,
}

/// What routing reads of an agent's hash.
const FACT_FIELDS: [&str; 13] = [
    "presence",
    "reason",
    "connected",
    "block",
    "phone",
    "load_voice",
    "load_chat",
    "load_sms",
    "load_email",
    "cap_voice",
    "cap_chat",
    "cap_sms",
    "cap_email",
];

fn facts(v: &[Option<String>]) -> AgentFacts {
    let s = |i: usize| v.get(i).cloned().flatten().unwrap_or_default();
    let n = |i: usize| s(i).parse::<u32>().unwrap_or(0);
    let presence = if s(0).is_empty() { None } else { Presence::from_parts(&s(0), &s(1)) };
    let mut f = AgentFacts {
        presence,
        connected: s(2) == "1",
        blocked_by_voice: s(3) == "1",
        phone: s(4),
        ..AgentFacts::default()
    };
    for (i, ch) in [Channel::Voice, Channel::Chat, Channel::Sms, Channel::Email].into_iter().enumerate() {
        f.load.insert(ch, n(5 + i));
        f.capacity.insert(ch, n(9 + i));
    }
    f
}

impl Engine {
    async fn agent_facts(&self, ids: &[String]) -> Result<Vec<AgentFacts>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET").arg(self.keys.agent(id)).arg(&FACT_FIELDS[..]);
        }
        let rows: Vec<Vec<Option<String>>> = pipe.query_async(&mut con).await?;
        Ok(rows.iter().map(|r| facts(r)).collect())
    }

    pub async fn explain_interaction(&self, iid: &str) -> Result<InteractionExplanation> {
        let mut con = self.con.clone();
        let (h, excl): (HashMap<String, String>, HashSet<String>) =
            redis::pipe().hgetall(self.keys.ix(iid)).smembers(self.keys.ix_excl(iid)).query_async(&mut con).await?;
        if h.is_empty() {
            return Err(EngineError::NotFound(format!("interaction_id: no interaction {iid:?}")));
        }
        let now_ms = self.now_ms().await?;
        let mut interaction = interaction_from_hash(iid, &h)?;
        interaction.excluded_agents = excl.iter().cloned().collect();
        interaction.excluded_agents.sort();
        let decisions = decisions(h.get("dec").map_or("", String::as_str));
        let waiting = if interaction.state == InteractionState::Queued {
            Some(self.waiting_now(iid, &h, &interaction, &excl, now_ms).await?)
        } else {
            None
        };
        Ok(InteractionExplanation { interaction, decisions, waiting, now_ms })
    }

    async fn waiting_now(
        &self,
        iid: &str,
        h: &HashMap<String, String>,
        ix: &Interaction,
        excl: &HashSet<String>,
        now_ms: u64,
    ) -> Result<WaitingNow> {
        let field = |k: &str| h.get(k).cloned().unwrap_or_default();
        let num = |k: &str| field(k).parse::<u64>().unwrap_or(0);
        let mut con = self.con.clone();
        let spec = self.get_queue(&ix.queue).await?;
        let (closed, opens): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.queue(&ix.queue))
            .arg("closed")
            .arg("opens")
            .query_async(&mut con)
            .await?;
        let stages = spec.stage_requirements();
        let stage = (ix.stage as usize).min(stages.len().saturating_sub(1));
        let pool = routing::pool(&ix.queue, stage);
        let target = field("target");
        let mut members: Vec<String> = con.smembers(self.keys.pool_agents(&pool)).await?;
        members.sort();
        let all = self.agent_facts(&members).await?;
        let mut candidates: Vec<Candidate> = members
            .iter()
            .zip(&all)
            .map(|(id, f)| Candidate { agent_id: id.clone(), standing: standing(f, ix.channel, excl.contains(id)) })
            .collect();
        candidates.sort_by(|a, b| a.standing.cmp(&b.standing).then_with(|| a.agent_id.cmp(&b.agent_id)));
        let ahead: Option<u64> = if !target.is_empty() {
            con.zrank(self.keys.await_agent(&target), iid).await?
        } else if !field("pool").is_empty() {
            con.zrank(self.keys.wait(&field("pool"), ix.channel.as_str()), iid).await?
        } else {
            None
        };
        let next_step = self.next_step(&spec, &field("esc"), num("qenter")).await?;
        let not_before = num("cb_nb");
        Ok(WaitingNow {
            stage: stage as u32,
            requirements: stages.get(stage).cloned().unwrap_or_default(),
            candidates,
            ahead: ahead.unwrap_or(0) as u32,
            closed: (closed.as_deref() == Some("1")).then(|| opens.and_then(|o| o.parse().ok())),
            not_before_ms: (not_before > now_ms).then_some(not_before),
            named_agent: (!target.is_empty()).then_some(target),
            next_step,
        })
    }

    /// The escalation step due next (`esc|<ix>|<qseq>|<step>`: the timer set for it).
    async fn next_step(&self, spec: &QueueSpec, esc: &str, qenter: u64) -> Result<Option<NextStep>> {
        let Some(j) = esc.rsplit('|').next().and_then(|j| j.parse::<usize>().ok()) else { return Ok(None) };
        let (Some(step), Some(compiled)) = (spec.escalation.get(j), spec.compiled_steps().get(j).cloned()) else {
            return Ok(None);
        };
        let eligible_after = match compiled.stage {
            Some(n) => {
                let mut con = self.con.clone();
                let c: u32 = con.scard(self.keys.pool_agents(&routing::pool(&spec.name, n))).await?;
                Some(c)
            }
            None => None,
        };
        Ok(Some(NextStep { at_ms: qenter + compiled.at_ms, action: step.action.clone(), eligible_after }))
    }

    pub async fn explain_agent(&self, aid: &str) -> Result<AgentExplanation> {
        let agent: AgentSpec = self.get_agent(aid).await?;
        let now_ms = self.now_ms().await?;
        let facts = self.agent_facts(&[aid.to_string()]).await?.pop().unwrap_or_default();
        let standing_of: BTreeMap<Channel, _> =
            Channel::ALL.into_iter().map(|c| (c, standing(&facts, c, false))).collect();
        let mut con = self.con.clone();
        let pools: HashMap<String, String> = con.hgetall(self.keys.agent_pools(aid)).await?;
        let queues = self.list_queues().await?;
        let mut closed_q = redis::pipe();
        for q in &queues {
            closed_q.hget(self.keys.queue(&q.name), "closed");
        }
        let closed: Vec<Option<String>> = closed_q.query_async(&mut con).await?;
        // Waiting per (queue, channel) in the pools this agent belongs to.
        let mut counts = redis::pipe();
        let mut asked = Vec::new();
        for q in &queues {
            for ch in &q.channels {
                for stage in 0..q.stage_requirements().len() {
                    let pool = routing::pool(&q.name, stage);
                    if pools.contains_key(&pool) {
                        counts.zcard(self.keys.wait(&pool, ch.as_str()));
                        asked.push((q.name.clone(), *ch));
                    }
                }
            }
        }
        let n: Vec<u32> = if asked.is_empty() { Vec::new() } else { counts.query_async(&mut con).await? };
        let mut waiting: HashMap<(String, Channel), u32> = HashMap::new();
        for (k, c) in asked.into_iter().zip(n) {
            *waiting.entry(k).or_insert(0) += c;
        }
        let mut out = Vec::new();
        for (q, closed) in queues.iter().zip(closed) {
            let stages = q.stage_requirements();
            let stage = (0..stages.len()).find(|s| pools.contains_key(&routing::pool(&q.name, *s)));
            let lacks = match stage {
                Some(_) => Vec::new(),
                None => stages.last().map_or_else(Vec::new, |reqs| lacking(&agent, reqs)),
            };
            let channels = q
                .channels
                .iter()
                .map(|ch| (*ch, waiting.get(&(q.name.clone(), *ch)).copied().unwrap_or(0), standing_of[ch].clone()))
                .collect();
            out.push(AgentPool {
                queue: q.name.clone(),
                stage: stage.map(|s| s as u32),
                lacks,
                closed: closed.as_deref() == Some("1"),
                channels,
            });
        }
        Ok(AgentExplanation { agent_id: aid.to_string(), facts, standing: standing_of, queues: out, now_ms })
    }
}

/// What `agent` lacks of `reqs`: "billing ≥ 5 (has 3)", "french ≥ 1 (has none)".
fn lacking(agent: &AgentSpec, reqs: &BTreeMap<String, u32>) -> Vec<String> {
    reqs.iter()
        .filter_map(|(skill, min)| match agent.skills.get(skill) {
            Some(l) if l >= min => None,
            Some(l) => Some(format!("{skill} ≥ {min} (has {l})")),
            None => Some(format!("{skill} ≥ {min} (has none)")),
        })
        .collect()
}
