//! Validation and eligibility, by tables of cases.

#![allow(clippy::type_complexity)] // scenario tables

use std::collections::BTreeMap;

use crate::*;

fn q() -> QueueSpec {
    let mut q = QueueSpec::new("sales");
    q.requirements = vec![
        Requirement { skill: "english".into(), min_level: 5 },
        Requirement { skill: "billing".into(), min_level: 8 },
    ];
    q
}

#[test]
fn stages_apply_steps_in_order() {
    let mut q = q();
    q.escalation = vec![
        EscalationStep {
            after_secs: 30,
            action: EscalationAction::LowerLevel(Requirement { skill: "billing".into(), min_level: 4 }),
        },
        EscalationStep { after_secs: 60, action: EscalationAction::DropSkill("billing".into()) },
        EscalationStep { after_secs: 120, action: EscalationAction::Overflow("general".into()) },
    ];
    q.validate().unwrap();
    let st = q.stage_requirements();
    assert_eq!(st.len(), 3);
    assert_eq!(st[0]["billing"], 8);
    assert_eq!(st[1]["billing"], 4);
    assert!(!st[2].contains_key("billing"));
    assert_eq!(st[2]["english"], 5);
    let steps = q.compiled_steps();
    assert_eq!(steps[0].stage, Some(1));
    assert_eq!(steps[1].stage, Some(2));
    assert_eq!(steps[2].overflow.as_deref(), Some("general"));
    assert_eq!(steps[2].at_ms, 120_000);
}

#[test]
fn invalid_queues_name_the_field() {
    let cases: Vec<(Box<dyn Fn(&mut QueueSpec)>, &str)> = vec![
        (Box::new(|q| q.name = String::new()), "name"),
        (Box::new(|q| q.name = "a b".into()), "name"),
        (Box::new(|q| q.channels.clear()), "channels"),
        (Box::new(|q| q.requirements[0].min_level = 11), "requirements[0].min_level"),
        (Box::new(|q| q.requirements[1].skill = "english".into()), "requirements[1].skill"),
        (Box::new(|q| q.priority = -1), "priority"),
        (Box::new(|q| q.offer_timeout_secs = 0), "offer_timeout_secs"),
        (
            Box::new(|q| {
                q.escalation =
                    vec![EscalationStep { after_secs: 5, action: EscalationAction::DropSkill("french".into()) }];
            }),
            "escalation[0].drop_skill",
        ),
        (
            Box::new(|q| {
                q.escalation = vec![
                    EscalationStep { after_secs: 5, action: EscalationAction::DropSkill("english".into()) },
                    EscalationStep { after_secs: 5, action: EscalationAction::DropSkill("billing".into()) },
                ];
            }),
            "escalation[1].after_secs",
        ),
        (
            Box::new(|q| {
                q.escalation = vec![
                    EscalationStep { after_secs: 5, action: EscalationAction::Overflow("x".into()) },
                    EscalationStep { after_secs: 9, action: EscalationAction::DropSkill("billing".into()) },
                ];
            }),
            "escalation[0].overflow",
        ),
        (
            Box::new(|q| {
                q.escalation = vec![EscalationStep {
                    after_secs: 5,
                    action: EscalationAction::LowerLevel(Requirement { skill: "billing".into(), min_level: 9 }),
                }];
            }),
            "escalation[0].lower_level.min_level",
        ),
        (
            Box::new(|q| {
                q.escalation =
                    vec![EscalationStep { after_secs: 5, action: EscalationAction::Overflow("sales".into()) }];
            }),
            "escalation[0].overflow",
        ),
    ];
    for (mutate, field) in cases {
        let mut q = q();
        mutate(&mut q);
        let err = q.validate().unwrap_err();
        assert_eq!(err.field, field, "{err}");
    }
}

#[test]
fn invalid_agents_name_the_field() {
    let ok = AgentSpec {
        id: "a1".into(),
        name: "Ann".into(),
        skills: [("english".to_string(), 7)].into(),
        capacity: Capacity::default(),
        cross_channel_blocking: None,
        token: "t".into(),
        devices: vec!["1001".into(), "sip:ann@pbx.example".into()],
    };
    ok.validate().unwrap();
    for (devices, field) in [
        (vec!["1001", "1001"], "devices[1]"),
        (vec!["10 01"], "devices[0]"),
        (vec![""], "devices[0]"),
        (vec!["a\nb"], "devices[0]"),
    ] {
        let mut a = ok.clone();
        a.devices = devices.into_iter().map(String::from).collect();
        assert_eq!(a.validate().unwrap_err().field, field);
    }
    let mut a = ok.clone();
    a.devices = (0..9).map(|i| format!("d{i}")).collect();
    assert_eq!(a.validate().unwrap_err().field, "devices");
    let mut a = ok.clone();
    a.skills.insert("billing".into(), 0);
    assert_eq!(a.validate().unwrap_err().field, "skills.billing");
    let mut a = ok.clone();
    a.capacity.chat = 26;
    assert_eq!(a.validate().unwrap_err().field, "capacity.chat");
    let mut a = ok.clone();
    a.id = "x".repeat(65);
    assert_eq!(a.validate().unwrap_err().field, "id");
    let mut a = ok;
    a.name = "n".repeat(201);
    assert_eq!(a.validate().unwrap_err().field, "name");
}

#[test]
fn matching_and_skill_score() {
    let skills: BTreeMap<String, u32> = [("a".to_string(), 5), ("b".to_string(), 9)].into();
    let table: Vec<(Vec<(&str, u32)>, bool, u32)> = vec![
        (vec![], true, 0),
        (vec![("a", 5)], true, 5),
        (vec![("a", 6)], false, 5),
        (vec![("a", 1), ("b", 9)], true, 14),
        (vec![("c", 1)], false, 0),
    ];
    for (reqs, eligible, score) in table {
        let r: BTreeMap<String, u32> = reqs.iter().map(|(s, l)| (s.to_string(), *l)).collect();
        assert_eq!(meets(&skills, &r), eligible, "{reqs:?}");
        assert_eq!(skill_score(&skills, &r), score, "{reqs:?}");
    }
}

#[test]
fn new_interaction_validation() {
    let ok = NewInteraction {
        channel: Some(Channel::Chat),
        customer_address: "visitor-1".into(),
        queue: "sales".into(),
        ..Default::default()
    };
    assert_eq!(ok.validate().unwrap(), Channel::Chat);
    let mut n = ok.clone();
    n.channel = None;
    assert_eq!(n.validate().unwrap_err().field, "channel");
    let mut n = ok.clone();
    n.body = "x".repeat(MAX_BODY_LEN + 1);
    assert_eq!(n.validate().unwrap_err().field, "body");
    let mut n = ok.clone();
    n.priority = Some(1001);
    assert_eq!(n.validate().unwrap_err().field, "priority");
    let mut n = ok;
    n.subject = "s".repeat(MAX_SUBJECT_LEN + 1);
    assert_eq!(n.validate().unwrap_err().field, "subject");
}

#[test]
fn control_characters_are_refused_where_they_could_inject_or_hide_text() {
    use crate::{Channel, NewInteraction};
    let base = NewInteraction {
        channel: Some(Channel::Email),
        customer_address: "ann@example.com".into(),
        subject: "Order".into(),
        queue: "support".into(),
        body: "Hello\r\n\tthere".into(),
        ..Default::default()
    };
    assert!(base.validate().is_ok(), "line breaks and tabs are fine in a body");
    for (field, bad) in [
        (
            "customer_address",
            NewInteraction { customer_address: "ann@example.com\r\nBcc: x@evil".into(), ..base.clone() },
        ),
        ("subject", NewInteraction { subject: "Hi\nX-Injected: 1".into(), ..base.clone() }),
        ("subject", NewInteraction { subject: "nul\0".into(), ..base.clone() }),
        ("body", NewInteraction { body: "nul\0byte".into(), ..base.clone() }),
        ("body", NewInteraction { body: "escape\u{1b}[2J".into(), ..base.clone() }),
    ] {
        let e = bad.validate().unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.contains("control characters"), "{e}");
    }
}

#[test]
fn closed_rules_default_by_channel_and_a_channel_s_own_rule_wins() {
    let mut q = q();
    let defaults: Vec<(Channel, ClosedAction)> = Channel::ALL.iter().map(|&c| (c, q.closed_rule(c).0.action)).collect();
    assert_eq!(
        defaults,
        [
            (Channel::Voice, ClosedAction::Refuse),
            (Channel::Chat, ClosedAction::Refuse),
            (Channel::Sms, ClosedAction::Hold),
            (Channel::Email, ClosedAction::Hold),
        ]
    );
    q.closed = vec![
        ClosedRule { message: "Back at {opens}.".into(), ..ClosedRule::new(None, ClosedAction::Hold) },
        ClosedRule { overflow_queue: "apac".into(), ..ClosedRule::new(Some(Channel::Voice), ClosedAction::Overflow) },
    ];
    q.validate().unwrap();
    assert_eq!(q.closed_rule(Channel::Voice).1, Some(1));
    assert_eq!(q.closed_rule(Channel::Voice).0.overflow_queue, "apac");
    let (chat, i) = q.closed_rule(Channel::Chat);
    assert_eq!((chat.action, chat.message.as_str(), i), (ClosedAction::Hold, "Back at {opens}.", Some(0)));
    let compiled = q.compiled_closed_rules();
    let rule = |action, q: &str, m: &str, index| ChannelClosedRule {
        action,
        overflow_queue: q.into(),
        message: m.into(),
        index,
    };
    assert_eq!(compiled["voice"], rule("overflow", "apac", "", Some(1)));
    assert_eq!(compiled["email"], rule("hold", "", "Back at {opens}.", Some(0)));

    let mut only_chat = QueueSpec::new("web");
    only_chat.channels = vec![Channel::Chat];
    let compiled: Vec<_> = only_chat.compiled_closed_rules().into_iter().collect();
    assert_eq!(compiled, [("chat", rule("refuse", "", "", None))], "defaults, for the queue's channels only");
}

#[test]
fn bad_closed_rules_name_the_field() {
    let overflow = |to: &str| ClosedRule { overflow_queue: to.into(), ..ClosedRule::new(None, ClosedAction::Overflow) };
    let cases: Vec<(Vec<ClosedRule>, &str, &str)> = vec![
        (vec![overflow("")], "closed[0].overflow_queue", "is required"),
        (vec![overflow("sales")], "closed[0].overflow_queue", "itself"),
        (vec![overflow("a b")], "closed[0].overflow_queue", "may only contain"),
        (
            vec![ClosedRule { overflow_queue: "apac".into(), ..ClosedRule::new(None, ClosedAction::Hold) }],
            "closed[0].overflow_queue",
            "only a rule with action overflow",
        ),
        (
            vec![
                ClosedRule::new(Some(Channel::Sms), ClosedAction::Hold),
                ClosedRule::new(Some(Channel::Sms), ClosedAction::Refuse),
            ],
            "closed[1].channel",
            "closed[0] is the rule for sms already",
        ),
        (vec![ClosedRule::new(None, ClosedAction::Hold), overflow("apac")], "closed[1].channel", "every channel"),
        (
            vec![ClosedRule { message: "x".repeat(1001), ..ClosedRule::new(None, ClosedAction::Hold) }],
            "closed[0].message",
            "at most 1000 bytes",
        ),
        (
            vec![ClosedRule { message: "closed\u{1b}".into(), ..ClosedRule::new(None, ClosedAction::Hold) }],
            "closed[0].message",
            "control characters",
        ),
    ];
    for (rules, field, words) in cases {
        let mut q = q();
        q.closed = rules;
        let err = q.validate().unwrap_err();
        assert_eq!(err.field, field, "{err}");
        assert!(err.message.contains(words), "{err}");
    }
    let mut q = q();
    q.channels = vec![Channel::Email];
    q.closed = vec![ClosedRule::new(Some(Channel::Voice), ClosedAction::Refuse)];
    let err = q.validate().unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("closed[0].channel", "the queue does not take voice interactions")
    );
}

#[test]
fn a_closed_message_says_when_the_queue_opens_in_its_zone() {
    let zone: calendar::TimeZone = "Europe/Berlin".parse().unwrap();
    let opens = chrono::DateTime::parse_from_rfc3339("2026-12-28T08:00:00Z").unwrap().to_utc();
    let m = calendar::closed_message("We are closed; we answer from {opens}.", Some(opens), zone);
    assert_eq!(m, "We are closed; we answer from Mon 2026-12-28 09:00 CET.");
    assert_eq!(calendar::closed_message("Closed {opens}", None, zone), "Closed further notice");
    assert_eq!(calendar::closed_message("No time here", Some(opens), zone), "No time here");
}
