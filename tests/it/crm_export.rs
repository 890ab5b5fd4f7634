//! `switchboard crm export` (the real binary) against the log a real daemon delivered to its
//! built-in CRM store, on SQLite and on PostgreSQL: one row per contact that arrived in the
//! window, with how long it was handled or how long its customer waited before leaving.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::common::*;
use switchboard::api::pb;
use switchboard_crm::{CrmDb, CrmOptions};
use switchboard_model::Channel;

const HEADER: &str = "at,interaction_id,channel,queue,priority,handle_secs,patience_secs,wrap_up_secs";

fn export(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["crm", "export"])
        .args(args)
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_CRM_DATABASE")
        .output()
        .expect("run switchboard crm export")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The export's stdout, which must have succeeded.
fn exported(args: &[&str]) -> String {
    let out = export(args);
    assert!(out.status.success(), "export failed: {}", text(&out.stderr));
    text(&out.stdout)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn at(ms: i64) -> String {
    rfc3339(DateTime::from_timestamp_millis(ms).unwrap())
}

fn secs(field: &str) -> f64 {
    field.parse().unwrap_or_else(|_| panic!("{field:?} is not seconds"))
}

/// The created and ended times the CRM recorded for a customer's one interaction.
async fn history(db: &CrmDb, customer: &str) -> (i64, i64) {
    let contact = db.find_contact(Channel::Chat, customer).await.unwrap();
    let (h, _) = db.history(&contact.id, 10, None).await.unwrap();
    assert_eq!(h.len(), 1, "{h:?}");
    (h[0].started_ms, h[0].ended_ms)
}

async fn has_event(db: &CrmDb, iid: &str, typ: &str) -> bool {
    db.event_types(iid).await.unwrap().iter().any(|(_, t)| t == typ)
}

async fn exports_what_arrived(database: String) {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.crm.database = database.clone();
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true }).await.unwrap();
    // Whole seconds, as an operator would type them; the log's times are the routing clock's.
    let since = DateTime::from_timestamp(Utc::now().timestamp() - 1, 0).unwrap();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut ixs = sb.interactions().await;

    let answered =
        ixs.create_interaction(new_chat("sales", "visitor-answered", "hello")).await.unwrap().into_inner().id;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, answered);
    let before_accept = Instant::now();
    ann.accept(&answered).await.unwrap();
    let accepted = Instant::now();
    ann.reply(&answered, "How can I help?").await.unwrap();
    let before_complete = Instant::now();
    ann.complete(&answered, "solved").await.unwrap();
    let completed = Instant::now();
    // Nobody answers the rest.
    ann.set_presence(pb::PresenceState::NotReady, "lunch").await;

    let left = ixs
        .create_interaction(pb::CreateInteractionRequest {
            priority: Some(3),
            ..new_chat("sales", "visitor-left", "anyone there?")
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let created_left = Instant::now();
    ixs.withdraw_interaction(pb::WithdrawInteractionRequest {
        interaction_id: left.clone(),
        reason: "customer_left".into(),
    })
    .await
    .unwrap();
    let withdrew = Instant::now();

    // Ended by the center, not the customer: left out.
    let withdrawn =
        ixs.create_interaction(new_chat("sales", "visitor-withdrawn", "dup")).await.unwrap().into_inner().id;
    let mut sup = pb::supervisor_client::SupervisorClient::new(sb.with_key(SUPERVISOR_KEY).await);
    sup.withdraw_interaction(pb::SupervisorWithdrawRequest {
        interaction_id: withdrawn.clone(),
        reason: "duplicate".into(),
    })
    .await
    .unwrap();

    let waiting =
        ixs.create_interaction(new_chat("sales", "visitor-waiting", "still here")).await.unwrap().into_inner().id;
    let until = DateTime::from_timestamp(Utc::now().timestamp() + 2, 0).unwrap();

    let db =
        CrmDb::open(CrmOptions { database_url: database.clone(), default_region: None, create_unknown_contacts: true })
            .await
            .unwrap();
    eventually("the CRM has every interaction's end", Duration::from_secs(20), || async {
        (has_event(&db, &answered, "completed").await
            && has_event(&db, &left, "abandoned").await
            && has_event(&db, &withdrawn, "abandoned").await
            && has_event(&db, &waiting, "queued").await)
            .then_some(())
    })
    .await;

    let window = ["--since", &rfc3339(since), "--until", &rfc3339(until), "--database", &database];
    let out = export(&window);
    assert!(out.status.success(), "export failed: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("exported 3 contacts") && stderr.contains("left out 1 that ended otherwise"), "{stderr}");
    let csv = text(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], HEADER, "{csv}");
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows.iter().all(|r| r.len() == 8), "{csv}");
    // Ordered by arrival (then id: two may share a millisecond); the withdrawn one left out.
    let mut expected = Vec::new();
    for (customer, id) in [("visitor-answered", &answered), ("visitor-left", &left), ("visitor-waiting", &waiting)] {
        expected.push((history(&db, customer).await.0, id.as_str()));
    }
    expected.sort();
    let ids: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(ids, expected.iter().map(|(_, id)| *id).collect::<Vec<_>>());
    let row = |id: &str| rows.iter().find(|r| r[1] == id).unwrap().clone();
    let rows = [row(&answered), row(&left), row(&waiting)];

    let (created_ms, ended_ms) = history(&db, "visitor-answered").await;
    assert_eq!(rows[0][..5], [at(created_ms).as_str(), &answered, "chat", "sales", "0"]);
    // Accept to completion: at least the time between the two calls, at most the time around
    // them, and inside the interaction's whole life.
    let handle = secs(rows[0][5]);
    let (low, high) = ((before_complete - accepted).as_secs_f64(), (completed - before_accept).as_secs_f64());
    assert!(handle >= low - 0.002 && handle <= high + 0.002, "handle {handle} outside [{low}, {high}]");
    assert!(handle <= (ended_ms - created_ms) as f64 / 1000.0, "{handle} > the whole interaction");
    assert_eq!(rows[0][5].split_once('.').map(|(_, ms)| ms.len()), Some(3), "{}", rows[0][5]);
    // No wrap-up in this queue.
    assert_eq!(rows[0][6..], ["", ""]);

    let (created_ms, _) = history(&db, "visitor-left").await;
    assert_eq!(rows[1][..6], [at(created_ms).as_str(), &left, "chat", "sales", "3", ""]);
    let abandoned = db.event_details(&left).await.unwrap().into_iter().find(|(t, _)| t == "abandoned").unwrap().1;
    let abandoned: serde_json::Value = serde_json::from_str(&abandoned).unwrap();
    assert_eq!(abandoned["reason"], "customer_left");
    let waited_ms = abandoned["waited_ms"].as_i64().unwrap();
    assert_eq!(rows[1][6], format!("{}.{:03}", waited_ms / 1000, waited_ms % 1000));
    assert!(secs(rows[1][6]) <= (withdrew - created_left).as_secs_f64() + 0.1, "{}", rows[1][6]);

    let (created_ms, _) = history(&db, "visitor-waiting").await;
    assert_eq!(rows[2], [at(created_ms).as_str(), &waiting, "chat", "sales", "0", "", "", ""]);
    let times: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert!(times.iter().all(|t| *t >= rfc3339(since).as_str() && *t < rfc3339(until).as_str()), "{times:?}");

    // --out writes the same, and only the file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("arrivals.csv");
    let file_arg = file.display().to_string();
    let to_file = export(&[&window[..], &["--out", &file_arg]].concat());
    assert!(to_file.status.success(), "{}", text(&to_file.stderr));
    assert!(to_file.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), csv);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing left beside the file");

    // The simulator replays the export as it is: the same three contacts.
    std::fs::write(
        dir.path().join("center.toml"),
        "[[agents]]\nid = \"ann\"\ntoken = \"t\"\ncapacity = { voice = 0, chat = 1, sms = 0, email = 0 }\n\n\
         [[queues]]\nname = \"sales\"\nchannels = [\"chat\"]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("day.toml"), "recorded = \"arrivals.csv\"\naccept_delay_secs = 1\n").unwrap();
    let sim = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["simulate", "--config", "center.toml", "--scenario", "day.toml", "--out", "sim"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(sim.status.success(), "{}", text(&sim.stderr));
    let report = std::fs::read_to_string(dir.path().join("sim/report.csv")).unwrap();
    let today = report.lines().nth(1).unwrap().split(',').collect::<Vec<_>>();
    let count = |i: usize| today[i].parse::<u32>().unwrap();
    // Arrivals; answered and abandoned together.
    assert_eq!((count(2), count(3) + count(4)), (3, 3), "{report}");

    // A window that ends as the first one begins, and one that starts after it: the header only.
    let earlier = rfc3339(since - chrono::Duration::hours(1));
    assert_eq!(
        exported(&["--since", &earlier, "--until", &rfc3339(since), "--database", &database]),
        format!("{HEADER}\n")
    );
    let later = rfc3339(until + chrono::Duration::hours(1));
    assert_eq!(
        exported(&["--since", &rfc3339(until), "--until", &later, "--database", &database]),
        format!("{HEADER}\n")
    );
    // The bounds: [since, until) of the created time, to the millisecond.
    let (first_ms, _) = history(&db, "visitor-answered").await;
    let only_first = exported(&["--since", &at(first_ms), "--until", &at(first_ms + 1), "--database", &database]);
    assert_eq!(only_first.lines().count(), 2, "{only_first}");
    assert!(only_first.lines().nth(1).unwrap().contains(&answered), "{only_first}");
    assert_eq!(
        exported(&["--since", &at(first_ms - 1), "--until", &at(first_ms), "--database", &database]),
        format!("{HEADER}\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_export_of_a_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    exports_what_arrived(format!("sqlite://{}/crm.db?mode=rwc", dir.path().display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_export_of_a_postgres_store() {
    init_tracing();
    let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    exports_what_arrived(pg.url.clone()).await;
}

/// Refused before anything is read or written: non-zero, the flag named on stderr, no CSV.
#[test]
fn crm_export_refuses_bad_input_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/crm.db?mode=rwc", dir.path().display());
    let refused = |args: &[&str], flag: &str| {
        let out = export(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {}", text(&out.stdout));
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", text(&out.stdout));
        assert!(stderr.contains(flag), "{args:?}: {stderr:?} does not name {flag}");
        stderr
    };
    refused(
        &["--since", "2026-12-07T16:00:00Z", "--until", "2026-12-07T08:00:00Z", "--database", &database],
        "--until",
    );
    refused(
        &["--since", "2026-12-07T08:00:00Z", "--until", "2026-12-07T08:00:00Z", "--database", &database],
        "--until",
    );
    let bad = refused(
        &["--since", "2026-12-07 08:00", "--until", "2026-12-07T16:00:00Z", "--database", &database],
        "--since",
    );
    assert!(bad.contains("RFC 3339"), "{bad}");
    refused(&["--since", "2026-12-07T08:00:00Z", "--until", "tomorrow", "--database", &database], "--until");
    refused(&["--until", "2026-12-07T16:00:00Z", "--database", &database], "--since");
    // Only a store that exists is read: a mistyped path is an error, not an empty export.
    refused(
        &["--since", "2026-12-07T08:00:00Z", "--until", "2026-12-07T16:00:00Z", "--database", &database],
        "crm.database",
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the export created a store");
    // The server's own options belong to `switchboard crm` without a subcommand.
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "crm",
            "--listen",
            "127.0.0.1:0",
            "export",
            "--since",
            "2026-12-07T08:00:00Z",
            "--until",
            "2026-12-07T16:00:00Z",
        ])
        .env_remove("SWITCHBOARD_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success() && out.stdout.is_empty());
    assert!(text(&out.stderr).contains("--listen"), "{}", text(&out.stderr));
}
