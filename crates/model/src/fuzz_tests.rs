//! Property tests ("fuzzed inputs", issue #21 §3) of the model's parsers and validators: every
//! input the API, the config file and the channels hand in passes through these.
//!
//! Cases per target: `SWITCHBOARD_FUZZ_CASES` (default 256, the suite's short mode;
//! `scripts/fuzz.sh` runs 100,000). Each target prints one line, `fuzz <target>: <n> cases ...`,
//! with the seed; `SWITCHBOARD_FUZZ_SEED=<seed>` replays a run. A case that panics fails the
//! target with the shrunk input; one that runs longer than `SWITCHBOARD_FUZZ_SLOW_SECS` (default
//! 10) fails as too slow, and one still running after `SWITCHBOARD_FUZZ_HANG_SECS` (default 120)
//! aborts the process, naming the target, the seed and the case.

use std::collections::BTreeMap;
use std::fmt::Debug;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::calendar::{CalendarSpec, DAYS, ExceptionSpec, TimeRange};
use crate::callback::{CallbackPlan, ServiceLevelAt};
use crate::sms::{self, Encoding, Keyword};
use crate::validate::*;
use crate::voice::{MAX_USER_DATA, MAX_USER_DATA_KEY, MAX_USER_DATA_VALUE, validate_user_data};
use crate::{
    AgentSpec, Capacity, Channel, EscalationAction, EscalationStep, NewInteraction, QueueSpec, Requirement,
    validate_attributes,
};

mod harness {
    //! The runner every target goes through: case count, seed, timing and the hang watchdog.
    use std::fmt::Debug;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use proptest::strategy::Strategy;
    use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

    fn env_u64(name: &str) -> Option<u64> {
        std::env::var(name).ok().and_then(|v| v.trim().replace('_', "").parse().ok())
    }

    /// Cases per target: 256 unless `SWITCHBOARD_FUZZ_CASES` says otherwise.
    pub fn cases() -> u32 {
        env_u64("SWITCHBOARD_FUZZ_CASES").map_or(256, |n| n.clamp(1, u64::from(u32::MAX)) as u32)
    }

    fn seed(name: &str) -> u64 {
        if let Some(s) = env_u64("SWITCHBOARD_FUZZ_SEED") {
            return s;
        }
        // The suite's short mode tries the same cases every run: a CI run must not fail on a case
        // no change brought. The long mode (SWITCHBOARD_FUZZ_CASES set) explores new ones each run.
        let base = if env_u64("SWITCHBOARD_FUZZ_CASES").is_some() {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            now.as_nanos() as u64
        } else {
            0xcbf2_9ce4_8422_2325
        };
        name.bytes().fold(base, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3))
    }

    /// Runs `test` on `cases()` values of `strategy`; panics with the shrunk failing input.
    pub fn run<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
    where
        S: Strategy,
        S::Value: Debug,
    {
        let cases = cases();
        let seed = seed(name);
        let slow = Duration::from_secs(env_u64("SWITCHBOARD_FUZZ_SLOW_SECS").unwrap_or(10));
        let hang = env_u64("SWITCHBOARD_FUZZ_HANG_SECS").unwrap_or(120);
        let config = Config {
            cases,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed),
            max_shrink_iters: 2_000,
            max_global_rejects: cases.saturating_mul(4).max(1024),
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        // The watchdog: when one case runs past `hang` seconds, say which and abort (a hang
        // never returns to the runner, so it could not report it).
        let started = Instant::now();
        let case_start = Arc::new(AtomicU64::new(0));
        let count = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (case_start, count, done, name) = (case_start.clone(), count.clone(), done.clone(), name.to_string());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let at = case_start.load(Ordering::Relaxed);
                    let now = started.elapsed().as_millis() as u64;
                    if at > 0 && now.saturating_sub(at) > hang * 1000 {
                        eprintln!(
                            "fuzz {name}: HANG: case #{} has run for more than {hang} s (seed {seed}; replay with \
                             SWITCHBOARD_FUZZ_SEED={seed})",
                            count.load(Ordering::Relaxed)
                        );
                        std::process::abort();
                    }
                }
            })
        };
        let slowest = AtomicU64::new(0);
        let result = runner.run(&strategy, |value| {
            count.fetch_add(1, Ordering::Relaxed);
            let t = Instant::now();
            case_start.store(started.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
            let r = test(value);
            case_start.store(0, Ordering::Relaxed);
            let took = t.elapsed();
            slowest.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
            r?;
            if took > slow {
                return Err(TestCaseError::fail(format!("too slow: {took:?} for one case (limit {slow:?})")));
            }
            Ok(())
        });
        done.store(true, Ordering::Relaxed);
        let _ = watchdog.join();
        eprintln!(
            "fuzz {name}: {} cases in {:.2} s (slowest {:.1} ms), seed {seed}: {}",
            count.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64(),
            slowest.load(Ordering::Relaxed) as f64 / 1000.0,
            if result.is_ok() { "ok" } else { "FAILED" }
        );
        if let Err(e) = result {
            panic!("fuzz {name} (replay with SWITCHBOARD_FUZZ_SEED={seed}): {e}");
        }
    }
}

use harness::run;

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok { Ok(()) } else { Err(TestCaseError::fail(what())) }
}

/// The field a validation error names, or "" for Ok.
fn field_of<T>(r: &Result<T, ValidationError>) -> &str {
    match r {
        Ok(_) => "",
        Err(e) => &e.field,
    }
}

// ---- strategies ------------------------------------------------------------------------------

/// Characters that find the corners: ASCII, control characters (C0, DEL, C1), multi-byte text,
/// astral emoji, zero-width and bidi marks, the replacement character.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range(' ', '~'),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => Just('\u{7f}'),
        1 => proptest::char::range('\u{80}', '\u{9f}'),
        2 => proptest::char::range('\u{a0}', '\u{2ff}'),
        1 => prop_oneof![Just('\u{200b}'), Just('\u{202e}'), Just('\u{feff}'), Just('\u{fffd}'), Just('\u{2028}')],
        2 => proptest::char::range('\u{4e00}', '\u{4e80}'),
        1 => proptest::char::range('\u{1f600}', '\u{1f64f}'),
        1 => any::<char>(),
    ]
}

fn tricky_string(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(tricky_char(), 0..=max_chars).prop_map(|v| v.into_iter().collect())
}

/// A string of exactly `bytes` bytes: `unit` repeated, topped up with ASCII `x`.
fn sized(unit: &str, bytes: usize) -> String {
    let mut s = unit.repeat(bytes / unit.len().max(1));
    while s.len() < bytes {
        s.push('x');
    }
    s
}

/// A length around `limit`: the limit itself, one over, one under, zero, or anywhere up to twice it.
fn around(limit: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => Just(limit),
        3 => Just(limit + 1),
        1 => Just(limit.saturating_sub(1)),
        1 => Just(0usize),
        2 => 0..=limit * 2 + 2,
    ]
}

/// Text of `len` bytes made of one filler (ASCII, two-byte or four-byte characters, or one with
/// a control character, a tab or a line break inside).
fn text_of(len: usize) -> impl Strategy<Value = String> {
    (0..6usize, any::<prop::sample::Index>()).prop_map(move |(kind, at)| {
        let mut s = match kind {
            0 | 1 => sized("a", len),
            2 => sized("é", len),
            3 => sized("😀", len),
            _ => sized("a", len),
        };
        if kind >= 4 && !s.is_empty() {
            let i = at.index(s.len());
            let c = if kind == 4 { "\u{1}" } else { "\n" };
            s.replace_range(i..=i, c);
        }
        s
    })
}

fn id_like() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9._@-]{1,64}",
        1 => Just(String::new()),
        1 => Just("a".repeat(64)),
        1 => Just("a".repeat(65)),
        1 => "[a-z]{1,10}[ /:#\u{0}é][a-z]{0,10}",
    ]
}

fn is_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_ID_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

// ---- validate.rs -----------------------------------------------------------------------------

#[test]
fn fuzz_validate_fields() {
    // Oracles written apart from the code: ids are 1..=64 bytes of [A-Za-z0-9._@-]; a line has
    // no control character; a text may hold tab, CR and LF; lengths are bytes.
    let strategy = (id_like(), tricky_string(80), 0usize..100, "[a-z_.]{1,20}");
    run("model.validate_fields", strategy, |(id, s, max, field)| {
        let r = validate_id(&field, &id);
        check(r.is_ok() == is_id(&id), || format!("validate_id({id:?}) = {r:?}"))?;
        check(r.as_ref().err().is_none_or(|e| e.field == field), || format!("field of {r:?}"))?;

        let line = validate_line(&field, &s, max);
        let want_line = s.len() <= max && !s.chars().any(char::is_control);
        check(line.is_ok() == want_line, || format!("validate_line({s:?}, {max}) = {line:?}"))?;
        let text = validate_text(&field, &s, max);
        let want_text = s.len() <= max && !s.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
        check(text.is_ok() == want_text, || format!("validate_text({s:?}, {max}) = {text:?}"))?;
        for e in [line.err(), text.err()].into_iter().flatten() {
            check(e.field == field, || format!("{e:?} names {:?}, not {field:?}", e.field))?;
            if s.len() > max {
                check(e.message.contains(&max.to_string()), || format!("{e:?} does not say the limit"))?;
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_validate_limits() {
    // At the limit passes, one byte over fails naming the field, whatever the characters.
    let limits = prop_oneof![
        Just(MAX_NAME_LEN),
        Just(MAX_SUBJECT_LEN),
        Just(MAX_ADDRESS_LEN),
        Just(MAX_ATTRIBUTE_LEN),
        Just(MAX_BODY_LEN),
        Just(MAX_ID_LEN),
    ];
    let strategy = (limits, prop_oneof![Just("a"), Just("é"), Just("€"), Just("😀")], "[a-z_]{1,12}");
    run("model.validate_limits", strategy, |(max, unit, field)| {
        let at = sized(unit, max);
        let over = sized(unit, max + 1);
        check(at.len() == max && over.len() == max + 1, || "sizes".into())?;
        for f in [validate_len, validate_line, validate_text] {
            check(f(&field, &at, max).is_ok(), || format!("{max} bytes of {unit:?} refused"))?;
            let e = f(&field, &over, max).unwrap_err();
            check(e.field == field && e.message.contains(&max.to_string()), || format!("{e:?}"))?;
        }
        Ok(())
    });
}

// ---- interaction.rs --------------------------------------------------------------------------

/// A request near the valid one: each field valid, at its limit, just over it, or broken.
fn near_interaction() -> impl Strategy<Value = NewInteraction> {
    let address = prop_oneof![
        3 => Just("+4915112345678".to_string()),
        1 => Just(String::new()),
        2 => around(MAX_ADDRESS_LEN).prop_flat_map(text_of),
    ];
    let subject = prop_oneof![2 => Just(String::new()), 3 => around(MAX_SUBJECT_LEN).prop_flat_map(text_of)];
    let body = prop_oneof![2 => Just("hi".to_string()), 1 => Just(String::new()), 3 => around(MAX_BODY_LEN).prop_flat_map(text_of)];
    let key = prop_oneof![2 => Just(String::new()), 2 => around(200).prop_flat_map(text_of)];
    let channel = prop_oneof![1 => Just(None), 6 => prop::sample::select(Channel::ALL.to_vec()).prop_map(Some)];
    let priority = prop_oneof![2 => Just(None), 1 => Just(Some(0)), 1 => Just(Some(MAX_PRIORITY)), 1 => Just(Some(MAX_PRIORITY + 1)), 1 => Just(Some(-1)), 1 => any::<i32>().prop_map(Some)];
    let preferred = prop_oneof![3 => Just(String::new()), 2 => id_like()];
    let wait = prop_oneof![Just(0u32), Just(MAX_TIMEOUT_SECS), Just(MAX_TIMEOUT_SECS + 1), any::<u32>()];
    ((key, channel, address, subject, id_like()), (priority, body, attributes(), preferred, wait)).prop_map(
        |(
            (idempotency_key, channel, customer_address, subject, queue),
            (priority, body, attributes, preferred_agent_id, preferred_agent_wait_secs),
        )| {
            NewInteraction {
                idempotency_key,
                channel,
                customer_address,
                subject,
                attributes,
                queue,
                priority,
                body,
                preferred_agent_id,
                preferred_agent_wait_secs,
                ..NewInteraction::default()
            }
        },
    )
}

fn attributes() -> impl Strategy<Value = BTreeMap<String, String>> {
    let key = prop_oneof![
        6 => "[a-z._]{1,16}",
        1 => Just(String::new()),
        1 => Just("k".repeat(128)),
        1 => Just("k".repeat(129)),
        1 => "[a-z]{1,4}[\u{0}\n\u{7f}][a-z]{0,4}",
        1 => "\\PC{1,8}",
    ];
    let value = prop_oneof![4 => "\\PC{0,12}", 2 => around(MAX_ATTRIBUTE_LEN).prop_flat_map(text_of)];
    prop_oneof![
        6 => proptest::collection::btree_map(key, value, 0..6),
        1 => (MAX_ATTRIBUTES - 1..=MAX_ATTRIBUTES + 1).prop_map(|n| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect()),
    ]
}

/// The first field `NewInteraction::validate` must refuse, in the order it checks them ("" when
/// none): written from the documented limits, not from the code.
fn interaction_oracle(n: &NewInteraction) -> String {
    let line_ok = |s: &str, max| s.len() <= max && !s.chars().any(char::is_control);
    let text_ok =
        |s: &str, max| s.len() <= max && !s.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
    if n.idempotency_key.len() > 200 {
        return "idempotency_key".into();
    }
    let Some(channel) = n.channel else { return "channel".into() };
    if n.customer_address.is_empty() || !line_ok(&n.customer_address, MAX_ADDRESS_LEN) {
        return "customer_address".into();
    }
    if !line_ok(&n.subject, MAX_SUBJECT_LEN) {
        return "subject".into();
    }
    if !is_id(&n.queue) {
        return "queue".into();
    }
    if n.priority.is_some_and(|p| !(0..=MAX_PRIORITY).contains(&p)) {
        return "priority".into();
    }
    if !text_ok(&n.body, MAX_BODY_LEN) || (channel == Channel::Voice && !n.body.is_empty()) {
        return "body".into();
    }
    if let Some(f) = attributes_oracle(&n.attributes) {
        return f;
    }
    if !n.preferred_agent_id.is_empty() {
        if !is_id(&n.preferred_agent_id) {
            return "preferred_agent_id".into();
        }
        if n.preferred_agent_wait_secs > MAX_TIMEOUT_SECS {
            return "preferred_agent_wait_secs".into();
        }
    }
    String::new()
}

fn attributes_oracle(a: &BTreeMap<String, String>) -> Option<String> {
    if a.len() > MAX_ATTRIBUTES {
        return Some("attributes".into());
    }
    for (k, v) in a {
        if k.is_empty() || k.len() > 128 || k.chars().any(char::is_control) {
            return Some("attributes".into());
        }
        if v.len() > MAX_ATTRIBUTE_LEN || v.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
            return Some(format!("attributes.{k}"));
        }
    }
    None
}

#[test]
fn fuzz_new_interaction_validate() {
    run("model.new_interaction", near_interaction(), |n| {
        let r = n.validate();
        let want = interaction_oracle(&n);
        check(field_of(&r) == want, || format!("validate() = {r:?}, expected the error at {want:?}"))?;
        if let Ok(c) = r {
            check(Some(c) == n.channel, || "channel".into())?;
        }
        Ok(())
    });
}

#[test]
fn fuzz_attributes_validate() {
    run("model.attributes", attributes(), |a| {
        let r = validate_attributes(&a);
        let want = attributes_oracle(&a).unwrap_or_default();
        check(field_of(&r) == want, || format!("{r:?}, expected {want:?}"))
    });
}

// ---- agent.rs, queue.rs ----------------------------------------------------------------------

fn level() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 1..=MAX_LEVEL, 1 => Just(0u32), 1 => Just(MAX_LEVEL + 1), 1 => any::<u32>()]
}

fn skill() -> impl Strategy<Value = String> {
    prop_oneof![8 => prop::sample::select(vec!["billing", "de", "en", "vip", "tech"]).prop_map(String::from), 1 => id_like()]
}

fn agent_spec() -> impl Strategy<Value = AgentSpec> {
    let skills = prop_oneof![
        8 => proptest::collection::btree_map(skill(), level(), 0..6),
        1 => (MAX_SKILLS..=MAX_SKILLS + 1).prop_map(|n| (0..n).map(|i| (format!("s{i}"), 1)).collect()),
    ];
    let capacity = (0..=30u32, 0..=30u32, 0..=30u32, prop_oneof![0..=30u32, any::<u32>()])
        .prop_map(|(voice, chat, sms, email)| Capacity { voice, chat, sms, email });
    let device = prop_oneof![4 => "[0-9]{3,5}", 1 => "sip:[a-z]{1,8}@pbx\\.test", 1 => tricky_string(10), 1 => around(256).prop_map(|n| sized("d", n))];
    let name = prop_oneof![3 => "\\PC{0,20}", 1 => around(MAX_NAME_LEN).prop_flat_map(text_of)];
    (id_like(), name, skills, capacity, proptest::collection::vec(device, 0..10), around(256)).prop_map(
        |(id, name, skills, capacity, devices, token)| AgentSpec {
            id,
            name,
            skills,
            capacity,
            cross_channel_blocking: None,
            token: "t".repeat(token),
            devices,
        },
    )
}

#[test]
fn fuzz_agent_spec_validate() {
    let fields = regex_like(&[
        "id",
        "name",
        "skills",
        "skills.*",
        "capacity.voice",
        "capacity.chat",
        "capacity.sms",
        "capacity.email",
        "token",
        "devices",
        "devices[*]",
    ]);
    run("model.agent_spec", agent_spec(), |a| {
        let r = a.validate();
        if let Err(e) = &r {
            check(fields(&e.field), || format!("{e:?} names no field of an agent"))?;
        }
        // Spot checks of the limits the oracle can tell.
        if !is_id(&a.id) {
            check(field_of(&r) == "id", || format!("{r:?} for id {:?}", a.id))?;
        }
        if r.is_ok() {
            check(a.skills.len() <= MAX_SKILLS && a.devices.len() <= crate::MAX_DEVICES, || "limits".into())?;
            check(Channel::ALL.iter().all(|c| a.capacity.get(*c) <= MAX_CAPACITY), || "capacity".into())?;
        }
        Ok(())
    });
}

/// A matcher for field names, `*` standing for any text (an empty key too: `skills.`).
fn regex_like(patterns: &[&'static str]) -> impl Fn(&str) -> bool {
    let patterns = patterns.to_vec();
    move |f: &str| {
        patterns.iter().any(|p| match p.split_once('*') {
            None => *p == f,
            Some((head, tail)) => f.len() >= head.len() + tail.len() && f.starts_with(head) && f.ends_with(tail),
        })
    }
}

fn queue_spec() -> impl Strategy<Value = QueueSpec> {
    let requirement = (skill(), level()).prop_map(|(skill, min_level)| Requirement { skill, min_level });
    let action = prop_oneof![
        3 => skill().prop_map(EscalationAction::DropSkill),
        3 => (skill(), level()).prop_map(|(skill, min_level)| EscalationAction::LowerLevel(Requirement { skill, min_level })),
        1 => id_like().prop_map(EscalationAction::Overflow),
    ];
    let after =
        prop_oneof![4 => 1..=600u32, 1 => Just(0u32), 1 => Just(MAX_TIMEOUT_SECS), 1 => Just(MAX_TIMEOUT_SECS + 1)];
    let step = (after, action).prop_map(|(after_secs, action)| EscalationStep { after_secs, action });
    let steps = prop_oneof![
        6 => proptest::collection::vec(step, 0..5).prop_map(|mut s| {
            // Mostly increasing, so validation gets past the order check.
            s.sort_by_key(|x| x.after_secs);
            s
        }),
        1 => proptest::collection::vec((1..1000u32).prop_map(|a| EscalationStep { after_secs: a, action: EscalationAction::DropSkill("x".into()) }), MAX_ESCALATION_STEPS..=MAX_ESCALATION_STEPS + 1),
    ];
    let secs = || prop_oneof![4 => 1..=120u32, 1 => Just(0u32), 1 => Just(MAX_TIMEOUT_SECS + 1)];
    let channels = proptest::collection::vec(prop::sample::select(Channel::ALL.to_vec()), 0..5);
    (id_like(), channels, proptest::collection::vec(requirement, 0..4), -5..1010i32, steps, secs(), secs(), secs())
        .prop_map(|(name, channels, requirements, priority, escalation, offer, wrap, sl)| QueueSpec {
            channels,
            requirements,
            priority,
            escalation,
            offer_timeout_secs: offer,
            wrap_up_secs: wrap,
            service_level_secs: sl,
            ..QueueSpec::new(name)
        })
}

#[test]
fn fuzz_queue_spec_validate() {
    let fields = regex_like(&[
        "name",
        "channels",
        "requirements[*].skill",
        "requirements[*].min_level",
        "priority",
        "offer_timeout_secs",
        "wrap_up_secs",
        "service_level_secs",
        "calendar",
        "escalation",
        "escalation[*].after_secs",
        "escalation[*].drop_skill",
        "escalation[*].lower_level.skill",
        "escalation[*].lower_level.min_level",
        "escalation[*].overflow",
    ]);
    run("model.queue_spec", queue_spec(), |q| {
        let r = q.validate();
        if let Err(e) = &r {
            check(fields(&e.field), || format!("{e:?} names no field of a queue"))?;
            return Ok(());
        }
        // A valid queue's stages only ever relax: whoever meets one stage meets the next.
        let stages = q.stage_requirements();
        let steps = q.compiled_steps();
        check(steps.len() == q.escalation.len(), || "a compiled step per step".into())?;
        for s in &steps {
            if let Some(i) = s.stage {
                check(i < stages.len(), || format!("stage {i} of {}", stages.len()))?;
            }
        }
        for pair in stages.windows(2) {
            // The strictest agent of a stage: exactly its minimum levels.
            let agent = pair[0].clone();
            check(crate::meets(&agent, &pair[0]) && crate::meets(&agent, &pair[1]), || format!("{pair:?} tightens"))?;
            check(pair[1].values().all(|l| (1..=MAX_LEVEL).contains(l)), || format!("{pair:?}"))?;
        }
        Ok(())
    });
}

// ---- calendar.rs -----------------------------------------------------------------------------

/// Zones with the awkward days: DST both ways, half-hour DST (Lord Howe), a skipped day (Apia
/// 2011), DST at midnight (Santiago, Havana), a DST pause in Ramadan (Casablanca), +14:00.
const ZONES: [&str; 12] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "America/Santiago",
    "America/Havana",
    "Africa/Casablanca",
    "Asia/Tehran",
    "Pacific/Kiritimati",
    "Asia/Kolkata",
    "America/St_Johns",
];

fn hhmm() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => (0..=48u16).prop_map(|h| h * 30),
        1 => 0..=1440u16,
        1 => prop::sample::select(vec![0u16, 60, 120, 150, 180, 1380, 1439, 1440]),
    ]
}

fn range_text() -> impl Strategy<Value = String> {
    let fmt = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    prop_oneof![
        6 => (hhmm(), hhmm()).prop_map(move |(a, b)| format!("{}-{}", fmt(a.min(b)), fmt(a.max(b)))),
        1 => "[0-9:\\- ]{0,13}",
        1 => "\\PC{0,12}",
        1 => "[0-2][0-9]:[0-6][0-9]-[0-2][0-9]:[0-6][0-9]",
    ]
}

fn date_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (1970..2100i32, 1..=12u32, 1..=31u32).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        1 => "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}",
        1 => "\\PC{0,11}",
        1 => Just("2011-12-30".to_string()),
    ]
}

fn calendar_spec(valid_ranges: bool) -> impl Strategy<Value = CalendarSpec> {
    let ranges = move || {
        let r = if valid_ranges { range_text().boxed() } else { prop_oneof![range_text(), "\\PC{0,14}"].boxed() };
        proptest::collection::vec(r, 0..4)
    };
    let exception = (
        prop_oneof![Just(String::new()), "\\PC{0,10}"],
        date_text(),
        prop_oneof![Just(String::new()), date_text()],
        ranges(),
    )
        .prop_map(|(name, from, to, hours)| ExceptionSpec { name, from, to, hours });
    let tz = prop_oneof![8 => prop::sample::select(ZONES.to_vec()).prop_map(String::from), 1 => "\\PC{0,20}", 1 => Just(String::new())];
    (id_like(), tz, proptest::collection::vec(ranges(), 7), proptest::collection::vec(exception, 0..4)).prop_map(
        |(name, time_zone, days, exceptions)| {
            let mut spec = CalendarSpec::new(name, time_zone);
            for (i, d) in days.into_iter().enumerate() {
                *spec.weekly.day_mut(i) = d;
            }
            spec.exceptions = exceptions;
            spec
        },
    )
}

#[test]
fn fuzz_calendar_spec_compile() {
    let day_fields: Vec<String> = DAYS.iter().map(|d| format!("weekly.{d}")).collect();
    run("model.calendar_spec", calendar_spec(false), |spec| {
        match spec.compile() {
            Ok(cal) => {
                // Every range reads back as written (HH:MM-HH:MM, both ways).
                for day in &cal.weekly {
                    for r in day {
                        let again: TimeRange = r.to_string().parse().map_err(TestCaseError::fail)?;
                        check(again == *r, || format!("{r} read back as {again}"))?;
                    }
                    check(day.windows(2).all(|w| w[0].end_minute() <= w[1].start_minute()), || format!("{day:?}"))?;
                }
            }
            Err(e) => {
                let f = e.field.as_str();
                let known = ["name", "time_zone", "exceptions"].contains(&f)
                    || day_fields.iter().any(|d| f.starts_with(d.as_str()))
                    || f.starts_with("exceptions[");
                check(known, || format!("{e:?} names no field of a calendar"))?;
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_time_range_parse() {
    let strategy = prop_oneof![
        range_text(),
        "\\PC{0,16}",
        (0..=1440u16, 0..=1440u16).prop_map(|(a, b)| format!(
            "{:02}:{:02}-{:02}:{:02}",
            a / 60,
            a % 60,
            b / 60,
            b % 60
        ))
    ];
    run("model.time_range", strategy, |s| {
        if let Ok(r) = s.parse::<TimeRange>() {
            check(r.to_string() == s, || format!("{s:?} parsed as {r}"))?;
            check(r.start_minute() < r.end_minute() && r.end_minute() <= 1440, || format!("{r:?}"))?;
        }
        Ok(())
    });
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 1970..2100 mostly, near the daylight-saving changes often (whole and half hours), and now
    // and then the far end of what the API takes (9999).
    prop_oneof![
        6 => (0i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        3 => (0i64..4_102_444_800 / 1800).prop_map(|h| DateTime::from_timestamp(h * 1800, 0).unwrap()),
        1 => (253_370_764_800i64..253_402_300_799).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
    ]
}

/// A calendar that compiles: a zone of [`ZONES`], ranges cut from sorted points of the day
/// (adjacent ones included), and exceptions over a few days around the instants tested.
fn valid_calendar() -> impl Strategy<Value = crate::Calendar> {
    fn day() -> impl Strategy<Value = Vec<String>> {
        let fmt = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        proptest::collection::btree_set(hhmm(), 0..7).prop_map(move |points| {
            let p: Vec<u16> = points.into_iter().collect();
            // Consecutive points pair up: ranges with gaps between them, or adjacent ones.
            p.windows(2).step_by(2).map(|w| format!("{}-{}", fmt(w[0]), fmt(w[1]))).collect::<Vec<_>>()
        })
    }
    let exception = (0..20_000i64, 0..10u64, day()).prop_map(|(from, len, hours)| {
        let from = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + chrono::Duration::days(from);
        let to = from + chrono::Days::new(len);
        ExceptionSpec { name: String::new(), from: from.to_string(), to: to.to_string(), hours }
    });
    (
        prop::sample::select(ZONES.to_vec()),
        proptest::collection::vec(day(), 7),
        proptest::collection::vec(exception, 0..4),
    )
        .prop_map(|(tz, days, exceptions)| {
            let mut spec = CalendarSpec::new("cal", tz);
            for (i, d) in days.into_iter().enumerate() {
                *spec.weekly.day_mut(i) = d;
            }
            spec.exceptions = exceptions;
            spec.compile().expect("a valid calendar")
        })
}

#[test]
fn fuzz_calendar_queries() {
    // A valid calendar answers consistently at any instant: `next_change` is a real change and
    // nothing changes before it; openings are open at their start and closed at their end.
    // days ≥ 1: the API reads 0 as its default (a week); `openings(at, 0)` gives the opening
    // around `at` cut to nothing, which no caller asks for.
    let strategy = (valid_calendar(), instant(), 1..15u32, 0.0..1.0f64);
    run("model.calendar_queries", strategy, |(cal, at, days, frac)| {
        let open = cal.is_open(at);
        if let Some((t, opens)) = cal.next_change(at) {
            check(t > at, || format!("next change {t} not after {at}"))?;
            check(opens != open, || format!("at {at} open={open}, and the next change {t} says open={opens}"))?;
            check(cal.is_open(t) == opens, || format!("is_open({t}) disagrees with next_change({at})"))?;
            let span = (t - at).num_seconds();
            let mid = at + chrono::Duration::seconds((span as f64 * frac) as i64);
            check(cal.is_open(mid) == open, || format!("is_open({mid}) changed before the next change {t}"))?;
        }
        let until = at + chrono::Duration::days(i64::from(days));
        let spans = cal.openings(at, days);
        for w in spans.windows(2) {
            check(w[0].1 < w[1].0, || format!("openings overlap or touch: {w:?}"))?;
        }
        for (s, e) in &spans {
            check(at <= *s && s < e && *e <= until, || format!("({s}, {e}) outside [{at}, {until}]"))?;
            check(cal.is_open(*s), || format!("not open at the start of ({s}, {e})"))?;
            check(*e == until || !cal.is_open(*e), || format!("still open at the end of ({s}, {e})"))?;
        }
        Ok(())
    });
}

// ---- sms.rs ----------------------------------------------------------------------------------

fn sms_text() -> impl Strategy<Value = String> {
    let gsm = prop::sample::select("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà".chars().collect::<Vec<_>>());
    let ext = prop::sample::select(vec!['\u{0C}', '^', '{', '}', '\\', '[', '~', ']', '|', '€']);
    let gsm_text = proptest::collection::vec(prop_oneof![8 => gsm.clone(), 2 => ext.clone()], 0..500);
    let mixed = proptest::collection::vec(prop_oneof![6 => gsm, 2 => ext, 2 => tricky_char()], 0..400);
    prop_oneof![gsm_text, mixed].prop_map(|v| v.into_iter().collect())
}

#[test]
fn fuzz_sms_segments_and_split() {
    run("model.sms_segments_split", sms_text(), |text| {
        let s = sms::segments(&text);
        let (encoding, parts) = sms::split(&text);
        check(s.encoding == encoding && s.encoding == sms::encoding_of(&text), || "encoding".into())?;
        check(s.count == parts.len() && s.count >= 1, || format!("{s:?} vs {} parts", parts.len()))?;
        let unit = if encoding == Encoding::Gsm7 { 1 } else { 2 };
        check(s.units == parts.iter().map(Vec::len).sum::<usize>() / unit, || format!("units of {s:?}"))?;
        let cap = if parts.len() == 1 { encoding.single_capacity() } else { encoding.concat_capacity() };
        check(s.per_segment == cap, || format!("per_segment of {s:?}"))?;
        check(parts.iter().all(|p| p.len() / unit <= cap && p.len() % unit == 0), || "a part over capacity".into())?;
        check(s.remaining == cap - parts.last().unwrap().len() / unit, || format!("remaining of {s:?}"))?;
        // Each part decodes on its own (no escape or surrogate pair cut), back to the text.
        let mut back = String::new();
        for p in &parts {
            back.push_str(&sms::decode(encoding.data_coding(), p).map_err(TestCaseError::fail)?);
        }
        check(back == text, || format!("split→decode gave {back:?}"))?;
        let (dc, bytes) = sms::encode(&text);
        check(sms::decode(dc, &bytes).as_deref() == Ok(text.as_str()), || "encode→decode".into())?;
        // The desktop's count never says less than what is billed when a character is added.
        let longer = sms::segments(&format!("{text}a"));
        check(longer.count >= s.count, || "adding a character lowered the count".into())
    });
}

#[test]
fn fuzz_sms_decode() {
    let strategy = (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300));
    run("model.sms_decode", strategy, |(dc, bytes)| {
        let r = sms::decode(dc, &bytes);
        match dc {
            0x00 | 0x01 | 0x03 | 0x08 => check(r.is_ok(), || format!("{r:?}"))?,
            _ => {}
        }
        match &r {
            Ok(t) => check(t.chars().count() <= bytes.len() + 1, || "more characters than bytes".into())?,
            Err(m) => check(m.contains(&format!("0x{dc:02X}")), || format!("{m:?} does not name the coding"))?,
        }
        Ok(())
    });
}

/// An information element of a UDH: the concatenation ones or any other.
#[derive(Debug, Clone)]
enum Ie {
    Concat8(u8, u8, u8),
    Concat16(u16, u8, u8),
    Other(u8, Vec<u8>),
}

#[test]
fn fuzz_sms_udh() {
    // Well-formed headers come back exactly; any byte soup is None or a consistent split.
    let ie = prop_oneof![
        (any::<u8>(), 0..4u8, 0..4u8).prop_map(|(r, t, i)| Ie::Concat8(r, t, i)),
        (any::<u16>(), 0..4u8, 0..4u8).prop_map(|(r, t, i)| Ie::Concat16(r, t, i)),
        ((1..=0xFFu8).prop_filter("not concatenation", |b| *b != 0x08), proptest::collection::vec(any::<u8>(), 0..6))
            .prop_map(|(i, d)| Ie::Other(i, d)),
    ];
    let built = (proptest::collection::vec(ie, 0..5), proptest::collection::vec(any::<u8>(), 0..20));
    let soup = proptest::collection::vec(prop_oneof![any::<u8>(), 0..8u8], 0..30);
    run("model.sms_udh", (built, soup), |((ies, rest), soup)| {
        let mut header = Vec::new();
        let mut want = None;
        for ie in &ies {
            match ie {
                Ie::Concat8(r, t, i) => {
                    header.extend([0x00, 3, *r, *t, *i]);
                    want = Some((u16::from(*r), *t, *i));
                }
                Ie::Concat16(r, t, i) => {
                    header.extend([0x08, 4]);
                    header.extend(r.to_be_bytes());
                    header.extend([*t, *i]);
                    want = Some((*r, *t, *i));
                }
                Ie::Other(i, d) => {
                    header.extend([*i, d.len() as u8]);
                    header.extend(d);
                }
            }
        }
        let mut payload = vec![header.len() as u8];
        payload.extend(&header);
        payload.extend(&rest);
        let got = sms::parse_udh(&payload);
        match want {
            Some((_, t, i)) if t == 0 || i == 0 || i > t => check(got.is_none(), || format!("{got:?} for {ies:?}"))?,
            _ => {
                let (concat, tail) = got.ok_or_else(|| TestCaseError::fail(format!("None for {ies:?}")))?;
                check(tail == rest.as_slice(), || "the text after the header".into())?;
                let c = concat.map(|c| (c.reference, c.total, c.index));
                check(c == want, || format!("{c:?}, expected {want:?}"))?;
            }
        }
        if let Some((concat, tail)) = sms::parse_udh(&soup) {
            check(tail.len() + 1 + usize::from(soup[0]) == soup.len(), || format!("{soup:02X?}"))?;
            if let Some(c) = concat {
                check(c.total >= 1 && c.index >= 1 && c.index <= c.total, || format!("{c:?}"))?;
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_sms_keyword() {
    // A keyword however it is dressed (case, punctuation, emoji, spaces, invisible characters,
    // full-width forms, courtesy around it) is recognised; followed by a word of a sentence it
    // is not; and nothing panics on any text.
    let keywords = vec![
        ("stop", Keyword::OptOut),
        ("unsubscribe", Keyword::OptOut),
        ("opt out", Keyword::OptOut),
        ("stopall", Keyword::OptOut),
        ("cancel", Keyword::OptOut),
        ("start", Keyword::OptIn),
        ("unstop", Keyword::OptIn),
        ("help", Keyword::Help),
        ("info", Keyword::Help),
    ];
    let dressing =
        prop::sample::select(vec!["", " ", "!", "!!", ".", "?", "\"", "🛑", "🙏", " \n", "«", "»", "\u{200b}", "¡"]);
    let case = proptest::collection::vec(any::<bool>(), 12);
    let strategy = (
        prop::sample::select(keywords),
        case,
        dressing.clone(),
        dressing,
        any::<bool>(),
        prop_oneof![Just(None), Just(Some("please")), Just(Some("thank you")), Just(Some("thx"))],
        "[b-df-hj-np-tv-z]{5,9}",
        any::<bool>(),
        tricky_string(40),
    );
    run(
        "model.sms_keyword",
        strategy,
        |((word, kind), case, before, after, fullwidth, courtesy, stranger, leading, noise)| {
            let mut w: String = word
                .chars()
                .zip(case.iter().cycle())
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            if fullwidth {
                w = w
                    .chars()
                    .map(|c| if c.is_ascii_alphabetic() { char::from_u32(c as u32 + 0xFEE0).unwrap() } else { c })
                    .collect();
            }
            let dressed = format!("{before}{w}{after}");
            let text = match courtesy {
                Some(c) if leading && c == "please" => format!("{c} {dressed}"),
                Some(c) => format!("{dressed} {c}"),
                None => dressed.clone(),
            };
            check(sms::keyword(&text) == Some(kind), || {
                format!("{text:?} → {:?}, expected {kind:?}", sms::keyword(&text))
            })?;
            // A consonant-only word is no keyword and no courtesy: the message is a sentence.
            let sentence = format!("{dressed} {stranger}");
            check(sms::keyword(&sentence).is_none(), || format!("{sentence:?} taken for a keyword"))?;
            let _ = sms::keyword(&noise);
            let _ = sms::keyword(&format!("{noise}{dressed}{noise}"));
            Ok(())
        },
    );
}

// ---- voice.rs, callback.rs -------------------------------------------------------------------

#[test]
fn fuzz_voice_user_data() {
    let key = prop_oneof![
        5 => "[a-z_.]{1,20}",
        1 => Just(String::new()),
        1 => around(MAX_USER_DATA_KEY).prop_map(|n| sized("k", n)),
        1 => "[a-z]{1,3}[\u{0}\r\n\u{85}][a-z]{0,3}",
    ];
    let value = prop_oneof![4 => "\\PC{0,20}", 2 => around(MAX_USER_DATA_VALUE).prop_flat_map(text_of)];
    let data = prop_oneof![
        8 => proptest::collection::btree_map(key, value, 0..5),
        1 => (MAX_USER_DATA..=MAX_USER_DATA + 1).prop_map(|n| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect()),
    ];
    run("model.voice_user_data", data, |data: BTreeMap<String, String>| {
        let r = validate_user_data("user_data", &data);
        let line_ok = |s: &str, max| s.len() <= max && !s.chars().any(char::is_control);
        let want = if data.len() > MAX_USER_DATA {
            "user_data".to_string()
        } else {
            data.iter()
                .find(|(k, v)| k.is_empty() || !line_ok(k, MAX_USER_DATA_KEY) || !line_ok(v, MAX_USER_DATA_VALUE))
                .map(|(k, _)| if k.is_empty() { "user_data".to_string() } else { format!("user_data.{k}") })
                .unwrap_or_default()
        };
        check(field_of(&r) == want, || format!("{r:?}, expected {want:?}"))
    });
}

/// E.164: '+', then 1 to 15 digits.
fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn fuzz_callback_plan_validate() {
    let number = prop_oneof![
        4 => "\\+[0-9]{0,16}",
        1 => "[+0-9 ()-]{0,18}",
        1 => tricky_string(18),
        1 => Just("+".to_string()),
    ];
    let now = 1_700_000_000_000u64;
    let strategy = (number, prop_oneof![Just(0u64), now..now + 2 * crate::callback::MAX_NOT_BEFORE_MS], 0..=12u32);
    run("model.callback_plan", strategy, |(number, not_before_ms, max_attempts)| {
        let plan = CallbackPlan {
            number: number.clone(),
            not_before_ms,
            max_attempts,
            retry_ms: 60_000,
            dial_timeout_ms: 90_000,
            service_level_at: ServiceLevelAt::Connected,
        };
        let r = plan.validate(now);
        let want = if !is_e164(&number) {
            "number"
        } else if not_before_ms > now + crate::callback::MAX_NOT_BEFORE_MS {
            "not_before"
        } else if !(1..=crate::callback::MAX_ATTEMPTS).contains(&max_attempts) {
            "callback_attempts"
        } else {
            ""
        };
        check(field_of(&r) == want, || format!("{number:?}: {r:?}, expected {want:?}"))
    });
}

/// Found by `fuzz_callback_plan_validate`: a lone "+" passed as an E.164 number.
#[test]
fn regression_a_lone_plus_is_no_e164_number() {
    let plan = CallbackPlan {
        number: "+".into(),
        not_before_ms: 0,
        max_attempts: 1,
        retry_ms: 0,
        dial_timeout_ms: 0,
        service_level_at: ServiceLevelAt::Connected,
    };
    assert_eq!(plan.validate(0).unwrap_err().field, "number");
}
