//! Concurrency and fault tests: several Switchboard instances on one Redis, many desktops and
//! interactions at once, an instance killed mid-flight, admin changes under load.
//!
//! What is checked, and how:
//! - Desktops ([`run_agent`]) check what an agent sees: an offer only while its presence (as told by
//!   `PresenceChanged` pushes, which travel in script order with the offers) is READY, for itself,
//!   and never a second offer of one interaction without a revoke or reject in between.
//! - A checker ([`snapshot`]) reads Redis *atomically* (one MULTI/EXEC) while everything runs:
//!   load within capacity, load equal to the work set, no interaction in two work sets, every
//!   offered/active interaction in its agent's work set, every queued one in its waiting sets.
//!   Separate reads of several keys could see an interaction move between agents and report a
//!   double offer that never was; the transaction cannot.
//! - Afterwards the interaction log (the Redis `events` stream, written by the same script runs as
//!   the transitions) is replayed ([`replay_log`]): it sees every offer and every release in order,
//!   so "never twice, never over capacity" is checked for every instant, not just for samples.
//!
//! Randomness comes from a seeded xorshift; the seed is printed and `SB_SEED=<n>` replays the same
//! choices (timing still varies). Tests in this file run one at a time (see [`SERIAL`]): each one
//! loads both cores on its own.

use crate::common::*;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::api::pb::agent_request::Kind as Rq;
use switchboard::model::{AgentSpec, QueueSpec};
use switchboard_engine::{Engine, EngineOptions, Keys, keys::pool};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

type Admin = pb::admin_client::AdminClient<Authed>;
type Interactions = pb::interactions_client::InteractionsClient<Authed>;
type Supervisor = pb::supervisor_client::SupervisorClient<Authed>;

/// One test of this file at a time: each starts several instances and keeps both cores busy.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const READY: i32 = pb::PresenceState::Ready as i32;
const WRAP_UP: i32 = pb::PresenceState::WrapUp as i32;
/// How long a desktop waits for the reply to one of its requests.
const REPLY_PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- randomness

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }
}

fn seeded(test: &str) -> Rng {
    let seed = std::env::var("SB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("{test}: seed {seed} (SB_SEED={seed} replays the same choices)");
    Rng::new(seed)
}

// ---------------------------------------------------------------- shared test state

/// What the desktops and helper tasks report. Violations are collected, not panicked on inside
/// spawned tasks, so the test fails at once with every message.
#[derive(Default)]
struct Shared {
    violations: Mutex<Vec<String>>,
    /// interaction -> agent whose completion request succeeded.
    completed: Mutex<HashMap<String, String>>,
    completions: AtomicUsize,
    offers: AtomicUsize,
    accepts: AtomicUsize,
    rejects: AtomicUsize,
    revokes: AtomicUsize,
    /// Accept/reject answered "not offered to you": a revoke crossed the request.
    crossed: AtomicUsize,
}

impl Shared {
    fn violation(&self, msg: String) {
        let mut v = self.violations.lock().unwrap();
        if v.len() < 25 {
            v.push(msg);
        }
    }

    fn assert_clean(&self) {
        let v = self.violations.lock().unwrap().clone();
        assert!(v.is_empty(), "violations (at most 25 kept):\n  {}", v.join("\n  "));
    }

    fn completions(&self) -> usize {
        self.completions.load(Relaxed)
    }

    fn summary(&self) -> String {
        format!(
            "offers {}, accepted {}, rejected {}, revoked {}, crossed requests {}, completed {}",
            self.offers.load(Relaxed),
            self.accepts.load(Relaxed),
            self.rejects.load(Relaxed),
            self.revokes.load(Relaxed),
            self.crossed.load(Relaxed),
            self.completions()
        )
    }
}

/// Interactions whose creation returned: (id, queue).
type Created = Arc<Mutex<Vec<(String, String)>>>;

// ---------------------------------------------------------------- desktop client

enum ReqErr {
    Status(tonic::Code, String),
    Closed,
    Timeout,
}

/// A desktop session that, unlike the harness `Desktop`, may sit idle for any time.
struct Client {
    agent: String,
    tx: mpsc::Sender<pb::AgentRequest>,
    events: tonic::Streaming<pb::AgentEvent>,
    pending: VecDeque<pb::AgentEvent>,
    next_id: u64,
}

impl Client {
    async fn login(endpoint: String, agent: &str) -> (Client, pb::LoggedIn) {
        let mut rpc = pb::agent_desktop_client::AgentDesktopClient::connect(endpoint).await.expect("connect");
        let (tx, rx) = mpsc::channel(64);
        let login = pb::Login { agent_id: agent.into(), token: format!("tok-{agent}") };
        tx.send(pb::AgentRequest { request_id: "login".into(), kind: Some(Rq::Login(login)) }).await.unwrap();
        let mut events =
            rpc.session(tokio_stream::wrappers::ReceiverStream::new(rx)).await.expect("session").into_inner();
        let mut next = async || {
            tokio::time::timeout(REPLY_PATIENCE, events.next())
                .await
                .expect("login answered in time")
                .expect("stream open")
                .expect("no stream error")
        };
        let first = next().await;
        let Some(Ev::LoggedIn(li)) = first.kind else { panic!("{agent}: expected logged_in, got {first:?}") };
        let ack = next().await;
        assert!(matches!(ack.kind, Some(Ev::Ack(_))), "{agent}: expected the login ack, got {ack:?}");
        (Client { agent: agent.into(), tx, events, pending: VecDeque::new(), next_id: 0 }, li)
    }

    /// Sends a request and waits for its ack or error; pushes meanwhile go to `pending`.
    async fn request(&mut self, kind: Rq) -> Result<pb::Ack, ReqErr> {
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        if self.tx.send(pb::AgentRequest { request_id: id.clone(), kind: Some(kind) }).await.is_err() {
            return Err(ReqErr::Closed);
        }
        loop {
            match tokio::time::timeout(REPLY_PATIENCE, self.events.next()).await {
                Err(_) => return Err(ReqErr::Timeout),
                Ok(None | Some(Err(_))) => return Err(ReqErr::Closed),
                Ok(Some(Ok(e))) => match e.kind {
                    Some(Ev::Ack(a)) if a.request_id == id => return Ok(a),
                    Some(Ev::Error(er)) if er.request_id == id => {
                        return Err(ReqErr::Status(tonic::Code::from(er.code), er.message));
                    }
                    _ => self.pending.push_back(e),
                },
            }
        }
    }
}

fn presence_name(state: i32) -> &'static str {
    pb::PresenceState::try_from(state).map(|s| s.as_str_name()).unwrap_or("?")
}

fn set_ready() -> Rq {
    Rq::SetPresence(pb::SetPresence { presence: Some(pb::Presence { state: READY, reason: String::new() }) })
}

/// How a simulated agent behaves.
#[derive(Clone, Copy)]
struct Behaviour {
    /// Share of offers accepted (the rest are rejected), in percent.
    accept_pct: u64,
    /// Completion follows acceptance after 0..=this many ms.
    max_think_ms: u64,
    /// Go READY again after someone else (a supervisor) changed the presence.
    reready: bool,
}

enum Action {
    Ready,
    Complete(String),
    EndWrap(String),
}

struct AgentLoop {
    c: Client,
    me: String,
    b: Behaviour,
    sh: Arc<Shared>,
    rng: Rng,
    /// As told by PresenceChanged pushes (and the login snapshot).
    presence: i32,
    outstanding: HashSet<String>,
    held: HashSet<String>,
    due: Vec<(Instant, Action)>,
}

/// A desktop that goes READY, then accepts or rejects every offer and completes what it accepted,
/// until `stop`. Checks what it is shown on the way (see the module docs).
fn spawn_agent(
    c: Client,
    li: pb::LoggedIn,
    b: Behaviour,
    sh: Arc<Shared>,
    stop: CancellationToken,
    rng: Rng,
) -> JoinHandle<()> {
    tokio::spawn(run_agent(c, li, b, sh, stop, rng))
}

async fn run_agent(c: Client, li: pb::LoggedIn, b: Behaviour, sh: Arc<Shared>, stop: CancellationToken, rng: Rng) {
    let now = Instant::now();
    let mut s = AgentLoop {
        me: c.agent.clone(),
        c,
        b,
        sh,
        rng,
        presence: li.agent.as_ref().and_then(|a| a.presence.as_ref()).map_or(0, |p| p.state),
        outstanding: li.offers.iter().filter_map(|o| o.interaction.as_ref()).map(|i| i.id.clone()).collect(),
        held: li.interactions.iter().map(|i| i.id.clone()).collect(),
        due: vec![(now, Action::Ready)],
    };
    for iid in s.held.clone() {
        s.due.push((now, Action::Complete(iid)));
    }
    loop {
        let ev = match s.c.pending.pop_front() {
            Some(e) => Some(e),
            None => {
                let next = s.due.iter().map(|d| d.0).min();
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    _ = sleep_until(next) => None,
                    e = s.c.events.next() => match e {
                        Some(Ok(e)) => Some(e),
                        _ => return,
                    },
                }
            }
        };
        let go_on = match ev {
            Some(e) => s.on_event(e).await,
            None => s.run_due().await,
        };
        if !go_on {
            return;
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

impl AgentLoop {
    fn think(&mut self) -> Duration {
        Duration::from_millis(self.rng.range(0, self.b.max_think_ms))
    }

    fn violation(&self, msg: String) {
        self.sh.violation(format!("{}: {msg}", self.me));
    }

    /// Handles a failed request; false ends the loop.
    fn failed(&self, what: &str, iid: &str, e: ReqErr) -> bool {
        match e {
            ReqErr::Closed => false,
            // Revoked (timeout, offline, supervisor) while the request was under way.
            ReqErr::Status(tonic::Code::FailedPrecondition, _) if what == "accept" || what == "reject" => {
                self.sh.crossed.fetch_add(1, Relaxed);
                true
            }
            ReqErr::Status(code, msg) => {
                self.violation(format!("{what} {iid} failed: {code:?}: {msg}"));
                true
            }
            ReqErr::Timeout => {
                self.violation(format!("{what} {iid}: no reply within {REPLY_PATIENCE:?}"));
                false
            }
        }
    }

    async fn on_event(&mut self, e: pb::AgentEvent) -> bool {
        match e.kind {
            Some(Ev::Offer(o)) => self.on_offer(o).await,
            Some(Ev::OfferRevoked(r)) => {
                self.sh.revokes.fetch_add(1, Relaxed);
                if self.held.contains(&r.interaction_id) {
                    self.violation(format!(
                        "offer of {} revoked ({}) after it was accepted",
                        r.interaction_id, r.reason
                    ));
                }
                self.outstanding.remove(&r.interaction_id);
                true
            }
            Some(Ev::PresenceChanged(p)) => {
                let state = p.presence.map_or(0, |p| p.state);
                self.presence = state;
                if self.b.reready
                    && state != READY
                    && state != WRAP_UP
                    && !matches!(p.cause.as_str(), "agent" | "login")
                {
                    let at = Instant::now() + self.think();
                    self.due.push((at, Action::Ready));
                }
                true
            }
            Some(Ev::SessionClosed(_)) => false,
            _ => true,
        }
    }

    async fn on_offer(&mut self, o: pb::Offer) -> bool {
        self.sh.offers.fetch_add(1, Relaxed);
        let Some(ix) = o.interaction else {
            self.violation("offer without an interaction".into());
            return true;
        };
        let iid = ix.id.clone();
        // What is guaranteed: an offer is made only while the agent is ready (in Redis), and every
        // push to a session goes through one inbox stream in script order, so an offer made before
        // a presence change arrives before that change's PresenceChanged push. (It may well arrive
        // after the ack of the agent's own SetPresence: acks do not travel with the pushes.)
        if self.presence != READY {
            self.violation(format!("offer of {iid} arrived while its presence was {}", presence_name(self.presence)));
        }
        if ix.agent_id != self.me || ix.state != pb::InteractionState::Offered as i32 {
            self.violation(format!(
                "offer of {iid} shows the interaction {} to agent {:?}",
                pb::InteractionState::try_from(ix.state).map_or("?", |s| s.as_str_name()),
                ix.agent_id
            ));
        }
        if self.outstanding.contains(&iid) || self.held.contains(&iid) {
            self.violation(format!("second offer of {iid} without a revoke or reject in between"));
        }
        self.outstanding.insert(iid.clone());
        if self.rng.chance(self.b.accept_pct) {
            match self.c.request(Rq::Accept(pb::AcceptOffer { interaction_id: iid.clone() })).await {
                Ok(ack) => {
                    let got = ack.interaction.as_ref().map(|i| (i.state, i.agent_id.as_str()));
                    if got != Some((pb::InteractionState::Active as i32, self.me.as_str())) {
                        self.violation(format!("accept of {iid} acked with {got:?}"));
                    }
                    self.sh.accepts.fetch_add(1, Relaxed);
                    self.outstanding.remove(&iid);
                    self.held.insert(iid.clone());
                    let at = Instant::now() + self.think();
                    self.due.push((at, Action::Complete(iid)));
                    true
                }
                Err(e) => self.failed("accept", &iid, e),
            }
        } else {
            let reject = pb::RejectOffer { interaction_id: iid.clone(), reason: "busy".into() };
            match self.c.request(Rq::Reject(reject)).await {
                Ok(_) => {
                    self.sh.rejects.fetch_add(1, Relaxed);
                    self.outstanding.remove(&iid);
                    true
                }
                Err(e) => self.failed("reject", &iid, e),
            }
        }
    }

    async fn run_due(&mut self) -> bool {
        let now = Instant::now();
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.due).into_iter().partition(|d| d.0 <= now);
        self.due = later;
        for (_, a) in ready {
            if !self.act(a).await {
                return false;
            }
        }
        true
    }

    async fn act(&mut self, a: Action) -> bool {
        match a {
            Action::Ready => match self.c.request(set_ready()).await {
                Ok(_) => true,
                Err(e) => self.failed("set ready", "", e),
            },
            Action::Complete(iid) => {
                let req = pb::CompleteInteraction {
                    interaction_id: iid.clone(),
                    disposition: format!("done-by-{}", self.me),
                    notes: String::new(),
                };
                match self.c.request(Rq::Complete(req)).await {
                    Ok(ack) => {
                        let state = ack.interaction.map_or(0, |i| i.state);
                        if state == pb::InteractionState::WrapUp as i32 {
                            let at = Instant::now() + self.think();
                            self.due.push((at, Action::EndWrap(iid)));
                        } else if state == pb::InteractionState::Completed as i32 {
                            self.done(iid);
                        } else {
                            self.violation(format!("complete of {iid} acked with state {state}"));
                        }
                        true
                    }
                    Err(e) => self.failed("complete", &iid, e),
                }
            }
            Action::EndWrap(iid) => {
                let req = pb::EndWrapUp { interaction_id: iid.clone(), ..Default::default() };
                match self.c.request(Rq::EndWrapUp(req)).await {
                    Ok(_) => {
                        self.done(iid);
                        true
                    }
                    Err(e) => self.failed("end wrap-up", &iid, e),
                }
            }
        }
    }

    fn done(&mut self, iid: String) {
        self.held.remove(&iid);
        let prev = self.sh.completed.lock().unwrap().insert(iid.clone(), self.me.clone());
        if let Some(p) = prev {
            self.violation(format!("completed {iid}, already completed by {p}"));
        }
        self.sh.completions.fetch_add(1, Relaxed);
    }
}

// ---------------------------------------------------------------- setup helpers

fn chat_agent(id: &str, skills: &[(&str, u32)], chat: u32) -> pb::Agent {
    let mut a = agent(id, skills);
    a.capacity = Some(pb::Capacity { voice: Some(1), chat: Some(chat), sms: Some(3), email: Some(5) });
    a
}

fn chat_queue(name: &str, reqs: &[(&str, u32)]) -> pb::Queue {
    let mut q = queue(name, reqs);
    q.channels = vec![pb::Channel::Chat as i32];
    q
}

async fn put_queue(admin: &mut Admin, q: pb::Queue) {
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.expect("put queue");
}

async fn put_agent(admin: &mut Admin, a: pb::Agent) {
    admin.put_agent(pb::PutAgentRequest { agent: Some(a), allow_update: true }).await.expect("put agent");
}

/// Creates one chat interaction per entry of `queues` from `tasks` concurrent tasks, each call
/// through a random instance. Some calls are retried with the same idempotency key on another
/// instance, which must answer with the same interaction.
#[allow(clippy::too_many_arguments)]
fn spawn_creators(
    test: &str,
    clients: &[Interactions],
    queues: Vec<String>,
    tasks: usize,
    pace_ms: Option<(u64, u64)>,
    rng: &mut Rng,
    created: Created,
    sh: Arc<Shared>,
) -> Vec<JoinHandle<()>> {
    let mut chunks: Vec<Vec<(usize, String)>> = vec![Vec::new(); tasks];
    for (i, q) in queues.into_iter().enumerate() {
        chunks[i % tasks].push((i, q));
    }
    chunks
        .into_iter()
        .map(|chunk| {
            let (clients, created, sh, mut rng, test) =
                (clients.to_vec(), created.clone(), sh.clone(), rng.fork(), test.to_string());
            tokio::spawn(async move {
                for (i, queue) in chunk {
                    let mut req = new_chat(&queue, &format!("visitor-{i}"), &format!("hello #{i}"));
                    req.idempotency_key = format!("{test}-{i}");
                    let mut client = rng.pick(&clients).clone();
                    let ix = match client.create_interaction(req.clone()).await {
                        Ok(r) => r.into_inner(),
                        Err(e) => {
                            sh.violation(format!("create #{i} in {queue} failed: {e}"));
                            continue;
                        }
                    };
                    if rng.chance(5) {
                        let mut other = rng.pick(&clients).clone();
                        match other.create_interaction(req).await {
                            Ok(r) if r.get_ref().id == ix.id => {}
                            other => sh.violation(format!("retried create #{i} answered {other:?}, first {}", ix.id)),
                        }
                    }
                    created.lock().unwrap().push((ix.id, queue));
                    if let Some((lo, hi)) = pace_ms {
                        tokio::time::sleep(Duration::from_millis(rng.range(lo, hi))).await;
                    }
                }
            })
        })
        .collect()
}

async fn join_all(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        h.await.expect("task panicked");
    }
}

async fn all_waiting(sup: &mut Supervisor) -> Vec<pb::Interaction> {
    sup.list_waiting(pb::ListWaitingRequest { queue: String::new(), limit: 1000 })
        .await
        .unwrap()
        .into_inner()
        .interactions
}

async fn figures(sup: &mut Supervisor, queue: &str) -> pb::QueueFigures {
    sup.get_queue_figures(pb::GetQueueFiguresRequest { queue: queue.into() }).await.unwrap().into_inner()
}

/// Waits until everything created so far is completed, failing early on any violation.
async fn wait_all_completed(what: &str, sh: &Arc<Shared>, n: usize, patience: Duration) {
    eventually(what, patience, || {
        let sh = sh.clone();
        async move {
            sh.assert_clean();
            (sh.completions() >= n).then_some(())
        }
    })
    .await;
}

/// Every created interaction is completed, by the agent whose completion succeeded, exactly once.
async fn assert_all_completed(engine: &Engine, sh: &Shared, created: &[(String, String)]) {
    let completed = sh.completed.lock().unwrap().clone();
    assert_eq!(completed.len(), created.len(), "completions recorded by the desktops");
    for (id, queue) in created {
        let by = completed.get(id).unwrap_or_else(|| panic!("{id} ({queue}) was never completed"));
        let ix = engine.get_interaction(id, false).await.unwrap();
        assert_eq!(ix.state, switchboard::model::InteractionState::Completed, "{ix:?}");
        assert_eq!(&ix.agent_id, by, "{id}: completing agent");
        assert_eq!(ix.disposition, format!("done-by-{by}"), "{id}: disposition");
    }
}

// ---------------------------------------------------------------- atomic snapshot of the routing state

struct AgentSnap {
    load: u32,
    cap: u32,
    work: BTreeSet<String>,
}

struct IxSnap {
    queue: String,
    state: String,
    agent: String,
    pool: String,
    in_wait: bool,
    in_qwait: bool,
}

fn val<T: redis::FromRedisValue>(v: Option<redis::Value>) -> T {
    redis::from_redis_value(v.expect("one reply per command")).expect("redis reply type")
}

/// Chat load, capacity and work set of every agent, and the state of every known interaction
/// (created in `queue`, stage 0), read in one transaction.
async fn snapshot(
    con: &mut MultiplexedConnection,
    keys: &Keys,
    agents: &[String],
    ixs: &[(String, String)],
) -> redis::RedisResult<(BTreeMap<String, AgentSnap>, BTreeMap<String, IxSnap>)> {
    let mut p = redis::pipe();
    p.atomic();
    for a in agents {
        p.cmd("HMGET").arg(keys.agent(a)).arg("load_chat").arg("cap_chat");
        p.smembers(keys.agent_work(a));
    }
    for (id, q) in ixs {
        p.cmd("HMGET").arg(keys.ix(id)).arg("state").arg("agent").arg("pool");
        p.zscore(keys.wait(&pool(q, 0), "chat"), id);
        p.zscore(keys.qwait(q), id);
    }
    let vals: Vec<redis::Value> = p.query_async(con).await?;
    let mut it = vals.into_iter();
    let num = |v: &Option<String>| v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut asnap = BTreeMap::new();
    for a in agents {
        let h: Vec<Option<String>> = val(it.next());
        let work: BTreeSet<String> = val(it.next());
        asnap.insert(a.clone(), AgentSnap { load: num(&h[0]), cap: num(&h[1]), work });
    }
    let mut isnap = BTreeMap::new();
    for (id, q) in ixs {
        let h: Vec<Option<String>> = val(it.next());
        let w: Option<f64> = val(it.next());
        let qw: Option<f64> = val(it.next());
        let [state, agent, pool] = [0, 1, 2].map(|i| h[i].clone().unwrap_or_default());
        isnap.insert(
            id.clone(),
            IxSnap { queue: q.clone(), state, agent, pool, in_wait: w.is_some(), in_qwait: qw.is_some() },
        );
    }
    Ok((asnap, isnap))
}

fn snapshot_violations(agents: &BTreeMap<String, AgentSnap>, ixs: &BTreeMap<String, IxSnap>) -> Vec<String> {
    let mut v = Vec::new();
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (aid, a) in agents {
        if a.load > a.cap {
            v.push(format!("agent {aid}: chat load {} over capacity {}", a.load, a.cap));
        }
        if a.load as usize != a.work.len() {
            v.push(format!("agent {aid}: chat load {} but {} interactions in its work set", a.load, a.work.len()));
        }
        for iid in &a.work {
            if let Some(other) = owner.insert(iid, aid) {
                v.push(format!("{iid} is in the work sets of both {other} and {aid}"));
            }
            if let Some(ix) = ixs.get(iid)
                && (ix.agent != *aid || !matches!(ix.state.as_str(), "offered" | "active" | "wrap_up"))
            {
                v.push(format!("{iid} is in {aid}'s work set but is {} with agent {:?}", ix.state, ix.agent));
            }
        }
    }
    for (iid, ix) in ixs {
        match ix.state.as_str() {
            "offered" | "active" | "wrap_up" => {
                if owner.get(iid.as_str()) != Some(&ix.agent.as_str()) {
                    v.push(format!("{iid} is {} with {:?} but not in that agent's work set", ix.state, ix.agent));
                }
            }
            "queued" => {
                if !ix.in_wait || !ix.in_qwait || ix.pool != pool(&ix.queue, 0) {
                    v.push(format!(
                        "{iid} is queued but pool {:?}, in waiting set {}, in queue list {}: lost",
                        ix.pool, ix.in_wait, ix.in_qwait
                    ));
                }
            }
            "completed" => {
                if ix.in_wait || ix.in_qwait || owner.contains_key(iid.as_str()) {
                    v.push(format!("{iid} is completed but still waiting or held"));
                }
            }
            other => v.push(format!("{iid}: unexpected state {other:?}")),
        }
    }
    v
}

/// Checks the routing state (and the routing indexes of `queues`) while the test runs, until
/// `stop`; reports violations to `sh` (so the test fails at once) and returns the rounds made.
fn spawn_checker(
    redis_url: String,
    agents: Vec<String>,
    queues: &'static [&'static str],
    created: Created,
    sh: Arc<Shared>,
    stop: CancellationToken,
) -> JoinHandle<usize> {
    tokio::spawn(async move {
        let engine = Engine::connect(&redis_url, EngineOptions::default()).await.unwrap();
        let keys = engine.keys().clone();
        let client = redis::Client::open(redis_url.as_str()).unwrap();
        // A loaded 2-core machine can exceed the default 500 ms response timeout.
        let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
        let mut con = client.get_multiplexed_async_connection_with_config(&cfg).await.unwrap();
        let mut rounds = 0;
        while !stop.is_cancelled() {
            let ixs = created.lock().unwrap().clone();
            // A Redis error means the test is being torn down (it failed elsewhere).
            let Ok((a, i)) = snapshot(&mut con, &keys, &agents, &ixs).await else { break };
            let Ok(mut v) = index_violations(&mut con, &keys, &agents, queues).await else { break };
            v.extend(snapshot_violations(&a, &i));
            // The capacity rule once more, through the store's own view of each agent.
            let Ok(statuses) = engine.list_agent_statuses().await else { break };
            for st in statuses {
                for (ch, load) in &st.load {
                    if *load > st.capacity.get(*ch) {
                        v.push(format!("agent {}: {ch} load {load} over capacity {:?}", st.id, st.capacity));
                    }
                }
            }
            for msg in v {
                sh.violation(format!("checker round {rounds}: {msg}"));
            }
            rounds += 1;
            // Pacing, not waiting for a condition: the checker samples as often as it can afford.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rounds
    })
}

// ---------------------------------------------------------------- interaction log replay

pub(crate) struct LogEvent {
    pub(crate) typ: String,
    pub(crate) ix: String,
    pub(crate) agent: String,
    pub(crate) details: serde_json::Value,
}

pub(crate) async fn read_log(con: &mut MultiplexedConnection, keys: &Keys) -> Vec<LogEvent> {
    let mut out = Vec::new();
    let mut start = "-".to_string();
    loop {
        let r: redis::streams::StreamRangeReply = con.xrange_count(keys.events(), &start, "+", 5000).await.unwrap();
        let Some(last) = r.ids.last() else { break };
        start = format!("({}", last.id);
        for e in switchboard_engine::events::entries_events(&r.ids) {
            out.push(LogEvent {
                typ: e.typ,
                ix: e.interaction_id,
                agent: e.agent_id,
                details: serde_json::from_str(&e.details).unwrap_or_default(),
            });
        }
    }
    out
}

#[derive(Default)]
pub(crate) struct Replay {
    pub(crate) violations: Vec<String>,
    accepted: HashMap<String, Vec<String>>,
    completed: HashMap<String, Vec<String>>,
    /// Interactions in the order of their first offer.
    first_offers: Vec<String>,
    pub(crate) counts: BTreeMap<String, usize>,
}

/// Replays every offer and release of the log: one offer at a time per interaction, accepted only
/// by the agent it was offered to, and no agent's chat load ever over `caps`.
pub(crate) fn replay_log(events: &[LogEvent], caps: &HashMap<String, u32>) -> Replay {
    let mut r = Replay::default();
    let mut offered: HashMap<&str, &str> = HashMap::new();
    let mut holder: HashMap<&str, &str> = HashMap::new();
    let mut load: HashMap<&str, u32> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for e in events {
        *r.counts.entry(e.typ.clone()).or_default() += 1;
        let (iid, aid) = (e.ix.as_str(), e.agent.as_str());
        let mut release = |r: &mut Replay| {
            let l = load.entry(aid).or_default();
            match l.checked_sub(1) {
                Some(n) => *l = n,
                None => r.violations.push(format!("{} of {iid} by {aid}: load below zero", e.typ)),
            }
        };
        match e.typ.as_str() {
            "offered" => {
                if let Some(prev) = offered.insert(iid, aid) {
                    r.violations.push(format!("{iid} offered to {aid} while still offered to {prev}"));
                }
                if let Some(h) = holder.get(iid) {
                    r.violations.push(format!("{iid} offered to {aid} while {h} holds it"));
                }
                let l = load.entry(aid).or_default();
                *l += 1;
                let cap = caps.get(aid).copied().unwrap_or(0);
                if *l > cap {
                    r.violations.push(format!("offer of {iid} takes {aid} to load {l}, capacity {cap}"));
                }
                if seen.insert(iid) {
                    r.first_offers.push(iid.to_string());
                }
            }
            "rejected" | "missed" | "revoked" => {
                if offered.remove(iid) != Some(aid) {
                    r.violations.push(format!("{} of {iid} by {aid}, which had no offer of it", e.typ));
                }
                release(&mut r);
            }
            "accepted" => {
                if offered.remove(iid) != Some(aid) {
                    r.violations.push(format!("{iid} accepted by {aid}, which had no offer of it"));
                }
                holder.insert(iid, aid);
                r.accepted.entry(iid.to_string()).or_default().push(aid.to_string());
            }
            "completed" => {
                if holder.remove(iid) != Some(aid) {
                    r.violations.push(format!("{iid} completed by {aid}, which did not hold it"));
                }
                release(&mut r);
                r.completed.entry(iid.to_string()).or_default().push(aid.to_string());
            }
            "transferred" => {
                holder.remove(iid);
                release(&mut r);
            }
            _ => {}
        }
    }
    r
}

/// Replays the log and asserts the invariants, and that each of `created` was accepted and
/// completed exactly once, by the same agent. Returns the replay for further checks.
async fn assert_log(
    con: &mut MultiplexedConnection,
    keys: &Keys,
    caps: &HashMap<String, u32>,
    created: &[(String, String)],
) -> (Vec<LogEvent>, Replay) {
    let events = read_log(con, keys).await;
    let r = replay_log(&events, caps);
    assert!(r.violations.is_empty(), "interaction log:\n  {}", r.violations.join("\n  "));
    for (id, _) in created {
        let acc = r.accepted.get(id).cloned().unwrap_or_default();
        let done = r.completed.get(id).cloned().unwrap_or_default();
        assert!(acc.len() == 1 && done == acc, "{id}: accepted by {acc:?}, completed by {done:?}");
    }
    (events, r)
}

// ---------------------------------------------------------------- routing index consistency

/// Mirrors `can_take` in lib.lua.
fn can_take(a: &HashMap<String, String>, ch: &str) -> bool {
    let n = |k: &str| a.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let s = |k: &str| a.get(k).map(String::as_str).unwrap_or("");
    s("presence") == "ready"
        && s("connected") == "1"
        && n(&format!("load_{ch}")) < n(&format!("cap_{ch}"))
        && !(ch != "voice" && s("block") == "1" && n("load_voice") > 0.0)
}

/// An agent's spec, its hash and its pools, as read from Redis.
type AgentRow = (AgentSpec, HashMap<String, String>, BTreeMap<String, String>);

/// Compares the routing indexes with a fresh computation from the specs stored next to them:
/// each agent's pools (`agent:{id}:pools`) with `routing::agent_pools` over the queues, each
/// pool's member set, and each availability set with the agents that can take work now. Specs
/// and indexes are read in one transaction, so this holds at any moment, admin changes and
/// routing going on or not.
async fn index_violations(
    con: &mut MultiplexedConnection,
    keys: &Keys,
    agent_ids: &[String],
    queue_names: &[&str],
) -> redis::RedisResult<Vec<String>> {
    const CHANNELS: [&str; 4] = ["voice", "chat", "sms", "email"];
    let stages = switchboard::model::MAX_ESCALATION_STEPS + 1;
    let mut p = redis::pipe();
    p.atomic();
    for a in agent_ids {
        p.hgetall(keys.agent(a));
        p.hgetall(keys.agent_pools(a));
    }
    for q in queue_names {
        p.hget(keys.queue(q), "spec");
        for s in 0..stages {
            p.smembers(keys.pool_agents(&pool(q, s)));
            for ch in CHANNELS {
                p.zrange(keys.avail(&pool(q, s), ch), 0, -1);
            }
        }
    }
    p.cmd("KEYS").arg(format!("{}pool:*", keys.root()));
    p.cmd("KEYS").arg(format!("{}avail:*", keys.root()));
    let vals: Vec<redis::Value> = p.query_async(con).await?;
    let mut it = vals.into_iter();
    let mut agents: Vec<AgentRow> = Vec::new();
    for id in agent_ids {
        let h: HashMap<String, String> = val(it.next());
        let pools: BTreeMap<String, String> = val(it.next());
        let spec: AgentSpec = serde_json::from_str(h.get("spec").unwrap_or_else(|| panic!("agent {id}: no spec")))
            .unwrap_or_else(|e| panic!("agent {id}: spec: {e}"));
        agents.push((spec, h, pools));
    }
    let mut queues: Vec<QueueSpec> = Vec::new();
    // (pool, channel) -> members / available agents, as stored.
    let mut stored_members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stored_avail: BTreeMap<(String, &str), BTreeSet<String>> = BTreeMap::new();
    for q in queue_names {
        let spec: Option<String> = val(it.next());
        let spec = spec.unwrap_or_else(|| panic!("queue {q}: no spec"));
        queues.push(serde_json::from_str(&spec).unwrap_or_else(|e| panic!("queue {q}: spec: {e}")));
        for s in 0..stages {
            stored_members.insert(pool(q, s), val(it.next()));
            for ch in CHANNELS {
                stored_avail.insert((pool(q, s), ch), val(it.next()));
            }
        }
    }
    let mut v = Vec::new();
    let mut want_members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (spec, _, got) in &agents {
        let want: BTreeMap<String, String> =
            switchboard::routing::agent_pools(spec, &queues).into_iter().map(|(p, s)| (p, s.to_string())).collect();
        if *got != want {
            v.push(format!("agent {}: pools {got:?}, expected {want:?} for skills {:?}", spec.id, spec.skills));
        }
        for pl in want.keys() {
            want_members.entry(pl.clone()).or_default().insert(spec.id.clone());
        }
    }
    let mut known_keys = HashSet::new();
    for q in &queues {
        for s in 0..q.stage_requirements().len() {
            let pl = pool(&q.name, s);
            known_keys.insert(keys.pool_agents(&pl));
            for ch in &q.channels {
                known_keys.insert(keys.avail(&pl, ch.as_str()));
            }
        }
    }
    for (pl, got) in &stored_members {
        let want = want_members.get(pl).cloned().unwrap_or_default();
        if *got != want {
            v.push(format!("pool {pl}: members {got:?}, expected {want:?}"));
        }
    }
    for ((pl, ch), got) in &stored_avail {
        let serves = queues.iter().any(|q| {
            q.channels.iter().any(|c| c.as_str() == *ch)
                && (0..q.stage_requirements().len()).any(|s| pool(&q.name, s) == *pl)
        });
        let want: BTreeSet<String> = agents
            .iter()
            .filter(|(spec, h, _)| {
                serves && want_members.get(pl).is_some_and(|m| m.contains(&spec.id)) && can_take(h, ch)
            })
            .map(|(spec, _, _)| spec.id.clone())
            .collect();
        if *got != want {
            v.push(format!("avail {pl}/{ch}: {got:?}, expected {want:?}"));
        }
    }
    for k in val::<Vec<String>>(it.next()).into_iter().chain(val::<Vec<String>>(it.next())) {
        if !known_keys.contains(&k) {
            v.push(format!("index key {k} belongs to no pool of the current queues"));
        }
    }
    Ok(v)
}

const SKILLS: [&str; 3] = ["a", "b", "c"];

/// Each of [`SKILLS`] with probability `pct`, at a random level 1..=`max_level`.
fn random_levels(rng: &mut Rng, pct: u64, max_level: u64) -> Vec<(&'static str, u32)> {
    let mut out = Vec::new();
    for k in SKILLS {
        if rng.chance(pct) {
            out.push((k, rng.range(1, max_level) as u32));
        }
    }
    out
}

/// One to three of [`SKILLS`] at random levels.
fn random_skills(rng: &mut Rng) -> Vec<(&'static str, u32)> {
    let mut s = random_levels(rng, 60, 10);
    if s.is_empty() {
        let skill: &&str = rng.pick(&SKILLS);
        s.push((*skill, rng.range(1, 10) as u32));
    }
    s
}

// ---------------------------------------------------------------- instances and the test clock

fn config(redis_url: &str, instance: &str) -> switchboard::config::Config {
    let mut cfg = test_config(redis_url);
    cfg.server.instance_id = instance.into();
    // These tests replay the whole event log from Redis afterwards; with a CRM it would be
    // trimmed as it is delivered (CRM delivery has its own tests).
    cfg.crm.enabled = false;
    cfg
}

/// Moves the routing clock forward in steps of at most 10 s; after each step waits until every
/// surviving instance has heartbeated again. (One jump past the presence grace would make the
/// survivors' own liveness timers due before their next heartbeat, and they would declare
/// themselves dead — an artefact of the test clock, not of production.)
async fn advance_clock_with_survivors(engine: &Engine, by: Duration, survivors: &[&str]) {
    let grace = engine.options().presence_grace.as_millis() as f64;
    let mut left = by;
    while !left.is_zero() {
        let step = left.min(Duration::from_secs(10));
        engine.advance_clock(step).await.unwrap();
        left -= step;
        for inst in survivors {
            let member = format!("inst|{inst}");
            eventually(&format!("a heartbeat of {inst} after a clock step"), Duration::from_secs(15), || {
                let (engine, member) = (engine.clone(), member.clone());
                async move {
                    let now = engine.now_ms().await.unwrap() as f64;
                    let mut con = engine.dedicated_connection().await.unwrap();
                    let due: Option<f64> = con.zscore(engine.keys().timers(), &member).await.unwrap();
                    due.filter(|d| *d > now + grace - 5000.0).map(|_| ())
                }
            })
            .await;
        }
    }
}

// ================================================================ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_instances_no_double_offer_no_over_capacity_nothing_lost() {
    const AGENTS: usize = 200;
    const INTERACTIONS: usize = 2000;
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let mut rng = seeded("many_instances");
    let redis = RedisServer::start();
    let mut servers = Vec::new();
    for i in 0..3 {
        servers.push(TestServer::start_with(config(&redis.url, &format!("inst-{i}"))).await);
    }
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let keys = engine.keys().clone();
    let mut con = redis.client().await;
    let mut admin = servers[0].admin().await;
    let mut sups = Vec::new();
    let mut ixcs = Vec::new();
    for s in &servers {
        sups.push(s.supervisor().await);
        ixcs.push(s.interactions().await);
    }

    const QUEUES: [&str; 3] = ["sales", "support", "french"];
    put_queue(&mut admin, chat_queue("sales", &[("english", 3)])).await;
    put_queue(&mut admin, chat_queue("support", &[("english", 3), ("tech", 5)])).await;
    put_queue(&mut admin, chat_queue("french", &[("french", 4)])).await;
    // Profiles: sales only; sales+support; sales+french; french only. Every queue has 50+ agents,
    // so rejects (which exclude the agent) never leave an interaction without anyone eligible.
    let profiles: [&[(&str, u32)]; 4] = [
        &[("english", 5)],
        &[("english", 7), ("tech", 6)],
        &[("english", 4), ("french", 6)],
        &[("french", 5), ("tech", 8)],
    ];
    let mut ids = Vec::new();
    let mut caps = HashMap::new();
    for i in 0..AGENTS {
        let id = format!("agent-{i:03}");
        let cap = rng.range(2, 3) as u32;
        put_agent(&mut admin, chat_agent(&id, profiles[i % 4], cap)).await;
        caps.insert(id.clone(), cap);
        ids.push(id);
    }

    let sh = Arc::new(Shared::default());
    let stop = CancellationToken::new();
    let behaviour = Behaviour { accept_pct: 80, max_think_ms: 30, reready: true };
    let mut desktops = Vec::new();
    for id in &ids {
        let (c, li) = Client::login(rng.pick(&servers).endpoint(), id).await;
        desktops.push(spawn_agent(c, li, behaviour, sh.clone(), stop.clone(), rng.fork()));
    }
    eventually("every agent ready", Duration::from_secs(30), || {
        let engine = engine.clone();
        async move {
            let st = engine.list_agent_statuses().await.unwrap();
            st.iter().all(|a| a.presence == switchboard::model::Presence::Ready && a.connected).then_some(())
        }
    })
    .await;

    let created: Created = Arc::default();
    let checker_stop = CancellationToken::new();
    let checker =
        spawn_checker(redis.url.clone(), ids.clone(), &QUEUES, created.clone(), sh.clone(), checker_stop.clone());
    // Half sales, a fifth support, the rest french.
    const MIX: [&str; 10] =
        ["sales", "sales", "sales", "sales", "sales", "support", "support", "french", "french", "french"];
    let plan: Vec<String> = (0..INTERACTIONS).map(|_| rng.pick(&MIX).to_string()).collect();
    let creators = spawn_creators("many", &ixcs, plan, 24, None, &mut rng, created.clone(), sh.clone());

    // A supervisor keeps interrupting agents (NOT_READY or OFFLINE; offers of an agent forced
    // offline are revoked and go to someone else); the desktops go READY again after a moment.
    let chaos = {
        let (sh, ids, mut sups, mut rng) = (sh.clone(), ids.clone(), sups.clone(), rng.fork());
        tokio::spawn(async move {
            let mut forced = 0;
            while sh.completions() < INTERACTIONS * 3 / 4 {
                let agent_id = rng.pick(&ids).clone();
                let state = if rng.chance(70) { pb::PresenceState::NotReady } else { pb::PresenceState::Offline };
                let presence = Some(pb::Presence { state: state as i32, reason: "coaching".into() });
                let sup = &mut sups[rng.below(3) as usize];
                if let Err(e) = sup.force_presence(pb::ForcePresenceRequest { agent_id, presence }).await {
                    sh.violation(format!("force presence failed: {e}"));
                }
                forced += 1;
                tokio::time::sleep(Duration::from_millis(rng.range(10, 40))).await;
            }
            forced
        })
    };

    join_all(creators).await;
    let created_all = created.lock().unwrap().clone();
    assert_eq!(created_all.len(), INTERACTIONS, "interactions created");
    wait_all_completed("every interaction completed", &sh, INTERACTIONS, Duration::from_secs(60)).await;
    let forced = chaos.await.unwrap();
    checker_stop.cancel();
    let rounds = checker.await.unwrap();
    stop.cancel();
    join_all(desktops).await;
    sh.assert_clean();
    assert!(rounds > 0, "the checker never ran");

    assert_all_completed(&engine, &sh, &created_all).await;
    let (a, i) = snapshot(&mut con, &keys, &ids, &created_all).await.unwrap();
    let v = snapshot_violations(&a, &i);
    assert!(v.is_empty(), "final routing state:\n  {}", v.join("\n  "));
    assert!(a.values().all(|a| a.load == 0 && a.work.is_empty()), "agents still hold work at the end");
    let (_, replay) = assert_log(&mut con, &keys, &caps, &created_all).await;
    let mut accepted = 0;
    for q in QUEUES {
        let f = figures(&mut sups[0], q).await;
        assert_eq!(f.waiting, 0, "{q}: waiting");
        accepted += f.accepted;
    }
    assert_eq!(accepted, INTERACTIONS as u64, "accepted over all queue figures");
    assert!(all_waiting(&mut sups[1]).await.is_empty(), "ListWaiting not empty");
    assert!(sh.rejects.load(Relaxed) > 0, "no offer was ever rejected: the scenario did not run as meant");
    eprintln!(
        "many_instances: {INTERACTIONS} interactions, {AGENTS} agents, 3 instances; {}; {forced} forced presence \
         changes; {rounds} checker rounds; log {:?}; {:.1?}",
        sh.summary(),
        replay.counts,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_instance_survivor_finishes_timers_and_offers() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let mut rng = seeded("killed_instance");
    let redis = RedisServer::start();
    let a = TestServer::start_with(config(&redis.url, "inst-a")).await;
    let b = TestServer::start_with(config(&redis.url, "inst-b")).await;
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let keys = engine.keys().clone();
    let mut con = redis.client().await;
    let mut admin = b.admin().await;

    // "main" needs x >= 5 (only A's agents) until its escalation step relaxes it to x >= 1 after 25 s.
    let mut main = chat_queue("main", &[("x", 5)]);
    main.escalation = vec![pb::EscalationStep {
        after_secs: 25,
        action: Some(pb::escalation_step::Action::LowerLevel(pb::SkillRequirement { skill: "x".into(), min_level: 1 })),
    }];
    put_queue(&mut admin, main).await;
    let mut wrapq = chat_queue("wrapq", &[]);
    wrapq.wrap_up_secs = 20;
    put_queue(&mut admin, wrapq).await;
    let a_ids = ["a1", "a2", "a3"];
    let b_ids = ["b1", "b2", "b3"];
    let mut caps = HashMap::new();
    for id in a_ids {
        put_agent(&mut admin, chat_agent(id, &[("x", 5)], 3)).await;
        caps.insert(id.to_string(), 3);
    }
    for id in b_ids {
        put_agent(&mut admin, chat_agent(id, &[("x", 2)], 3)).await;
        caps.insert(id.to_string(), 3);
    }

    // a1 (on A) takes an interaction into wrap-up: A's script schedules the end of the wrap-up.
    let mut ixa = a.interactions().await;
    let mut d1 = a.desktop("a1", "tok-a1").await;
    d1.ready().await;
    let w = ixa.create_interaction(new_chat("wrapq", "cust-w", "wrap me")).await.unwrap().into_inner();
    let o = d1.wait_offer().await;
    assert_eq!(o.interaction.unwrap().id, w.id);
    d1.accept(&w.id).await.unwrap();
    let ack = d1.complete(&w.id, "wrapped").await.unwrap();
    assert_eq!(ack.interaction.unwrap().state, pb::InteractionState::WrapUp as i32);
    let wrap_due: Option<f64> = con.zscore(keys.timers(), format!("wrap|{}", w.id)).await.unwrap();
    assert!(wrap_due.is_some(), "no wrap-up timer for {}", w.id);

    // B's agents are ready but not eligible for "main" yet; A's a2 and a3 get offers and leave them.
    let sh = Arc::new(Shared::default());
    let stop = CancellationToken::new();
    let mut b_desktops = Vec::new();
    for id in b_ids {
        let (c, li) = Client::login(b.endpoint(), id).await;
        let beh = Behaviour { accept_pct: 100, max_think_ms: 10, reready: false };
        b_desktops.push(spawn_agent(c, li, beh, sh.clone(), stop.clone(), rng.fork()));
    }
    let mut d2 = a.desktop("a2", "tok-a2").await;
    let mut d3 = a.desktop("a3", "tok-a3").await;
    d2.ready().await;
    d3.ready().await;
    let mut main_ids = Vec::new();
    for i in 0..8 {
        let ix = ixa.create_interaction(new_chat("main", &format!("cust-{i}"), "help")).await.unwrap().into_inner();
        main_ids.push(ix.id);
    }
    for d in [&mut d2, &mut d3] {
        for _ in 0..3 {
            d.wait_offer().await;
        }
    }
    let mut offered_to_a = Vec::new();
    let mut waiting = 0;
    for id in &main_ids {
        let ix = engine.get_interaction(id, false).await.unwrap();
        match ix.state {
            switchboard::model::InteractionState::Offered => {
                assert!(ix.agent_id == "a2" || ix.agent_id == "a3", "{ix:?}");
                offered_to_a.push(id.clone());
            }
            switchboard::model::InteractionState::Queued => waiting += 1,
            _ => panic!("unexpected {ix:?}"),
        }
        let esc: Option<f64> = con.zscore(keys.timers(), format!("esc|{id}|1|0")).await.unwrap();
        assert!(esc.is_some(), "no escalation timer for {id}");
    }
    assert_eq!((offered_to_a.len(), waiting), (6, 2));

    // A dies: no session ends cleanly, nothing is cleaned up in Redis.
    a.kill();
    for d in [&mut d1, &mut d2, &mut d3] {
        d.wait_closed().await;
    }
    for id in a_ids {
        assert!(engine.agent_status(id).await.unwrap().connected, "{id}: a killed instance cannot record disconnects");
    }

    // Past the offer timeout, the wrap-up end, the escalation step and the presence grace.
    advance_clock_with_survivors(&engine, Duration::from_secs(40), &["inst-b"]).await;
    wait_all_completed("B's agents complete everything", &sh, main_ids.len(), Duration::from_secs(30)).await;
    for id in b_ids {
        let st = engine.agent_status(id).await.unwrap();
        assert!(st.connected && st.presence == switchboard::model::Presence::Ready, "{id}: {st:?}");
    }
    stop.cancel();
    join_all(b_desktops).await;
    sh.assert_clean();
    assert_eq!(sh.crossed.load(Relaxed), 0, "an accept failed although B's offers are never revoked");

    let created: Vec<(String, String)> = main_ids.iter().map(|id| (id.clone(), "main".to_string())).collect();
    assert_all_completed(&engine, &sh, &created).await;
    for id in &main_ids {
        let ix = engine.get_interaction(id, false).await.unwrap();
        assert!(b_ids.contains(&ix.agent_id.as_str()), "{id} completed by {}", ix.agent_id);
        assert_eq!(ix.stage, 1, "{id}: escalation stage");
    }
    let wix = engine.get_interaction(&w.id, false).await.unwrap();
    assert_eq!(wix.state, switchboard::model::InteractionState::Completed, "wrap-up ended by the survivor: {wix:?}");
    assert_eq!((wix.agent_id.as_str(), wix.disposition.as_str()), ("a1", "wrapped"));
    for id in a_ids {
        let st = engine.agent_status(id).await.unwrap();
        assert_eq!(st.presence, switchboard::model::Presence::Offline, "{id}");
        assert!(!st.connected, "{id} still connected");
        assert!(st.load.values().all(|l| *l == 0), "{id} load {:?}", st.load);
        assert!(engine.agent_work(id).await.unwrap().is_empty(), "{id} still holds work");
    }
    let mut sup = b.supervisor().await;
    assert!(all_waiting(&mut sup).await.is_empty(), "ListWaiting not empty");

    let mut all = created.clone();
    all.push((w.id.clone(), "wrapq".into()));
    let (events, replay) = assert_log(&mut con, &keys, &caps, &all).await;
    let lost: Vec<String> = events
        .iter()
        .filter(|e| e.typ == "instance_lost")
        .map(|e| e.details["instance"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(lost, ["inst-a"], "instances declared lost");
    for id in &offered_to_a {
        let let_go = events
            .iter()
            .any(|e| e.ix == *id && (e.agent == "a2" || e.agent == "a3") && (e.typ == "missed" || e.typ == "revoked"));
        assert!(let_go, "{id}: the offer to A's agent never expired nor was revoked");
    }
    for id in &main_ids {
        assert!(events.iter().any(|e| e.ix == *id && e.typ == "escalated"), "{id} never escalated");
    }
    let timers: Vec<String> = con.zrange(keys.timers(), 0, -1).await.unwrap();
    let leftover: Vec<&String> = timers.iter().filter(|t| all.iter().any(|(id, _)| t.contains(id.as_str()))).collect();
    assert!(leftover.is_empty(), "timers left for finished interactions: {leftover:?}");
    assert!(!timers.contains(&"inst|inst-a".to_string()), "the dead instance is still expected to heartbeat");
    eprintln!("killed_instance: {}; log {:?}; {:.1?}", sh.summary(), replay.counts, started.elapsed());
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_drains_across_instances() {
    const BACKLOG: usize = 500;
    const AGENTS: usize = 20;
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let mut rng = seeded("backlog_drains");
    let redis = RedisServer::start();
    let servers = [
        TestServer::start_with(config(&redis.url, "i1")).await,
        TestServer::start_with(config(&redis.url, "i2")).await,
    ];
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let keys = engine.keys().clone();
    let mut con = redis.client().await;
    let mut admin = servers[0].admin().await;
    let mut sup = servers[1].supervisor().await;
    put_queue(&mut admin, chat_queue("general", &[("english", 1)])).await;
    put_queue(&mut admin, chat_queue("billing", &[("english", 1), ("billing", 3)])).await;
    let mut caps = HashMap::new();
    let mut logins = Vec::new();
    for i in 0..AGENTS {
        let id = format!("agent-{i:02}");
        let skills: &[(&str, u32)] = if i % 2 == 0 { &[("english", 5), ("billing", 5)] } else { &[("english", 5)] };
        put_agent(&mut admin, chat_agent(&id, skills, 3)).await;
        caps.insert(id.clone(), 3);
        // Logged in, not ready: nobody can take work yet.
        logins.push(Client::login(servers[i % 2].endpoint(), &id).await);
    }

    let sh = Arc::new(Shared::default());
    let created: Created = Arc::default();
    let ixcs = [servers[0].interactions().await, servers[1].interactions().await];
    let plan: Vec<String> =
        (0..BACKLOG).map(|_| if rng.chance(60) { "general" } else { "billing" }.to_string()).collect();
    join_all(spawn_creators("backlog", &ixcs, plan, 10, None, &mut rng, created.clone(), sh.clone())).await;
    sh.assert_clean();
    let created_all = created.lock().unwrap().clone();
    assert_eq!(created_all.len(), BACKLOG);
    let listed = all_waiting(&mut sup).await;
    assert_eq!(listed.len(), BACKLOG, "ListWaiting before anyone is ready");
    let waiting = figures(&mut sup, "general").await.waiting + figures(&mut sup, "billing").await.waiting;
    assert_eq!(waiting as usize, BACKLOG, "waiting figures before anyone is ready");
    assert_eq!(read_log(&mut con, &keys).await.iter().filter(|e| e.typ == "offered").count(), 0);

    let stop = CancellationToken::new();
    let beh = Behaviour { accept_pct: 100, max_think_ms: 5, reready: false };
    let desktops: Vec<_> =
        logins.into_iter().map(|(c, li)| spawn_agent(c, li, beh, sh.clone(), stop.clone(), rng.fork())).collect();
    wait_all_completed("the backlog drains", &sh, BACKLOG, Duration::from_secs(45)).await;
    stop.cancel();
    join_all(desktops).await;
    sh.assert_clean();
    assert_eq!(sh.crossed.load(Relaxed), 0, "an accept failed although nothing revokes offers here");

    assert!(all_waiting(&mut sup).await.is_empty(), "ListWaiting not empty");
    let (mut waiting, mut accepted) = (0, 0);
    for q in ["general", "billing"] {
        let f = figures(&mut sup, q).await;
        waiting += f.waiting;
        accepted += f.accepted;
    }
    assert_eq!((waiting, accepted), (0, BACKLOG as u64), "(waiting, accepted) figures after the drain");
    assert_all_completed(&engine, &sh, &created_all).await;
    let (_, replay) = assert_log(&mut con, &keys, &caps, &created_all).await;

    // Nobody rejected, nothing new arrived: each queue is served strictly best first (priority,
    // then age) — the head of a waiting set is always what freed capacity pulls.
    let mut by_queue: HashMap<String, Vec<f64>> = HashMap::new();
    for id in &replay.first_offers {
        let ix = engine.get_interaction(id, false).await.unwrap();
        by_queue.entry(ix.queue).or_default().push(switchboard::routing::wait_score(ix.priority, ix.enqueued_ms));
    }
    for (q, scores) in &by_queue {
        let out_of_order = scores.windows(2).filter(|w| w[1] < w[0]).count();
        assert_eq!(out_of_order, 0, "{q}: offers not in waiting order");
    }
    eprintln!(
        "backlog_drains: {BACKLOG} waiting, {AGENTS} agents on 2 instances; {}; {:.1?}",
        sh.summary(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_admin_changes_keep_indexes_consistent() {
    const AGENTS: usize = 30;
    const INTERACTIONS: usize = 450;
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let mut rng = seeded("concurrent_admin");
    let redis = RedisServer::start();
    let servers = [
        TestServer::start_with(config(&redis.url, "i1")).await,
        TestServer::start_with(config(&redis.url, "i2")).await,
    ];
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let keys = engine.keys().clone();
    let mut con = redis.client().await;
    let mut admins = [servers[0].admin().await, servers[1].admin().await];
    const QUEUES: [&str; 3] = ["q1", "q2", "q3"];
    for q in QUEUES {
        put_queue(&mut admins[0], chat_queue(q, &[])).await;
    }
    let mut ids = Vec::new();
    let mut caps = HashMap::new();
    for i in 0..AGENTS {
        let id = format!("agent-{i:02}");
        let cap = rng.range(2, 3) as u32;
        put_agent(&mut admins[0], chat_agent(&id, &random_skills(&mut rng), cap)).await;
        caps.insert(id.clone(), cap);
        ids.push(id);
    }

    let sh = Arc::new(Shared::default());
    let stop = CancellationToken::new();
    let beh = Behaviour { accept_pct: 90, max_think_ms: 20, reready: false };
    let mut desktops = Vec::new();
    for id in &ids {
        let (c, li) = Client::login(rng.pick(&servers).endpoint(), id).await;
        desktops.push(spawn_agent(c, li, beh, sh.clone(), stop.clone(), rng.fork()));
    }
    let created: Created = Arc::default();
    let checker_stop = CancellationToken::new();
    let checker =
        spawn_checker(redis.url.clone(), ids.clone(), &QUEUES, created.clone(), sh.clone(), checker_stop.clone());
    let ixcs = [servers[0].interactions().await, servers[1].interactions().await];
    let plan: Vec<String> = (0..INTERACTIONS).map(|_| rng.pick(&QUEUES).to_string()).collect();
    let creators = spawn_creators("admin", &ixcs, plan, 3, Some((5, 20)), &mut rng, created.clone(), sh.clone());

    // Several admins at once: skills of random agents, requirements of random queues.
    let churn: Vec<JoinHandle<usize>> = (0..4)
        .map(|_| {
            let (mut admins, ids, caps, sh, mut rng) =
                (admins.clone(), ids.clone(), caps.clone(), sh.clone(), rng.fork());
            tokio::spawn(async move {
                let mut done = 0;
                for _ in 0..100 {
                    let admin = &mut admins[rng.below(2) as usize];
                    let r = if rng.chance(60) {
                        let id = rng.pick(&ids).clone();
                        let a = chat_agent(&id, &random_skills(&mut rng), caps[&id]);
                        admin.put_agent(pb::PutAgentRequest { agent: Some(a), allow_update: true }).await.map(|_| ())
                    } else {
                        let reqs = random_levels(&mut rng, 40, 6);
                        let name: &&str = rng.pick(&QUEUES);
                        let q = chat_queue(name, &reqs);
                        admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.map(|_| ())
                    };
                    match r {
                        Ok(()) => done += 1,
                        Err(e) => sh.violation(format!("admin change failed: {e:?}")),
                    }
                    tokio::time::sleep(Duration::from_millis(rng.range(0, 8))).await;
                }
                done
            })
        })
        .collect();
    let mut changes = 0;
    for c in churn {
        changes += c.await.unwrap();
    }
    join_all(creators).await;
    sh.assert_clean();

    // Admin changes are over, routing goes on: the indexes must match the stored specs.
    let v = index_violations(&mut con, &keys, &ids, &QUEUES).await.unwrap();
    assert!(v.is_empty(), "routing indexes after the admin changes:\n  {}", v.join("\n  "));

    // Everyone qualifies again; whatever waited for a skill nobody had any more drains.
    for q in QUEUES {
        put_queue(&mut admins[1], chat_queue(q, &[])).await;
    }
    let created_all = created.lock().unwrap().clone();
    assert_eq!(created_all.len(), INTERACTIONS);
    wait_all_completed("every interaction completed", &sh, INTERACTIONS, Duration::from_secs(45)).await;
    checker_stop.cancel();
    let rounds = checker.await.unwrap();
    sh.assert_clean();
    assert!(rounds > 0, "the checker never ran");
    let v = index_violations(&mut con, &keys, &ids, &QUEUES).await.unwrap();
    assert!(v.is_empty(), "routing indexes at the end:\n  {}", v.join("\n  "));
    stop.cancel();
    join_all(desktops).await;
    sh.assert_clean();
    assert_eq!(sh.crossed.load(Relaxed), 0, "an accept or reject failed although nothing revokes offers here");
    assert_all_completed(&engine, &sh, &created_all).await;
    let (_, replay) = assert_log(&mut con, &keys, &caps, &created_all).await;
    let mut sup = servers[0].supervisor().await;
    assert!(all_waiting(&mut sup).await.is_empty(), "ListWaiting not empty");
    eprintln!(
        "concurrent_admin: {changes} admin changes; {}; {rounds} checker rounds; log {:?}; {:.1?}",
        sh.summary(),
        replay.counts,
        started.elapsed()
    );
}

/// An admin change racing with an offer: the queue loses its escalation step while an interaction
/// is offered at the stage that step created. When that offer ends (here: a reject), the
/// interaction must go back to a pool of the queue as it is now, and so to the eligible agent who
/// is ready — not wait forever in a pool nobody belongs to any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_update_removing_a_stage_does_not_strand_an_offered_interaction() {
    use switchboard::model::{
        Capacity, Channel, EscalationAction, EscalationStep, InteractionState, NewInteraction, Presence, Requirement,
    };
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start();
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let mut con = redis.client().await;
    let mut q = QueueSpec::new("q");
    q.channels = vec![Channel::Chat];
    q.requirements = vec![Requirement { skill: "x".into(), min_level: 5 }];
    q.escalation = vec![EscalationStep {
        after_secs: 10,
        action: EscalationAction::LowerLevel(Requirement { skill: "x".into(), min_level: 1 }),
    }];
    engine.put_queue(&q, false).await.unwrap();
    for (id, level) in [("lo", 2), ("hi", 9)] {
        let spec = AgentSpec {
            id: id.into(),
            name: id.into(),
            skills: [("x".to_string(), level)].into(),
            capacity: Capacity::default(),
            cross_channel_blocking: None,
            token: format!("tok-{id}"),
            devices: Vec::new(),
        };
        engine.put_agent(&spec, false).await.unwrap();
        engine.login(id, Some(&format!("tok-{id}")), "inst-1", &format!("sess-{id}")).await.unwrap();
    }
    engine.set_presence("lo", &Presence::Ready, "agent").await.unwrap();
    let new = NewInteraction {
        channel: Some(Channel::Chat),
        customer_address: "c1".into(),
        queue: "q".into(),
        body: "hello".into(),
        ..Default::default()
    };
    let (ix, _) = engine.create_interaction(&new).await.unwrap();
    assert_eq!(ix.state, InteractionState::Queued, "only lo is ready, and it lacks the level");
    engine.advance_clock(Duration::from_secs(11)).await.unwrap();
    engine.fire_timers(100).await.unwrap();
    let ix = engine.get_interaction(&ix.id, false).await.unwrap();
    assert_eq!((ix.state, ix.agent_id.as_str(), ix.stage), (InteractionState::Offered, "lo", 1));

    // The escalation step is removed while the offer is out; hi, eligible at stage 0, gets ready.
    q.escalation.clear();
    engine.put_queue(&q, true).await.unwrap();
    engine.set_presence("hi", &Presence::Ready, "agent").await.unwrap();
    engine.reject("lo", &ix.id, "busy").await.unwrap();
    let after = engine.get_interaction(&ix.id, false).await.unwrap();
    let pool: Option<String> = con.hget(engine.keys().ix(&ix.id), "pool").await.unwrap();
    assert_eq!(
        (after.state, after.agent_id.as_str()),
        (InteractionState::Offered, "hi"),
        "after lo's reject the interaction waits at stage {} in pool {pool:?}, which the queue no longer has",
        after.stage
    );
}
