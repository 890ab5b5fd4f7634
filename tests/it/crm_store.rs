//! The built-in CRM store end to end over gRPC: one suite of scenarios, run against a SQLite file and against a real
//! PostgreSQL server.
//!
//! Every test opens a fresh store (a SQLite file in its own temp dir, or its own [`PgServer`]), serves the `CrmStore`
//! service on 127.0.0.1:0 and talks to it through the generated client only. The [`CrmDb`] handle is used for what
//! the API does not show: stored message bodies, stored event types and the number of stored events.

use crate::common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::json;
use switchboard::crm::pb::{self, Channel as Ch, crm_store_client::CrmStoreClient};
use switchboard_crm::{CrmDb, CrmOptions};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Status};

type Client = CrmStoreClient<tonic::service::interceptor::InterceptedService<Channel, switchboard_auth::Credential>>;

/// The key the store under test knows, with the role the daemon has there.
const CRM_KEY: &str = "test-crm-key-0123456789abcdef0123456789abc";
/// Erasure is an admin's.
const CRM_ADMIN_KEY: &str = "test-crm-admin-key-0123456789abcdef012345";

/// 2026-01-01T00:00:00Z: interactions in these tests happen after it.
const BASE_MS: i64 = 1_767_225_600_000;
const HOUR_MS: i64 = 3_600_000;

// ---------------------------------------------------------------------------------------------------------------
// The store under test.

enum Backend {
    Sqlite,
    Postgres,
}

struct Crm {
    addr: std::net::SocketAddr,
    db: CrmDb,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
    // Dropped after the store: the database outlives the pool.
    _pg: Option<PgServer>,
    _dir: Option<tempfile::TempDir>,
}

impl Crm {
    async fn start(backend: Backend, create_unknown_contacts: bool) -> Crm {
        init_tracing();
        let (database_url, pg, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new().prefix("switchboard-crm-").tempdir().expect("create temp dir");
                (format!("sqlite://{}/crm.db?mode=rwc", dir.path().display()), None, Some(dir))
            }
            Backend::Postgres => {
                let pg = tokio::task::spawn_blocking(PgServer::start).await.expect("start postgres");
                (pg.url.clone(), Some(pg), None)
            }
        };
        let db = CrmDb::open(CrmOptions { database_url, default_region: Some("DE".into()), create_unknown_contacts })
            .await
            .expect("open the CRM store");
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let keys = vec![
            switchboard_auth::StaticKey::new("daemon", switchboard_auth::Role::Crm, vec![], "", CRM_KEY, false)
                .unwrap(),
            switchboard_auth::StaticKey::new("ops", switchboard_auth::Role::Admin, vec![], "", CRM_ADMIN_KEY, false)
                .unwrap(),
        ];
        let auth = std::sync::Arc::new(switchboard_auth::Authenticator::new(keys));
        let server = tokio::spawn(switchboard_crm::serve(db.clone(), listener, None, auth, shutdown.clone()));
        Crm { addr, db, shutdown, server: Some(server), _pg: pg, _dir: dir }
    }

    async fn client(&self) -> Client {
        self.client_with(CRM_ADMIN_KEY).await
    }

    async fn client_with(&self, key: &str) -> Client {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to the CRM service");
        CrmStoreClient::with_interceptor(ch, switchboard_auth::Credential::bearer(key).unwrap())
    }

    /// Stops the service and waits for it; the databases go when `self` drops.
    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("CRM service stops within 10 s of shutdown")
                .expect("CRM service task")
                .expect("CRM service ran without a transport error");
        }
    }
}

impl Drop for Crm {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn run<F, Fut>(backend: Backend, create_unknown_contacts: bool, scenario: F)
where
    F: FnOnce(Client, CrmDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let crm = Crm::start(backend, create_unknown_contacts).await;
    scenario(crm.client().await, crm.db.clone()).await;
    crm.stop().await;
}

/// `scenario(create_unknown_contacts) => sqlite_test_name, postgres_test_name;`
macro_rules! crm_suite {
    ($($scenario:ident($create_unknown:expr) => $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            run(Backend::Sqlite, $create_unknown, $scenario).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            run(Backend::Postgres, $create_unknown, $scenario).await;
        }
    )*};
}

crm_suite! {
    identity_normalization(true) => sqlite_identity_normalization, postgres_identity_normalization;
    bad_input(true) => sqlite_bad_input, postgres_bad_input;
    log_events_and_history(true) => sqlite_log_events_and_history, postgres_log_events_and_history;
    history_pagination_and_cap(true) => sqlite_history_pagination_and_cap, postgres_history_pagination_and_cap;
    idempotency(true) => sqlite_idempotency, postgres_idempotency;
    unknown_contacts_not_created(false) => sqlite_unknown_contacts_not_created, postgres_unknown_contacts_not_created;
    erasure(true) => sqlite_erasure, postgres_erasure;
    concurrent_upserts_of_one_new_identity(true)
        => sqlite_concurrent_upserts_of_one_new_identity, postgres_concurrent_upserts_of_one_new_identity;
    concurrent_writers(true) => sqlite_concurrent_writers, postgres_concurrent_writers;
    concurrent_first_contacts(true) => sqlite_concurrent_first_contacts, postgres_concurrent_first_contacts;
}

/// Like [`run`], with a second client that calls as the daemon does (role `crm`).
async fn run_with_daemon<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(Client, Client, CrmDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let crm = Crm::start(backend, true).await;
    scenario(crm.client().await, crm.client_with(CRM_KEY).await, crm.db.clone()).await;
    crm.stop().await;
}

/// `scenario => sqlite_test_name, postgres_test_name;` for scenarios given (admin, daemon, db).
macro_rules! crm_suite_with_daemon {
    ($($scenario:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            run_with_daemon(Backend::Sqlite, $scenario).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            run_with_daemon(Backend::Postgres, $scenario).await;
        }
    )*};
}

crm_suite_with_daemon! {
    audit_trail_filters => sqlite_audit_trail_filters, postgres_audit_trail_filters;
    audit_trail_paging_and_limits => sqlite_audit_trail_paging_and_limits, postgres_audit_trail_paging_and_limits;
    audit_trail_bad_input_and_roles => sqlite_audit_trail_bad_input_and_roles, postgres_audit_trail_bad_input_and_roles;
    audit_trail_of_erasure => sqlite_audit_trail_of_erasure, postgres_audit_trail_of_erasure;
}

// ---------------------------------------------------------------------------------------------------------------
// Client helpers.

fn ident(channel: Ch, address: &str) -> pb::Identity {
    pb::Identity { channel: channel as i32, address: address.to_string() }
}

async fn find(c: &mut Client, channel: Ch, address: &str) -> Result<pb::Contact, Status> {
    c.find_contact(pb::FindContactRequest { identity: Some(ident(channel, address)) })
        .await
        .map(tonic::Response::into_inner)
}

async fn upsert(
    c: &mut Client,
    id: &str,
    name: &str,
    identities: &[(Ch, &str)],
    fields: &[(&str, &str)],
) -> Result<pb::Contact, Status> {
    c.upsert_contact(pb::UpsertContactRequest {
        id: id.to_string(),
        name: name.to_string(),
        identities: identities.iter().map(|(ch, a)| ident(*ch, a)).collect(),
        fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn history(
    c: &mut Client,
    contact_id: &str,
    limit: u32,
    cursor: &str,
) -> Result<pb::GetContactHistoryResponse, Status> {
    c.get_contact_history(pb::GetContactHistoryRequest {
        contact_id: contact_id.to_string(),
        limit,
        cursor: cursor.to_string(),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Every entry of a contact's history, following cursors `limit` at a time.
async fn full_history(c: &mut Client, contact_id: &str, limit: u32) -> Vec<pb::HistoryEntry> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    for _ in 0..1000 {
        let page = history(c, contact_id, limit, &cursor).await.expect("GetContactHistory");
        assert!(
            limit == 0 || page.entries.len() <= limit as usize,
            "a page of limit {limit} has {} entries",
            page.entries.len()
        );
        all.extend(page.entries);
        if page.next_cursor.is_empty() {
            return all;
        }
        cursor = page.next_cursor;
    }
    panic!("history of {contact_id} never ended");
}

async fn log(c: &mut Client, events: Vec<pb::Event>) -> Result<(u32, u32), Status> {
    c.log_events(pb::LogEventsRequest { events }).await.map(|r| {
        let r = r.into_inner();
        (r.stored, r.duplicates)
    })
}

/// Logs `events` in calls of `chunk`, asserting each call stores every event.
async fn log_all(c: &mut Client, events: &[pb::Event], chunk: usize) {
    for batch in events.chunks(chunk) {
        let n = batch.len() as u32;
        assert_eq!(log(c, batch.to_vec()).await.expect("LogEvents"), (n, 0), "a batch of {n} new events");
    }
}

async fn erase(c: &mut Client, contact_id: &str) -> Result<pb::EraseContactResponse, Status> {
    c.erase_contact(pb::EraseContactRequest { contact_id: contact_id.to_string(), ..Default::default() })
        .await
        .map(tonic::Response::into_inner)
}

/// Asserts that `r` failed with `code` and a message that names `needle` (the offending field).
fn expect_err<T: std::fmt::Debug>(what: &str, r: Result<T, Status>, code: Code, needle: &str) {
    match r {
        Ok(v) => panic!("{what}: expected {code:?} naming {needle:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "{what}: wrong code, message {:?}", s.message());
            assert!(s.message().contains(needle), "{what}: message {:?} does not name {needle:?}", s.message());
        }
    }
}

fn expect_not_found<T: std::fmt::Debug>(what: &str, r: Result<T, Status>) {
    match r {
        Ok(v) => panic!("{what}: expected NOT_FOUND, got Ok({v:?})"),
        Err(s) => assert_eq!(s.code(), Code::NotFound, "{what}: wrong code, message {:?}", s.message()),
    }
}

fn identities_of(c: &pb::Contact) -> BTreeSet<(i32, String)> {
    c.identities.iter().map(|i| (i.channel, i.address.clone())).collect()
}

/// Voice and SMS share one phone identity, which the store returns as voice.
fn idset(ids: &[(Ch, &str)]) -> BTreeSet<(i32, String)> {
    ids.iter().map(|(ch, a)| (if *ch == Ch::Sms { Ch::Voice } else { *ch } as i32, a.to_string())).collect()
}

fn fields_of(c: &pb::Contact) -> BTreeMap<String, String> {
    c.fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn fieldmap(fields: &[(&str, &str)]) -> BTreeMap<String, String> {
    fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn ts(ms: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 })
}

fn ch_str(ch: Ch) -> &'static str {
    match ch {
        Ch::Voice => "voice",
        Ch::Chat => "chat",
        Ch::Sms => "sms",
        Ch::Email => "email",
        Ch::Unspecified => "",
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Interactions as the routing core logs them.

fn event(
    id: &str,
    interaction_id: &str,
    typ: &str,
    at_ms: i64,
    agent_id: &str,
    queue: &str,
    details: serde_json::Value,
) -> pb::Event {
    pb::Event {
        id: id.to_string(),
        interaction_id: interaction_id.to_string(),
        r#type: typ.to_string(),
        at: ts(at_ms),
        agent_id: agent_id.to_string(),
        queue: queue.to_string(),
        channel: 0,
        customer_address: String::new(),
        details_json: details.to_string(),
        actor: String::new(),
        actor_address: String::new(),
    }
}

#[derive(Clone, Debug)]
enum End {
    Ongoing,
    Completed { disposition: String, notes: String },
    Abandoned { reason: String },
}

/// One interaction's life, which turns into the event sequence the routing core emits (`src/store/lua`) and into
/// the history entry the store should make of it.
#[derive(Clone, Debug)]
struct Ix {
    id: String,
    channel: Ch,
    /// As the customer wrote it (the store normalizes).
    customer: String,
    queue: String,
    start_ms: i64,
    /// Who accepts it; none for an abandoned one.
    agent: Option<String>,
    /// The thread: customer first, then agent and customer by turns. An abandoned interaction keeps only the
    /// first (the customer's opening message).
    messages: Vec<String>,
    end: End,
}

impl Ix {
    fn new(id: &str, channel: Ch, customer: &str, start_ms: i64) -> Ix {
        Ix {
            id: id.to_string(),
            channel,
            customer: customer.to_string(),
            queue: "support".into(),
            start_ms,
            agent: Some("agent-1".into()),
            messages: Vec::new(),
            end: End::Completed { disposition: "resolved".into(), notes: String::new() },
        }
    }

    fn event_id(&self, k: usize) -> String {
        format!("sb:{}-{k}", self.id)
    }

    fn ended_ms(&self) -> Option<i64> {
        match self.end {
            End::Ongoing => None,
            End::Completed { .. } => Some(self.start_ms + 90_000),
            End::Abandoned { .. } => Some(self.start_ms + 30_000),
        }
    }

    fn events(&self) -> Vec<pb::Event> {
        let mut out: Vec<pb::Event> = Vec::new();
        let (ix, q, t0) = (self.id.as_str(), self.queue.as_str(), self.start_ms);
        let agent = self.agent.clone().unwrap_or_default();
        let mut push = |typ: &str, at: i64, agent: &str, details: serde_json::Value| {
            let id = self.event_id(out.len());
            out.push(event(&id, ix, typ, at, agent, q, details));
        };
        push(
            "created",
            t0,
            "",
            json!({"channel": ch_str(self.channel), "customer": self.customer, "subject": "", "priority": 0}),
        );
        if let Some(first) = self.messages.first() {
            push("message_in", t0, "", json!({"seq": 1, "body": first}));
        }
        push("queued", t0, "", json!({"stage": 0, "preferred_agent": ""}));
        if let End::Abandoned { reason } = &self.end {
            push("abandoned", t0 + 30_000, "", json!({"reason": reason, "waited_ms": 30_000}));
        } else {
            if !agent.is_empty() {
                push(
                    "offered",
                    t0 + 5_000,
                    &agent,
                    json!({"expires": t0 + 25_000, "seq": 1, "channel": ch_str(self.channel)}),
                );
                push("accepted", t0 + 8_000, &agent, json!({"waited_ms": 8_000}));
            }
            for (i, body) in self.messages.iter().enumerate().skip(1) {
                let at = t0 + 10_000 + i as i64 * 1_000;
                let typ = if i % 2 == 1 { "message_out" } else { "message_in" };
                push(typ, at, &agent, json!({"seq": i + 1, "body": body}));
            }
            if let End::Completed { disposition, notes } = &self.end {
                push("disposition", t0 + 60_000, &agent, json!({"disposition": disposition, "notes": notes}));
                push("wrap_up", t0 + 60_000, &agent, json!({"cause": "completed", "until_ms": t0 + 90_000}));
                push("completed", t0 + 90_000, &agent, json!({"disposition": disposition, "notes": notes}));
            }
        }
        // The first event carries the channel and the customer, as the outbox sends it.
        out[0].channel = self.channel as i32;
        out[0].customer_address = self.customer.clone();
        out
    }

    fn event_types(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.r#type).collect()
    }

    /// (seq, author, body) as the store should keep them.
    fn stored_messages(&self) -> Vec<(i64, String, String)> {
        let kept = if matches!(self.end, End::Abandoned { .. }) { 1 } else { self.messages.len() };
        self.messages
            .iter()
            .take(kept)
            .enumerate()
            .map(|(i, b)| (i as i64 + 1, if i % 2 == 0 { "customer" } else { "agent" }.to_string(), b.clone()))
            .collect()
    }

    fn expected(&self) -> pb::HistoryEntry {
        let (outcome, disposition, notes) = match &self.end {
            End::Ongoing => ("", "", ""),
            End::Completed { disposition, notes } => ("completed", disposition.as_str(), notes.as_str()),
            End::Abandoned { reason } => ("abandoned", "", reason.as_str()),
        };
        let agent = match self.end {
            End::Abandoned { .. } => String::new(),
            _ => self.agent.clone().unwrap_or_default(),
        };
        pb::HistoryEntry {
            interaction_id: self.id.clone(),
            channel: self.channel as i32,
            queue: self.queue.clone(),
            agent_id: agent,
            started_at: ts(self.start_ms),
            ended_at: self.ended_ms().and_then(ts),
            outcome: outcome.into(),
            disposition: disposition.into(),
            notes: notes.into(),
            summary: self.messages.first().map(|m| m.chars().take(160).collect()).unwrap_or_default(),
        }
    }

    /// The entry after the contact's erasure: no notes, no summary; the anonymous rest stays.
    fn expected_erased(&self) -> pb::HistoryEntry {
        pb::HistoryEntry { notes: String::new(), summary: String::new(), ..self.expected() }
    }
}

/// History entries newest first.
fn newest_first(ixs: &[Ix]) -> Vec<pb::HistoryEntry> {
    let mut sorted: Vec<&Ix> = ixs.iter().collect();
    sorted.sort_by(|a, b| (b.start_ms, &b.id).cmp(&(a.start_ms, &a.id)));
    sorted.into_iter().map(Ix::expected).collect()
}

fn all_events(ixs: &[Ix]) -> Vec<pb::Event> {
    ixs.iter().flat_map(Ix::events).collect()
}

/// A chat conversation: completed by `agent` with the given disposition and notes.
fn chat(id: &str, customer: &str, start_ms: i64, opening: &str) -> Ix {
    Ix {
        messages: vec![opening.to_string(), "Hi, this is support. How can I help?".into(), "Thanks, all good.".into()],
        end: End::Completed { disposition: "resolved".into(), notes: format!("{id}: customer satisfied") },
        ..Ix::new(id, Ch::Chat, customer, start_ms)
    }
}

/// Everything the API and the db helpers show about a contact and its interactions.
#[derive(Debug, PartialEq)]
struct Snapshot {
    contact: pb::Contact,
    history: Vec<pb::HistoryEntry>,
    messages: Vec<Vec<(i64, String, String)>>,
    event_types: Vec<Vec<(String, String)>>,
    events: i64,
}

async fn snapshot(c: &mut Client, db: &CrmDb, who: (Ch, &str), ixs: &[&str]) -> Snapshot {
    let contact = find(c, who.0, who.1).await.expect("FindContact for a snapshot");
    let history = full_history(c, &contact.id, 100).await;
    let mut messages = Vec::new();
    let mut event_types = Vec::new();
    for ix in ixs {
        messages.push(db.messages(ix).await.expect("messages"));
        event_types.push(db.event_types(ix).await.expect("event_types"));
    }
    Snapshot { contact, history, messages, event_types, events: db.count_events().await.expect("count_events") }
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios.

/// Different spellings of one phone number or email address find one contact; identities are per channel; upserts
/// without an id update the contact that owns one of the identities; conflicts and unknown ids are refused.
async fn identity_normalization(mut c: Client, _db: CrmDb) {
    let ann = upsert(
        &mut c,
        "",
        "Ann Example",
        &[(Ch::Sms, "+49 151 12345678"), (Ch::Email, "Ann@Example.COM")],
        &[("tier", "gold"), ("lang", "de")],
    )
    .await
    .expect("create Ann");
    assert!(!ann.id.is_empty());
    assert_eq!(ann.name, "Ann Example");
    assert_eq!(identities_of(&ann), idset(&[(Ch::Sms, "+4915112345678"), (Ch::Email, "ann@example.com")]));
    assert_eq!(fields_of(&ann), fieldmap(&[("tier", "gold"), ("lang", "de")]));
    assert!(ann.created_at.is_some() && ann.updated_at.is_some(), "{ann:?}");

    // One number, many spellings (national with the default region DE, 00 prefix, spaces, dashes, brackets).
    for written in [
        "0151 12345678",
        "0049 151 1234 5678",
        "+4915112345678",
        "(0151) 123 456 78",
        "+49-151-12345678",
        "015112345678",
    ] {
        let found = find(&mut c, Ch::Sms, written).await.unwrap_or_else(|e| panic!("sms {written:?}: {e}"));
        assert_eq!(found, ann, "sms {written:?}");
        // Voice and SMS share the phone identity: a number known from SMS finds Ann on a call too.
        let by_voice = find(&mut c, Ch::Voice, written).await.unwrap_or_else(|e| panic!("voice {written:?}: {e}"));
        assert_eq!(by_voice.id, ann.id, "voice {written:?}");
    }
    for written in ["ann@example.com", "ANN@EXAMPLE.COM", " Ann@example.com ", "Ann Example <ann@EXAMPLE.com>"] {
        let found = find(&mut c, Ch::Email, written).await.unwrap_or_else(|e| panic!("email {written:?}: {e}"));
        assert_eq!(found.id, ann.id, "email {written:?}");
    }
    expect_not_found("chat with Ann's email address", find(&mut c, Ch::Chat, "ann@example.com").await);

    // Upsert without id, by identities of Ann (written differently; voice and SMS are one phone identity): updates
    // Ann, merges fields (an empty value removes one) and keeps the name.
    let ann2 = upsert(
        &mut c,
        "",
        "",
        &[(Ch::Sms, "0151 12345678"), (Ch::Voice, "0049 151 1234 5678")],
        &[("tier", "platinum"), ("lang", ""), ("vip", "yes")],
    )
    .await
    .expect("update Ann by identity");
    assert_eq!(ann2.id, ann.id, "an upsert by a known identity updates that contact");
    assert_eq!(ann2.name, "Ann Example", "an empty name keeps the name");
    assert_eq!(
        identities_of(&ann2),
        idset(&[(Ch::Sms, "+4915112345678"), (Ch::Email, "ann@example.com"), (Ch::Voice, "+4915112345678")])
    );
    assert_eq!(fields_of(&ann2), fieldmap(&[("tier", "platinum"), ("vip", "yes")]));
    assert_eq!(ann2.created_at, ann.created_at);
    let secs = |c: &pb::Contact| c.updated_at.map(|t| (t.seconds, t.nanos)).expect("updated_at");
    assert!(secs(&ann2) >= secs(&ann), "updated_at went back: {ann:?} {ann2:?}");
    assert_eq!(find(&mut c, Ch::Voice, "+49 151 12345678").await.expect("known for voice").id, ann.id);

    // By id: a new name, fields untouched.
    let ann3 = upsert(&mut c, &ann.id, "Ann E. Example", &[], &[]).await.expect("rename Ann");
    assert_eq!(ann3.name, "Ann E. Example");
    assert_eq!(fields_of(&ann3), fields_of(&ann2));
    assert_eq!(identities_of(&ann3), identities_of(&ann2));

    // Chat visitor ids are kept as given (trimmed), case included.
    let bob = upsert(&mut c, "", "Bob", &[(Ch::Email, "bob@example.org"), (Ch::Chat, " Visitor-AbC ")], &[])
        .await
        .expect("create Bob");
    assert_ne!(bob.id, ann.id);
    assert_eq!(identities_of(&bob), idset(&[(Ch::Email, "bob@example.org"), (Ch::Chat, "Visitor-AbC")]));
    assert_eq!(find(&mut c, Ch::Chat, "Visitor-AbC").await.expect("chat id as given").id, bob.id);
    expect_not_found("chat id in another case", find(&mut c, Ch::Chat, "visitor-abc").await);

    // Identities of two contacts in one upsert: refused, and nothing changes.
    let ann_before = find(&mut c, Ch::Sms, "+4915112345678").await.unwrap();
    let bob_before = find(&mut c, Ch::Email, "bob@example.org").await.unwrap();
    expect_err(
        "identities of Ann and Bob without an id",
        upsert(&mut c, "", "Who", &[(Ch::Sms, "0151 12345678"), (Ch::Email, "BOB@example.org")], &[("x", "1")]).await,
        Code::FailedPrecondition,
        "identities",
    );
    expect_err(
        "Bob's id with Ann's email",
        upsert(&mut c, &bob.id, "Bob B.", &[(Ch::Email, "ANN@example.com"), (Ch::Sms, "+1 415 555 2671")], &[]).await,
        Code::FailedPrecondition,
        "belongs to contact",
    );
    assert_eq!(find(&mut c, Ch::Sms, "+4915112345678").await.unwrap(), ann_before, "Ann unchanged");
    assert_eq!(find(&mut c, Ch::Email, "bob@example.org").await.unwrap(), bob_before, "Bob unchanged");
    expect_not_found("identity of a refused upsert", find(&mut c, Ch::Sms, "+1 415 555 2671").await);

    // Without an id, one known identity picks the contact and the new ones join it.
    let bob2 = upsert(&mut c, "", "", &[(Ch::Sms, "+1 (415) 555-2671"), (Ch::Email, "bob@example.org")], &[])
        .await
        .expect("add an identity to Bob");
    assert_eq!(bob2.id, bob.id);
    assert_eq!(find(&mut c, Ch::Sms, "+14155552671").await.unwrap().id, bob.id);

    // Unknown ids and identities.
    expect_err(
        "upsert by an unknown id",
        upsert(&mut c, "no-such-contact", "Ghost", &[(Ch::Chat, "ghost-visitor")], &[]).await,
        Code::NotFound,
        "no-such-contact",
    );
    expect_not_found("identity of a refused upsert by unknown id", find(&mut c, Ch::Chat, "ghost-visitor").await);
    expect_not_found("unknown number", find(&mut c, Ch::Voice, "+49 30 12345678").await);
    expect_not_found("unknown email", find(&mut c, Ch::Email, "nobody@example.com").await);
    expect_not_found("unknown chat id", find(&mut c, Ch::Chat, "visitor-unknown").await);
    expect_not_found("history of an unknown contact", history(&mut c, "no-such-contact", 0, "").await);
    expect_not_found("erasure of an unknown contact", erase(&mut c, "no-such-contact").await);

    // A contact with a name and no identity yet is a new contact.
    let carl = upsert(&mut c, "", "Carl", &[], &[]).await.expect("a contact with only a name");
    assert!(carl.identities.is_empty());
    assert!(carl.id != ann.id && carl.id != bob.id);
}

/// Malformed identities, oversized fields and malformed requests get INVALID_ARGUMENT naming the field, and change
/// nothing.
async fn bad_input(mut c: Client, db: CrmDb) {
    let ann =
        upsert(&mut c, "", "Ann", &[(Ch::Sms, "+49 151 12345678"), (Ch::Email, "ann@example.com")], &[("a", "1")])
            .await
            .expect("create Ann");
    let first = Ix { channel: Ch::Sms, ..chat("ix-ann-1", "0151 12345678", BASE_MS, "Hello there") };
    log_all(&mut c, &first.events(), 100).await;
    let before = snapshot(&mut c, &db, (Ch::Sms, "+4915112345678"), &["ix-ann-1", "ix-new"]).await;
    assert_eq!(before.history, vec![first.expected()]);
    assert_eq!(before.contact.id, ann.id);

    let inv = Code::InvalidArgument;
    let long = |n: usize| "x".repeat(n);

    // FindContact.
    expect_err("find: no identity", c.find_contact(pb::FindContactRequest { identity: None }).await, inv, "identity");
    expect_err("find: channel unspecified", find(&mut c, Ch::Unspecified, "+4915112345678").await, inv, "channel");
    expect_err(
        "find: unknown channel value",
        c.find_contact(pb::FindContactRequest { identity: Some(pb::Identity { channel: 42, address: "x".into() }) })
            .await,
        inv,
        "identity.channel",
    );
    expect_err("find: malformed phone", find(&mut c, Ch::Sms, "hello").await, inv, "identity.address");
    expect_err("find: too short a phone", find(&mut c, Ch::Voice, "12").await, inv, "identity.address");
    expect_err("find: malformed email", find(&mut c, Ch::Email, "a@b").await, inv, "identity.address");
    expect_err("find: empty address", find(&mut c, Ch::Chat, "  ").await, inv, "identity.address");
    expect_err("find: address over 320 bytes", find(&mut c, Ch::Chat, &long(321)).await, inv, "identity.address");
    expect_err("find: control characters", find(&mut c, Ch::Chat, "a\u{7}b").await, inv, "identity.address");

    // UpsertContact: each against Ann (by id or identity) and with a new identity, so a partial write would show.
    let new_sms = "+49 151 99990000";
    let cases: Vec<(&str, pb::UpsertContactRequest, &str)> = vec![
        ("malformed phone", req(&ann.id, "", &[(Ch::Sms, new_sms), (Ch::Sms, "hello")], &[]), "identities[1]"),
        ("malformed email", req("", "X", &[(Ch::Sms, new_sms), (Ch::Email, "a@b")], &[]), "identities[1]"),
        ("email without @", req("", "X", &[(Ch::Email, "not-an-address")], &[]), "identities[0]"),
        (
            "channel unspecified",
            req(&ann.id, "", &[(Ch::Sms, new_sms), (Ch::Unspecified, "x")], &[]),
            "identities[1].channel",
        ),
        ("name over 200 bytes", req(&ann.id, &"ä".repeat(101), &[(Ch::Sms, new_sms)], &[]), "name"),
        (
            "field value over 4096 bytes",
            req(&ann.id, "", &[(Ch::Sms, new_sms)], &[("note", &long(4097))]),
            "fields.note",
        ),
        ("empty field key", req(&ann.id, "", &[(Ch::Sms, new_sms)], &[("", "v")]), "fields"),
        ("field key over 128 bytes", req(&ann.id, "", &[(Ch::Sms, new_sms)], &[(&long(129), "v")]), "fields"),
        ("nothing to create", req("", "", &[], &[("a", "2")]), "identities"),
    ];
    for (what, r, needle) in cases {
        expect_err(&format!("upsert: {what}"), c.upsert_contact(r).await.map(tonic::Response::into_inner), inv, needle);
    }
    let many_fields: Vec<(String, String)> = (0..101).map(|i| (format!("f{i}"), "v".to_string())).collect();
    let many_fields: Vec<(&str, &str)> = many_fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    expect_err("upsert: 101 fields", upsert(&mut c, &ann.id, "", &[], &many_fields).await, inv, "fields");
    let many_ids: Vec<String> = (0..51).map(|i| format!("visitor-{i}")).collect();
    let many_ids: Vec<(Ch, &str)> = many_ids.iter().map(|v| (Ch::Chat, v.as_str())).collect();
    expect_err("upsert: 51 identities", upsert(&mut c, &ann.id, "", &many_ids, &[]).await, inv, "identities");
    expect_not_found("identity of a refused upsert", find(&mut c, Ch::Sms, new_sms).await);
    expect_not_found("identity of a refused upsert", find(&mut c, Ch::Chat, "visitor-0").await);

    // GetContactHistory and EraseContact.
    expect_err("history: empty contact_id", history(&mut c, "", 0, "").await, inv, "contact_id");
    expect_err("history: malformed cursor", history(&mut c, &ann.id, 0, "garbage").await, inv, "cursor");
    expect_err("history: cursor without a time", history(&mut c, &ann.id, 0, "abc:ix-1").await, inv, "cursor");
    expect_err("erase: empty contact_id", erase(&mut c, "").await, inv, "contact_id");

    // LogEvents: a valid new interaction first, then one bad event; the whole call is refused.
    let fresh = Ix { channel: Ch::Sms, ..chat("ix-new", "0151 55556666", BASE_MS + HOUR_MS, "Is anyone there?") };
    let good = fresh.events();
    let bad_event = |f: &dyn Fn(&mut pb::Event)| {
        let mut e = event("sb:bad-1", "ix-new", "queued", BASE_MS + HOUR_MS + 1, "", "support", json!({}));
        f(&mut e);
        let mut batch = good.clone();
        batch.push(e);
        batch
    };
    let n = good.len();
    let cases: Vec<(&str, Vec<pb::Event>, String)> = vec![
        (
            "details_json not an object",
            bad_event(&|e| e.details_json = "[1, 2]".into()),
            format!("events[{n}].details_json"),
        ),
        ("details_json a string", bad_event(&|e| e.details_json = "\"x\"".into()), format!("events[{n}].details_json")),
        (
            "details_json not JSON",
            bad_event(&|e| e.details_json = "{seq: 1".into()),
            format!("events[{n}].details_json"),
        ),
        ("empty event id", bad_event(&|e| e.id.clear()), format!("events[{n}].id")),
        ("event id over 128 bytes", bad_event(&|e| e.id = long(129)), format!("events[{n}].id")),
        ("empty type", bad_event(&|e| e.r#type.clear()), format!("events[{n}].type")),
        (
            "interaction id over 128 bytes",
            bad_event(&|e| e.interaction_id = long(129)),
            format!("events[{n}].interaction_id"),
        ),
        ("unknown channel", bad_event(&|e| e.channel = 42), format!("events[{n}].channel")),
        ("actor over 1024 bytes", bad_event(&|e| e.actor = long(1025)), format!("events[{n}].actor")),
        (
            "actor address over 128 bytes",
            bad_event(&|e| e.actor_address = long(129)),
            format!("events[{n}].actor_address"),
        ),
    ];
    for (what, batch, needle) in cases {
        expect_err(&format!("log: {what}"), log(&mut c, batch).await, inv, &needle);
    }
    let too_many: Vec<pb::Event> = (0..1001)
        .map(|i| {
            event(&format!("sb:presence-{i}"), "", "presence", BASE_MS + i, "agent-1", "", json!({"state": "ready"}))
        })
        .collect();
    expect_err("log: 1001 events", log(&mut c, too_many.clone()).await, inv, "events");
    expect_not_found("customer of a refused batch", find(&mut c, Ch::Sms, "0151 55556666").await);

    let after = snapshot(&mut c, &db, (Ch::Sms, "+4915112345678"), &["ix-ann-1", "ix-new"]).await;
    assert_eq!(after, before, "refused requests changed something");
    assert!(after.messages[1].is_empty() && after.event_types[1].is_empty(), "{after:?}");

    // The limits themselves are allowed.
    let max_fields: Vec<(String, String)> = (0..100).map(|i| (format!("f{i}"), "v".repeat(4096))).collect();
    let max_fields: Vec<(&str, &str)> = max_fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dora = upsert(&mut c, "", &"ä".repeat(100), &[(Ch::Chat, &long(320))], &max_fields).await.expect("limits");
    assert_eq!(dora.name.len(), 200);
    assert_eq!(dora.fields.len(), 100);
    assert_eq!(log(&mut c, too_many[..1000].to_vec()).await.expect("1000 events"), (1000, 0));
    assert_eq!(db.count_events().await.unwrap(), before.events + 1000);

    // A caller id that is no phone number (withheld, "anonymous") is not the store's input but the customer's: the
    // interaction is logged, without a contact.
    let anonymous =
        Ix { channel: Ch::Voice, messages: Vec::new(), ..Ix::new("ix-anon", Ch::Voice, "anonymous", BASE_MS) };
    let k = anonymous.events().len() as u32;
    assert_eq!(log(&mut c, anonymous.events()).await.expect("log a call from a withheld number"), (k, 0));
    assert_eq!(db.event_types("ix-anon").await.unwrap().len(), k as usize);
}

fn req(id: &str, name: &str, identities: &[(Ch, &str)], fields: &[(&str, &str)]) -> pb::UpsertContactRequest {
    pb::UpsertContactRequest {
        id: id.to_string(),
        name: name.to_string(),
        identities: identities.iter().map(|(ch, a)| ident(*ch, a)).collect(),
        fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// Ann's 15 interactions over SMS and email, plus Bob's chats in between.
fn ann_and_bob() -> (Vec<Ix>, Vec<Ix>) {
    let sms = ["0151 12345678", "+49 151 12345678", "0049 151 1234 5678", "+4915112345678"];
    let email = ["ann@example.com", "Ann@Example.COM", "ANN@EXAMPLE.COM"];
    let long_opening = "Grüße aus München! ".repeat(20);
    let ann = (0..15)
        .map(|i| {
            let (channel, customer) = if i % 2 == 0 { (Ch::Sms, sms[i / 2 % 4]) } else { (Ch::Email, email[i % 3]) };
            let opening = if i == 7 { long_opening.clone() } else { format!("Hello, question #{i} about my order") };
            let end = match i {
                14 => End::Ongoing,
                _ if i % 5 == 3 => End::Abandoned { reason: "customer_left".into() },
                _ => End::Completed {
                    disposition: ["resolved", "callback", "escalated"][i % 3].into(),
                    notes: format!("note {i}: Ann asked about order #{i}"),
                },
            };
            Ix {
                queue: if i % 3 == 0 { "billing" } else { "support" }.into(),
                agent: (!matches!(end, End::Abandoned { .. })).then(|| format!("agent-{}", i % 3)),
                messages: vec![opening, format!("Hi Ann, happy to help with #{i}"), format!("Thanks! #{i}")],
                end,
                ..Ix::new(&format!("ix-ann-{i:02}"), channel, customer, BASE_MS + i as i64 * HOUR_MS)
            }
        })
        .collect();
    let bob = [2, 6, 11]
        .iter()
        .map(|i| {
            chat(&format!("ix-bob-{i:02}"), "visitor-7f3a", BASE_MS + i * HOUR_MS + HOUR_MS / 2, "Bob here, hello")
        })
        .collect();
    (ann, bob)
}

/// Realistic event batches build each contact's history: newest first, every field, the summary, pagination.
async fn log_events_and_history(mut c: Client, db: CrmDb) {
    let (ann, bob) = ann_and_bob();

    // Ann's first interaction (by SMS, in national format) creates her contact.
    expect_not_found("Ann before her first contact", find(&mut c, Ch::Sms, "+4915112345678").await);
    log_all(&mut c, &ann[0].events(), 100).await;
    let contact = find(&mut c, Ch::Sms, "+49 151 12345678").await.expect("contact created on first contact");
    assert_eq!(contact.name, "");
    assert_eq!(identities_of(&contact), idset(&[(Ch::Sms, "+4915112345678")]));
    assert!(contact.fields.is_empty());
    assert_eq!(contact.created_at, ts(ann[0].start_ms), "created at the first contact");
    let ann_id = contact.id.clone();
    upsert(&mut c, &ann_id, "Ann Example", &[(Ch::Email, "ann@example.com")], &[("tier", "gold")])
        .await
        .expect("name Ann and add her email");

    // The rest in time order, in batches of 20 as the outbox would send them.
    let mut rest: Vec<Ix> = ann[1..].iter().chain(&bob).cloned().collect();
    rest.sort_by_key(|ix| ix.start_ms);
    log_all(&mut c, &all_events(&rest), 20).await;

    let contact = find(&mut c, Ch::Email, "Ann@Example.com").await.expect("Ann by email");
    assert_eq!(contact.id, ann_id);
    assert_eq!(
        identities_of(&contact),
        idset(&[(Ch::Sms, "+4915112345678"), (Ch::Email, "ann@example.com")]),
        "every spelling went to Ann's contact, no contact per spelling"
    );
    let bob_id = find(&mut c, Ch::Chat, "visitor-7f3a").await.expect("Bob created on first contact").id;
    assert_ne!(bob_id, ann_id);

    let want = newest_first(&ann);
    assert_eq!(want[0].interaction_id, "ix-ann-14");

    // Default limit 10, then the remaining 5 and no further cursor.
    let page = history(&mut c, &ann_id, 0, "").await.expect("history");
    assert_eq!(page.entries, want[..10].to_vec());
    assert!(!page.next_cursor.is_empty(), "15 entries, 10 shown: a cursor");
    let page = history(&mut c, &ann_id, 0, &page.next_cursor).await.expect("history page 2");
    assert_eq!(page.entries, want[10..].to_vec());
    assert_eq!(page.next_cursor, "", "nothing after the last page");

    // Other page sizes, including pages that end exactly at the end.
    for limit in [1, 4, 5, 14, 15, 16, 100] {
        assert_eq!(full_history(&mut c, &ann_id, limit).await, want, "limit {limit}");
    }
    let page = history(&mut c, &ann_id, 15, "").await.unwrap();
    assert_eq!((page.entries.len(), page.next_cursor.as_str()), (15, ""));

    // The fields of single entries, spelled out.
    let by_id = |id: &str| want.iter().find(|e| e.interaction_id == id).unwrap().clone();
    let ongoing = by_id("ix-ann-14");
    assert_eq!((ongoing.outcome.as_str(), ongoing.ended_at), ("", None));
    assert_eq!((ongoing.agent_id.as_str(), ongoing.channel), ("agent-2", Ch::Sms as i32));
    let abandoned = by_id("ix-ann-08");
    assert_eq!(
        (abandoned.outcome.as_str(), abandoned.notes.as_str(), abandoned.agent_id.as_str()),
        ("abandoned", "customer_left", "")
    );
    let done = by_id("ix-ann-09");
    assert_eq!((done.outcome.as_str(), done.disposition.as_str()), ("completed", "resolved"));
    assert_eq!((done.queue.as_str(), done.channel, done.agent_id.as_str()), ("billing", Ch::Email as i32, "agent-0"));
    assert_eq!(done.notes, "note 9: Ann asked about order #9");
    assert_eq!(done.summary, "Hello, question #9 about my order", "the first customer message");
    assert_eq!(done.ended_at, ts(BASE_MS + 9 * HOUR_MS + 90_000));
    let long = by_id("ix-ann-07");
    assert_eq!(long.summary.chars().count(), 160, "a long first message is shortened to 160 characters");
    assert!(ann[7].messages[0].starts_with(&long.summary));

    // Bob's history is his alone.
    assert_eq!(full_history(&mut c, &bob_id, 0).await, newest_first(&bob));

    // What the API does not show: message threads and the stored events.
    for ix in ann.iter().chain(&bob) {
        assert_eq!(db.messages(&ix.id).await.unwrap(), ix.stored_messages(), "messages of {}", ix.id);
        let types: Vec<String> = db.event_types(&ix.id).await.unwrap().into_iter().map(|(_, t)| t).collect();
        assert_eq!(types, ix.event_types(), "events of {}", ix.id);
    }
    let total: usize = ann.iter().chain(&bob).map(|ix| ix.events().len()).sum();
    assert_eq!(db.count_events().await.unwrap(), total as i64);
}

/// Pages through ties in time and the cap of 100 per page.
async fn history_pagination_and_cap(mut c: Client, db: CrmDb) {
    // 105 calls from one number; four at a time start in the same millisecond.
    let calls: Vec<Ix> = (0..105)
        .map(|k| Ix {
            messages: Vec::new(),
            ..Ix::new(&format!("ix-call-{k:03}"), Ch::Voice, "+1 415 555 2671", BASE_MS + (k / 4) * 1000)
        })
        .collect();
    log_all(&mut c, &all_events(&calls), 250).await;
    let carl = find(&mut c, Ch::Voice, "+14155552671").await.expect("caller created");
    let want = newest_first(&calls);

    for limit in [101, 1000, u32::MAX] {
        let page = history(&mut c, &carl.id, limit, "").await.expect("history");
        assert_eq!(page.entries, want[..100].to_vec(), "limit {limit} is capped at 100");
        assert!(!page.next_cursor.is_empty());
        let page = history(&mut c, &carl.id, limit, &page.next_cursor).await.expect("history page 2");
        assert_eq!(page.entries, want[100..].to_vec());
        assert_eq!(page.next_cursor, "");
    }
    for limit in [3, 4, 7, 100] {
        assert_eq!(full_history(&mut c, &carl.id, limit).await, want, "limit {limit} over ties");
    }
    // A cursor taken before new interactions arrived still continues where it was: the newer ones are not in it.
    let page = history(&mut c, &carl.id, 10, "").await.unwrap();
    let later = Ix { messages: Vec::new(), ..Ix::new("ix-call-later", Ch::Voice, "+14155552671", BASE_MS + HOUR_MS) };
    log_all(&mut c, &later.events(), 100).await;
    let rest = full_history_from(&mut c, &carl.id, 10, page.next_cursor).await;
    assert_eq!(rest, want[10..].to_vec());
    assert_eq!(history(&mut c, &carl.id, 1, "").await.unwrap().entries, vec![later.expected()]);
    let total: usize = calls.iter().chain([&later]).map(|ix| ix.events().len()).sum();
    assert_eq!(db.count_events().await.unwrap(), total as i64);
}

async fn full_history_from(c: &mut Client, contact_id: &str, limit: u32, mut cursor: String) -> Vec<pb::HistoryEntry> {
    let mut all = Vec::new();
    while !cursor.is_empty() {
        let page = history(c, contact_id, limit, &cursor).await.expect("GetContactHistory");
        all.extend(page.entries);
        cursor = page.next_cursor;
    }
    all
}

/// A repeated event changes nothing and is acknowledged; a mixed batch stores only the new events.
async fn idempotency(mut c: Client, db: CrmDb) {
    let mut ixs: Vec<Ix> = (0..3)
        .map(|i| {
            let mut ix =
                chat(&format!("ix-{i}"), "0151 12345678", BASE_MS + i * HOUR_MS, &format!("Opening message {i}"));
            ix.channel = Ch::Sms;
            ix
        })
        .collect();
    ixs[2].end = End::Ongoing;
    ixs[2].messages.truncate(2);
    let batch = all_events(&ixs);
    let n = batch.len() as u32;
    assert_eq!(log(&mut c, batch.clone()).await.unwrap(), (n, 0));
    let who = (Ch::Sms, "+4915112345678");
    let names = ["ix-0", "ix-1", "ix-2", "ix-3"];
    let before = snapshot(&mut c, &db, who, &names).await;
    assert_eq!(before.history, newest_first(&ixs));
    assert_eq!(before.events, i64::from(n));

    // The same batch again, and again in other cuts and orders.
    assert_eq!(log(&mut c, batch.clone()).await.unwrap(), (0, n), "a repeated batch is acknowledged as duplicates");
    let (a, b) = batch.split_at(batch.len() / 2);
    assert_eq!(log(&mut c, b.to_vec()).await.unwrap(), (0, b.len() as u32));
    assert_eq!(log(&mut c, a.to_vec()).await.unwrap(), (0, a.len() as u32));
    assert_eq!(snapshot(&mut c, &db, who, &names).await, before, "repeated events changed something");

    // A retry whose content differs (same ids) changes nothing either: the first delivery counts.
    let mut changed: Vec<pb::Event> = batch
        .iter()
        .filter(|e| ["created", "message_in", "completed", "accepted"].contains(&e.r#type.as_str()))
        .cloned()
        .collect();
    for e in &mut changed {
        e.details_json = json!({"seq": 1, "body": "tampered", "disposition": "other", "notes": "other"}).to_string();
        e.agent_id = "agent-x".into();
        e.customer_address = "0151 99990000".into();
    }
    let k = changed.len() as u32;
    assert_eq!(log(&mut c, changed).await.unwrap(), (0, k));
    assert_eq!(snapshot(&mut c, &db, who, &names).await, before, "a changed retry changed something");
    expect_not_found("customer of a duplicate created event", find(&mut c, Ch::Sms, "0151 99990000").await);

    // Old and new mixed: the ongoing interaction goes on and ends, and a fourth one starts.
    let mut ix2 = ixs[2].clone();
    ix2.messages.push("One more thing.".into());
    ix2.end = End::Completed { disposition: "resolved".into(), notes: "second try".into() };
    let ix3 = chat("ix-3", "visitor-x", BASE_MS + 5 * HOUR_MS, "New here");
    let old_ids: BTreeSet<String> = batch.iter().map(|e| e.id.clone()).collect();
    let new_events: Vec<pb::Event> =
        ix2.events().into_iter().chain(ix3.events()).filter(|e| !old_ids.contains(&e.id)).collect();
    let mut mixed = batch.clone();
    mixed.extend(new_events.iter().cloned());
    // Put a few old ones after the new ones as well.
    mixed.extend(batch[..3].iter().cloned());
    let new = new_events.len() as u32;
    assert_eq!(log(&mut c, mixed).await.unwrap(), (new, n + 3), "only the new events are stored");
    ixs[2] = ix2;
    let after = snapshot(&mut c, &db, who, &names).await;
    assert_eq!(after.history, newest_first(&ixs));
    assert_eq!(after.events, i64::from(n + new));
    assert_eq!(after.messages[2], ixs[2].stored_messages(), "messages of ix-2 not doubled");
    assert_eq!(after.messages[..2], before.messages[..2]);
    assert_eq!(after.messages[3], ix3.stored_messages());
    assert_eq!(after.contact, before.contact);
    let visitor = find(&mut c, Ch::Chat, "visitor-x").await.expect("ix-3's customer");
    assert_eq!(full_history(&mut c, &visitor.id, 0).await, vec![ix3.expected()]);

    // The same new event twice in one batch: stored once.
    let e = event("sb:note-1", "ix-3", "note", BASE_MS + 6 * HOUR_MS, "agent-1", "", json!({"text": "hi"}));
    assert_eq!(log(&mut c, vec![e.clone(), e]).await.unwrap(), (1, 1));
    assert_eq!(db.count_events().await.unwrap(), i64::from(n + new + 1));
    // An empty batch is fine and stores nothing.
    assert_eq!(log(&mut c, Vec::new()).await.unwrap(), (0, 0));
}

/// With `create_unknown_contacts = false` the store only links interactions to contacts it already knows.
async fn unknown_contacts_not_created(mut c: Client, db: CrmDb) {
    let stranger = chat("ix-stranger-1", "0151 87654321", BASE_MS, "Who am I?");
    let stranger = Ix { channel: Ch::Sms, ..stranger };
    log_all(&mut c, &stranger.events(), 100).await;
    expect_not_found("no contact for an unknown customer", find(&mut c, Ch::Sms, "+4915187654321").await);
    assert_eq!(db.messages(&stranger.id).await.unwrap(), stranger.stored_messages(), "the interaction is logged");

    // Known customers are linked as usual.
    let kim = upsert(&mut c, "", "Kim", &[(Ch::Sms, "+49 151 11112222")], &[]).await.expect("create Kim");
    let kims = Ix { channel: Ch::Sms, ..chat("ix-kim-1", "0151 11112222", BASE_MS + HOUR_MS, "Kim here") };
    log_all(&mut c, &kims.events(), 100).await;
    assert_eq!(full_history(&mut c, &kim.id, 0).await, vec![kims.expected()]);

    // The stranger becomes a contact: the interactions logged before join its history (matched by the normalized
    // identity), and later ones are linked as usual.
    let known = upsert(&mut c, "", "No Longer A Stranger", &[(Ch::Sms, "0151 87654321")], &[]).await.expect("upsert");
    assert_eq!(full_history(&mut c, &known.id, 0).await, vec![stranger.expected()]);
    let later = Ix { channel: Ch::Sms, ..chat("ix-stranger-2", "+4915187654321", BASE_MS + 2 * HOUR_MS, "Me again") };
    log_all(&mut c, &later.events(), 100).await;
    assert_eq!(full_history(&mut c, &known.id, 0).await, vec![later.expected(), stranger.expected()]);
    assert_eq!(full_history(&mut c, &kim.id, 0).await, vec![kims.expected()], "Kim untouched");
}

/// Right to erasure: identities, name, fields and bodies go, the anonymous history stays, others are untouched.
async fn erasure(mut c: Client, db: CrmDb) {
    let ann = upsert(
        &mut c,
        "",
        "Ann Example",
        &[(Ch::Sms, "+49 151 12345678"), (Ch::Email, "ann@example.com"), (Ch::Chat, "visitor-ann")],
        &[("tier", "gold")],
    )
    .await
    .expect("create Ann");
    let mut ann_ixs = vec![
        Ix { channel: Ch::Sms, ..chat("ix-ann-0", "0151 12345678", BASE_MS, "My address is Main St 1") },
        Ix {
            channel: Ch::Email,
            end: End::Abandoned { reason: "customer_left".into() },
            agent: None,
            ..chat("ix-ann-1", "ANN@example.com", BASE_MS + HOUR_MS, "Please call me back on 0151 12345678")
        },
        chat("ix-ann-2", "visitor-ann", BASE_MS + 2 * HOUR_MS, "My card number is 4111 1111 1111 1111"),
    ];
    ann_ixs[2].end = End::Ongoing;
    let bob_ixs = vec![
        chat("ix-bob-0", "visitor-bob", BASE_MS + HOUR_MS / 2, "Bob here"),
        chat("ix-bob-1", "visitor-bob", BASE_MS + 3 * HOUR_MS, "Bob again"),
    ];
    let mut everything: Vec<Ix> = ann_ixs.iter().chain(&bob_ixs).cloned().collect();
    everything.sort_by_key(|ix| ix.start_ms);
    log_all(&mut c, &all_events(&everything), 10).await;
    assert_eq!(full_history(&mut c, &ann.id, 0).await, newest_first(&ann_ixs));

    let bob_names = ["ix-bob-0", "ix-bob-1"];
    let bob_before = snapshot(&mut c, &db, (Ch::Chat, "visitor-bob"), &bob_names).await;
    assert_eq!(bob_before.history, newest_first(&bob_ixs));
    let messages: usize = ann_ixs.iter().map(|ix| ix.stored_messages().len()).sum();
    assert_eq!(messages, 3 + 1 + 3);
    let events = db.count_events().await.unwrap();

    let r = erase(&mut c, &ann.id).await.expect("erase Ann");
    assert_eq!((r.interactions, r.messages_erased), (3, messages as u32));

    for (ch, written) in [
        (Ch::Sms, "+4915112345678"),
        (Ch::Sms, "0151 12345678"),
        (Ch::Email, "ann@example.com"),
        (Ch::Email, "ANN@EXAMPLE.COM"),
        (Ch::Chat, "visitor-ann"),
    ] {
        expect_not_found(&format!("{written:?} after erasure"), find(&mut c, ch, written).await);
    }
    // The anonymous history stays: outcome, times, queues, agents, dispositions; no notes, no summaries.
    let want: Vec<pb::HistoryEntry> = {
        let mut sorted = ann_ixs.clone();
        sorted.reverse();
        sorted.iter().map(Ix::expected_erased).collect()
    };
    assert_eq!(full_history(&mut c, &ann.id, 0).await, want);
    for ix in &ann_ixs {
        assert_eq!(db.messages(&ix.id).await.unwrap(), Vec::new(), "bodies of {} erased", ix.id);
        let types: Vec<String> = db.event_types(&ix.id).await.unwrap().into_iter().map(|(_, t)| t).collect();
        assert_eq!(types, ix.event_types(), "the events of {} are kept (anonymized)", ix.id);
    }
    assert_eq!(db.count_events().await.unwrap(), events + 1, "events are kept, and the erasure is one more");

    // Redelivery of Ann's old events (the outbox delivers at least once) brings nothing back.
    let ann_events = all_events(&ann_ixs);
    let k = ann_events.len() as u32;
    assert_eq!(log(&mut c, ann_events).await.unwrap(), (0, k));
    assert_eq!(full_history(&mut c, &ann.id, 0).await, want);
    for ix in &ann_ixs {
        assert_eq!(db.messages(&ix.id).await.unwrap(), Vec::new(), "bodies of {} stay erased", ix.id);
    }

    // Erased is gone: a second erasure and updates by id find nothing.
    expect_not_found("erasing twice", erase(&mut c, &ann.id).await);
    expect_not_found("upsert of an erased contact", upsert(&mut c, &ann.id, "Ann", &[], &[]).await);

    // Bob is untouched (the log holds one more event: the erasure's audit record).
    let bob_after = snapshot(&mut c, &db, (Ch::Chat, "visitor-bob"), &bob_names).await;
    assert_eq!(bob_after, Snapshot { events: bob_before.events + 1, ..bob_before });

    // An interaction of Ann's that began before the erasure but reaches the store after it (the log
    // lagged) is kept without anything of Ann: no contact, no bodies, no details.
    let late = Ix { channel: Ch::Sms, ..chat("ix-ann-late", "0151 12345678", BASE_MS + 4 * HOUR_MS, "Still there?") };
    log_all(&mut c, &late.events(), 100).await;
    expect_not_found("Ann's number after a late delivery", find(&mut c, Ch::Sms, "0151 12345678").await);
    assert_erased(&db, "ix-ann-late").await;
    assert_eq!(full_history(&mut c, &ann.id, 0).await, want, "the late interaction joins no history");

    // If Ann gets in touch again she is a new contact, with only the new interaction.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let back = Ix { channel: Ch::Sms, ..chat("ix-ann-3", "+49 151 12345678", now_ms + HOUR_MS, "Hi again") };
    log_all(&mut c, &back.events(), 100).await;
    let new_ann = find(&mut c, Ch::Sms, "0151 12345678").await.expect("new contact for Ann");
    assert_ne!(new_ann.id, ann.id);
    assert_eq!(new_ann.name, "");
    assert!(new_ann.fields.is_empty());
    assert_eq!(full_history(&mut c, &new_ann.id, 0).await, vec![back.expected()]);
    assert_eq!(full_history(&mut c, &ann.id, 0).await, want, "the erased history stays as it was");
    // And her email may go to someone else now.
    let other = upsert(&mut c, "", "Someone", &[(Ch::Email, "ann@example.com")], &[]).await.expect("reuse email");
    assert!(other.id != ann.id && other.id != new_ann.id);

    // Switchboard erased its copy of one of Bob's interactions (an "erased" event): the store blanks
    // what it holds of it, and whatever of it arrives later.
    let erased = event("ev-bob-0-erased", "ix-bob-0", "erased", BASE_MS + 6 * HOUR_MS, "", "support", json!({}));
    assert_eq!(log(&mut c, vec![erased]).await.unwrap(), (1, 0));
    let again = event(
        "ev-bob-0-late",
        "ix-bob-0",
        "message_in",
        BASE_MS + 6 * HOUR_MS,
        "",
        "",
        json!({"seq": 9, "body": "Bob's secret"}),
    );
    assert_eq!(log(&mut c, vec![again]).await.unwrap(), (1, 0));
    assert_erased(&db, "ix-bob-0").await;
    let bob = find(&mut c, Ch::Chat, "visitor-bob").await.expect("Bob stays a contact");
    let history = full_history(&mut c, &bob.id, 0).await;
    assert_eq!(history.iter().map(|h| h.interaction_id.as_str()).collect::<Vec<_>>(), vec!["ix-bob-1"]);
}

/// Nothing of what the customer or agent wrote, or who the customer is, is left of an interaction.
async fn assert_erased(db: &CrmDb, ix: &str) {
    assert_eq!(db.messages(ix).await.unwrap(), Vec::new(), "bodies of {ix}");
    let events = db.event_details(ix).await.unwrap();
    assert!(!events.is_empty(), "the events of {ix} are kept");
    for (typ, details) in events {
        assert_eq!(details, r#"{"erased":true}"#, "{typ} of {ix}");
    }
}

/// Several clients create the same new contact at once (an import, an agent's desktop, a CTI hook): one contact
/// comes of it, every answer is that contact with that identity, and every upsert's fields are merged into it.
async fn concurrent_upserts_of_one_new_identity(c: Client, _db: CrmDb) {
    let mut problems: Vec<String> = Vec::new();
    for round in 0..10 {
        let number = format!("+49 151 700000{round:02}");
        let normalized = number.replace(' ', "");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let mut c = c.clone();
                let number = number.clone();
                tokio::spawn(async move {
                    upsert(&mut c, "", "", &[(Ch::Sms, &number)], &[(&format!("from-{i}"), "yes")]).await
                })
            })
            .collect();
        let mut ids = BTreeSet::new();
        let mut ok = 0;
        for t in tasks {
            match t.await.expect("upsert task") {
                Err(e) => problems.push(format!("round {round}: upsert failed: {:?} {}", e.code(), e.message())),
                Ok(contact) => {
                    ok += 1;
                    if identities_of(&contact) != idset(&[(Ch::Sms, &normalized)]) {
                        problems.push(format!(
                            "round {round}: answered with contact {} whose identities are {:?}",
                            contact.id, contact.identities
                        ));
                    }
                    ids.insert(contact.id);
                }
            }
        }
        if ids.len() > 1 {
            problems.push(format!("round {round}: one identity, {} contacts: {ids:?}", ids.len()));
        }
        let mut c = c.clone();
        let found = find(&mut c, Ch::Sms, &number).await.expect("find the contact");
        if found.fields.len() != ok {
            let mut got: Vec<&String> = found.fields.keys().collect();
            got.sort();
            problems.push(format!("round {round}: {ok} upserts succeeded, the contact has the fields of {got:?}"));
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// Writers at once, as in production: the event log delivers batches while contacts are created and erased and
/// screen-pops read. Nothing shares a row, so everything must succeed.
async fn concurrent_writers(c: Client, db: CrmDb) {
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..4i64 {
        let mut c = c.clone();
        tasks.spawn(async move {
            let mut problems = Vec::new();
            for k in 0..10i64 {
                let ix = chat(&format!("ix-log-{w}-{k}"), &format!("visitor-log-{w}-{k}"), BASE_MS + k * HOUR_MS, "Hi");
                if let Err(e) = log(&mut c, ix.events()).await {
                    problems.push(format!("LogEvents {w}/{k}: {:?} {}", e.code(), e.message()));
                }
            }
            problems
        });
    }
    for w in 0..4 {
        let mut c = c.clone();
        tasks.spawn(async move {
            let mut problems = Vec::new();
            for k in 0..10 {
                let visitor = format!("visitor-upsert-{w}-{k}");
                match upsert(&mut c, "", "Someone", &[(Ch::Chat, &visitor)], &[("k", "v")]).await {
                    Err(e) => problems.push(format!("UpsertContact {w}/{k}: {:?} {}", e.code(), e.message())),
                    Ok(contact) if k % 3 == 0 => {
                        if let Err(e) = erase(&mut c, &contact.id).await {
                            problems.push(format!("EraseContact {w}/{k}: {:?} {}", e.code(), e.message()));
                        }
                    }
                    Ok(contact) => {
                        if let Err(e) = history(&mut c, &contact.id, 0, "").await {
                            problems.push(format!("GetContactHistory {w}/{k}: {:?} {}", e.code(), e.message()));
                        }
                    }
                }
            }
            problems
        });
    }
    let mut problems: Vec<String> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        problems.extend(r.expect("writer task"));
    }
    assert!(problems.is_empty(), "{} of 120 concurrent requests failed:\n{}", problems.len(), problems.join("\n"));
    let per_ix = chat("x", "x", BASE_MS, "Hi").events().len() as i64;
    // Each of the 16 erasures logs its own audit event.
    assert_eq!(db.count_events().await.unwrap(), 40 * per_ix + 16);
    let erasures = list_audit(&mut c.clone(), audit_req(&[], "", &["contact_erased"])).await.expect("audit");
    assert_eq!(erasures.events.len(), 16);
}

/// Routing domains share one CRM (their event ids carry their key roots) and deliver at once; the same new customers
/// get in touch through each. Every batch is stored, and each customer gets one contact with all of its interactions.
async fn concurrent_first_contacts(c: Client, _db: CrmDb) {
    const DOMAINS: [&str; 3] = ["eu", "us", "apac"];
    let customers: Vec<String> = (0..20).map(|k| format!("0151 800000{k:02}")).collect();
    // Each customer's first contacts reach the CRM through all domains at the same moment.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(DOMAINS.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for domain in DOMAINS {
        let mut c = c.clone();
        let customers = customers.clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            let mut problems = Vec::new();
            for (k, customer) in customers.iter().enumerate() {
                let ix = Ix {
                    channel: Ch::Sms,
                    ..chat(&format!("ix-{domain}-{k}"), customer, BASE_MS + k as i64 * 1000, "Hello")
                };
                let events: Vec<pb::Event> = ix
                    .events()
                    .into_iter()
                    .map(|mut e| {
                        e.id = format!("{domain}:{}", e.id);
                        e
                    })
                    .collect();
                barrier.wait().await;
                if let Err(e) = log(&mut c, events).await {
                    problems.push(format!("{domain} LogEvents for {customer}: {:?} {}", e.code(), e.message()));
                }
            }
            problems
        });
    }
    let mut problems: Vec<String> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        problems.extend(r.expect("delivery task"));
    }
    let mut c = c.clone();
    for (k, customer) in customers.iter().enumerate() {
        match find(&mut c, Ch::Sms, customer).await {
            Err(e) => problems.push(format!("{customer}: no contact ({:?} {})", e.code(), e.message())),
            Ok(contact) => {
                let ids: BTreeSet<String> =
                    full_history(&mut c, &contact.id, 0).await.into_iter().map(|e| e.interaction_id).collect();
                let want: BTreeSet<String> = DOMAINS.iter().map(|d| format!("ix-{d}-{k}")).collect();
                if ids != want {
                    problems.push(format!("{customer}: history has {ids:?}, want {want:?}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------------------------
// The audit trail.

/// `e` as the daemon logs an action someone asked for.
fn acted(mut e: pb::Event, actor: &str, address: &str) -> pb::Event {
    e.actor = actor.to_string();
    e.actor_address = address.to_string();
    e
}

/// An agent's (or instance's) event, outside any interaction.
fn agent_event(id: &str, typ: &str, at_ms: i64, agent: &str, details: serde_json::Value) -> pb::Event {
    event(id, "", typ, at_ms, agent, "", details)
}

/// What the audit trail is made of: what someone asked for, sessions, instances, erasures.
fn is_audit(e: &pb::Event) -> bool {
    !e.actor.is_empty()
        || ["login", "logout", "disconnected", "instance_lost", "instance_restarted", "contact_erased"]
            .contains(&e.r#type.as_str())
}

/// `e` as ListAuditEvents shows it: no channel, no customer address, nothing anyone wrote; details canonical.
fn as_audited(e: &pb::Event) -> pb::Event {
    let mut details: serde_json::Value = serde_json::from_str(&e.details_json).expect("details are JSON");
    for written in ["body", "subject", "notes"] {
        details.as_object_mut().expect("details are an object").remove(written);
    }
    pb::Event { channel: 0, customer_address: String::new(), details_json: details.to_string(), ..e.clone() }
}

/// Details canonical, so events compare whatever the key order of their JSON.
fn canonical(events: Vec<pb::Event>) -> Vec<pb::Event> {
    events
        .into_iter()
        .map(|mut e| {
            let v: serde_json::Value = serde_json::from_str(&e.details_json).expect("details are JSON");
            e.details_json = v.to_string();
            e
        })
        .collect()
}

fn audited(events: &[pb::Event]) -> Vec<pb::Event> {
    events.iter().filter(|e| is_audit(e)).map(as_audited).collect()
}

fn ids(events: &[pb::Event]) -> Vec<&str> {
    events.iter().map(|e| e.id.as_str()).collect()
}

fn audit_req(window: &[Option<i64>], actor: &str, types: &[&str]) -> pb::ListAuditEventsRequest {
    pb::ListAuditEventsRequest {
        since: window.first().copied().flatten().and_then(ts),
        until: window.get(1).copied().flatten().and_then(ts),
        actor: actor.to_string(),
        types: types.iter().map(ToString::to_string).collect(),
        limit: 0,
        page_token: String::new(),
    }
}

async fn list_audit(c: &mut Client, r: pb::ListAuditEventsRequest) -> Result<pb::ListAuditEventsResponse, Status> {
    c.list_audit_events(r).await.map(tonic::Response::into_inner)
}

/// Every audit event `r` selects, page by page (`r.limit` at a time) until an empty page; each page at most the
/// limit, details canonical.
async fn full_audit(c: &mut Client, r: pb::ListAuditEventsRequest) -> Vec<pb::Event> {
    let limit = if r.limit == 0 { 100 } else { r.limit.min(1000) } as usize;
    let mut all = Vec::new();
    let mut r = r;
    for _ in 0..10_000 {
        let page = list_audit(c, r.clone()).await.expect("ListAuditEvents");
        assert!(page.events.len() <= limit, "a page of limit {limit} has {} events", page.events.len());
        if page.events.is_empty() {
            assert_eq!(page.next_page_token, "", "an empty page has no token");
            return canonical(all);
        }
        assert_ne!(page.next_page_token, "", "a page with events says where it ended");
        all.extend(page.events);
        r.page_token = page.next_page_token;
    }
    panic!("the audit trail never ended");
}

/// A shift as the daemon logs it: an admin sets up, an agent works, a supervisor steps in, an instance dies; with
/// the routing's own events in between, which are not the audit trail's.
fn shift() -> Vec<pb::Event> {
    let t = BASE_MS;
    let (ops, ops_at) = ("admin:ops", "10.0.0.1");
    let (lead, lead_at) = ("supervisor:lead@example.com", "2001:db8::7");
    let mut ix = chat("ix-shift", "visitor-shift", t + 10_000, "Where is my parcel?").events();
    let moved = acted(
        event("sb:s-moved", "ix-shift", "moved", t + 12_000, "", "billing", json!({"from_queue": "support"})),
        lead,
        lead_at,
    );
    ix.insert(3, moved);
    // The agent's reply, were agents' actions named: in the trail, without what was written.
    let reply = ix.iter().position(|e| e.r#type == "message_out").expect("a reply");
    ix[reply] = acted(ix[reply].clone(), "agent:agent-1", "10.0.0.9");
    let mut all = vec![
        acted(event("sb:s-q", "", "queue_created", t, "", "support", json!({})), ops, ops_at),
        acted(
            agent_event(
                "sb:s-a",
                "agent_created",
                t + 1_000,
                "agent-1",
                json!({"after": "{\"id\":\"agent-1\"}", "token_changed": true}),
            ),
            ops,
            ops_at,
        ),
        acted(
            agent_event("sb:s-k", "api_key_created", t + 2_000, "", json!({"id": "k1", "name": "crm", "role": "crm"})),
            ops,
            ops_at,
        ),
        agent_event("sb:s-login", "login", t + 3_000, "agent-1", json!({"instance": "i-1"})),
        agent_event("sb:s-ready", "presence", t + 4_000, "agent-1", json!({"state": "ready", "cause": "agent"})),
    ];
    all.extend(ix);
    all.extend([
        acted(
            agent_event(
                "sb:s-forced",
                "presence",
                t + 200_000,
                "agent-1",
                json!({"state": "not_ready", "reason": "meeting"}),
            ),
            lead,
            lead_at,
        ),
        acted(
            agent_event(
                "sb:s-b",
                "agent_updated",
                t + 210_000,
                "agent-2",
                json!({"before": "{}", "after": "{}", "token_changed": false}),
            ),
            "admin:ops2",
            "10.0.0.3",
        ),
        agent_event("sb:s-disc", "disconnected", t + 220_000, "agent-1", json!({"instance": "i-1"})),
        acted(
            agent_event("sb:s-logout", "logout", t + 230_000, "agent-1", json!({"cause": "supervisor"})),
            lead,
            lead_at,
        ),
        agent_event("sb:s-lost", "instance_lost", t + 240_000, "", json!({"instance": "i-2"})),
        agent_event("sb:s-restart", "instance_restarted", t + 250_000, "", json!({"instance": "i-3", "released": 2})),
    ]);
    all
}

/// The filters narrow the trail of who did what, which is in arrival order and shows nothing anyone wrote.
async fn audit_trail_filters(mut admin: Client, mut daemon: Client, _db: CrmDb) {
    let t = BASE_MS;
    let shift = shift();
    let (first, second) = shift.split_at(9);
    assert_eq!(log(&mut daemon, first.to_vec()).await.expect("the daemon logs"), (first.len() as u32, 0));
    assert_eq!(log(&mut daemon, second.to_vec()).await.expect("the daemon logs"), (second.len() as u32, 0));
    let want = audited(&shift);
    assert_eq!(
        ids(&want),
        [
            "sb:s-q",
            "sb:s-a",
            "sb:s-k",
            "sb:s-login",
            "sb:s-moved",
            "sb:ix-shift-5",
            "sb:s-forced",
            "sb:s-b",
            "sb:s-disc",
            "sb:s-logout",
            "sb:s-lost",
            "sb:s-restart"
        ],
        "the test's own idea of the trail"
    );
    let all = full_audit(&mut admin, audit_req(&[], "", &[])).await;
    assert_eq!(all, want);
    let reply = all.iter().find(|e| e.r#type == "message_out").expect("the named reply");
    assert_eq!(reply.details_json, json!({"seq": 2}).to_string(), "the reply's body is not in the trail");
    assert_eq!((reply.actor.as_str(), reply.actor_address.as_str()), ("agent:agent-1", "10.0.0.9"));

    let only =
        |keep: &[&str]| -> Vec<pb::Event> { want.iter().filter(|e| keep.contains(&e.id.as_str())).cloned().collect() };
    // Actors match exactly.
    assert_eq!(full_audit(&mut admin, audit_req(&[], "admin:ops", &[])).await, only(&["sb:s-q", "sb:s-a", "sb:s-k"]));
    assert_eq!(full_audit(&mut admin, audit_req(&[], "admin:op", &[])).await, vec![]);
    assert_eq!(full_audit(&mut admin, audit_req(&[], "ADMIN:OPS", &[])).await, vec![]);
    // Types, among audit events only: the agent's own presence change is not in the trail, the supervisor's is.
    assert_eq!(
        full_audit(&mut admin, audit_req(&[], "", &["logout", "login"])).await,
        only(&["sb:s-login", "sb:s-logout"])
    );
    assert_eq!(full_audit(&mut admin, audit_req(&[], "", &["presence"])).await, only(&["sb:s-forced"]));
    assert_eq!(full_audit(&mut admin, audit_req(&[], "", &["queued", "offered", "created"])).await, vec![]);
    assert_eq!(full_audit(&mut admin, audit_req(&[], "", &["no_such_type"])).await, vec![]);
    // A time window: since inclusive, until exclusive.
    assert_eq!(
        full_audit(&mut admin, audit_req(&[Some(t + 200_000), Some(t + 230_000)], "", &[])).await,
        only(&["sb:s-forced", "sb:s-b", "sb:s-disc"])
    );
    assert_eq!(
        full_audit(&mut admin, audit_req(&[Some(t + 240_000)], "", &[])).await,
        only(&["sb:s-lost", "sb:s-restart"])
    );
    assert_eq!(full_audit(&mut admin, audit_req(&[None, Some(t + 2_000)], "", &[])).await, only(&["sb:s-q", "sb:s-a"]));
    // All filters at once.
    assert_eq!(
        full_audit(
            &mut admin,
            audit_req(&[Some(t + 10_000), Some(t + 240_000)], "supervisor:lead@example.com", &["presence", "logout"])
        )
        .await,
        only(&["sb:s-forced", "sb:s-logout"])
    );

    // Arrival order, not event time: an action logged late (a deliverer that was down) comes last, and a window
    // by time still finds it.
    let late = acted(agent_event("sb:s-late", "agent_deleted", t + 500, "agent-3", json!({})), "admin:ops", "10.0.0.1");
    assert_eq!(log(&mut daemon, vec![late.clone()]).await.unwrap(), (1, 0));
    let mut with_late = want.clone();
    with_late.extend(audited(std::slice::from_ref(&late)));
    assert_eq!(full_audit(&mut admin, audit_req(&[], "", &[])).await, with_late);
    assert_eq!(
        full_audit(&mut admin, audit_req(&[None, Some(t + 1_000)], "", &[])).await,
        audited(&[shift[0].clone(), late])
    );
    // Redelivery changes nothing.
    let n = shift.len() as u32;
    assert_eq!(log(&mut daemon, shift.clone()).await.unwrap(), (0, n));
    assert_eq!(full_audit(&mut admin, audit_req(&[], "", &[])).await, with_late);
}

/// Pages follow each other in arrival order without gaps or repeats, within the limits; a reader that kept the last
/// token finds what arrives later.
async fn audit_trail_paging_and_limits(mut admin: Client, mut daemon: Client, _db: CrmDb) {
    // 1,100 logins and logouts, every tenth by a supervisor, between the routing's own events.
    let mut events = Vec::new();
    for i in 0..1_100i64 {
        let typ = if i % 2 == 0 { "login" } else { "logout" };
        let e = agent_event(&format!("sb:p-{i:04}"), typ, BASE_MS + i, &format!("agent-{}", i % 7), json!({}));
        events.push(if i % 10 == 3 { acted(e, "supervisor:lead", "10.0.0.2") } else { e });
        events.push(event(
            &format!("sb:q-{i:04}"),
            &format!("ix-{i}"),
            "queued",
            BASE_MS + i,
            "",
            "support",
            json!({}),
        ));
    }
    for batch in events.chunks(1000) {
        log(&mut daemon, batch.to_vec()).await.expect("the daemon logs");
    }
    let want = audited(&events);
    assert_eq!(want.len(), 1_100);

    let page = |limit: u32, token: &str| pb::ListAuditEventsRequest {
        limit,
        page_token: token.to_string(),
        ..audit_req(&[], "", &[])
    };
    // Default 100; more than 1000 gets 1000.
    let first = list_audit(&mut admin, page(0, "")).await.unwrap();
    assert_eq!(canonical(first.events), want[..100]);
    let big = list_audit(&mut admin, page(5_000, "")).await.unwrap();
    assert_eq!(canonical(big.events), want[..1000]);
    let rest = list_audit(&mut admin, page(1_000, &big.next_page_token)).await.unwrap();
    assert_eq!(canonical(rest.events), want[1000..]);
    assert_eq!(list_audit(&mut admin, page(1, &first.next_page_token)).await.unwrap().events[0].id, want[100].id);

    // Walking pages: every event once, in order, whatever the page size.
    for limit in [1_000, 100, 33] {
        assert_eq!(full_audit(&mut admin, page(limit, "")).await, want, "pages of {limit}");
    }
    let supervised: Vec<pb::Event> = want.iter().filter(|e| e.actor == "supervisor:lead").cloned().collect();
    assert_eq!(supervised.len(), 110);
    let by_lead = pb::ListAuditEventsRequest { limit: 7, ..audit_req(&[], "supervisor:lead", &[]) };
    assert_eq!(full_audit(&mut admin, by_lead.clone()).await, supervised);

    // The end for now: the last page's token asks for what has arrived since, and only that.
    let mut r = by_lead.clone();
    let last = loop {
        let p = list_audit(&mut admin, r.clone()).await.unwrap();
        if p.events.len() < 7 {
            break p.next_page_token;
        }
        r.page_token = p.next_page_token;
    };
    assert_ne!(last, "", "a short page still says where it ended");
    let quiet = list_audit(&mut admin, pb::ListAuditEventsRequest { page_token: last.clone(), ..by_lead.clone() })
        .await
        .unwrap();
    assert!(quiet.events.is_empty() && quiet.next_page_token.is_empty(), "{quiet:?}");
    let more: Vec<pb::Event> = (0..3)
        .map(|i| {
            let e = agent_event(
                &format!("sb:later-{i}"),
                "presence",
                BASE_MS + 5_000 + i,
                "agent-1",
                json!({"state": "ready"}),
            );
            acted(e, "supervisor:lead", "10.0.0.2")
        })
        .collect();
    log(&mut daemon, more.clone()).await.unwrap();
    let later = list_audit(&mut admin, pb::ListAuditEventsRequest { page_token: last, ..by_lead }).await.unwrap();
    assert_eq!(canonical(later.events), audited(&more));
}

/// Malformed requests get INVALID_ARGUMENT naming the field; the daemon's own key (role `crm`) neither reads the
/// trail nor erases.
async fn audit_trail_bad_input_and_roles(mut admin: Client, mut daemon: Client, db: CrmDb) {
    let shift = shift();
    log(&mut daemon, shift.clone()).await.expect("the daemon logs");
    let inv = Code::InvalidArgument;
    let at = |seconds: i64, nanos: i32| Some(prost_types::Timestamp { seconds, nanos });
    let base = audit_req(&[], "", &[]);
    let cases: Vec<(&str, pb::ListAuditEventsRequest, &str)> = vec![
        ("negative nanos", pb::ListAuditEventsRequest { since: at(1, -1), ..base.clone() }, "since"),
        (
            "a whole second of nanos",
            pb::ListAuditEventsRequest { since: at(1, 1_000_000_000), ..base.clone() },
            "since",
        ),
        ("before 1970", pb::ListAuditEventsRequest { since: at(-1, 0), ..base.clone() }, "since"),
        ("after 9999", pb::ListAuditEventsRequest { until: at(i64::MAX / 10, 0), ..base.clone() }, "until"),
        ("an empty window", audit_req(&[Some(BASE_MS), Some(BASE_MS)], "", &[]), "until"),
        ("until before since", audit_req(&[Some(BASE_MS), Some(BASE_MS - 1)], "", &[]), "until"),
        ("actor over 1024 bytes", audit_req(&[], &"a".repeat(1025), &[]), "actor"),
        ("65 types", pb::ListAuditEventsRequest { types: vec!["login".into(); 65], ..base.clone() }, "types"),
        ("an empty type", audit_req(&[], "", &["login", ""]), "types[1]"),
        ("a type over 64 bytes", audit_req(&[], "", &[&"t".repeat(65)]), "types[0]"),
        ("garbage token", pb::ListAuditEventsRequest { page_token: "garbage".into(), ..base.clone() }, "page_token"),
        (
            "token without a place",
            pb::ListAuditEventsRequest { page_token: "x.sb:1".into(), ..base.clone() },
            "page_token",
        ),
        ("token without an id", pb::ListAuditEventsRequest { page_token: "12.".into(), ..base.clone() }, "page_token"),
        (
            "a history cursor",
            pb::ListAuditEventsRequest { page_token: format!("{BASE_MS}:ix-1"), ..base.clone() },
            "page_token",
        ),
    ];
    for (what, r, needle) in cases {
        expect_err(&format!("audit: {what}"), list_audit(&mut admin, r).await, inv, needle);
    }
    // At the limits is fine.
    let edge = pb::ListAuditEventsRequest {
        since: at(0, 0),
        until: at(253_402_300_799, 999_999_999),
        actor: "a".repeat(1024),
        types: vec!["t".repeat(64); 64],
        ..base.clone()
    };
    assert_eq!(list_audit(&mut admin, edge).await.expect("limits are allowed").events, vec![]);

    expect_err("the daemon reads the trail", list_audit(&mut daemon, base.clone()).await, Code::PermissionDenied, "");
    let kim = upsert(&mut admin, "", "Kim", &[(Ch::Chat, "visitor-kim")], &[]).await.expect("create Kim");
    // The daemon erases only for someone it names (Admin.EraseContact); an admin speaks for itself.
    expect_err(
        "the daemon erases for no one",
        erase(&mut daemon, &kim.id).await,
        Code::InvalidArgument,
        "on_behalf_of",
    );
    let for_someone =
        pb::EraseContactRequest { contact_id: kim.id.clone(), on_behalf_of: "admin:ops".into(), ..Default::default() };
    expect_err(
        "an admin erases in another's name",
        admin.erase_contact(for_someone).await,
        Code::PermissionDenied,
        "on_behalf_of",
    );
    assert_eq!(find(&mut admin, Ch::Chat, "visitor-kim").await.expect("Kim is still there").id, kim.id);
    assert_eq!(full_audit(&mut admin, base).await, audited(&shift), "refused calls left no trace");
    assert_eq!(db.count_events().await.unwrap(), shift.len() as i64);
}

/// An erasure is in the trail (who, when, from where, which contact, how much) and takes the erased customer out of
/// every other audit event; the trail never shows what anyone wrote.
async fn audit_trail_of_erasure(mut admin: Client, mut daemon: Client, _db: CrmDb) {
    let name = "Annika Mustermann";
    let ann = upsert(
        &mut admin,
        "",
        name,
        &[(Ch::Sms, "+49 151 12345678"), (Ch::Email, "annika@example.com")],
        &[("tier", "gold")],
    )
    .await
    .expect("create Annika");
    // Interactions a channel integration created and withdrew on her behalf: every event names it.
    let (web, web_at) = ("channel:web", "10.9.9.9");
    let talk = Ix {
        channel: Ch::Email,
        messages: vec![
            "My new address is Hauptstr. 5, Berlin".into(),
            "Thanks Annika, noted.".into(),
            "And my IBAN is DE89 3704 0044 0532 0130 00".into(),
        ],
        ..chat("ix-a1", "Annika@Example.com", BASE_MS, "")
    };
    let mut events: Vec<pb::Event> = talk.events();
    events[0].details_json = json!({"channel": "email", "customer": "Annika@Example.com", "subject": "Umzug Annika Mustermann", "priority": 0}).to_string();
    events.push(event(
        "sb:a-bounce",
        "ix-a1",
        "message_system",
        BASE_MS + 100_000,
        "",
        "support",
        json!({"seq": 4, "body": "Delivery to annika@example.com failed"}),
    ));
    let left = Ix { end: End::Ongoing, ..Ix::new("ix-a2", Ch::Sms, "0151 12345678", BASE_MS + HOUR_MS) };
    events.extend(left.events());
    events.push(event(
        "sb:a-gone",
        "ix-a2",
        "ended_by_customer",
        BASE_MS + HOUR_MS + 5_000,
        "",
        "support",
        json!({"reason": "Annika Mustermann hung up, call back on 0151 12345678"}),
    ));
    let events: Vec<pb::Event> = events.into_iter().map(|e| acted(e, web, web_at)).collect();
    log(&mut daemon, events.clone()).await.expect("the daemon logs");

    let written = ["Hauptstr", "IBAN", "Thanks Annika", "Delivery to annika", "Umzug", "customer satisfied"];
    let personal = ["Annika", "annika", "12345678", "Mustermann"];
    let before = full_audit(&mut admin, audit_req(&[], "", &[])).await;
    assert_eq!(before, audited(&events));
    let shown = format!("{before:?}");
    for w in written {
        assert!(!shown.contains(w), "the trail shows what someone wrote ({w:?}): {shown}");
    }

    let r = erase(&mut admin, &ann.id).await.expect("erase Annika");
    assert_eq!((r.interactions, r.messages_erased), (2, 4));
    let after = full_audit(&mut admin, audit_req(&[], "", &[])).await;
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    let erased = after.last().unwrap();
    assert_eq!(
        (erased.r#type.as_str(), erased.actor.as_str(), erased.actor_address.as_str()),
        ("contact_erased", "admin:ops", "127.0.0.1")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&erased.details_json).unwrap(),
        json!({"contact_id": ann.id, "interactions": 2, "messages_erased": 4})
    );
    assert_eq!((erased.interaction_id.as_str(), erased.agent_id.as_str(), erased.queue.as_str()), ("", "", ""));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let at = erased.at.expect("when").seconds;
    assert!((now - 60..=now).contains(&at), "erased at {at}, now {now}");
    assert_eq!(ids(&after[..before.len()]), ids(&before), "the other events stay, in their order");
    let shown = format!("{after:?}");
    for w in written.iter().chain(&personal) {
        assert!(!shown.contains(w), "the trail shows {w:?} of an erased contact: {shown}");
    }
    assert_eq!(full_audit(&mut admin, audit_req(&[], "admin:ops", &["contact_erased"])).await, vec![erased.clone()]);
}
