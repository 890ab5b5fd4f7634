//! The contact center a point runs against, drawn from the settings and the seed: queues with a
//! skill requirement each, agents with 1–5 skills and mixed channel capacities.

use std::collections::{BTreeMap, BTreeSet};

use switchboard::model::{AgentSpec, Capacity, Channel, QueueSpec, Requirement};
use switchboard_engine::Engine;

use crate::args::BenchArgs;
use crate::load::each;
use crate::rng::Rng;

/// The contact center a point runs against.
pub struct Center {
    pub queues: Vec<QueueSpec>,
    pub agents: Vec<AgentSpec>,
    /// Queues some agent can serve (interactions go only there).
    pub served: Vec<String>,
    /// Sum of the agents' channel capacities.
    pub slots: usize,
    pub combos: usize,
    /// Per agent, a queue they serve (set by [`Center::for_calls`]): where the CTI point sends the
    /// calls it means that agent to take.
    pub home: Vec<String>,
}

impl Center {
    /// Writes the queues and the agents to Redis.
    pub async fn put(&self, engine: &Engine) -> anyhow::Result<()> {
        for q in &self.queues {
            engine.put_queue(q, true).await?;
        }
        let agents = &self.agents;
        each(agents.len(), 32, |a| async move {
            engine.put_agent(&agents[a], true).await?;
            Ok(())
        })
        .await
    }

    /// The same center taking phone calls only, for the CTI point: every queue takes voice, every
    /// agent one call at a time on a phone of their own (so ring instructions carry a device).
    /// Skills, and so which agents serve which queue, stay as drawn.
    pub fn for_calls(mut self) -> Center {
        for q in &mut self.queues {
            q.channels = vec![Channel::Voice];
        }
        for a in &mut self.agents {
            a.capacity = Capacity { voice: 1, chat: 0, sms: 0, email: 0 };
            a.devices = vec![device_of(&a.id)];
        }
        self.slots = self.agents.len();
        let serves = |a: &AgentSpec, q: &QueueSpec| {
            q.requirements.iter().all(|r| a.skills.get(&r.skill).is_some_and(|l| *l >= r.min_level))
        };
        // An agent draws one queue's skill at a level that queue accepts (`skill_set`), unless a
        // later draw of the same skill lowered it: those few serve no queue (home ""). Starting
        // the search at the agent's number spreads the others over the queues.
        let n = self.queues.len();
        self.home = (0..self.agents.len())
            .map(|i| {
                let a = &self.agents[i];
                (0..n)
                    .map(|k| &self.queues[(i + k) % n])
                    .find(|q| serves(a, q))
                    .map_or(String::new(), |q| q.name.clone())
            })
            .collect();
        self
    }
}

/// The phone of agent `id` in the CTI point, as the telephony system names it.
pub fn device_of(agent_id: &str) -> String {
    format!("sip:{agent_id}@bench.test")
}

fn skill_set(rng: &mut Rng, skills: &[String], queue_skill: &str) -> BTreeMap<String, u32> {
    // 1–5 skills, one of them a queue's at a level that queue accepts.
    let mut own = BTreeMap::new();
    own.insert(queue_skill.to_string(), 3 + rng.below(8) as u32);
    for _ in 0..rng.below(5) {
        own.insert(skills[rng.below(skills.len() as u64) as usize].clone(), 1 + rng.below(10) as u32);
    }
    own
}

pub fn center(args: &BenchArgs) -> Center {
    let mut rng = Rng(args.seed | 1);
    let skills: Vec<String> = (0..args.skills.max(1)).map(|i| format!("s{i}")).collect();
    let queues: Vec<QueueSpec> = (0..args.queues.max(1))
        .map(|q| {
            let mut spec = QueueSpec::new(format!("q{q}"));
            spec.channels = vec![Channel::Chat, Channel::Email, Channel::Sms];
            spec.requirements =
                vec![Requirement { skill: skills[q % skills.len()].clone(), min_level: 1 + rng.below(3) as u32 }];
            spec
        })
        .collect();
    let queue_skill = |i: usize| skills[(i % queues.len()) % skills.len()].clone();
    let combos: Vec<BTreeMap<String, u32>> =
        (0..args.combos).map(|c| skill_set(&mut rng, &skills, &queue_skill(c))).collect();
    let mut slots = 0;
    let agents: Vec<AgentSpec> = (0..args.agents)
        .map(|a| {
            let own = if combos.is_empty() {
                skill_set(&mut rng, &skills, &queue_skill(a))
            } else {
                combos[a % combos.len()].clone()
            };
            // Mixed capacities: every agent chats, some also take SMS and email.
            let capacity = Capacity {
                voice: 0,
                chat: 1 + rng.below(2) as u32,
                sms: rng.below(2) as u32,
                email: rng.below(3) as u32,
            };
            slots += (capacity.chat + capacity.sms + capacity.email) as usize;
            AgentSpec {
                id: format!("a{a}"),
                name: format!("Agent {a}"),
                skills: own,
                capacity,
                cross_channel_blocking: None,
                token: format!("tok-a{a}"),
                devices: Vec::new(),
            }
        })
        .collect();
    let served = queues
        .iter()
        .filter(|q| {
            let r = &q.requirements[0];
            agents.iter().any(|a| a.skills.get(&r.skill).is_some_and(|l| *l >= r.min_level))
        })
        .map(|q| q.name.clone())
        .collect();
    let combos = agents.iter().map(|a| &a.skills).collect::<BTreeSet<_>>().len();
    Center { queues, agents, served, slots, combos, home: Vec::new() }
}
