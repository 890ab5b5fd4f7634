//! What `ctl` shows people for each reply: tables of agents, queues, keys, waiting interactions and
//! queue figures, and one interaction with its thread.

use std::collections::HashMap;
use std::time::SystemTime;

use switchboard_proto::v1 as pb;

use crate::human::{self, UNKNOWN, or_dash};
use crate::table::Table;

/// Agents with their presence: `ctl agents` and the agent rows of `ctl watch`.
pub const AGENT_HEADER: &[&str] = &["AGENT", "NAME", "STATE", "REASON", "IN STATE", "DESKTOP", "LOAD"];
/// Right-aligned columns of [`AGENT_HEADER`].
pub const AGENT_RIGHT: &[usize] = &[4];

pub fn agent_row(a: &pb::AgentState, now: SystemTime) -> Vec<String> {
    let p = a.presence.clone().unwrap_or_default();
    vec![
        a.agent_id.clone(),
        or_dash(&a.name),
        human::presence(p.state()).into(),
        or_dash(&p.reason),
        human::age(a.presence_since.as_ref(), now),
        if a.connected { "connected" } else { UNKNOWN }.into(),
        load(&a.load, &a.capacity),
    ]
}

pub fn agents(states: &[pb::AgentState], now: SystemTime) -> Table {
    let mut t = Table::new(AGENT_HEADER).right(AGENT_RIGHT);
    for a in states {
        t.row(agent_row(a, now));
    }
    t
}

/// `chat 1/3, email 0/5`: work in hand of the capacity, per channel the agent takes.
pub fn load(load: &HashMap<String, u32>, capacity: &HashMap<String, u32>) -> String {
    let mut chans: Vec<&String> = capacity.keys().chain(load.keys()).collect();
    chans.sort_by_key(|c| human::channel_rank(c));
    chans.dedup();
    human::list(chans.into_iter().filter_map(|c| {
        let (n, cap) = (load.get(c).copied().unwrap_or(0), capacity.get(c).copied());
        match cap {
            Some(0) if n == 0 => None,
            Some(cap) => Some(format!("{c} {n}/{cap}")),
            None => Some(format!("{c} {n}")),
        }
    }))
}

fn sorted_pairs<V: std::fmt::Display>(m: &HashMap<String, V>, sep: &str) -> String {
    let mut v: Vec<(&String, &V)> = m.iter().collect();
    v.sort_by_key(|(k, _)| *k);
    human::list(v.into_iter().map(|(k, l)| format!("{k}{sep}{l}")))
}

/// Agents as configured: `ctl put-agent`.
pub fn agent_configs(agents: &[pb::Agent]) -> Table {
    let mut t = Table::new(&["AGENT", "NAME", "SKILLS", "CAPACITY", "VOICE BLOCKS OTHERS", "DEVICES"]);
    for a in agents {
        let capacity = a.capacity.map_or_else(
            || UNKNOWN.to_string(),
            |c| {
                human::list(
                    [("voice", c.voice), ("chat", c.chat), ("sms", c.sms), ("email", c.email)]
                        .into_iter()
                        .filter_map(|(name, n)| n.map(|n| format!("{name} {n}"))),
                )
            },
        );
        let blocking = a.cross_channel_blocking.map_or(UNKNOWN, |b| if b { "yes" } else { "no" });
        t.row([
            a.id.clone(),
            or_dash(&a.name),
            sorted_pairs(&a.skills, " "),
            capacity,
            blocking.into(),
            human::list(a.devices.iter().cloned()),
        ]);
    }
    t
}

fn requirement(r: &pb::SkillRequirement) -> String {
    format!("{}>={}", r.skill, r.min_level)
}

fn escalation_step(s: &pb::EscalationStep) -> String {
    use pb::escalation_step::Action;
    let action = match &s.action {
        Some(Action::DropSkill(skill)) => format!("drop {skill}"),
        Some(Action::LowerLevel(r)) => format!("lower to {}", requirement(r)),
        Some(Action::OverflowQueue(q)) => format!("overflow to {q}"),
        None => UNKNOWN.into(),
    };
    format!("after {}: {action}", human::duration(std::time::Duration::from_secs(s.after_secs.into())))
}

/// A setting where 0 means the daemon's default.
fn secs_or_default(secs: u32) -> String {
    if secs == 0 { "default".into() } else { human::duration(std::time::Duration::from_secs(secs.into())) }
}

/// Queues and their routing settings: `ctl queues`, `ctl put-queue`; `now`: what the daemon said
/// of the calendars' hours, by queue.
pub fn queues(queues: &[pb::Queue], now: &HashMap<String, pb::ListOpeningsResponse>) -> Table {
    let mut t = Table::new(&[
        "QUEUE",
        "CHANNELS",
        "REQUIRES",
        "PRIORITY",
        "STRATEGY",
        "OFFER TIMEOUT",
        "WRAP-UP",
        "SL WITHIN",
        "HOURS",
        "ESCALATION",
    ])
    .right(&[3, 5, 6, 7]);
    for q in queues {
        let channels = q.channels().map(|c| human::channel(c).to_string());
        t.row([
            q.name.clone(),
            if q.channels.is_empty() { "all".into() } else { human::list(channels) },
            human::list(q.requirements.iter().map(requirement)),
            q.priority.to_string(),
            human::strategy(q.strategy()).into(),
            secs_or_default(q.offer_timeout_secs),
            human::duration(std::time::Duration::from_secs(q.wrap_up_secs.into())),
            secs_or_default(q.service_level_secs),
            hours_and_rules(q, now.get(&q.name)),
            human::list(q.escalation.iter().map(escalation_step)),
        ]);
    }
    t
}

/// A queue's hours, and what it does while closed when it says (its rules, not the defaults).
fn hours_and_rules(q: &pb::Queue, now: Option<&pb::ListOpeningsResponse>) -> String {
    let hours = crate::calendar::queue_hours(&q.calendar, now);
    if q.closed.is_empty() {
        return hours;
    }
    let rules = q.closed.iter().map(|r| {
        let ch = if r.channel() == pb::Channel::Unspecified { "others" } else { human::channel(r.channel()) };
        match r.action() {
            pb::ClosedAction::Overflow => format!("{ch} to {}", r.overflow_queue),
            pb::ClosedAction::Refuse => format!("{ch} refused"),
            _ => format!("{ch} held"),
        }
    });
    format!("{hours}; closed: {}", human::list(rules))
}

/// Interactions waiting, best first: `ctl waiting`.
pub fn waiting(list: &[pb::Interaction], now: SystemTime) -> Table {
    let mut t = Table::new(&[
        "INTERACTION",
        "QUEUE",
        "CHANNEL",
        "PRIORITY",
        "WAITING",
        "STAGE",
        "CUSTOMER",
        "NOT FOR",
        "TRANSFERRED BY",
    ])
    .right(&[3, 4, 5])
    .max_width(6, 32);
    for ix in list {
        t.row([
            ix.id.clone(),
            or_dash(&ix.queue),
            waiting_channel(ix, now),
            ix.priority.to_string(),
            human::age(ix.enqueued_at.as_ref(), now),
            ix.escalation_stage.to_string(),
            or_dash(&ix.customer_address),
            human::list(ix.excluded_agent_ids.iter().cloned()),
            or_dash(&ix.transferred_by),
        ]);
    }
    t
}

/// `chat`, or for a callback `callback` and, while it may not be offered yet, from when.
fn waiting_channel(ix: &pb::Interaction, now: SystemTime) -> String {
    let Some(cb) = &ix.callback else { return human::channel(ix.channel()).into() };
    let now_secs = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    match cb.not_before.as_ref().filter(|t| t.seconds > now_secs) {
        Some(t) => format!("callback from {}", human::weekday_time(Some(t))),
        None => "callback".into(),
    }
}

/// Runtime API keys: `ctl keys list`.
pub fn keys(keys: &[pb::ApiKey]) -> Table {
    let mut t = Table::new(&["KEY", "ROLE", "NAME", "QUEUES", "AGENT", "CREATED", "CREATED BY"]);
    for k in keys {
        let queues = if k.queues.is_empty() && k.role == "supervisor" {
            "all".into()
        } else {
            human::list(k.queues.iter().cloned())
        };
        t.row([
            k.id.clone(),
            k.role.clone(),
            or_dash(&k.name),
            queues,
            or_dash(&k.agent_id),
            human::date_time(k.created_at.as_ref()),
            or_dash(&k.created_by),
        ]);
    }
    t
}

/// Queue figures: the queue rows of `ctl watch`.
pub const FIGURES_HEADER: &[&str] = &[
    "QUEUE",
    "WAITING",
    "LONGEST",
    "OFFERED",
    "ACCEPTED",
    "REJECTED",
    "MISSED",
    "ABANDONED",
    "SL",
    "ASA",
    "AHT",
    "OCCUPANCY",
    "AGENTS",
    "HOURS",
];
/// Right-aligned columns of [`FIGURES_HEADER`].
pub const FIGURES_RIGHT: &[usize] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// An average that is 0 has nothing behind it yet.
fn average(secs: f64) -> String {
    if secs > 0.0 { human::secs(secs) } else { UNKNOWN.into() }
}

/// `2 ready, 1 not ready`: the queue's eligible agents by presence, none left out but zeros.
pub fn agents_by_presence(m: &HashMap<String, u32>) -> String {
    let order = |s: &str| ["ready", "not_ready", "wrap_up", "offline"].iter().position(|o| *o == s).unwrap_or(4);
    let mut v: Vec<(&String, &u32)> = m.iter().filter(|(_, n)| **n > 0).collect();
    v.sort_by_key(|(s, _)| (order(s), *s));
    human::list(v.into_iter().map(|(s, n)| format!("{n} {}", human::state_name(s))))
}

/// `longest_wait_ms` is as of the figures' time; `longest` is what to show for it.
pub fn figures_row_with(f: &pb::QueueFigures, longest: String) -> Vec<String> {
    vec![
        f.queue.clone(),
        f.waiting.to_string(),
        longest,
        f.offered.to_string(),
        f.accepted.to_string(),
        f.rejected.to_string(),
        f.missed.to_string(),
        f.abandoned.to_string(),
        human::percent(f.service_level_percent),
        average(f.average_speed_of_answer_secs),
        average(f.average_handle_time_secs),
        human::percent(Some(f.occupancy_percent)),
        agents_by_presence(&f.agents_by_presence),
        hours_now(f),
    ]
}

/// `open until Fri 16:00`, `closed until Mon 08:00` (this machine's time), or `always` for a queue
/// without a calendar.
pub fn hours_now(f: &pb::QueueFigures) -> String {
    let Some(open) = f.open else { return "always".into() };
    let state = if open { "open" } else { "closed" };
    match f.next_change.as_ref().filter(|t| t.seconds > 0) {
        Some(t) => format!("{state} until {}", human::weekday_time(Some(t))),
        None => state.into(),
    }
}

pub fn figures_row(f: &pb::QueueFigures) -> Vec<String> {
    let longest = if f.waiting == 0 { UNKNOWN.into() } else { human::millis(f.longest_wait_ms) };
    figures_row_with(f, longest)
}

/// `created 0193… (queued in sales)` and the like: one interaction after a change.
pub fn interaction_line(verb: &str, ix: &pb::Interaction) -> String {
    let state = human::interaction_state(ix.state());
    let place = match ix.state() {
        pb::InteractionState::Queued | pb::InteractionState::Offered => format!(" in {}", or_dash(&ix.queue)),
        _ if !ix.agent_id.is_empty() => format!(" with {}", ix.agent_id),
        _ => String::new(),
    };
    format!("{verb}{} ({state}{place})", ix.id)
}

fn delivery(d: Option<&pb::Delivery>) -> String {
    let Some(d) = d.filter(|d| !d.state.is_empty()) else { return UNKNOWN.into() };
    let mut s = d.state.clone();
    if d.segments > 1 {
        s.push_str(&format!(", {} parts", d.segments));
    }
    if !d.code.is_empty() {
        s.push_str(&format!(", code {}", d.code));
    }
    s
}

/// One interaction: its fields, then its thread (`ctl show`).
pub fn interaction(ix: &pb::Interaction, now: SystemTime) -> String {
    let mut f = Table::fields();
    f.row(["interaction", ix.id.as_str()]);
    f.row(["state", human::interaction_state(ix.state())]);
    f.row(["channel", human::channel(ix.channel())]);
    f.row(["customer".into(), or_dash(&ix.customer_address)]);
    f.row(["subject".into(), or_dash(&ix.subject)]);
    f.row(["queue".into(), or_dash(&ix.queue)]);
    f.row(["priority".into(), ix.priority.to_string()]);
    f.row(["escalation".into(), format!("stage {}", ix.escalation_stage)]);
    f.row(["agent".into(), or_dash(&ix.agent_id)]);
    let enqueued = match ix.enqueued_at.as_ref() {
        Some(t) if t.seconds > 0 => format!("{} ({} ago)", human::date_time(Some(t)), human::age(Some(t), now)),
        _ => UNKNOWN.into(),
    };
    f.row(["enqueued".into(), enqueued]);
    let mut states: Vec<(&String, &prost_types::Timestamp)> = ix.timestamps.iter().collect();
    states.sort_by_key(|(name, t)| (t.seconds, t.nanos, *name));
    let mut st = Table::fields();
    for (name, t) in states {
        st.row([human::state_name(name), human::date_time(Some(t))]);
    }
    f.row(["history".into(), if st.is_empty() { UNKNOWN.into() } else { st.render().trim_end().to_string() }]);
    f.row(["transferred by".into(), or_dash(&ix.transferred_by)]);
    f.row(["not for".into(), human::list(ix.excluded_agent_ids.iter().cloned())]);
    f.row(["disposition".into(), or_dash(&ix.disposition)]);
    f.row(["notes".into(), or_dash(&ix.notes)]);
    f.row(["end reason".into(), or_dash(&ix.end_reason)]);
    if let Some(cb) = &ix.callback {
        let mut line = format!("to {}, {} of {} attempts", cb.number, cb.attempts, cb.max_attempts);
        if let Some(t) = cb.connected_at.as_ref().filter(|t| t.seconds > 0) {
            line.push_str(&format!(", reached {}", human::date_time(Some(t))));
        } else if let Some(t) = cb.not_before.as_ref().filter(|t| t.seconds > 0) {
            line.push_str(&format!(", not before {}", human::date_time(Some(t))));
        }
        f.row(["callback".into(), line]);
    }
    let mut attrs: Vec<(&String, &String)> = ix.attributes.iter().collect();
    attrs.sort();
    let mut at = Table::fields();
    for (k, v) in attrs {
        at.row([k.as_str(), v.as_str()]);
    }
    f.row(["attributes".into(), if at.is_empty() { UNKNOWN.into() } else { at.render().trim_end().to_string() }]);
    let mut out = f.render();
    if !ix.messages.is_empty() {
        let mut t = Table::new(&["SEQ", "FROM", "AGENT", "SENT", "DELIVERY", "TEXT"]).right(&[0]);
        for m in &ix.messages {
            t.row([
                m.seq.to_string(),
                human::author(m.author()).into(),
                or_dash(&m.agent_id),
                human::date_time(m.sent_at.as_ref()),
                delivery(m.delivery.as_ref()),
                or_dash(&m.body),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn agents_show_state_time_in_it_and_load_of_capacity() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_065);
        let a = pb::AgentState {
            agent_id: "ann".into(),
            name: "Ann".into(),
            presence: Some(pb::Presence { state: pb::PresenceState::NotReady as i32, reason: "lunch".into() }),
            connected: true,
            load: [("chat".to_string(), 1)].into(),
            capacity: [("voice".to_string(), 0), ("chat".to_string(), 3), ("email".to_string(), 5)].into(),
            presence_since: at(1_000_000),
        };
        let b = pb::AgentState { agent_id: "bo".into(), ..Default::default() };
        let out = agents(&[a, b], now).render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "AGENT  NAME  STATE      REASON  IN STATE  DESKTOP    LOAD");
        assert_eq!(lines[1], "ann    Ann   not ready  lunch     1m 05s  connected  chat 1/3, email 0/5");
        assert_eq!(lines[2], "bo     -     -          -              -  -          -");
    }

    #[test]
    fn figures_say_dash_for_what_is_not_known_yet() {
        let f = pb::QueueFigures { queue: "sales".into(), ..Default::default() };
        let row = figures_row(&f);
        assert_eq!(row, ["sales", "0", "-", "0", "0", "0", "0", "0", "-", "-", "-", "0.0 %", "-", "always"]);
        let f = pb::QueueFigures {
            queue: "sales".into(),
            waiting: 2,
            longest_wait_ms: 65_000,
            offered: 10,
            accepted: 8,
            service_level_percent: Some(95.0),
            average_speed_of_answer_secs: 12.4,
            average_handle_time_secs: 7_380.0,
            occupancy_percent: 50.0,
            agents_by_presence: [("ready".to_string(), 2), ("not_ready".into(), 1), ("wrap_up".into(), 0)].into(),
            ..Default::default()
        };
        let row = figures_row(&f);
        assert_eq!(row[2], "1m 05s");
        assert_eq!(&row[8..13], ["95.0 %", "12s", "2h 03m", "50.0 %", "2 ready, 1 not ready"]);
        let closed = pb::QueueFigures { open: Some(false), ..f.clone() };
        assert_eq!(hours_now(&closed), "closed");
        let open = pb::QueueFigures { open: Some(true), next_change: at(1_796_034_533), ..f };
        let h = hours_now(&open);
        assert!(h.starts_with("open until ") && h.len() == "open until Mon 10:28".len(), "{h}");
    }

    #[test]
    fn a_waiting_callback_says_so_and_from_when_it_may_be_offered() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_000_000);
        let voice = pb::Interaction { channel: pb::Channel::Voice as i32, ..Default::default() };
        assert_eq!(waiting_channel(&voice, now), "voice");
        let due = pb::Interaction {
            callback: Some(pb::Callback { number: "+4915123456789".into(), ..Default::default() }),
            ..voice.clone()
        };
        assert_eq!(waiting_channel(&due, now), "callback");
        let later = pb::Interaction {
            callback: Some(pb::Callback { not_before: at(1_796_003_600), ..Default::default() }),
            ..voice
        };
        let c = waiting_channel(&later, now);
        assert!(c.starts_with("callback from ") && c.len() == "callback from Mon 10:28".len(), "{c}");
    }

    #[test]
    fn an_interaction_shows_its_fields_history_and_thread() {
        let ix = pb::Interaction {
            id: "0193".into(),
            channel: pb::Channel::Sms as i32,
            customer_address: "+4915123456789".into(),
            queue: "sales".into(),
            state: pb::InteractionState::Active as i32,
            agent_id: "ann".into(),
            timestamps: [("queued".to_string(), at(100).unwrap()), ("offered".to_string(), at(105).unwrap())].into(),
            messages: vec![
                pb::Message {
                    seq: 1,
                    author: pb::Author::Customer as i32,
                    body: "Hi\nsecond line".into(),
                    ..Default::default()
                },
                pb::Message {
                    seq: 2,
                    author: pb::Author::Agent as i32,
                    agent_id: "ann".into(),
                    body: "Sure".into(),
                    delivery: Some(pb::Delivery { state: "delivered".into(), code: String::new(), segments: 2 }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let out = interaction(&ix, SystemTime::now());
        assert!(out.contains("state           active\n"), "{out}");
        assert!(out.contains("subject         -\n"), "{out}");
        assert!(out.contains("enqueued        -\n"), "{out}");
        let history = out.lines().skip_while(|l| !l.starts_with("history")).take(2).collect::<Vec<_>>();
        assert!(history[0].starts_with("history         queued   "), "{out}");
        assert!(history[1].starts_with("                offered  "), "{out}");
        assert!(out.contains("\n\nSEQ  FROM      AGENT  SENT  DELIVERY            TEXT\n"), "{out}");
        assert!(out.contains("\n  1  customer  -      -     -                   Hi\n"), "{out}");
        assert!(out.contains("\n                                                second line\n"), "{out}");
        assert!(out.contains("\n  2  agent     ann    -     delivered, 2 parts  Sure\n"), "{out}");
        assert!(!out.contains("Some(") && !out.contains("None") && !out.contains("Timestamp {"), "{out}");
    }

    #[test]
    fn a_queue_s_closed_rules_follow_its_hours() {
        let rule = |channel: pb::Channel, action: pb::ClosedAction, q: &str| pb::ClosedRule {
            channel: channel as i32,
            action: action as i32,
            overflow_queue: q.into(),
            message: String::new(),
        };
        let q = pb::Queue {
            name: "support".into(),
            calendar: "office".into(),
            closed: vec![
                rule(pb::Channel::Chat, pb::ClosedAction::Overflow, "general"),
                rule(pb::Channel::Voice, pb::ClosedAction::Refuse, ""),
                rule(pb::Channel::Unspecified, pb::ClosedAction::Hold, ""),
            ],
            ..Default::default()
        };
        let out = queues(&[q], &HashMap::new()).render();
        assert!(out.contains("office; closed: chat to general, voice refused, others held"), "{out}");
    }

    #[test]
    fn queues_and_agents_as_configured() {
        let q = pb::Queue {
            name: "sales".into(),
            requirements: vec![pb::SkillRequirement { skill: "english".into(), min_level: 3 }],
            wrap_up_secs: 30,
            escalation: vec![pb::EscalationStep {
                after_secs: 90,
                action: Some(pb::escalation_step::Action::OverflowQueue("support".into())),
            }],
            ..Default::default()
        };
        let out = queues(&[q], &HashMap::new()).render();
        assert_eq!(
            out,
            "QUEUE  CHANNELS  REQUIRES    PRIORITY  STRATEGY      OFFER TIMEOUT  WRAP-UP  SL WITHIN  HOURS   ESCALATION\n\
             sales  all       english>=3         0  longest idle        default      30s    default  always  after 1m 30s: overflow to support\n"
        );
        let a = pb::Agent {
            id: "ann".into(),
            name: "Ann".into(),
            skills: [("english".to_string(), 5), ("dutch".to_string(), 2)].into(),
            capacity: Some(pb::Capacity { voice: Some(1), chat: Some(3), sms: None, email: None }),
            ..Default::default()
        };
        let out = agent_configs(&[a]).render();
        assert!(out.ends_with("ann    Ann   dutch 2, english 5  voice 1, chat 3  -                    -\n"), "{out}");
    }

    #[test]
    fn a_supervisor_key_without_queues_sees_all() {
        let k = pb::ApiKey { id: "sbk_1".into(), name: "lead".into(), role: "supervisor".into(), ..Default::default() };
        let out = keys(&[k]).render();
        assert_eq!(out.lines().nth(1), Some("sbk_1  supervisor  lead  all     -      -        -"));
    }
}
