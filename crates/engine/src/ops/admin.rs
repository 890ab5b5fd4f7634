//! Agents and queues: their specs, and the pools eligibility puts agents in. The routing core
//! computes eligibility here, in Rust, so the hot functions never evaluate skills; the admin
//! functions write it, refusing it if an agent or queue changed meanwhile.

use redis::AsyncCommands;
use switchboard_model::{AgentSpec, QueueSpec, routing};

use super::argv::argv;
use crate::{Engine, EngineError, Result};

/// Attempts for admin functions that lose an optimistic race with a concurrent admin change.
const ADMIN_RETRIES: usize = 20;

argv! {
    struct PutAgentArgs<'a> {
        aid: &'a str,
        allow_update: bool,
        queues_ver: String,
        name: &'a str,
        token_hash: String,
        block: bool,
        cap_voice: u32,
        cap_chat: u32,
        cap_sms: u32,
        cap_email: u32,
        spec: &'a str,
        ..pools,
    }
}

argv! {
    struct DeleteAgentArgs<'a> {
        aid: &'a str,
    }
}

argv! {
    struct PutQueueArgs<'a> {
        name: &'a str,
        allow_update: bool,
        agents_ver: String,
        strategy: &'a str,
        channels: String,
        priority: i32,
        offer_ms: u64,
        wrap_ms: u64,
        sl_ms: u64,
        stages: usize,
        steps: &'a str,
        spec: &'a str,
        overflow: String,
        calendar: &'a str,
        crules: String,
        open: bool,
        opens: Option<u64>,
        sl_closed: bool,
        ..members,
    }
}

argv! {
    struct DeleteQueueArgs<'a> {
        name: &'a str,
    }
}

/// A concurrent admin change invalidated the eligibility computed for this one: recompute.
fn is_retry(r: &Result<Vec<String>>) -> bool {
    matches!(r, Err(EngineError::Retry(_)))
}

impl Engine {
    pub async fn put_agent(&self, spec: &AgentSpec, allow_update: bool) -> Result<bool> {
        spec.validate().map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let mut public = spec.clone();
        public.token.clear();
        let spec_json = serde_json::to_string(&public).expect("agent spec serializes");
        let block = spec.cross_channel_blocking.unwrap_or(self.opts.cross_channel_blocking);
        let mut attempt = 0;
        let r = loop {
            attempt += 1;
            let queues_ver = self.meta_version("queues_ver").await?;
            let queues = self.list_queues().await?;
            let pools =
                routing::agent_pools(spec, &queues).into_iter().flat_map(|(pool, score)| [pool, score.to_string()]);
            let args = PutAgentArgs {
                aid: &spec.id,
                allow_update,
                queues_ver,
                name: &spec.name,
                token_hash: if spec.token.is_empty() {
                    String::new()
                } else {
                    switchboard_model::access::agent_token_hash(&spec.id, &spec.token)
                },
                block,
                cap_voice: spec.capacity.voice,
                cap_chat: spec.capacity.chat,
                cap_sms: spec.capacity.sms,
                cap_email: spec.capacity.email,
                spec: &spec_json,
                pools: pools.collect(),
            };
            let r = self.run(args).await;
            if !is_retry(&r) || attempt >= ADMIN_RETRIES {
                break r?;
            }
        };
        Ok(r.first().is_some_and(|s| s == "1"))
    }

    async fn meta_version(&self, field: &str) -> Result<String> {
        let mut con = self.con.clone();
        let v: Option<String> = con.hget(self.keys.meta(), field).await?;
        Ok(v.unwrap_or_else(|| "0".into()))
    }

    pub async fn get_agent(&self, id: &str) -> Result<AgentSpec> {
        let mut con = self.con.clone();
        let spec: Option<String> = con.hget(self.keys.agent(id), "spec").await?;
        let spec = spec.ok_or_else(|| EngineError::NotFound(format!("agent_id: no agent {id:?}")))?;
        serde_json::from_str(&spec).map_err(|e| EngineError::Corrupt(format!("agent {id}: {e}")))
    }

    pub async fn list_agent_ids(&self) -> Result<Vec<String>> {
        let mut con = self.con.clone();
        let mut ids: Vec<String> = con.smembers(self.keys.agents()).await?;
        ids.sort();
        Ok(ids)
    }

    pub async fn list_agents(&self) -> Result<Vec<AgentSpec>> {
        let ids = self.list_agent_ids().await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hget(self.keys.agent(id), "spec");
        }
        let specs: Vec<Option<String>> = pipe.query_async(&mut con).await?;
        specs
            .into_iter()
            .flatten()
            .map(|s| serde_json::from_str(&s).map_err(|e| EngineError::Corrupt(format!("agent spec: {e}"))))
            .collect()
    }

    pub async fn delete_agent(&self, id: &str) -> Result<()> {
        self.run(DeleteAgentArgs { aid: id }).await.map(|_| ())
    }

    pub async fn put_queue(&self, spec: &QueueSpec, allow_update: bool) -> Result<bool> {
        spec.validate().map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let spec_json = serde_json::to_string(spec).expect("queue spec serializes");
        let steps = serde_json::to_string(&spec.compiled_steps()).expect("steps serialize");
        let stages = spec.stage_requirements().len();
        let overflow: Vec<String> = spec.compiled_steps().into_iter().filter_map(|s| s.overflow).collect();
        let channels: Vec<&str> = spec.channels.iter().map(|c| c.as_str()).collect();
        let crules = serde_json::to_string(&spec.compiled_closed_rules()).expect("closed rules serialize");
        let (open, opens) = self.hours_now(spec).await?;
        let mut attempt = 0;
        let r = loop {
            attempt += 1;
            let agents_ver = self.meta_version("agents_ver").await?;
            let agents = self.list_agents().await?;
            let members = routing::queue_members(spec, &agents)
                .into_iter()
                .flat_map(|(aid, stage, score)| [aid, stage.to_string(), score.to_string()]);
            let args = PutQueueArgs {
                name: &spec.name,
                allow_update,
                agents_ver,
                strategy: spec.strategy.as_str(),
                channels: channels.join(","),
                priority: spec.priority,
                offer_ms: u64::from(spec.offer_timeout_secs) * 1000,
                wrap_ms: u64::from(spec.wrap_up_secs) * 1000,
                sl_ms: u64::from(spec.service_level_secs) * 1000,
                stages,
                steps: &steps,
                spec: &spec_json,
                overflow: overflow.join(","),
                calendar: spec.calendar.as_deref().unwrap_or_default(),
                crules: crules.clone(),
                open,
                opens,
                sl_closed: spec.service_level_counts_closed_time,
                members: members.collect(),
            };
            let r = self.run(args).await;
            if !is_retry(&r) || attempt >= ADMIN_RETRIES {
                break r?;
            }
        };
        Ok(r.first().is_some_and(|s| s == "1"))
    }

    pub async fn get_queue(&self, name: &str) -> Result<QueueSpec> {
        let mut con = self.con.clone();
        let spec: Option<String> = con.hget(self.keys.queue(name), "spec").await?;
        let spec = spec.ok_or_else(|| EngineError::NotFound(format!("queue: no queue named {name:?}")))?;
        serde_json::from_str(&spec).map_err(|e| EngineError::Corrupt(format!("queue {name}: {e}")))
    }

    pub async fn list_queue_names(&self) -> Result<Vec<String>> {
        let mut con = self.con.clone();
        let mut names: Vec<String> = con.smembers(self.keys.queues()).await?;
        names.sort();
        Ok(names)
    }

    pub async fn list_queues(&self) -> Result<Vec<QueueSpec>> {
        let names = self.list_queue_names().await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for n in &names {
            pipe.hget(self.keys.queue(n), "spec");
        }
        let specs: Vec<Option<String>> = pipe.query_async(&mut con).await?;
        specs
            .into_iter()
            .flatten()
            .map(|s| serde_json::from_str(&s).map_err(|e| EngineError::Corrupt(format!("queue spec: {e}"))))
            .collect()
    }

    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        self.run(DeleteQueueArgs { name }).await.map(|_| ())
    }
}
