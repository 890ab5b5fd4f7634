//! `switchboard ctl` against a real in-process daemon: what people read (aligned tables, local
//! times, `-` for what is unknown, never a Rust debug structure) and what scripts read with
//! `--output json` (the proto's JSON mapping; `watch` one object per line).

use crate::common::*;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use switchboard::api::pb;
use switchboard_cli::{Ctl, Output};

/// `switchboard ctl` as the binary parses it.
#[derive(Parser)]
struct CtlArgs {
    #[arg(long, value_enum, default_value_t, global = true)]
    output: Output,
    #[command(subcommand)]
    cmd: Ctl,
}

async fn ctl_result(sb: &TestServer, args: &[&str]) -> anyhow::Result<String> {
    let a = CtlArgs::try_parse_from(std::iter::once("ctl").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    switchboard_cli::ctl_into(&sb.endpoint(), Some(ADMIN_KEY.into()), a.output, a.cmd, &mut out).await?;
    Ok(String::from_utf8(out)?)
}

async fn ctl(sb: &TestServer, args: &[&str]) -> String {
    ctl_result(sb, args).await.unwrap_or_else(|e| panic!("ctl {args:?}: {e:#}"))
}

async fn ctl_json(sb: &TestServer, args: &[&str]) -> Value {
    let args: Vec<&str> = args.iter().copied().chain(["--output", "json"]).collect();
    let text = ctl(sb, &args).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ctl {args:?} is not JSON ({e}): {text}"))
}

/// What a person must never see.
#[track_caller]
fn readable(out: &str) {
    for debug in ["Some(", "None", "Timestamp {", " { ", "[]"] {
        assert!(!out.contains(debug), "{debug:?} in:\n{out}");
    }
    assert!(out.lines().all(|l| !l.ends_with(' ')), "trailing spaces in:\n{out}");
}

/// The display column where `text` starts in `line`.
fn column(line: &str, text: &str) -> usize {
    switchboard_cli::table::width(&line[..line.find(text).unwrap_or_else(|| panic!("{text:?} not in {line:?}"))])
}

/// The line of a table that starts with `first`.
fn row<'a>(out: &'a str, first: &str) -> &'a str {
    out.lines().find(|l| l.starts_with(first)).unwrap_or_else(|| panic!("no row {first:?} in:\n{out}"))
}

#[tokio::test]
async fn ctl_prints_tables_for_people_and_the_json_mapping_for_scripts() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;

    // put-queue: one row under its header; JSON with lowerCamelCase names and enums by name.
    let out = ctl(&sb, &["put-queue", "--name", "sales", "--skill", "english=3", "--wrap-up-secs", "65"]).await;
    readable(&out);
    let header = out.lines().next().unwrap();
    assert!(header.starts_with("QUEUE  CHANNELS ") && header.ends_with("  ESCALATION"), "{out}");
    let sales = row(&out, "sales");
    assert!(sales.contains("english>=3") && sales.contains("longest idle") && sales.contains("1m 05s"), "{out}");
    assert_eq!(column(header, "STRATEGY"), column(sales, "longest idle"), "{out}");
    let q = ctl_json(&sb, &["put-queue", "--name", "support", "--priority", "2"]).await;
    assert_eq!(q["name"], "support");
    assert_eq!(q["priority"], 2);
    assert_eq!(q["strategy"], "STRATEGY_LONGEST_IDLE");
    assert_eq!(q["wrapUpSecs"], 0);
    assert_eq!(q["requirements"], serde_json::json!([]));
    let out = ctl(&sb, &["queues"]).await;
    readable(&out);
    assert!(row(&out, "sales").starts_with("sales  "), "{out}");
    assert!(row(&out, "support").starts_with("support"), "{out}");

    // put-agent: a name of wide characters keeps the columns aligned.
    let out =
        ctl(&sb, &["put-agent", "--id", "li", "--name", "李小龙", "--skill", "english=5", "--token", "tok-li"]).await;
    readable(&out);
    let (header, li) = (out.lines().next().unwrap(), row(&out, "li"));
    assert_eq!(column(header, "SKILLS"), column(li, "english 5"), "{out}");
    let a = ctl_json(&sb, &["put-agent", "--id", "ann", "--name", "Ann", "--skill", "english=5", "--token", "tok-ann"])
        .await;
    assert_eq!(a["id"], "ann");
    assert_eq!(a["skills"]["english"], 5);
    assert_eq!(a["token"], "", "the token is write-only");

    // create, then the waiting list, while no agent is ready.
    let out =
        ctl(&sb, &["create", "--queue", "sales", "--customer", "visitor-7", "--body", "Hi, my invoice is wrong"]).await;
    let id = out.strip_prefix("created ").and_then(|r| r.split_whitespace().next()).unwrap().to_string();
    assert_eq!(out, format!("created {id} (queued in sales)\n"));
    let ix = ctl_json(&sb, &["create", "--queue", "support", "--channel", "sms", "--customer", "+4915123456789"]).await;
    assert_eq!(ix["channel"], "CHANNEL_SMS");
    assert_eq!(ix["state"], "INTERACTION_STATE_QUEUED");
    let out = ctl(&sb, &["waiting"]).await;
    readable(&out);
    let header = out.lines().next().unwrap();
    assert!(header.starts_with("INTERACTION  "), "{out}");
    let first = out.lines().nth(1).unwrap();
    assert!(first.contains("support") && first.contains("sms"), "higher priority first:\n{out}");
    let mine = row(&out, &id);
    assert!(mine.contains("  sales  ") && mine.contains("  chat  ") && mine.contains("visitor-7"), "{out}");
    assert_eq!(column(header, "CUSTOMER"), column(mine, "visitor-7"), "{out}");
    let w = ctl_json(&sb, &["waiting", "--queue", "sales"]).await;
    let list = w["interactions"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["customerAddress"], "visitor-7");
    let enqueued = list[0]["enqueuedAt"].as_str().unwrap();
    assert!(enqueued.len() >= 20 && enqueued.ends_with('Z') && enqueued.contains('T'), "RFC 3339: {enqueued}");

    // say and show: the thread with local times, `-` for what is not set.
    assert_eq!(ctl(&sb, &["say", "--interaction", &id, "Are you there?"]).await, format!("message 2 of {id}\n"));
    let out = ctl(&sb, &["show", &id]).await;
    readable(&out);
    assert!(out.starts_with(&format!("interaction     {id}\nstate           queued\nchannel         chat\n")), "{out}");
    assert!(out.contains("\nsubject         -\n"), "{out}");
    assert!(out.contains(" ago)\n"), "enqueued with its age:\n{out}");
    let thread = row(&out, "SEQ");
    assert!(thread.starts_with("SEQ  FROM      AGENT  SENT "), "{out}");
    let first = row(&out, "  1  customer");
    assert!(first.ends_with("Hi, my invoice is wrong"), "{out}");
    assert_eq!(column(thread, "TEXT"), column(first, "Hi,"), "{out}");
    assert!(row(&out, "  2  customer").ends_with("Are you there?"), "{out}");
    let shown = ctl_json(&sb, &["show", &id]).await;
    assert_eq!(shown["messages"][1]["seq"], "2", "uint64 as a string");
    assert_eq!(shown["messages"][1]["author"], "AUTHOR_CUSTOMER");
    assert!(shown["messages"][0]["sentAt"].as_str().unwrap().ends_with('Z'));
    assert!(shown["timestamps"]["queued"].is_string());

    // agents: presence in words, how long in it, load of capacity.
    let mut desk = sb.desktop("li", "tok-li").await;
    desk.set_presence(pb::PresenceState::NotReady, "lunch").await;
    let out = ctl(&sb, &["agents"]).await;
    readable(&out);
    let header = out.lines().next().unwrap();
    assert!(header.starts_with("AGENT  NAME    STATE      REASON  IN STATE  DESKTOP    LOAD"), "{out}");
    let li = row(&out, "li ");
    assert!(li.contains("李小龙  not ready  lunch") && li.contains("connected  voice 0/1, chat 0/3"), "{out}");
    let ann = row(&out, "ann ");
    assert!(ann.contains("  offline  ") && ann.contains("  -  "), "{out}");
    assert_eq!(column(header, "STATE"), column(li, "not ready"), "{out}");
    assert_eq!(column(header, "STATE"), column(ann, "offline"), "{out}");
    let agents = ctl_json(&sb, &["agents"]).await;
    let li = agents["agents"].as_array().unwrap().iter().find(|a| a["agentId"] == "li").unwrap().clone();
    assert_eq!(li["presence"]["state"], "PRESENCE_STATE_NOT_READY");
    assert_eq!(li["presence"]["reason"], "lunch");
    assert_eq!(li["connected"], true);
    assert!(li["presenceSince"].as_str().unwrap().ends_with('Z'));

    // keys: the secret alone on stdout; the list as a table and as JSON.
    let secret = ctl(&sb, &["keys", "create", "--name", "lead", "--role", "supervisor", "--queue", "sales"]).await;
    assert!(secret.starts_with("sbk_") && secret.lines().count() == 1, "{secret}");
    let out = ctl(&sb, &["keys", "list"]).await;
    readable(&out);
    let header = out.lines().next().unwrap();
    assert!(header.starts_with("KEY ") && header.ends_with("CREATED BY"), "{out}");
    let lead = out.lines().find(|l| l.contains(" lead ")).unwrap();
    assert!(lead.contains("supervisor  lead  sales"), "{out}");
    assert_eq!(column(header, "CREATED BY"), column(lead, "admin:test-admin"), "{out}");
    let keys = ctl_json(&sb, &["keys", "list"]).await;
    let k = &keys["keys"][0];
    assert_eq!((k["name"].as_str(), k["role"].as_str()), (Some("lead"), Some("supervisor")));
    assert_eq!(k["queues"], serde_json::json!(["sales"]));
    assert!(k["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(k.get("secret").is_none());

    // An error is one line that says what went wrong.
    let e = ctl_result(&sb, &["show", "no-such-interaction"]).await.unwrap_err().to_string();
    assert!(!e.contains('\n') && e.starts_with("not found: ") && e.contains("no-such-interaction"), "{e}");

    sb.stop().await;
}

/// A writer the test reads while `ctl watch` is still writing to it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Runs `ctl watch` with `args` until `done` holds for what it printed.
async fn watch_until(sb: &TestServer, args: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
    let buf = Shared::default();
    let mut writer = buf.clone();
    let a = CtlArgs::try_parse_from(std::iter::once("ctl").chain(args.iter().copied())).unwrap();
    let endpoint = sb.endpoint();
    let watch = switchboard_cli::ctl_into(&endpoint, Some(ADMIN_KEY.into()), a.output, a.cmd, &mut writer);
    tokio::select! {
        r = watch => panic!("watch ended: {r:?}\n{}", buf.text()),
        () = eventually(what, Duration::from_secs(15), || {
            let text = buf.text();
            let ok = done(&text);
            async move { ok.then_some(()) }
        }) => {}
    }
    buf.text()
}

#[tokio::test]
async fn ctl_watch_writes_rows_or_one_json_object_per_line() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    ctl(&sb, &["put-queue", "--name", "sales"]).await;
    ctl(&sb, &["put-agent", "--id", "ann", "--name", "Ann", "--token", "tok-ann"]).await;
    ctl(&sb, &["create", "--queue", "sales", "--customer", "visitor-7", "--body", "Hi"]).await;

    let text = watch_until(&sb, &["watch", "--output", "json"], "a queue and an agent as JSON lines", |t| {
        t.contains("\"queue\":{") && t.contains("\"agent\":{")
    })
    .await;
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l:?}")))
        .collect();
    let q = events.iter().find_map(|e| e.get("queue")).unwrap();
    assert_eq!(q["queue"], "sales");
    assert_eq!(q["waiting"], 1);
    assert!(q["longestWaitMs"].is_string(), "uint64 as a string: {q}");
    assert!(q.get("serviceLevelPercent").is_none(), "unset: nothing answered yet: {q}");
    assert!(q["at"].as_str().unwrap().ends_with('Z'));
    let a = events.iter().find_map(|e| e.get("agent")).unwrap();
    assert_eq!(a["agentId"], "ann");
    assert_eq!(a["presence"]["state"], "PRESENCE_STATE_OFFLINE");

    let text = watch_until(&sb, &["watch"], "a queue row and an agent row", |t| {
        t.lines().any(|l| l.contains("  sales  ")) && t.lines().any(|l| l.contains("  ann  "))
    })
    .await;
    readable(&text);
    let qh = text.lines().find(|l| l.starts_with("TIME      QUEUE")).unwrap_or_else(|| panic!("{text}"));
    let sales = text.lines().find(|l| l.contains("  sales  ")).unwrap();
    // WAITING is right-aligned: its last digit under the header's last letter.
    let end = qh.find("WAITING").unwrap() + "WAITING".len();
    assert_eq!(&sales[end - 3..end + 1], "  1 ", "{text}");
    assert!(sales.contains("  -  "), "no service level yet:\n{text}");
    let ah = text.lines().find(|l| l.starts_with("TIME      AGENT")).unwrap_or_else(|| panic!("{text}"));
    let ann = text.lines().find(|l| l.contains("  ann  ")).unwrap();
    assert_eq!(column(ah, "STATE"), column(ann, "offline"), "{text}");

    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_explain_says_why_in_words_then_shows_the_details() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    ctl(&sb, &["put-queue", "--name", "sales", "--skill", "sales=5"]).await;
    ctl(&sb, &["put-agent", "--id", "ann", "--skill", "sales=6", "--token", "tok-ann"]).await;
    ctl(&sb, &["put-agent", "--id", "dan", "--token", "tok-dan"]).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.set_presence(pb::PresenceState::NotReady, "lunch").await;
    let mut ixs = sb.interactions().await;
    let ix = ixs.create_interaction(new_chat("sales", "v1", "hello")).await.unwrap().into_inner();

    let out = ctl(&sb, &["explain", "interaction", &ix.id]).await;
    readable(&out);
    assert!(out.starts_with(&format!("{} · sales · chat\n", ix.id)), "{out}");
    assert!(out.contains("  1 agent meets stage 0 (sales ≥ 5): 0 available, 1 not ready.\n"), "{out}");
    assert!(out.contains("  Not offered to anyone yet."), "{out}");
    assert!(row(&out, "ann").ends_with("not ready"), "{out}");
    let json = ctl_json(&sb, &["explain", "interaction", &ix.id]).await;
    assert_eq!(json["waiting"]["candidates"][0]["standing"], "not_ready", "{json}");

    let out = ctl(&sb, &["explain", "agent", "dan"]).await;
    readable(&out);
    assert!(out.contains("  Logged out: gets nothing.\n"), "{out}");
    assert!(out.contains("  sales: not eligible at any stage — lacks sales ≥ 5 (has none).\n"), "{out}");
    assert!(row(&out, "chat").contains("0/"), "{out}");
    let err = ctl_result(&sb, &["explain", "agent", "nobody"]).await.unwrap_err();
    assert!(format!("{err:#}").starts_with("not found: agent_id: no agent \"nobody\""), "{err:#}");
    sb.stop().await;
}
