//! The routing core: pure eligibility and ranking, no I/O.
//!
//! Routing decisions run inside Redis (the engine's Lua functions), on indexes this module
//! computes: which *pools* (a queue at one escalation stage) an agent belongs to and with what
//! skill score. The agents' ranking by strategy exists only in Lua (`agent_score` in `lib.lua`),
//! tested on a real Redis by the routing scenarios; the waiting order's constants ([`SPLIT`],
//! [`MAX_PRIORITY`]) are written into the Lua library from here, so the two `wait_score`s agree.

use crate::{AgentSpec, MAX_PRIORITY, QueueSpec, meets, skill_score};

/// A queue at one escalation stage: `sales#0`, `sales#1`, ...
pub fn pool(queue: &str, stage: usize) -> String {
    format!("{queue}#{stage}")
}

/// 2^42 ms (~139 years): rank in the high part, a millisecond timestamp in the low part.
pub const SPLIT: f64 = 4_398_046_511_104.0;

/// Pools of `agent` across `queues`, with the agent's skill score for each.
pub fn agent_pools(agent: &AgentSpec, queues: &[QueueSpec]) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for q in queues {
        for (stage, reqs) in q.stage_requirements().iter().enumerate() {
            if meets(&agent.skills, reqs) {
                out.push((pool(&q.name, stage), skill_score(&agent.skills, reqs)));
            }
        }
    }
    out
}

/// Members of every stage pool of `queue`: (agent id, stage, skill score).
pub fn queue_members(queue: &QueueSpec, agents: &[AgentSpec]) -> Vec<(String, usize, u32)> {
    let stages = queue.stage_requirements();
    let mut out = Vec::new();
    for a in agents {
        for (stage, reqs) in stages.iter().enumerate() {
            if meets(&a.skills, reqs) {
                out.push((a.id.clone(), stage, skill_score(&a.skills, reqs)));
            }
        }
    }
    out
}

/// Order of waiting interactions: lower is served first (higher priority, then older).
pub fn wait_score(priority: i32, enqueued_ms: u64) -> f64 {
    f64::from(MAX_PRIORITY - priority) * SPLIT + enqueued_ms as f64
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // scenario tables
mod tests {
    use super::*;
    use crate::{Capacity, EscalationAction, EscalationStep, Requirement};

    fn agent(id: &str, skills: &[(&str, u32)]) -> AgentSpec {
        AgentSpec {
            id: id.into(),
            name: id.into(),
            skills: skills.iter().map(|(s, l)| (s.to_string(), *l)).collect(),
            capacity: Capacity::default(),
            cross_channel_blocking: None,
            token: String::new(),
            devices: Vec::new(),
        }
    }

    fn queue(name: &str, reqs: &[(&str, u32)]) -> QueueSpec {
        let mut q = QueueSpec::new(name);
        q.requirements = reqs.iter().map(|(s, l)| Requirement { skill: s.to_string(), min_level: *l }).collect();
        q
    }

    #[test]
    fn pools_follow_requirements_and_stages() {
        let mut billing = queue("billing", &[("billing", 8), ("english", 3)]);
        billing.escalation = vec![
            EscalationStep {
                after_secs: 30,
                action: EscalationAction::LowerLevel(Requirement { skill: "billing".into(), min_level: 5 }),
            },
            EscalationStep { after_secs: 60, action: EscalationAction::DropSkill("billing".into()) },
        ];
        let queues = vec![queue("general", &[]), billing, queue("french", &[("french", 1)])];
        // (agent skills, expected pools)
        let table: Vec<(Vec<(&str, u32)>, Vec<(&str, u32)>)> = vec![
            (vec![], vec![("general#0", 0)]),
            (vec![("english", 3)], vec![("general#0", 0), ("billing#2", 3)]),
            (vec![("english", 9), ("billing", 6)], vec![("general#0", 0), ("billing#1", 15), ("billing#2", 9)]),
            (
                vec![("english", 9), ("billing", 8), ("french", 2)],
                vec![("general#0", 0), ("billing#0", 17), ("billing#1", 17), ("billing#2", 9), ("french#0", 2)],
            ),
            (vec![("billing", 10)], vec![("general#0", 0)]),
        ];
        for (skills, want) in table {
            let got = agent_pools(&agent("a", &skills), &queues);
            let want: Vec<(String, u32)> = want.into_iter().map(|(p, s)| (p.to_string(), s)).collect();
            assert_eq!(got, want, "skills {skills:?}");
        }
    }

    #[test]
    fn queue_members_agree_with_agent_pools() {
        let q = queue("billing", &[("billing", 5)]);
        let agents = vec![agent("a", &[("billing", 5)]), agent("b", &[("billing", 4)]), agent("c", &[("billing", 9)])];
        let members = queue_members(&q, &agents);
        assert_eq!(members, vec![("a".to_string(), 0, 5), ("c".to_string(), 0, 9)]);
        for a in &agents {
            let via_agent = agent_pools(a, std::slice::from_ref(&q));
            let via_queue: Vec<_> = members
                .iter()
                .filter(|(id, _, _)| *id == a.id)
                .map(|(_, st, sc)| (pool("billing", *st), *sc))
                .collect();
            assert_eq!(via_agent, via_queue);
        }
    }

    #[test]
    fn waiting_order_is_priority_then_age() {
        // (priority, enqueued) in the order they must be served.
        let served_first_to_last = [(1000, 50), (1000, 60), (10, 1), (10, 2), (0, 0), (0, 1_700_000_000_000)];
        for w in served_first_to_last.windows(2) {
            assert!(wait_score(w[0].0, w[0].1) < wait_score(w[1].0, w[1].1), "{:?} before {:?}", w[0], w[1]);
        }
        // Exactness at today's timestamps: one millisecond still separates two interactions.
        let t = 1_795_000_000_000u64;
        assert!(wait_score(500, t) < wait_score(500, t + 1));
    }
}
