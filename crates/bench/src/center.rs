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
    Center { queues, agents, served, slots, combos }
}
