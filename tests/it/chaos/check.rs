//! The end of a run, checked from outside: the interaction log as the CRM store holds it plus
//! what Redis has not delivered yet, replayed (one offer at a time, never over an agent's
//! capacity on a channel); every acknowledged item found as exactly one interaction that still
//! exists (the API) and ended; every event in the CRM once; replies arrived once. Then the report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use switchboard::api::pb;

use super::{CAPACITY, Ch, Fault, Knobs, Seen, Shared};
use crate::common::*;

/// Acknowledged writes a lossy fault may take with it: those of the last moments before it
/// (`appendfsync everysec` fsyncs once a second; a replica is a few milliseconds behind).
const LOSS_WINDOW: Duration = Duration::from_millis(2500);
/// A fault's time is taken just before it is injected (a Sentinel failover first asks which
/// server is the primary, then kills it).
const INJECTED_WITHIN: Duration = Duration::from_millis(500);
/// An event still in Redis this long after it was logged counts as not delivered to the CRM.
const DELIVERED_WITHIN: Duration = Duration::from_secs(10);
const ROOT: &str = "sb:{default}:";

pub struct LogEvent {
    /// Stream id as (ms, seq).
    pub at: (u64, u64, u64),
    pub id: String,
    pub typ: String,
    pub ix: String,
    pub agent: String,
    pub details: serde_json::Value,
}

/// An event id's place in the log: its entry's (ms, seq), then its place in the entry.
fn parse_id(id: &str) -> (u64, u64, u64) {
    let (entry, n) = id.split_once('.').unwrap_or((id, "0"));
    let (ms, seq) = entry.split_once('-').unwrap_or((entry, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0), n.parse().unwrap_or(0))
}

/// The CRM store's log events.
async fn crm_log(db_url: &str) -> Vec<LogEvent> {
    let db = switchboard_crm::CrmDb::open(switchboard_crm::CrmOptions {
        database_url: db_url.to_string(),
        default_region: Some("DE".into()),
        create_unknown_contacts: true,
    })
    .await
    .unwrap();
    db.all_events()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(id, ix, typ, agent, details)| {
            let sid = id.strip_prefix(ROOT)?.to_string();
            let details = serde_json::from_str(&details).unwrap_or_default();
            Some(LogEvent { at: parse_id(&sid), id: sid, typ, ix, agent, details })
        })
        .collect()
}

/// What Redis still holds of the log (not yet delivered).
async fn redis_log(con: &mut MultiplexedConnection) -> Vec<LogEvent> {
    let key = format!("{ROOT}events");
    let mut out = Vec::new();
    let mut from = "-".to_string();
    loop {
        let r: redis::streams::StreamRangeReply =
            redis::AsyncCommands::xrange_count(con, &key, &from, "+", 5000).await.unwrap();
        let Some(last) = r.ids.last() else { break };
        from = format!("({}", last.id);
        for e in switchboard_engine::events::entries_events(&r.ids) {
            out.push(LogEvent {
                at: parse_id(&e.id),
                id: e.id,
                typ: e.typ,
                ix: e.interaction_id,
                agent: e.agent_id,
                details: serde_json::from_str(&e.details).unwrap_or_default(),
            });
        }
    }
    out
}

/// The whole log: the CRM's and Redis's, once each, in stream order.
async fn whole_log(db_url: &str, con: &mut MultiplexedConnection) -> (Vec<LogEvent>, usize, usize) {
    let crm = crm_log(db_url).await;
    let pending = redis_log(con).await;
    let (n_crm, n_pending) = (crm.len(), pending.len());
    let mut seen = HashSet::new();
    let mut all: Vec<LogEvent> = crm.into_iter().chain(pending).filter(|e| seen.insert(e.id.clone())).collect();
    all.sort_by_key(|e| e.at);
    (all, n_crm, n_pending)
}

/// Interactions by (channel, customer), from the `created` events.
fn created_by_customer(log: &[LogEvent]) -> HashMap<(Ch, String), Vec<String>> {
    let mut m: HashMap<(Ch, String), Vec<String>> = HashMap::new();
    for e in log.iter().filter(|e| e.typ == "created") {
        let ch = e.details.get("channel").and_then(|v| v.as_str()).and_then(Ch::parse);
        let cust = e.details.get("customer").and_then(|v| v.as_str()).unwrap_or_default();
        if let Some(ch) = ch {
            m.entry((ch, cust.to_string())).or_default().push(e.ix.clone());
        }
    }
    m
}

fn ended(log: &[LogEvent]) -> HashSet<&str> {
    log.iter().filter(|e| e.typ == "completed" || e.typ == "abandoned").map(|e| e.ix.as_str()).collect()
}

/// Replays every offer and release: one offer at a time per interaction, accepted only by the
/// agent it was offered to, no agent over its capacity on the interaction's channel.
fn replay(log: &[LogEvent]) -> Vec<(String, String)> {
    let mut violations = Vec::new();
    let channel: HashMap<&str, Ch> = log
        .iter()
        .filter(|e| e.typ == "created")
        .filter_map(|e| Some((e.ix.as_str(), Ch::parse(e.details.get("channel")?.as_str()?)?)))
        .collect();
    let mut offered: HashMap<&str, &str> = HashMap::new();
    let mut holder: HashMap<&str, &str> = HashMap::new();
    let mut load: HashMap<(&str, Ch), u32> = HashMap::new();
    for e in log {
        let (iid, aid) = (e.ix.as_str(), e.agent.as_str());
        let ch = channel.get(iid).copied().unwrap_or(Ch::Chat);
        let mut bad = |v: String| violations.push((iid.to_string(), v));
        let mut release = |bad: &mut dyn FnMut(String)| {
            let l = load.entry((aid, ch)).or_default();
            match l.checked_sub(1) {
                Some(n) => *l = n,
                None => bad(format!("{} of {iid} by {aid}: load below zero", e.typ)),
            }
        };
        match e.typ.as_str() {
            "offered" => {
                if let Some(prev) = offered.insert(iid, aid) {
                    bad(format!("{iid} offered to {aid} while still offered to {prev}"));
                }
                if let Some(h) = holder.get(iid) {
                    bad(format!("{iid} offered to {aid} while {h} holds it"));
                }
                let l = load.entry((aid, ch)).or_default();
                *l += 1;
                let cap = if ch == Ch::Voice { 1 } else { CAPACITY };
                if *l > cap {
                    let l = *l;
                    bad(format!("offer of {iid} takes {aid} to load {l} on {}, capacity {cap}", ch.name()));
                }
            }
            "rejected" | "missed" | "revoked" => {
                if offered.remove(iid) != Some(aid) {
                    bad(format!("{} of {iid} by {aid}, which had no offer of it", e.typ));
                }
                release(&mut bad);
            }
            "accepted" => {
                if offered.remove(iid) != Some(aid) {
                    bad(format!("{iid} accepted by {aid}, which had no offer of it"));
                }
                holder.insert(iid, aid);
            }
            "completed" => {
                if holder.remove(iid) != Some(aid) {
                    bad(format!("{iid} completed by {aid}, which did not hold it"));
                }
                release(&mut bad);
            }
            "transferred" => {
                holder.remove(iid);
                release(&mut bad);
            }
            _ => {}
        }
    }
    violations
}

/// Replies that reached the customers: channel → customer → copies (by distinct message).
pub type Arrived = BTreeMap<Ch, BTreeMap<String, usize>>;

pub struct Run<'a> {
    pub title: String,
    pub knobs: &'a Knobs,
    /// Wall clock at `start`, ms since the epoch (to place log events, whose ids are wall ms).
    pub start_ms: u64,
    pub seen: &'a Shared,
    pub faults: &'a [Fault],
    pub endpoint: String,
    pub crm_db: String,
}

fn per_ch(m: &BTreeMap<Ch, u64>, ch: Ch) -> u64 {
    m.get(&ch).copied().unwrap_or(0)
}

/// Drains (agents go on until every acknowledged interaction ended and the log is delivered),
/// then checks and reports. `con` reaches the Redis that holds the data now; `arrived` says
/// which replies reached the customers. Returns the report; panics with it on a failed check.
pub async fn finish<F, Fut, A, AFut>(run: Run<'_>, con: F, stop_agents: impl FnOnce(), arrived: A) -> String
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = MultiplexedConnection>,
    A: Fn() -> AFut,
    AFut: std::future::Future<Output = Arrived>,
{
    // The windows in which a lossy fault may have taken acknowledged writes.
    let windows: Vec<(Duration, Duration)> = run
        .faults
        .iter()
        .filter(|f| f.lossy)
        .map(|f| (f.start.saturating_sub(LOSS_WINDOW), f.start + INJECTED_WITHIN))
        .collect();
    let in_window = |t: Duration| windows.iter().any(|(a, b)| t >= *a && t <= *b);
    let ms_in_window = |ms: u64| in_window(Duration::from_millis(ms.saturating_sub(run.start_ms)));
    let keys_acked: Vec<(Ch, String, Duration)> = {
        let s = run.seen.lock().unwrap();
        s.acked.iter().flat_map(|(ch, m)| m.iter().map(|(k, v)| (*ch, k.clone(), v.at))).collect()
    };
    // The instance checked through may be one a fault just restarted.
    let addr = run.endpoint.trim_start_matches("http://").to_string();
    eventually("the instance to check through listens", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ())
    })
    .await;
    let mut api = pb::interactions_client::InteractionsClient::new(authed(&run.endpoint, ADMIN_KEY).await);
    // Drain: every acknowledged item's interaction ended (or is gone, or was never made in a loss
    // window: those are counted below).
    let drain_started = Instant::now();
    let mut open = usize::MAX;
    let mut gone_ids: HashSet<String> = HashSet::new();
    while drain_started.elapsed() < Duration::from_secs(180) {
        let mut c = con().await;
        let (log, _, _) = whole_log(&run.crm_db, &mut c).await;
        let by = created_by_customer(&log);
        let done = ended(&log);
        let mut waiting = Vec::new();
        for (ch, cust, at) in &keys_acked {
            match by.get(&(*ch, cust.clone())) {
                None if !in_window(*at) => waiting.push(None),
                None => {}
                Some(ids) => waiting
                    .extend(ids.iter().filter(|id| !done.contains(id.as_str()) && !gone_ids.contains(*id)).map(Some)),
            }
        }
        open = waiting.len();
        if open == 0 {
            break;
        }
        if drain_started.elapsed() > Duration::from_secs(5) {
            for id in waiting.into_iter().flatten() {
                let r = api
                    .get_interaction(pb::GetInteractionRequest { interaction_id: id.clone(), include_messages: false })
                    .await;
                if r.is_err_and(|e| e.code() == tonic::Code::NotFound) {
                    gone_ids.insert(id.clone());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    stop_agents();
    // Delivery to the CRM catches up: nothing older than a few seconds left in Redis (the agents'
    // sign-outs still add events for a grace period).
    let stale = |log: &[LogEvent]| {
        let now = super::wall_ms();
        log.iter().filter(|e| e.at.0 + DELIVERED_WITHIN.as_millis() as u64 <= now).count()
    };
    let delivered_by = Instant::now() + Duration::from_secs(90);
    while Instant::now() < delivered_by && stale(&redis_log(&mut con().await).await) > 0 {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Replies reach the customers (a reply in flight when its instance died waits for its retry).
    let wanted: BTreeMap<Ch, BTreeSet<String>> = run.seen.lock().unwrap().replied.clone();
    let reply_wait = Instant::now() + Duration::from_secs(60);
    let mut got = arrived().await;
    while Instant::now() < reply_wait
        && wanted.iter().any(|(ch, cs)| cs.iter().any(|c| got.get(ch).is_none_or(|m| !m.contains_key(c))))
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        got = arrived().await;
    }

    let mut c = con().await;
    let (log, n_crm, n_pending) = whole_log(&run.crm_db, &mut c).await;
    let undelivered = stale(&redis_log(&mut c).await);
    let crm = crm_log(&run.crm_db).await;
    let by = created_by_customer(&log);
    let done = ended(&log);
    let s: Seen = std::mem::take(&mut *run.seen.lock().unwrap());

    // Existence through the API.
    for ids in by.values() {
        for id in ids {
            let r = api
                .get_interaction(pb::GetInteractionRequest { interaction_id: id.clone(), include_messages: false })
                .await;
            if r.is_err_and(|e| e.code() == tonic::Code::NotFound) {
                gone_ids.insert(id.clone());
            }
        }
    }

    let mut failures: Vec<String> = Vec::new();
    let mut explained: Vec<String> = Vec::new();
    let mut table = String::from(
        "| channel | sent, acknowledged | gave up | interactions | lost: never created | lost: created, gone | doubled | ended | not ended | offers accepted / rejected / left | completions | replies acknowledged / arrived / missing / twice |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for ch in [Ch::Chat, Ch::Email, Ch::Sms, Ch::Voice] {
        let Some(items) = s.acked.get(&ch) else { continue };
        let (mut never, mut gone, mut doubled, mut fin, mut not_ended, mut n_ix) = (0, 0, 0, 0, 0, 0);
        for (cust, sent) in items {
            let ids = by.get(&(ch, cust.clone())).cloned().unwrap_or_default();
            n_ix += ids.len();
            let lost_ok = in_window(sent.at);
            if ids.is_empty() {
                never += 1;
                let m =
                    format!("{} {cust} (acknowledged at {:.1} s) has no interaction", ch.name(), sent.at.as_secs_f64());
                if lost_ok {
                    explained.push(m);
                } else {
                    failures.push(m);
                }
                continue;
            }
            let distinct: HashSet<&String> = ids.iter().chain(sent.ids.iter()).collect();
            if distinct.len() > 1 {
                doubled += 1;
                failures.push(format!("{} {cust}: {} interactions {distinct:?}", ch.name(), distinct.len()));
            }
            for id in &ids {
                if gone_ids.contains(id) {
                    gone += 1;
                    let m = format!("{} {cust}: {id} acknowledged at {:.1} s, gone", ch.name(), sent.at.as_secs_f64());
                    if lost_ok { explained.push(m) } else { failures.push(m) }
                } else if done.contains(id.as_str()) {
                    fin += 1;
                } else {
                    not_ended += 1;
                    failures.push(format!("{} {cust}: {id} never ended", ch.name()));
                }
            }
        }
        let want = s.replied.get(&ch).cloned().unwrap_or_default();
        let reply_cell = if matches!(ch, Ch::Email | Ch::Sms) {
            let copies = got.get(&ch).cloned().unwrap_or_default();
            let missing = want.iter().filter(|c| !copies.contains_key(*c)).count();
            let twice = copies.values().filter(|n| **n > 1).count();
            if twice > 0 {
                failures.push(format!("{} replies sent twice: {twice}", ch.name()));
            }
            format!("{} / {} / {missing} / {twice}", want.len(), copies.len())
        } else {
            "–".into()
        };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {n_ix} | {never} | {gone} | {doubled} | {fin} | {not_ended} | {} / {} / {} | {} | {reply_cell} |",
            ch.name(),
            items.len(),
            per_ch(&s.unacked, ch),
            per_ch(&s.accepted, ch),
            per_ch(&s.rejected, ch),
            per_ch(&s.ignored, ch),
            per_ch(&s.completed, ch),
        );
        if per_ch(&s.unacked, ch) > 0 {
            failures.push(format!("{}: {} items never acknowledged", ch.name(), per_ch(&s.unacked, ch)));
        }
    }

    // The log replayed; a violation on an interaction touched inside a loss window is the loss's.
    let touched: HashMap<&str, bool> = {
        let mut m: HashMap<&str, bool> = HashMap::new();
        for e in &log {
            *m.entry(e.ix.as_str()).or_default() |= ms_in_window(e.at.0);
        }
        m
    };
    let violations = replay(&log);
    let mut log_bad = 0;
    for (ix, v) in &violations {
        if touched.get(ix.as_str()).copied().unwrap_or(false) {
            explained.push(format!("log: {v}"));
        } else {
            log_bad += 1;
            failures.push(format!("log: {v}"));
        }
    }

    // The CRM: each event once (by id it cannot be twice; the same step under two ids can), and
    // every interaction that exists has its created and end events there.
    let mut per: HashMap<(&str, &str), usize> = HashMap::new();
    for e in crm.iter().filter(|e| matches!(e.typ.as_str(), "created" | "accepted" | "completed" | "abandoned")) {
        *per.entry((e.ix.as_str(), e.typ.as_str())).or_default() += 1;
    }
    let crm_dup = per.values().filter(|n| **n > 1).count();
    if crm_dup > 0 {
        let mut d: Vec<String> = per.iter().filter(|(_, n)| **n > 1).map(|(k, n)| format!("{k:?} ×{n}")).collect();
        d.truncate(5);
        failures.push(format!("CRM: {crm_dup} events twice, e.g. {d:?}"));
    }
    let mut crm_missing = 0;
    for ids in by.values() {
        for id in ids.iter().filter(|id| !gone_ids.contains(*id)) {
            let created = per.get(&(id.as_str(), "created")).copied().unwrap_or(0);
            let end = per.get(&(id.as_str(), "completed")).copied().unwrap_or(0)
                + per.get(&(id.as_str(), "abandoned")).copied().unwrap_or(0);
            if created == 0 || (done.contains(id.as_str()) && end == 0) {
                crm_missing += 1;
            }
        }
    }
    if crm_missing > 0 || undelivered > 0 {
        failures.push(format!("CRM: {crm_missing} interactions missing events, {undelivered} events never delivered"));
    }
    // Events the CRM has of interactions Redis lost (a loss window's work reached the CRM first).
    let crm_orphans = crm.iter().filter(|e| gone_ids.contains(&e.ix)).count();

    // Recovery: from each fault to the next acknowledged item and the next offer.
    let mut acks: Vec<Duration> = s.acked.values().flat_map(|m| m.values().map(|x| x.at)).collect();
    acks.sort();
    let mut offers = s.offers_at.clone();
    offers.sort();
    let next = |v: &[Duration], t: Duration| v.iter().find(|a| **a > t).map(|a| *a - t);
    let fmt = |d: Option<Duration>| d.map_or("never".to_string(), |d| format!("{:.2} s", d.as_secs_f64()));
    let mut faults = String::from(
        "| fault | at | lasted | next acknowledged item | next offer | next offer after repair |\n|---|---|---|---|---|---|\n",
    );
    for f in run.faults {
        let _ = writeln!(
            faults,
            "| {} | {:.1} s | {:.1} s | {} | {} | {} |",
            f.what,
            f.start.as_secs_f64(),
            (f.end - f.start).as_secs_f64(),
            fmt(next(&acks, f.start)),
            fmt(next(&offers, f.start)),
            fmt(next(&offers, f.end)),
        );
    }
    let codes: String = if s.codes.is_empty() {
        "none\n".into()
    } else {
        s.codes.iter().map(|(k, n)| format!("| {k} | {n} |\n")).collect::<Vec<_>>().concat()
    };
    let k = run.knobs;
    let mut report = format!(
        "## {}\n\n{} s of traffic, {} round(s) of faults, CRM down {} s per outage; 3 instances, {} agents \
         (capacity {CAPACITY} each on chat, email, SMS). Drained in {drain_secs:.0} s.\n\n{table}\n\
         | log and CRM | value |\n|---|---|\n\
         | events in the log (CRM + not yet delivered) | {} |\n| events in the CRM | {n_crm} |\n\
         | events not delivered to the CRM {}+ s after they were logged | {undelivered} |\n\
         | events logged in the last seconds, on their way | {} |\n| CRM: interactions missing events | {crm_missing} |\n\
         | CRM: events twice | {crm_dup} |\n| CRM: events of interactions Redis lost | {crm_orphans} |\n\
         | log violations (double offer, over capacity), unexplained | {log_bad} |\n\
         | acknowledged items still open when the drain gave up | {} |\n\n\
         {faults}\n| failed client call | count |\n|---|---|\n{codes}\n",
        run.title,
        k.secs,
        k.rounds,
        k.crm_down.as_secs(),
        super::AGENTS,
        log.len(),
        DELIVERED_WITHIN.as_secs(),
        n_pending - undelivered,
        if open == usize::MAX { 0 } else { open },
    );
    if !explained.is_empty() {
        let _ = writeln!(
            report,
            "What the lossy faults (Redis `everysec` crash, Sentinel failover) took — acknowledged in the {:.1} s \
             before one ({} items):\n",
            LOSS_WINDOW.as_secs_f64(),
            explained.len()
        );
        for e in explained.iter().take(20) {
            let _ = writeln!(report, "- {e}");
        }
        report.push('\n');
    } else if !windows.is_empty() {
        report.push_str("The lossy faults (Redis `everysec` crash, Sentinel failover) lost nothing acknowledged.\n\n");
    }
    println!("{report}");
    if let Some(dir) = &k.report_dir {
        std::fs::create_dir_all(dir).unwrap();
        let name: String = run.title.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        std::fs::write(dir.join(format!("{name}.md")), &report).unwrap();
    }
    let total: usize = s.acked.values().map(BTreeMap::len).sum();
    assert!(total as u64 >= k.secs, "traffic flowed ({total} items): {report}");
    let n = failures.len();
    failures.truncate(30);
    assert!(n == 0, "{n} failed checks:\n  {}\n{report}", failures.join("\n  "));
    report
}
