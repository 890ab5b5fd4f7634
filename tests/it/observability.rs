//! The Grafana dashboard (`deploy/grafana/switchboard.json`) and the Prometheus alerting rules
//! (`deploy/prometheus/alerts.yml`) against the daemon: every metric they use is one a real
//! instance exports once it has routed a chat, or — for those that only appear under conditions
//! this test does not create (a gateway, a mailbox, a failure) — one the daemon's source records,
//! as that kind of metric. Renaming a metric breaks this test, not a dashboard nobody looks at
//! until the night it is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use yaml_rust2::YamlLoader;

use crate::common::*;
use switchboard::api::pb;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

use Kind::{Counter, Gauge, Histogram};

/// Metrics the dashboard or the rules use that a plain instance routing one chat does not export:
/// the exporter shows a metric only once it has been recorded.
const CONDITIONAL: &[(&str, Kind)] = &[
    // A failed Redis call; a refused event; a failed CRM call.
    ("switchboard_function_errors_total", Counter),
    ("switchboard_outbox_dead_letters_total", Counter),
    ("switchboard_outbox_failures_total", Counter),
    // Channels this test does not configure: web chat, email, CTI, SMS (Twilio, Kannel, SMPP).
    ("switchboard_webchat_connections", Gauge),
    ("switchboard_webchat_started_total", Counter),
    ("switchboard_webchat_resumed_total", Counter),
    ("switchboard_webchat_left_total", Counter),
    ("switchboard_webchat_messages_total", Counter),
    ("switchboard_webchat_refused_total", Counter),
    ("switchboard_webchat_errors_total", Counter),
    ("switchboard_email_received_total", Counter),
    ("switchboard_email_sent_total", Counter),
    ("switchboard_email_send_failed_total", Counter),
    ("switchboard_email_imap_errors_total", Counter),
    ("switchboard_email_uidvalidity_changes_total", Counter),
    ("switchboard_cti_events_total", Counter),
    ("switchboard_cti_routes_total", Counter),
    ("switchboard_sms_received_total", Counter),
    ("switchboard_sms_sent_total", Counter),
    ("switchboard_sms_send_seconds", Histogram),
    ("switchboard_sms_status_total", Counter),
    ("switchboard_sms_kannel_sendsms_total", Counter),
    ("switchboard_sms_webhook_refused_total", Counter),
    ("switchboard_smpp_bound", Gauge),
    ("switchboard_smpp_binds_total", Counter),
    ("switchboard_smpp_submits_total", Counter),
    ("switchboard_smpp_inbound_total", Counter),
    // Limits reached, TLS listeners, JWT sign-in.
    ("switchboard_limit_refusals_total", Counter),
    ("switchboard_tls_handshake_failures_total", Counter),
    ("switchboard_tls_reloads_total", Counter),
    ("switchboard_auth_jwt_rejected_total", Counter),
    ("switchboard_auth_jwks_refresh_total", Counter),
    ("switchboard_auth_jwks_keys", Gauge),
];

/// Names used in PromQL that are not Switchboard's: what Prometheus itself records per target.
const PROMETHEUS_OWN: &[&str] = &["up"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn dashboard_is_an_importable_grafana_dashboard() {
    let d: Value = serde_json::from_str(&read("deploy/grafana/switchboard.json")).expect("the dashboard is JSON");
    assert_eq!(d["schemaVersion"], 39);
    assert_eq!(d["uid"], "switchboard");
    assert!(d["__inputs"].as_array().unwrap().iter().any(|i| i["name"] == "DS_PROMETHEUS"));
    let vars: BTreeMap<&str, &str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["type"].as_str().unwrap()))
        .collect();
    assert_eq!(vars.get("DS_PROMETHEUS"), Some(&"datasource"), "{vars:?}");
    assert_eq!(vars.get("instance"), Some(&"query"), "{vars:?}");
    assert_eq!(vars.get("queue"), Some(&"query"), "{vars:?}");

    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut rows = Vec::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(ids.insert(p["id"].as_u64().expect("a panel id")), "panel id {} twice", p["id"]);
        let g = &p["gridPos"];
        assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24, "{title:?} is wider than the grid");
        if p["type"] == "row" {
            rows.push(title);
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title:?}");
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{title:?} has no targets"));
        assert!(!targets.is_empty(), "{title:?} has no targets");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{title:?}");
            assert!(t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{title:?}: a target without expr");
        }
    }
    for want in ["Queues", "Routing", "Redis", "CRM", "Screen-pop", "Channels", "Instances"] {
        assert!(rows.iter().any(|r| r.contains(want)), "no row about {want}: {rows:?}");
    }
}

#[test]
fn alerting_rules_are_complete_and_pass_promtool() {
    let rules = alerting_rules();
    let names: BTreeSet<&str> = rules.iter().map(|r| r.alert.as_str()).collect();
    assert_eq!(names.len(), rules.len(), "an alert name twice");
    for want in [
        "SwitchboardServiceLevelBreach",
        "SwitchboardOutboxLagHigh",
        "SwitchboardOutboxBacklogGrowing",
        "SwitchboardRedisUnreachable",
        "SwitchboardNoInstanceReady",
        "SwitchboardSmppBindDown",
        "SwitchboardSmsSendsFailing",
    ] {
        assert!(names.contains(want), "no alert {want}: {names:?}");
    }

    // promtool parses every expression and runs alerts_test.yml. It comes with Debian's
    // `prometheus` package (scripts/setup-debian.sh); where it is missing, the checks above and
    // the metric names (the next test) still hold.
    let dir = root().join("deploy/prometheus");
    for args in [["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]] {
        match std::process::Command::new("promtool").args(args).current_dir(&dir).output() {
            Ok(out) => assert!(
                out.status.success(),
                "promtool {}:\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("promtool is not installed; skipping `promtool {}`", args.join(" "));
            }
            Err(e) => panic!("promtool: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_use_only_metrics_the_daemon_exports() {
    let used = used_metrics();
    let conditional: BTreeMap<&str, Kind> = CONDITIONAL.iter().copied().collect();
    for name in conditional.keys() {
        assert!(
            used.keys().any(|u| base_name(u).0 == *name),
            "{name} is in CONDITIONAL but neither the dashboard nor the rules use it"
        );
    }
    let want: BTreeSet<&str> =
        used.keys().map(String::as_str).filter(|n| !conditional.contains_key(base_name(n).0)).collect();

    // A real instance routes a chat end to end (offer with its screen-pop, reply, completion,
    // the log delivered to the built-in CRM), turns away a wrong key and a wrong agent token,
    // and serves a supervisor's watch.
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true }).await.unwrap();
    let mut watch = sb
        .supervisor()
        .await
        .watch(pb::WatchRequest { queues: vec![], include_agents: true })
        .await
        .unwrap()
        .into_inner();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let created = sb.interactions().await.create_interaction(new_chat("sales", "visitor-1", "hi")).await.unwrap();
    let id = ann.wait_offer().await.interaction.unwrap().id;
    assert_eq!(id, created.into_inner().id);
    ann.accept(&id).await.unwrap();
    ann.reply(&id, "Hello").await.unwrap();
    ann.complete(&id, "answered").await.unwrap();
    let mut wrong_key = pb::admin_client::AdminClient::new(sb.with_key("not-a-key-0123456789abcdef0123456789").await);
    assert!(wrong_key.list_queues(pb::ListQueuesRequest::default()).await.is_err());
    assert!(Desktop::login(&sb.endpoint(), "ann", "wrong-token").await.is_err());
    assert!(tokio_stream::StreamExt::next(&mut watch).await.is_some());

    // Counters appear as things happen and gauges on the sampler's tick: scrape until every
    // name is there or patience runs out.
    let started = Instant::now();
    let (exported, missing) = loop {
        let (code, body) = sb.http("/metrics").await;
        assert_eq!(code, 200);
        let exported = series_names(&body);
        let missing: Vec<&str> = want.iter().copied().filter(|n| !exported.contains(*n)).collect();
        if missing.is_empty() || started.elapsed() > PATIENCE {
            break (exported, missing);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        missing.is_empty(),
        "the dashboard or the rules use metrics this instance does not export: {missing:?} (used by {:?}); \
         exported: {exported:?}",
        missing.iter().map(|m| (m, &used[*m])).collect::<Vec<_>>()
    );

    // The sampled figures are the queue's: the chat was offered, accepted at once and is done.
    let figures = [
        ("switchboard_queue_window_interactions", &[("queue", "sales"), ("event", "offered")][..], 1.0),
        ("switchboard_queue_window_interactions", &[("queue", "sales"), ("event", "accepted")], 1.0),
        ("switchboard_queue_waiting", &[("queue", "sales")], 0.0),
        ("switchboard_queue_service_level_ratio", &[("queue", "sales")], 1.0),
        ("switchboard_ready", &[], 1.0),
    ];
    eventually("the queue's figures sampled", PATIENCE, || async {
        let (_, body) = sb.http("/metrics").await;
        figures.iter().all(|(name, labels, want)| sample(&body, name, labels) == Some(*want)).then_some(())
    })
    .await;

    // The rest must be recorded somewhere in the daemon's source, as that kind of metric.
    let source = rust_sources();
    for (name, users) in &used {
        let (base, suffix) = base_name(name);
        let Some(kind) = conditional.get(base) else { continue };
        assert!(
            suffix.is_none() || *kind == Histogram,
            "{name} (used by {users:?}): only a histogram has _bucket, _sum and _count series; {base} is a {kind:?}"
        );
        assert!(
            *kind != Histogram || suffix.is_some(),
            "{name} (used by {users:?}) is a histogram: use {name}_bucket, _sum or _count"
        );
        assert!(recorded(&source, base, *kind), "{base} (used by {users:?}) is recorded nowhere as a {kind:?}");
    }
    drop(watch);
    sb.stop().await;
}

struct Rule {
    alert: String,
    expr: String,
}

/// The alerting rules, each checked for what an on-call person needs: a `for`, a severity, a
/// summary and a description.
fn alerting_rules() -> Vec<Rule> {
    let docs = YamlLoader::load_from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml is YAML");
    let groups = docs[0]["groups"].as_vec().expect("groups");
    let mut out = Vec::new();
    for g in groups {
        let group = g["name"].as_str().expect("a group name");
        for r in g["rules"].as_vec().unwrap_or_else(|| panic!("group {group} has no rules")) {
            let alert = r["alert"].as_str().unwrap_or_else(|| panic!("a rule of {group} without alert")).to_string();
            let expr = r["expr"].as_str().unwrap_or_else(|| panic!("{alert}: no expr")).to_string();
            assert!(r["for"].as_str().is_some(), "{alert}: no `for`");
            let severity = r["labels"]["severity"].as_str();
            assert!(matches!(severity, Some("critical" | "warning")), "{alert}: severity {severity:?}");
            for a in ["summary", "description"] {
                assert!(r["annotations"][a].as_str().is_some_and(|s| !s.trim().is_empty()), "{alert}: no {a}");
            }
            out.push(Rule { alert, expr });
        }
    }
    out
}

/// Every metric name the dashboard's queries and the rules' expressions use → who uses it.
fn used_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let mut queries: Vec<(String, String)> = Vec::new();
    let d: Value = serde_json::from_str(&read("deploy/grafana/switchboard.json")).unwrap();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            queries.push((format!("panel {:?}", p["title"].as_str().unwrap()), t["expr"].as_str().unwrap().into()));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            let q = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap();
            queries.push((format!("variable {}", v["name"].as_str().unwrap()), q.into()));
        }
    }
    for r in alerting_rules() {
        queries.push((format!("alert {}", r.alert), r.expr));
    }
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (who, q) in queries {
        let names = metric_names(&q);
        assert!(
            !names.is_empty() || PROMETHEUS_OWN.iter().any(|n| q.contains(&format!("{n}{{"))),
            "{who} uses no metric of Switchboard's: {q}"
        );
        for n in names {
            used.entry(n).or_default().insert(who.clone());
        }
    }
    used
}

/// `switchboard_*` identifiers in a PromQL expression, outside string literals (label values).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let (mut word, mut quoted, mut escaped) = (String::new(), false, false);
    for c in expr.chars().chain([' ']) {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if word.starts_with("switchboard_") {
            out.insert(std::mem::take(&mut word));
        }
        word.clear();
        quoted = c == '"';
    }
    out
}

/// A histogram's series name → its metric's name and the suffix.
fn base_name(name: &str) -> (&str, Option<&str>) {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return (base, Some(suffix));
        }
    }
    (name, None)
}

/// Names of the series in a Prometheus text exposition.
fn series_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The value of the series `name` whose labels include `labels`.
fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        let has_all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        (n == name && has_all).then(|| value.parse().ok()).flatten()
    })
}

/// Every `.rs` file of the daemon and its crates (the benchmark aside), whitespace removed so a
/// macro call reads the same however rustfmt wrapped it.
fn rust_sources() -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = vec![root().join("src"), root().join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("bench") && !path.ends_with("target") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push(text.chars().filter(|c| !c.is_whitespace()).collect());
            }
        }
    }
    files
}

/// Whether some file records `name` with the macro of its kind: `counter!("name"`, or through a
/// constant (`const NAME: &str = "name";` ... `counter!(NAME`).
fn recorded(sources: &[String], name: &str, kind: Kind) -> bool {
    let mac = match kind {
        Counter => "counter!(",
        Gauge => "gauge!(",
        Histogram => "histogram!(",
    };
    let literal = format!("\"{name}\"");
    sources.iter().any(|src| {
        src.contains(&format!("{mac}{literal}"))
            || src.match_indices(&format!(":&str={literal};")).any(|(at, _)| {
                let ident = src[..at].rsplit("const").next().unwrap_or_default();
                !ident.is_empty() && src.contains(&format!("{mac}{ident}"))
            })
    })
}
