//! The fault run (issue #21), short version: steady chat traffic through three real
//! `switchboard serve` processes sharing one Redis (AOF, `appendfsync always`), desktops accepting,
//! rejecting, missing and completing, while one instance is killed (-9) and restarted, another is
//! frozen (SIGSTOP) and continued, and Redis itself is killed and restarted. Checked from outside
//! at the end: every acknowledged create still exists (0 lost), each idempotency key made one
//! interaction (0 doubled), and the event log replayed — never offered to two agents at once,
//! never over capacity — and every acknowledged interaction completed.
//!
//! `SWITCHBOARD_CHAOS_SECS` (default 20) sets how long traffic runs; `scripts/chaos.sh` runs it
//! long and keeps the report (`SWITCHBOARD_CHAOS_REPORT`) in `results/`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::concurrency::{read_log, replay_log};
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::api::pb::agent_request::Kind as Rq;
use tokio_stream::StreamExt;

const AGENTS: usize = 6;
const CAPACITY: u32 = 2;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

/// One `switchboard serve` process, restartable on the same ports.
struct Instance {
    id: String,
    grpc: u16,
    http: u16,
    child: Option<Child>,
    config: std::path::PathBuf,
    redis_url: String,
}

impl Instance {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--config"])
            .arg(&self.config)
            .env("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY)
            .env("SWITCHBOARD_REDIS_URL", &self.redis_url)
            .env("SWITCHBOARD_INSTANCE_ID", &self.id)
            .env("SWITCHBOARD_GRPC_LISTEN", format!("127.0.0.1:{}", self.grpc))
            .env("SWITCHBOARD_HTTP_LISTEN", format!("127.0.0.1:{}", self.http))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for i in 0..AGENTS {
            cmd.env(format!("SWITCHBOARD_AGENT_TOKEN_A{i}"), format!("tok-a{i}"));
        }
        self.child = Some(cmd.spawn().expect("spawn switchboard serve"));
    }

    async fn ready(&self) -> bool {
        http_get(&format!("http://127.0.0.1:{}/readyz", self.http)).await.is_ok_and(|(c, _)| c == 200)
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args([sig, &c.id().to_string()]).status();
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill();
    }
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Idempotency key → every interaction id a create with it returned.
    created: BTreeMap<String, HashSet<String>>,
    /// Keys whose create never succeeded (given up after retrying).
    unacked: Vec<String>,
    /// gRPC codes of failed creates and desktop requests.
    codes: BTreeMap<String, u64>,
    /// When each create was acknowledged (since the start).
    acked_at: Vec<Duration>,
    accepted: u64,
    rejected: u64,
    ignored: u64,
    completed: u64,
}

type Shared = Arc<Mutex<Seen>>;

fn count(seen: &Shared, code: tonic::Code) {
    *seen.lock().unwrap().codes.entry(format!("{code:?}")).or_default() += 1;
}

/// A customer stream: creates with idempotency keys, retrying the same key on another instance
/// until acknowledged.
async fn customers(endpoints: Vec<String>, until: Instant, start: Instant, seen: Shared) {
    let mut n = 0u64;
    let mut next = 0usize;
    while Instant::now() < until {
        let key = format!("chaos-{n}");
        n += 1;
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            let ep = &endpoints[next % endpoints.len()];
            next += 1;
            let req = pb::CreateInteractionRequest {
                idempotency_key: key.clone(),
                ..new_chat("chaos", &format!("visitor-{}", n % 50), "hello")
            };
            let r = async {
                let ch = tonic::transport::Endpoint::from_shared(ep.clone())
                    .unwrap()
                    .connect_timeout(Duration::from_secs(1))
                    .timeout(Duration::from_secs(3))
                    .connect()
                    .await
                    .map_err(|_| tonic::Status::unavailable("connect"))?;
                let mut c = pb::interactions_client::InteractionsClient::with_interceptor(ch, bearer(CHANNEL_KEY));
                c.create_interaction(req).await
            }
            .await;
            match r {
                Ok(ix) => {
                    let mut s = seen.lock().unwrap();
                    s.created.entry(key.clone()).or_default().insert(ix.into_inner().id);
                    s.acked_at.push(start.elapsed());
                    break;
                }
                Err(st) => {
                    count(&seen, st.code());
                    if Instant::now() > give_up {
                        seen.lock().unwrap().unacked.push(key.clone());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An agent: signs in on one instance after another (when its stream ends), stays ready, and
/// takes offers: most accepted and completed shortly after, some rejected, some left to time out.
async fn agent(i: usize, endpoints: Vec<String>, stop: tokio_util::sync::CancellationToken, seen: Shared) {
    let id = format!("a{i}");
    let mut turn = i;
    let mut rng = i as u64 * 7919 + 1;
    let mut roll = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % 100
    };
    while !stop.is_cancelled() {
        let ep = endpoints[turn % endpoints.len()].clone();
        turn += 1;
        let Ok(ch) = tonic::transport::Endpoint::from_shared(ep)
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut client = pb::agent_desktop_client::AgentDesktopClient::new(ch);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let mut n = 0u64;
        let mut send = |kind: Rq| {
            n += 1;
            let id = format!("r{n}");
            let _ = tx.try_send(pb::AgentRequest { request_id: id.clone(), kind: Some(kind) });
            id
        };
        send(Rq::Login(pb::Login { agent_id: id.clone(), token: format!("tok-{id}") }));
        let ready = || {
            Rq::SetPresence(pb::SetPresence {
                presence: Some(pb::Presence { state: pb::PresenceState::Ready as i32, reason: String::new() }),
            })
        };
        send(ready());
        let Ok(resp) = client.session(tokio_stream::wrappers::ReceiverStream::new(rx)).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut events = resp.into_inner();
        // Accepted work to complete, and when (again until acknowledged: a completion sent while
        // Redis was away failed and is sent again, as an agent would click again).
        let mut due: Vec<(Instant, String)> = Vec::new();
        // Completion requests in flight: request id → interaction.
        let mut completing: HashMap<String, String> = HashMap::new();
        loop {
            let tick = tokio::time::sleep(Duration::from_millis(50));
            let e = tokio::select! {
                _ = stop.cancelled() => return,
                () = tick => None,
                e = events.next() => match e {
                    Some(Ok(e)) => Some(e),
                    _ => break,
                },
            };
            let now = Instant::now();
            for (at, iid) in due.iter_mut().filter(|(at, _)| *at <= now) {
                let rid = send(Rq::Complete(pb::CompleteInteraction {
                    interaction_id: iid.clone(),
                    disposition: "done".into(),
                    notes: String::new(),
                }));
                completing.insert(rid, iid.clone());
                *at = now + Duration::from_secs(2);
            }
            let Some(e) = e else { continue };
            // Signed in again (after an instance died): the snapshot holds the work and offers the
            // agent had; they are carried on like new.
            let offers = match e.kind {
                Some(Ev::LoggedIn(li)) => {
                    for ix in li.interactions {
                        if !due.iter().any(|(_, id)| *id == ix.id) {
                            due.push((now + Duration::from_millis(200), ix.id));
                        }
                    }
                    li.offers
                }
                Some(Ev::Offer(o)) => vec![o],
                Some(Ev::PresenceChanged(p))
                    if p.presence.as_ref().is_some_and(|p| p.state != pb::PresenceState::Ready as i32) =>
                {
                    // Missed, or made not ready some other way: ready again.
                    send(ready());
                    continue;
                }
                Some(Ev::Ack(a)) => {
                    if let Some(iid) = completing.remove(&a.request_id) {
                        due.retain(|(_, id)| *id != iid);
                        seen.lock().unwrap().completed += 1;
                    }
                    continue;
                }
                Some(Ev::Error(er)) => {
                    let code = tonic::Code::from(er.code);
                    count(&seen, code);
                    // Not this agent's (its accept failed and the offer moved on): stop trying.
                    if let Some(iid) = completing.remove(&er.request_id)
                        && matches!(code, tonic::Code::FailedPrecondition | tonic::Code::NotFound)
                    {
                        due.retain(|(_, id)| *id != iid);
                    }
                    continue;
                }
                _ => continue,
            };
            for o in offers {
                {
                    let iid = o.interaction.map(|ix| ix.id).unwrap_or_default();
                    let r = roll();
                    if r < 80 {
                        seen.lock().unwrap().accepted += 1;
                        send(Rq::Accept(pb::AcceptOffer { interaction_id: iid.clone() }));
                        due.push((now + Duration::from_millis(200 + 10 * roll()), iid));
                    } else if r < 90 {
                        seen.lock().unwrap().rejected += 1;
                        send(Rq::Reject(pb::RejectOffer { interaction_id: iid, reason: "busy".into() }));
                    } else {
                        seen.lock().unwrap().ignored += 1;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config_toml() -> String {
    let mut s = format!(
        "[routing]\ntimer_poll_ms = 50\nheartbeat_secs = 1\npresence_grace_secs = 5\n\
         [crm]\nenabled = false\n\
         [[auth.keys]]\nname = \"chaos-channel\"\nrole = \"channel\"\nkey = \"{CHANNEL_KEY}\"\n\
         [[queues]]\nname = \"chaos\"\noffer_timeout_secs = 3\nwrap_up_secs = 0\n",
    );
    for i in 0..AGENTS {
        s.push_str(&format!("[[agents]]\nid = \"a{i}\"\ncapacity = {{ chat = {CAPACITY} }}\n"));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_under_traffic_lose_nothing_double_nothing_and_never_overfill_an_agent() {
    let secs: u64 = std::env::var("SWITCHBOARD_CHAOS_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, config_toml()).unwrap();
    let mut instances: Vec<Instance> = (0..3)
        .map(|i| Instance {
            id: format!("chaos-{i}"),
            grpc: free_port(),
            http: free_port(),
            child: None,
            config: config.clone(),
            redis_url: redis.url.clone(),
        })
        .collect();
    for inst in &mut instances {
        inst.spawn();
    }
    for inst in &instances {
        eventually(&format!("{} ready", inst.id), Duration::from_secs(30), || async {
            inst.ready().await.then_some(())
        })
        .await;
    }
    let endpoints: Vec<String> = instances.iter().map(Instance::endpoint).collect();
    let seen: Shared = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let start = Instant::now();
    let agents: Vec<_> =
        (0..AGENTS).map(|i| tokio::spawn(agent(i, endpoints.clone(), stop.clone(), seen.clone()))).collect();
    let traffic = tokio::spawn(customers(endpoints.clone(), start + Duration::from_secs(secs), start, seen.clone()));

    // The faults, spread over the run: (when, what).
    let at = |f: f64| start + Duration::from_secs_f64(secs as f64 * f);
    let mut faults: Vec<(String, Duration)> = Vec::new();
    tokio::time::sleep_until(at(0.2).into()).await;
    let t = start.elapsed();
    instances[0].kill();
    faults.push(("kill -9 instance chaos-0, restarted 2 s later".into(), t));
    tokio::time::sleep(Duration::from_secs(2)).await;
    instances[0].spawn();
    tokio::time::sleep_until(at(0.45).into()).await;
    faults.push(("SIGSTOP instance chaos-1 for 3 s".into(), start.elapsed()));
    instances[1].signal("-STOP");
    tokio::time::sleep(Duration::from_secs(3)).await;
    instances[1].signal("-CONT");
    tokio::time::sleep_until(at(0.7).into()).await;
    faults.push(("kill -9 Redis (AOF, appendfsync always), restarted at once".into(), start.elapsed()));
    tokio::task::block_in_place(|| redis.restart());
    traffic.await.unwrap();

    // Drain: agents go on until every acknowledged interaction is over.
    let ids: Vec<String> = seen.lock().unwrap().created.values().flatten().cloned().collect();
    let mut con = redis.client().await;
    let keys = switchboard_engine::Keys::new("sb:{default}:");
    let open = |events: &[crate::concurrency::LogEvent]| {
        let ended: HashSet<&str> =
            events.iter().filter(|e| e.typ == "completed" || e.typ == "abandoned").map(|e| e.ix.as_str()).collect();
        ids.iter().filter(|id| !ended.contains(id.as_str())).count()
    };
    let drained = Instant::now();
    let mut left = usize::MAX;
    while drained.elapsed() < Duration::from_secs(90) {
        left = open(&read_log(&mut con, &keys).await);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.cancel();
    for a in agents {
        let _ = a.await;
    }

    // From outside: the API, and the log in Redis.
    let events = read_log(&mut con, &keys).await;
    let caps: HashMap<String, u32> = (0..AGENTS).map(|i| (format!("a{i}"), CAPACITY)).collect();
    let replay = replay_log(&events, &caps);
    let s = std::mem::take(&mut *seen.lock().unwrap());
    let doubled: Vec<&String> = s.created.iter().filter(|(_, ids)| ids.len() > 1).map(|(k, _)| k).collect();
    let created_events = events.iter().filter(|e| e.typ == "created").count();
    let mut lost = Vec::new();
    let mut ixs = pb::interactions_client::InteractionsClient::with_interceptor(
        tonic::transport::Endpoint::from_shared(endpoints[2].clone()).unwrap().connect().await.unwrap(),
        bearer(ADMIN_KEY),
    );
    for id in &ids {
        let r = ixs
            .get_interaction(pb::GetInteractionRequest { interaction_id: id.clone(), include_messages: false })
            .await;
        if r.is_err_and(|e| e.code() == tonic::Code::NotFound) {
            lost.push(id.clone());
        }
    }
    let recovery: Vec<String> = faults
        .iter()
        .map(|(what, t)| {
            let next = s.acked_at.iter().filter(|a| *a > t).min().map(|a| format!("{:.2} s", (*a - *t).as_secs_f64()));
            format!("| {what} | {:.1} s | {} |", t.as_secs_f64(), next.unwrap_or_else(|| "never".into()))
        })
        .collect();
    let report = format!(
        "# Fault run: {secs} s of traffic, 3 instances, {AGENTS} agents (capacity {CAPACITY} chats)\n\n\
         | figure | value |\n|---|---|\n\
         | creates acknowledged | {} |\n| creates never acknowledged (gave up after 30 s) | {} |\n\
         | `created` events in the log | {created_events} |\n| lost (acknowledged, gone) | {} |\n\
         | doubled (a key with two interactions) | {} |\n| log violations (double offers, over capacity) | {} |\n\
         | acknowledged but not ended after the drain | {left} |\n\
         | offers accepted / rejected / left to time out | {} / {} / {} |\n| completions acknowledged | {} |\n\
         | failed client calls by code | {:?} |\n\n\
         | fault | at | next acknowledged create after it |\n|---|---|---|\n{}\n",
        ids.len(),
        s.unacked.len(),
        lost.len(),
        doubled.len(),
        replay.violations.len(),
        s.accepted,
        s.rejected,
        s.ignored,
        s.completed,
        s.codes,
        recovery.join("\n"),
    );
    println!("{report}");
    if let Ok(path) = std::env::var("SWITCHBOARD_CHAOS_REPORT") {
        std::fs::write(path, &report).unwrap();
    }
    assert!(ids.len() >= secs as usize, "traffic flowed: {report}");
    assert!(lost.is_empty(), "lost: {lost:?}\n{report}");
    assert!(doubled.is_empty(), "doubled: {doubled:?}\n{report}");
    assert!(replay.violations.is_empty(), "log:\n  {}\n{report}", replay.violations.join("\n  "));
    assert!(created_events <= s.created.len() + s.unacked.len(), "more interactions than keys: {report}");
    assert_eq!(left, 0, "every acknowledged interaction ended: {report}");
}
