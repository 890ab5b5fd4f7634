//! Calendars (opening hours) end to end: kept through Admin and shared by every instance, refused
//! with the field that is wrong (and nothing changed), named by queues, and shown as open / closed
//! in queue figures, watches and `ListOpenings` — as the model computes it, across daylight saving.

use crate::common::*;

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use switchboard::api::calendars::calendar_from_pb;
use switchboard::api::pb;
use switchboard::api::pb::supervisor_event::Kind as Sev;
use switchboard_engine::Engine;
use tonic::Code;

async fn start() -> (RedisServer, TestServer) {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    // Tests move the routing clock by minutes; the instance must not look dead meanwhile.
    cfg.routing.presence_grace_secs = 3600;
    let sb = TestServer::start_with(cfg).await;
    (redis, sb)
}

fn hours(v: &[&str]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

fn emea() -> pb::Calendar {
    let day = hours(&["08:00-12:00", "13:00-18:00"]);
    pb::Calendar {
        name: "emea".into(),
        time_zone: "Europe/Berlin".into(),
        weekly: Some(pb::WeeklyHours {
            mon: day.clone(),
            tue: day.clone(),
            wed: day.clone(),
            thu: day.clone(),
            fri: hours(&["08:00-16:00"]),
            ..Default::default()
        }),
        exceptions: vec![
            pb::CalendarException {
                name: "Christmas".into(),
                from: "2026-12-24".into(),
                to: "2026-12-26".into(),
                hours: vec![],
            },
            pb::CalendarException {
                name: "short day".into(),
                from: "2026-12-31".into(),
                to: String::new(),
                hours: hours(&["08:00-12:00"]),
            },
        ],
    }
}

fn always(name: &str) -> pb::Calendar {
    let all = hours(&["00:00-24:00"]);
    pb::Calendar {
        name: name.into(),
        time_zone: "UTC".into(),
        weekly: Some(pb::WeeklyHours {
            mon: all.clone(),
            tue: all.clone(),
            wed: all.clone(),
            thu: all.clone(),
            fri: all.clone(),
            sat: all.clone(),
            sun: all,
        }),
        exceptions: vec![],
    }
}

async fn put_calendar(sb: &TestServer, c: pb::Calendar, allow_update: bool) -> Result<pb::Calendar, tonic::Status> {
    sb.admin()
        .await
        .put_calendar(pb::PutCalendarRequest { calendar: Some(c), allow_update })
        .await
        .map(tonic::Response::into_inner)
}

async fn get_calendar(sb: &TestServer, name: &str) -> Result<pb::Calendar, tonic::Status> {
    sb.admin().await.get_calendar(pb::GetCalendarRequest { name: name.into() }).await.map(tonic::Response::into_inner)
}

async fn put_queue(sb: &TestServer, q: pb::Queue, allow_update: bool) -> Result<pb::Queue, tonic::Status> {
    sb.admin()
        .await
        .put_queue(pb::PutQueueRequest { queue: Some(q), allow_update })
        .await
        .map(tonic::Response::into_inner)
}

fn with_calendar(name: &str, calendar: &str) -> pb::Queue {
    pb::Queue { calendar: calendar.into(), ..queue(name, &[]) }
}

async fn figures(sb: &TestServer, queue: &str) -> pb::QueueFigures {
    let r = pb::GetQueueFiguresRequest { queue: queue.into() };
    sb.supervisor().await.get_queue_figures(r).await.unwrap().into_inner()
}

async fn openings(sb: &TestServer, r: pb::ListOpeningsRequest) -> Result<pb::ListOpeningsResponse, tonic::Status> {
    sb.supervisor().await.list_openings(r).await.map(tonic::Response::into_inner)
}

#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, field: &str) -> String {
    match r {
        Ok(v) => panic!("expected {code:?} naming {field:?}, got {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "{s:?}");
            assert!(s.message().starts_with(field), "{:?} does not start with {field:?}", s.message());
            s.message().to_string()
        }
    }
}

fn at(t: &prost_types::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendars_are_kept_through_admin_and_seen_by_every_instance() {
    let (redis, sb) = start().await;
    let stored = put_calendar(&sb, emea(), false).await.unwrap();
    assert_eq!(stored, emea(), "stored as given");
    refused(put_calendar(&sb, emea(), false).await, Code::AlreadyExists, "name");
    put_calendar(&sb, always("apac"), false).await.unwrap();

    // Another instance on the same Redis reads it, and sees a change made here at once.
    let other = TestServer::start_with(test_config(&redis.url)).await;
    assert_eq!(get_calendar(&other, "emea").await.unwrap(), emea());
    let mut changed = emea();
    changed.weekly.as_mut().unwrap().sat = hours(&["10:00-14:00"]);
    assert_eq!(put_calendar(&sb, changed.clone(), true).await.unwrap(), changed);
    assert_eq!(get_calendar(&other, "emea").await.unwrap(), changed);
    let listed = other.admin().await.list_calendars(pb::ListCalendarsRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.calendars.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["apac", "emea"]);

    let mut admin = sb.admin().await;
    admin.delete_calendar(pb::DeleteCalendarRequest { name: "apac".into() }).await.unwrap();
    refused(get_calendar(&other, "apac").await, Code::NotFound, "name");
    refused(admin.delete_calendar(pb::DeleteCalendarRequest { name: "apac".into() }).await, Code::NotFound, "name");
    refused(get_calendar(&sb, "not a name").await, Code::InvalidArgument, "name");
    other.stop().await;
    sb.stop().await;
}

/// A change that spoils a good calendar.
type Change = Box<dyn Fn(&mut pb::Calendar)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calendars_are_refused_naming_the_field_and_change_nothing() {
    let (_redis, sb) = start().await;
    put_calendar(&sb, emea(), false).await.unwrap();
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "overlapping ranges",
            Box::new(|c| c.weekly.as_mut().unwrap().mon = hours(&["08:00-12:00", "11:00-14:00"])),
            "calendar.weekly.mon[1]: 11:00-14:00 overlaps 08:00-12:00",
        ),
        ("an unknown time zone", Box::new(|c| c.time_zone = "Europe/Atlantis".into()), "calendar.time_zone: unknown"),
        ("a malformed time", Box::new(|c| c.weekly.as_mut().unwrap().fri = hours(&["8-16"])), "calendar.weekly.fri[0]"),
        (
            "a range across midnight",
            Box::new(|c| c.weekly.as_mut().unwrap().sat = hours(&["22:00-06:00"])),
            "calendar.weekly.sat[0]",
        ),
        (
            "a holiday with no date",
            Box::new(|c| c.exceptions[1].from.clear()),
            "calendar.exceptions[1].from: is required",
        ),
        ("a holiday ending first", Box::new(|c| c.exceptions[0].to = "2026-12-01".into()), "calendar.exceptions[0].to"),
        (
            "a holiday on no date",
            Box::new(|c| c.exceptions[0].from = "2026-13-01".into()),
            "calendar.exceptions[0].from",
        ),
    ];
    for (what, change, field) in &cases {
        for name in ["emea", "fresh"] {
            let mut c = pb::Calendar { name: name.into(), ..emea() };
            change(&mut c);
            let message = refused(put_calendar(&sb, c, true).await, Code::InvalidArgument, field);
            assert!(!message.contains("Some(") && !message.contains('\n'), "{what}: {message}");
        }
        assert_eq!(get_calendar(&sb, "emea").await.unwrap(), emea(), "{what}: unchanged");
        refused(get_calendar(&sb, "fresh").await, Code::NotFound, "name");
    }
    let r = sb.admin().await.put_calendar(pb::PutCalendarRequest { calendar: None, allow_update: true }).await;
    refused(r, Code::InvalidArgument, "calendar: is required");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_names_a_calendar_that_exists_and_keeps_it_from_deletion() {
    let (_redis, sb) = start().await;
    let mut admin = sb.admin().await;
    // A calendar that does not exist: refused, naming the field; the queue is not created.
    let m =
        refused(put_queue(&sb, with_calendar("sales", "emea"), false).await, Code::InvalidArgument, "queue.calendar");
    assert!(m.contains("no calendar named \"emea\""), "{m}");
    let r = admin.get_queue(pb::GetQueueRequest { name: "sales".into() }).await;
    assert_eq!(r.unwrap_err().code(), Code::NotFound);

    put_calendar(&sb, emea(), false).await.unwrap();
    assert_eq!(put_queue(&sb, with_calendar("sales", "emea"), false).await.unwrap().calendar, "emea");
    put_queue(&sb, with_calendar("support", "emea"), false).await.unwrap();
    // Nor may an update name one; the queue keeps what it had.
    refused(put_queue(&sb, with_calendar("sales", "nowhere"), true).await, Code::InvalidArgument, "queue.calendar");
    let q = admin.get_queue(pb::GetQueueRequest { name: "sales".into() }).await.unwrap().into_inner();
    assert_eq!(q.calendar, "emea");

    // Deleting a calendar queues keep is refused, naming them; it stays.
    let r = admin.delete_calendar(pb::DeleteCalendarRequest { name: "emea".into() }).await;
    let m = refused(r, Code::FailedPrecondition, "name");
    assert!(m.contains("\"sales\", \"support\""), "{m}");
    get_calendar(&sb, "emea").await.unwrap();

    // Once no queue keeps it, it goes.
    put_queue(&sb, queue("sales", &[]), true).await.unwrap();
    admin.delete_queue(pb::DeleteQueueRequest { name: "support".into() }).await.unwrap();
    admin.delete_calendar(pb::DeleteCalendarRequest { name: "emea".into() }).await.unwrap();
    let q = admin.get_queue(pb::GetQueueRequest { name: "sales".into() }).await.unwrap().into_inner();
    assert_eq!(q.calendar, "", "always open");
    sb.stop().await;
}

/// An `Etc/GMT±N` zone where it is around noon now, so that today's hours can open a few minutes
/// from now whatever time the test runs at.
fn noon_zone(now: DateTime<Utc>) -> (String, i64) {
    let offset = 12 - i64::from(now.hour());
    // The Etc zones' signs are POSIX's: Etc/GMT-3 is three hours ahead of UTC.
    let name = match offset {
        0 => "Etc/GMT".to_string(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    (name, offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_say_open_or_closed_and_when_that_changes_as_the_calendar_does() {
    let (redis, sb) = start().await;
    put_queue(&sb, queue("plain", &[]), false).await.unwrap();
    let f = figures(&sb, "plain").await;
    assert_eq!((f.open, f.next_change), (None, None), "no calendar: always open, nothing to say");

    put_calendar(&sb, emea(), false).await.unwrap();
    put_queue(&sb, with_calendar("sales", "emea"), false).await.unwrap();
    let f = figures(&sb, "sales").await;
    let model = calendar_from_pb(emea()).compile().unwrap();
    let now = at(f.at.as_ref().unwrap());
    assert_eq!(f.open, Some(model.is_open(now)));
    assert_eq!(f.next_change.as_ref().map(at), model.next_change(now).map(|(t, _)| t));

    put_calendar(&sb, always("always"), false).await.unwrap();
    put_queue(&sb, with_calendar("all-day", "always"), false).await.unwrap();
    let f = figures(&sb, "all-day").await;
    assert_eq!((f.open, f.next_change), (Some(true), None), "open and never closing");

    // Today's hours open a few minutes from now: the routing clock moves past it.
    let (zone, offset) = noon_zone(now);
    let local = now + chrono::Duration::hours(offset);
    let start = local.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap() + chrono::Duration::minutes(3);
    let end = start + chrono::Duration::minutes(5);
    let today = pb::Calendar {
        name: "today".into(),
        time_zone: zone,
        weekly: None,
        exceptions: vec![pb::CalendarException {
            name: "opening day".into(),
            from: local.format("%Y-%m-%d").to_string(),
            to: String::new(),
            hours: vec![format!("{}-{}", start.format("%H:%M"), end.format("%H:%M"))],
        }],
    };
    put_calendar(&sb, today, false).await.unwrap();
    put_queue(&sb, with_calendar("launch", "today"), false).await.unwrap();
    let (opens, closes) = (start - chrono::Duration::hours(offset), end - chrono::Duration::hours(offset));
    let f = figures(&sb, "launch").await;
    assert_eq!((f.open, f.next_change.as_ref().map(at)), (Some(false), Some(opens)));
    let engine = Engine::connect(&redis.url, Default::default()).await.unwrap();
    let ahead = (opens - at(f.at.as_ref().unwrap())).to_std().unwrap() + Duration::from_secs(1);
    engine.advance_clock(ahead).await.unwrap();
    let f = figures(&sb, "launch").await;
    assert_eq!((f.open, f.next_change.as_ref().map(at)), (Some(true), Some(closes)));
    let o = openings(&sb, pb::ListOpeningsRequest { queue: "launch".into(), days: 1, from: None }).await.unwrap();
    assert!(o.open_now);
    assert_eq!(o.openings.len(), 1);
    assert_eq!(o.openings[0].end.as_ref().map(at), Some(closes));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_shows_new_hours_at_once() {
    let (_redis, sb) = start().await;
    put_calendar(
        &sb,
        pb::Calendar { name: "hours".into(), time_zone: "Asia/Tokyo".into(), ..Default::default() },
        false,
    )
    .await
    .unwrap();
    put_queue(&sb, with_calendar("sales", "hours"), false).await.unwrap();
    let mut w = sb
        .supervisor()
        .await
        .watch(pb::WatchRequest { queues: vec!["sales".into()], include_agents: false })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || match tokio::time::timeout(PATIENCE, w.message()).await {
        Ok(Ok(Some(pb::SupervisorEvent { kind: Some(Sev::Queue(f)) }))) => f,
        other => panic!("no queue figures: {other:?}"),
    };
    let f = next().await;
    assert_eq!((f.open, f.next_change), (Some(false), None), "no hours: never open");
    put_calendar(&sb, always("hours"), true).await.unwrap();
    let f = loop {
        let f = next().await;
        if f.open != Some(false) {
            break f;
        }
    };
    assert_eq!((f.open, f.next_change), (Some(true), None));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openings_follow_daylight_saving_in_the_calendar_s_zone() {
    let (_redis, sb) = start().await;
    let mut c = emea();
    c.weekly.as_mut().unwrap().sun = hours(&["01:00-04:00"]);
    put_calendar(&sb, c, false).await.unwrap();
    put_queue(&sb, with_calendar("sales", "emea"), false).await.unwrap();

    // The week Berlin moves to summer time (Sunday 2026-03-29, 02:00 CET is 03:00 CEST).
    let r = pb::ListOpeningsRequest { queue: "sales".into(), days: 4, from: Some(ts(utc("2026-03-27T00:00:00Z"))) };
    let o = openings(&sb, r).await.unwrap();
    assert_eq!((o.calendar.as_str(), o.time_zone.as_str()), ("emea", "Europe/Berlin"));
    let got: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        o.openings.iter().map(|o| (at(o.start.as_ref().unwrap()), at(o.end.as_ref().unwrap()))).collect();
    let want = [
        ("2026-03-27T07:00:00Z", "2026-03-27T15:00:00Z"), // Friday 08:00-16:00 CET
        ("2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z"), // Sunday 01:00 CET - 04:00 CEST: two hours
        ("2026-03-30T06:00:00Z", "2026-03-30T10:00:00Z"), // Monday 08:00-12:00 CEST
        ("2026-03-30T11:00:00Z", "2026-03-30T16:00:00Z"), // 13:00-18:00 CEST
    ];
    assert_eq!(got, want.map(|(a, b)| (utc(a), utc(b))));

    // Open now and the next change are as of now, whatever the window.
    let model = calendar_from_pb(get_calendar(&sb, "emea").await.unwrap()).compile().unwrap();
    let now = at(o.at.as_ref().unwrap());
    assert_eq!(o.open_now, model.is_open(now));
    assert_eq!(o.next_change.as_ref().map(at), model.next_change(now).map(|(t, _)| t));

    // A week by default, at most 31 days; a queue without a calendar is open all the window.
    let o = openings(&sb, pb::ListOpeningsRequest { queue: "sales".into(), days: 0, from: None }).await.unwrap();
    let week = model.openings(now, 7);
    assert_eq!(o.openings.len(), week.len());
    let r = openings(&sb, pb::ListOpeningsRequest { queue: "sales".into(), days: 32, from: None }).await;
    refused(r, Code::InvalidArgument, "days");
    let from = prost_types::Timestamp { seconds: -5, nanos: 0 };
    let r = openings(&sb, pb::ListOpeningsRequest { queue: "sales".into(), days: 1, from: Some(from) }).await;
    refused(r, Code::InvalidArgument, "from");
    refused(
        openings(&sb, pb::ListOpeningsRequest { queue: "gone".into(), ..Default::default() }).await,
        Code::NotFound,
        "queue",
    );
    put_queue(&sb, queue("plain", &[]), false).await.unwrap();
    let from = utc("2026-03-27T00:00:00Z");
    let r = pb::ListOpeningsRequest { queue: "plain".into(), days: 2, from: Some(ts(from)) };
    let o = openings(&sb, r).await.unwrap();
    assert_eq!((o.calendar.as_str(), o.open_now, o.next_change), ("", true, None));
    assert_eq!(o.openings, [pb::Opening { start: Some(ts(from)), end: Some(ts(from + chrono::Duration::days(2))) }]);

    // A supervisor limited to other queues may not look.
    let key = sb
        .admin()
        .await
        .create_api_key(pb::CreateApiKeyRequest {
            name: "lead".into(),
            role: "supervisor".into(),
            queues: vec!["plain".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let mut scoped = pb::supervisor_client::SupervisorClient::new(sb.with_key(&key).await);
    let r = scoped.list_openings(pb::ListOpeningsRequest { queue: "sales".into(), ..Default::default() }).await;
    assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);
    scoped.list_openings(pb::ListOpeningsRequest { queue: "plain".into(), ..Default::default() }).await.unwrap();
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendars_of_the_config_are_there_at_start_for_its_queues() {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.calendars = vec![calendar_from_pb(emea())];
    cfg.queues = vec![switchboard::model::QueueSpec {
        calendar: Some("emea".into()),
        ..switchboard::model::QueueSpec::new("sales")
    }];
    let sb = TestServer::start_with(cfg).await;
    assert_eq!(get_calendar(&sb, "emea").await.unwrap(), emea());
    let f = figures(&sb, "sales").await;
    assert!(f.open.is_some(), "{f:?}");
    sb.stop().await;
}

/// `switchboard ctl` as the binary parses it.
#[derive(clap::Parser)]
struct CtlArgs {
    #[arg(long, value_enum, default_value_t, global = true)]
    output: switchboard_cli::Output,
    #[command(subcommand)]
    cmd: switchboard_cli::Ctl,
}

async fn ctl(sb: &TestServer, args: &[&str]) -> anyhow::Result<String> {
    use clap::Parser;
    let a = CtlArgs::try_parse_from(std::iter::once("ctl").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    switchboard_cli::ctl_into(&sb.endpoint(), Some(ADMIN_KEY.into()), a.output, a.cmd, &mut out).await?;
    Ok(String::from_utf8(out)?)
}

const EMEA_TOML: &str = r#"
name = "emea"
time_zone = "Europe/Berlin"
weekly = { mon = ["08:00-12:00", "13:00-18:00"], fri = ["08:00-16:00"], sun = ["01:00-04:00"] }
exceptions = [{ name = "Christmas", from = "2026-12-24", to = "2026-12-26" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_shows_a_queue_s_openings_for_people_and_scripts() {
    let (_redis, sb) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("emea.toml");
    std::fs::write(&file, EMEA_TOML).unwrap();
    let out = ctl(&sb, &["put-calendar", file.to_str().unwrap()]).await.unwrap();
    assert!(out.starts_with("CALENDAR  TIME ZONE      WEEK"), "{out}");
    assert!(
        out.contains("emea      Europe/Berlin  mon 08:00-12:00, 13:00-18:00  Christmas: 2026-12-24..2026-12-26 closed"),
        "{out}"
    );
    let out = ctl(&sb, &["put-queue", "--name", "sales", "--calendar", "emea"]).await.unwrap();
    assert!(out.lines().nth(1).unwrap().contains("  emea  "), "{out}");

    // The week Berlin moves to summer time, in Berlin's time and this machine's.
    let args = ["calendar", "--queue", "sales", "--days", "4", "--from", "2026-03-27T00:00:00Z"];
    let out = ctl(&sb, &args).await.unwrap();
    for bad in ["Some(", "None", "Timestamp {", "[]"] {
        assert!(!out.contains(bad), "{bad:?} in:\n{out}");
    }
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "queue     sales", "{out}");
    assert_eq!(lines[1], "calendar  emea (Europe/Berlin)", "{out}");
    assert!(
        lines[2].starts_with("now       open · closes ") || lines[2].starts_with("now       closed · opens "),
        "{out}"
    );
    assert!(lines[2].ends_with(" here, in ") || lines[2].contains(" here, in "), "{out}");
    assert!(lines[4].starts_with("DAY             HOURS (Europe/Berlin)     FOR  YOUR TIME"), "{out}");
    assert!(lines[5].starts_with("Fri 2026-03-27  08:00-16:00 CET        8h 00m  Fri "), "{out}");
    assert!(lines[6].starts_with("Sun 2026-03-29  01:00 CET-04:00 CEST   2h 00m  Sun "), "{out}");
    assert!(lines[7].starts_with("Mon 2026-03-30  08:00-12:00 CEST       4h 00m  Mon "), "{out}");
    assert!(lines[8].starts_with("Mon 2026-03-30  13:00-18:00 CEST       5h 00m  Mon "), "{out}");
    assert_eq!(lines.len(), 9, "{out}");

    let json: serde_json::Value =
        serde_json::from_str(&ctl(&sb, &[&args[..], &["--output", "json"]].concat()).await.unwrap()).unwrap();
    assert_eq!(json["calendar"], "emea");
    assert_eq!(json["timeZone"], "Europe/Berlin");
    assert_eq!(json["openings"][1]["start"], "2026-03-29T00:00:00Z");
    assert_eq!(json["openings"][1]["end"], "2026-03-29T02:00:00Z");
    assert!(json["openNow"].is_boolean() && json["at"].is_string(), "{json}");

    // Queues and the watch say whether the queue is open now.
    let out = ctl(&sb, &["queues"]).await.unwrap();
    let sales = out.lines().find(|l| l.starts_with("sales")).unwrap();
    assert!(sales.contains("emea: open until ") || sales.contains("emea: closed until "), "{out}");
    let out = ctl(&sb, &["calendars"]).await.unwrap();
    assert!(out.contains("fri 08:00-16:00") && out.contains("sat closed"), "{out}");

    // A file in the API's JSON works too; refusals name the field.
    let json_file = dir.path().join("apac.json");
    std::fs::write(&json_file, r#"{"name": "apac", "timeZone": "Asia/Tokyo", "weekly": {"mon": ["09:00-17:00"]}}"#)
        .unwrap();
    let out = ctl(&sb, &["put-calendar", json_file.to_str().unwrap()]).await.unwrap();
    assert!(out.contains("apac      Asia/Tokyo"), "{out}");
    std::fs::write(&file, EMEA_TOML.replace("13:00-18:00", "11:00-18:00")).unwrap();
    let e = ctl(&sb, &["put-calendar", file.to_str().unwrap()]).await.unwrap_err().to_string();
    assert_eq!(e, "invalid argument: calendar.weekly.mon[1]: 11:00-18:00 overlaps 08:00-12:00");
    let e = ctl(&sb, &["calendar", "--queue", "sales", "--days", "40"]).await.unwrap_err().to_string();
    assert_eq!(e, "invalid argument: days: at most 31, got 40");
    sb.stop().await;
}
