//! `ctl explain`: the daemon's explanation in plain words first (it writes them), then the
//! details as tables.

use switchboard_proto::v1 as pb;

use crate::human;
use crate::table::Table;

/// `ctl explain interaction ID`.
pub fn interaction_explanation(e: &pb::InteractionExplanation) -> String {
    let mut out = String::new();
    if let Some(ix) = &e.interaction {
        out.push_str(&format!("{} · {} · {}\n", ix.id, ix.queue, human::channel(ix.channel())));
    }
    for line in &e.summary {
        out.push_str(&format!("  {line}\n"));
    }
    if let Some(w) = &e.waiting
        && !w.candidates.is_empty()
    {
        let mut t = Table::new(&["AGENT", "STANDING"]);
        for c in &w.candidates {
            t.row([c.agent_id.clone(), c.standing.replace('_', " ")]);
        }
        out.push_str(&format!("\nagents meeting stage {}:\n{}", w.stage, t.render()));
    }
    if !e.decisions.is_empty() {
        let mut t = Table::new(&["AT", "VIA", "TO", "STAGE", "SCORE", "PASSED OVER"]);
        for d in &e.decisions {
            let score = match (d.skill, d.occupancy_permille) {
                (Some(s), _) => format!("skill {s}"),
                (None, Some(o)) => format!("{}% busy", o / 10),
                _ => "-".into(),
            };
            let stage = if d.queue.is_empty() { "-".to_string() } else { format!("{}#{}", d.queue, d.stage) };
            let passed = d
                .passed
                .iter()
                .map(|p| {
                    let who = if p.agent_id.is_empty() { &p.interaction_id } else { &p.agent_id };
                    format!("{who} ({})", p.why.replace('_', " "))
                })
                .collect::<Vec<_>>();
            t.row([
                human::weekday_time(d.at.as_ref()),
                d.via.clone(),
                d.agent_id.clone(),
                stage,
                score,
                human::list(passed),
            ]);
        }
        out.push_str(&format!("\ndecisions:\n{}", t.render()));
    }
    out.trim_end().to_string()
}

/// `ctl explain agent ID`.
pub fn agent_explanation(e: &pb::AgentExplanation) -> String {
    let mut out = format!("{}\n", e.agent_id);
    for line in &e.summary {
        out.push_str(&format!("  {line}\n"));
    }
    let mut t = Table::new(&["CHANNEL", "LOAD", "STANDING"]);
    for c in &e.channels {
        t.row([
            human::channel(c.channel()).to_string(),
            format!("{}/{}", c.load, c.capacity),
            c.standing.replace('_', " "),
        ]);
    }
    out.push_str(&format!("\n{}", t.render()));
    out.trim_end().to_string()
}
