//! What supervisors see and do: agents' live state and work, the waiting interactions (with whom
//! each excludes), and moving or reprioritizing one.

use std::collections::{BTreeMap, HashMap};

use redis::AsyncCommands;
use switchboard_model::{Capacity, Channel, Interaction, Presence, routing};

use super::argv::argv;
use crate::decode::num;
use crate::{Engine, EngineError, Result};

/// An agent's live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub id: String,
    pub name: String,
    pub presence: Presence,
    pub presence_since_ms: u64,
    pub connected: bool,
    pub session: String,
    pub load: BTreeMap<Channel, u32>,
    pub capacity: Capacity,
}

argv! {
    struct MoveIxArgs<'a> {
        iid: &'a str,
        queue: &'a str,
        clear_exclusions: bool,
    }
}

argv! {
    struct ReprioritizeArgs<'a> {
        iid: &'a str,
        priority: i32,
    }
}

impl Engine {
    pub async fn agent_status(&self, aid: &str) -> Result<AgentStatus> {
        let mut con = self.con.clone();
        let h: HashMap<String, String> = con.hgetall(self.keys.agent(aid)).await?;
        if h.is_empty() {
            return Err(EngineError::NotFound(format!("agent_id: no agent {aid:?}")));
        }
        agent_status_from_hash(aid, &h)
    }

    pub async fn list_agent_statuses(&self) -> Result<Vec<AgentStatus>> {
        let ids = self.list_agent_ids().await?;
        self.agent_statuses(&ids).await
    }

    pub async fn agent_statuses(&self, ids: &[String]) -> Result<Vec<AgentStatus>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.agent(id));
        }
        let hs: Vec<HashMap<String, String>> = pipe.query_async(&mut con).await?;
        ids.iter().zip(hs).filter(|(_, h)| !h.is_empty()).map(|(id, h)| agent_status_from_hash(id, &h)).collect()
    }

    /// Offers and interactions the agent holds, oldest first.
    pub async fn agent_work(&self, aid: &str) -> Result<Vec<Interaction>> {
        let mut con = self.con.clone();
        let ids: Vec<String> = con.smembers(self.keys.agent_work(aid)).await?;
        let mut out: Vec<Interaction> =
            self.interactions(&ids, true).await?.into_iter().flatten().filter(|ix| ix.agent_id == aid).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Supervisor move of a waiting interaction to `queue`, keeping its age. `clear_exclusions`:
    /// the agents who rejected or missed it may be offered it again; an empty `queue` then keeps
    /// it where it is (and at its escalation stage).
    pub async fn move_interaction(&self, iid: &str, queue: &str, clear_exclusions: bool) -> Result<Interaction> {
        if !(queue.is_empty() && clear_exclusions) {
            switchboard_model::validate_id("queue", queue).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        }
        self.run(MoveIxArgs { iid, queue, clear_exclusions }).await?;
        let mut ix = self.get_interaction(iid, false).await?;
        self.with_exclusions(std::slice::from_mut(&mut ix)).await?;
        Ok(ix)
    }

    pub async fn reprioritize(&self, iid: &str, priority: i32) -> Result<Interaction> {
        switchboard_model::validate_priority("priority", priority)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        self.run(ReprioritizeArgs { iid, priority }).await?;
        self.get_interaction(iid, false).await
    }

    /// Fills in the agents each interaction excludes (one round trip for all), for supervisors:
    /// routing reads them where it needs them.
    pub async fn with_exclusions(&self, ixs: &mut [Interaction]) -> Result<()> {
        if ixs.is_empty() {
            return Ok(());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for ix in ixs.iter() {
            pipe.smembers(self.keys.ix_excl(&ix.id));
        }
        let sets: Vec<Vec<String>> = pipe.query_async(&mut con).await?;
        for (ix, mut agents) in ixs.iter_mut().zip(sets) {
            agents.sort();
            ix.excluded_agents = agents;
        }
        Ok(())
    }

    /// Waiting interactions, best first (highest priority, then longest waiting), with the
    /// agents each excludes.
    pub async fn list_waiting(&self, queue: Option<&str>, limit: usize) -> Result<Vec<Interaction>> {
        let queues = match queue {
            Some(q) => {
                self.get_queue(q).await?;
                vec![q.to_string()]
            }
            None => self.list_queue_names().await?,
        };
        let mut con = self.con.clone();
        let mut out = Vec::new();
        for q in queues {
            let ids: Vec<String> = con.zrange(self.keys.qwait(&q), 0, -1).await?;
            out.extend(self.interactions(&ids, false).await?.into_iter().flatten());
        }
        out.sort_by(|a, b| {
            routing::wait_score(a.priority, a.enqueued_ms).total_cmp(&routing::wait_score(b.priority, b.enqueued_ms))
        });
        out.truncate(limit);
        self.with_exclusions(&mut out).await?;
        Ok(out)
    }
}

fn agent_status_from_hash(id: &str, h: &HashMap<String, String>) -> Result<AgentStatus> {
    let s = |k: &str| h.get(k).cloned().unwrap_or_default();
    let presence = Presence::from_parts(&s("presence"), &s("reason"))
        .ok_or_else(|| EngineError::Corrupt(format!("presence {:?}", s("presence"))))?;
    let mut load = BTreeMap::new();
    for c in Channel::ALL {
        load.insert(c, num(h, &format!("load_{c}")) as u32);
    }
    let cap = |c: &str| num(h, &format!("cap_{c}")) as u32;
    Ok(AgentStatus {
        id: id.to_string(),
        name: s("name"),
        presence,
        presence_since_ms: num(h, "since"),
        connected: s("connected") == "1",
        session: s("session"),
        load,
        capacity: Capacity { voice: cap("voice"), chat: cap("chat"), sms: cap("sms"), email: cap("email") },
    })
}
