//! The built-in CRM store on sqlx: a SQLite file by default, PostgreSQL for a `postgres://` URL.
//! One portable schema (`migrations/crm/`), embedded and applied at start.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::identity::{self, IdentityError};
use switchboard_model::{Channel, Contact, EventKind, HistoryEntry};

mod erasure;
mod export;
pub use erasure::Erasure;
pub use export::{Arrival, ArrivalCounts, Fate, customer_left};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/crm");

pub const DEFAULT_HISTORY_LIMIT: u32 = 10;
pub const MAX_HISTORY_LIMIT: u32 = 100;
pub const MAX_EVENTS_PER_BATCH: usize = 1000;
pub const DEFAULT_AUDIT_LIMIT: u32 = 100;
pub const MAX_AUDIT_LIMIT: u32 = 1000;
pub const MAX_AUDIT_TYPES: usize = 64;
/// Generous: a JWT subject can be long, and an event refused for its actor would leave the trail.
const MAX_ACTOR_LEN: usize = 1024;
const MAX_ACTOR_ADDRESS_LEN: usize = 128;
/// Details fields that hold what customers and agents wrote (message bodies, email subjects, wrap-up
/// notes), which the audit trail never shows.
pub const WRITTEN_FIELDS: &[&str] = &["body", "subject", "notes"];
/// The store's own audit event: a contact was erased (EraseContact).
pub const CONTACT_ERASED: &str = "contact_erased";
/// Kinds that belong to the audit trail even without an actor: sessions begin and end, instances
/// die and take their sessions with them.
const AUDIT_KINDS: &[EventKind] = &[
    EventKind::Login,
    EventKind::Logout,
    EventKind::Disconnected,
    EventKind::InstanceLost,
    EventKind::InstanceRestarted,
];
const SUMMARY_CHARS: usize = 160;

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<IdentityError> for CrmError {
    fn from(e: IdentityError) -> Self {
        CrmError::Invalid(e.0)
    }
}

pub type Result<T, E = CrmError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct CrmOptions {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://user@host:port/db`.
    pub database_url: String,
    /// ISO country code for phone numbers written without one.
    pub default_region: Option<String>,
    /// Create a contact the first time an unknown customer gets in touch.
    pub create_unknown_contacts: bool,
}

/// One interaction-log event, as the routing core emits it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    pub id: String,
    pub interaction_id: String,
    pub typ: String,
    pub at_ms: i64,
    pub agent_id: String,
    pub queue: String,
    pub channel: Option<Channel>,
    pub customer_address: String,
    pub details: serde_json::Value,
    /// Who asked for the change (`role:name`); empty for what the routing did on its own.
    pub actor: String,
    /// The actor's IP address, when known.
    pub actor_address: String,
}

impl LogEvent {
    /// None for a kind this store does not project (it is still kept in the log).
    fn kind(&self) -> Option<EventKind> {
        EventKind::parse(&self.typ)
    }

    /// Whether the event belongs to the audit trail (ListAuditEvents).
    pub fn is_audit(&self) -> bool {
        !self.actor.is_empty() || self.typ == CONTACT_ERASED || self.kind().is_some_and(|k| AUDIT_KINDS.contains(&k))
    }
}

/// What the audit trail is asked for; every filter narrows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Events at or after this time (ms).
    pub since_ms: Option<i64>,
    /// Events before this time (ms).
    pub until_ms: Option<i64>,
    /// Only this actor (exact); empty: any.
    pub actor: String,
    /// Only these types; empty: any.
    pub types: Vec<String>,
    /// 0: [`DEFAULT_AUDIT_LIMIT`]; capped at [`MAX_AUDIT_LIMIT`].
    pub limit: u32,
    /// From a previous page; empty: from the start.
    pub page_token: String,
}

/// Where a page of the audit trail ended: the last event's place in arrival order.
fn audit_token(seq: i64, id: &str) -> String {
    format!("{seq}.{id}")
}

fn parse_audit_token(token: &str) -> Result<(i64, String)> {
    let bad = || CrmError::Invalid("page_token: not a token this store issued".into());
    let (seq, id) = token.split_once('.').ok_or_else(bad)?;
    let seq = seq.parse::<i64>().map_err(|_| bad())?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok((seq, id.to_string()))
}

#[derive(Clone)]
pub struct CrmDb {
    pool: AnyPool,
    opts: CrmOptions,
}

/// Voice and SMS reach the same phone: one identity for both.
pub fn identity_kind(channel: Channel) -> &'static str {
    match channel {
        Channel::Voice | Channel::Sms => "phone",
        Channel::Email => "email",
        Channel::Chat => "chat",
    }
}

fn channel_of_kind(kind: &str) -> Option<Channel> {
    match kind {
        "phone" => Some(Channel::Voice),
        "email" => Some(Channel::Email),
        "chat" => Some(Channel::Chat),
        _ => None,
    }
}

/// How a call went, for its history line: "Call: talked 3:20, on hold 0:10; the caller hung up
/// (normal_clearing)".
fn call_summary(talk_ms: u64, hold_ms: u64, by: &str, cause: &str) -> String {
    let mmss = |ms: u64| format!("{}:{:02}", ms / 60_000, ms / 1000 % 60);
    let mut out = format!("Call: talked {}", mmss(talk_ms));
    if hold_ms > 0 {
        out.push_str(&format!(", on hold {}", mmss(hold_ms)));
    }
    match by {
        "caller" => out.push_str("; the caller hung up"),
        "agent" => out.push_str("; the agent hung up"),
        _ => out.push_str("; ended"),
    }
    let cause: String = cause.chars().filter(|c| !c.is_control()).take(64).collect();
    if !cause.is_empty() {
        out.push_str(&format!(" ({cause})"));
    }
    out
}

/// The most fields a contact keeps.
pub const MAX_FIELDS: usize = 100;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl CrmDb {
    pub async fn open(opts: CrmOptions) -> Result<CrmDb> {
        sqlx::any::install_default_drivers();
        let sqlite = opts.database_url.starts_with("sqlite:");
        if !sqlite && !opts.database_url.starts_with("postgres://") && !opts.database_url.starts_with("postgresql://") {
            return Err(CrmError::Invalid(format!(
                "crm.database: expected a sqlite:// or postgres:// URL, got {:?}",
                opts.database_url.split(':').next().unwrap_or_default()
            )));
        }
        if let Some(r) = &opts.default_region
            && r.parse::<phonenumber::country::Id>().is_err()
        {
            return Err(CrmError::Invalid(format!("crm.default_region: {r:?} is not a country code")));
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets readers (screen-pops) run while the log writer writes.
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&opts.database_url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(CrmDb { pool, opts })
    }

    pub fn options(&self) -> &CrmOptions {
        &self.opts
    }

    fn is_sqlite(&self) -> bool {
        self.opts.database_url.starts_with("sqlite:")
    }

    /// A write transaction. SQLite's default deferred BEGIN lets two writers both read and then
    /// fail to upgrade their locks; IMMEDIATE takes the write lock up front (and waits for it).
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        if self.is_sqlite() {
            Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
        } else {
            Ok(self.pool.begin().await?)
        }
    }

    /// Serializes the writers that add to the log (it is taken first, before any row lock, so it
    /// cannot deadlock). Each numbers its events after the highest `received_seq` it reads; were two
    /// to overlap on PostgreSQL, the later commit could hold lower numbers than rows a reader has
    /// paged past, and the audit trail's pages would skip them. SQLite's IMMEDIATE already does this.
    async fn lock_log(&self, tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> Result<()> {
        if !self.is_sqlite() {
            // EXCLUSIVE lets plain reads (history, the audit query) through.
            sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE").execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// The next number in arrival order, under [`Self::lock_log`].
    async fn next_received_seq(tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> Result<i64> {
        let last: i64 =
            sqlx::query("SELECT COALESCE(MAX(received_seq), 0) FROM events").fetch_one(&mut **tx).await?.try_get(0)?;
        Ok(last + 1)
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn norm(&self, channel: Channel, address: &str) -> Result<String> {
        Ok(identity::normalize(channel, address, self.opts.default_region.as_deref())?)
    }

    pub async fn find_contact(&self, channel: Channel, address: &str) -> Result<Contact> {
        let address = self.norm(channel, address)?;
        let row = sqlx::query("SELECT contact_id FROM identities WHERE kind = $1 AND address = $2")
            .bind(identity_kind(channel))
            .bind(&address)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => self.get_contact(&r.try_get::<String, _>(0)?).await,
            None => Err(CrmError::NotFound(format!("identity: no contact with {channel} address {address:?}"))),
        }
    }

    pub async fn get_contact(&self, id: &str) -> Result<Contact> {
        let row =
            sqlx::query("SELECT id, name, fields, created_ms, updated_ms FROM contacts WHERE id = $1 AND erased = 0")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| CrmError::NotFound(format!("contact_id: no contact {id:?}")))?;
        let identities =
            sqlx::query("SELECT kind, address FROM identities WHERE contact_id = $1 ORDER BY kind, address")
                .bind(id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .filter_map(|r| {
                    let ch: String = r.try_get(0).ok()?;
                    Some((channel_of_kind(&ch)?, r.try_get::<String, _>(1).ok()?))
                })
                .collect();
        let fields: String = row.try_get(2)?;
        Ok(Contact {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            identities,
            fields: serde_json::from_str(&fields).unwrap_or_default(),
            created_ms: row.try_get(3)?,
            updated_ms: row.try_get(4)?,
        })
    }

    /// Creates or updates a contact. Without an id, the contact owning any of `identities` is
    /// updated, else a new one is created.
    pub async fn upsert_contact(
        &self,
        id: Option<&str>,
        name: &str,
        identities: &[(Channel, String)],
        fields: &BTreeMap<String, String>,
    ) -> Result<Contact> {
        switchboard_model::validate_len("name", name, switchboard_model::MAX_NAME_LEN)
            .map_err(|e| CrmError::Invalid(e.to_string()))?;
        if identities.len() > 50 {
            return Err(CrmError::Invalid("identities: at most 50".into()));
        }
        if fields.len() > MAX_FIELDS {
            return Err(CrmError::Invalid(format!("fields: at most {MAX_FIELDS}")));
        }
        for (k, v) in fields {
            if k.is_empty() || k.len() > 128 {
                return Err(CrmError::Invalid(format!("fields: key {k:?} must be 1..=128 bytes")));
            }
            switchboard_model::validate_len(&format!("fields.{k}"), v, 4096)
                .map_err(|e| CrmError::Invalid(e.to_string()))?;
        }
        let mut normalized = Vec::new();
        for (i, (ch, a)) in identities.iter().enumerate() {
            let n = self.norm(*ch, a).map_err(|e| match e {
                CrmError::Invalid(m) => {
                    CrmError::Invalid(format!("identities[{i}].{}", m.strip_prefix("identity.").unwrap_or(&m)))
                }
                other => other,
            })?;
            normalized.push((identity_kind(*ch), n));
        }
        normalized.sort();
        normalized.dedup();
        // Two first contacts of one new customer can race; the loser sees the winner's identity
        // on its next attempt and updates that contact instead of creating a second one.
        for _ in 0..5 {
            if let Some(target) = self.upsert_once(id, name, &normalized, fields).await? {
                return self.get_contact(&target).await;
            }
        }
        Err(CrmError::Conflict("identities: changed concurrently too often; try again".into()))
    }

    /// One attempt; None when a concurrent upsert took one of the identities first.
    async fn upsert_once(
        &self,
        id: Option<&str>,
        name: &str,
        normalized: &[(&'static str, String)],
        fields: &BTreeMap<String, String>,
    ) -> Result<Option<String>> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        // Which contacts own the given identities?
        let mut owners = BTreeMap::new();
        for (kind, a) in normalized {
            if let Some(r) = sqlx::query("SELECT contact_id FROM identities WHERE kind = $1 AND address = $2")
                .bind(*kind)
                .bind(a)
                .fetch_optional(&mut *tx)
                .await?
            {
                owners.insert((*kind, a.clone()), r.try_get::<String, _>(0)?);
            }
        }
        let target = match id {
            Some(id) => {
                let exists = sqlx::query("SELECT 1 FROM contacts WHERE id = $1 AND erased = 0")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if !exists {
                    return Err(CrmError::NotFound(format!("id: no contact {id:?}")));
                }
                id.to_string()
            }
            None => {
                let mut distinct: Vec<&String> = owners.values().collect();
                distinct.sort();
                distinct.dedup();
                match distinct.as_slice() {
                    [] => {
                        let id = uuid::Uuid::now_v7().to_string();
                        sqlx::query("INSERT INTO contacts (id, name, fields, created_ms, updated_ms) VALUES ($1, '', '{}', $2, $2)")
                            .bind(&id)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        id
                    }
                    [one] => (*one).clone(),
                    _ => {
                        return Err(CrmError::Conflict(
                            "identities: they belong to different contacts; give the contact id".into(),
                        ));
                    }
                }
            }
        };
        for ((ch, a), owner) in &owners {
            if *owner != target {
                return Err(CrmError::Conflict(format!("identities: {ch} {a:?} belongs to contact {owner}")));
            }
        }
        for (kind, a) in normalized {
            let inserted = sqlx::query(
                "INSERT INTO identities (kind, address, contact_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (kind, address) DO NOTHING",
            )
            .bind(*kind)
            .bind(a)
            .bind(&target)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 && !owners.contains_key(&(*kind, a.clone())) {
                // Taken since we looked: start over (the transaction rolls back on drop).
                return Ok(None);
            }
            // Interactions logged before this contact existed join its history now.
            sqlx::query(
                "UPDATE interactions SET contact_id = $1 WHERE contact_id IS NULL AND identity_kind = $2 AND identity = $3",
            )
            .bind(&target)
            .bind(*kind)
            .bind(a)
            .execute(&mut *tx)
            .await?;
        }
        // Fields are merged read-modify-write: lock the row so concurrent merges do not lose
        // each other's fields (SQLite's IMMEDIATE transaction already serializes writers).
        let select = if self.is_sqlite() {
            "SELECT fields FROM contacts WHERE id = $1"
        } else {
            "SELECT fields FROM contacts WHERE id = $1 FOR UPDATE"
        };
        let cur: String = sqlx::query(select).bind(&target).fetch_one(&mut *tx).await?.try_get(0)?;
        let mut merged: BTreeMap<String, String> = serde_json::from_str(&cur).unwrap_or_default();
        for (k, v) in fields {
            if v.is_empty() {
                merged.remove(k);
            } else {
                merged.insert(k.clone(), v.clone());
            }
        }
        if merged.len() > MAX_FIELDS {
            return Err(CrmError::Invalid(format!("fields: a contact keeps at most {MAX_FIELDS} fields")));
        }
        sqlx::query("UPDATE contacts SET name = CASE WHEN $2 = '' THEN name ELSE $2 END, fields = $3, updated_ms = $4 WHERE id = $1")
            .bind(&target)
            .bind(name)
            .bind(serde_json::to_string(&merged).expect("fields serialize"))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(target))
    }

    /// Newest first; the cursor continues after the last entry returned.
    pub async fn history(
        &self,
        contact_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<HistoryEntry>, Option<String>)> {
        let limit = if limit == 0 { DEFAULT_HISTORY_LIMIT } else { limit.min(MAX_HISTORY_LIMIT) };
        let (c_ms, c_id) = match cursor.filter(|c| !c.is_empty()) {
            Some(c) => {
                let (ms, id) = c.split_once(':').ok_or_else(|| CrmError::Invalid("cursor: malformed".into()))?;
                (ms.parse::<i64>().map_err(|_| CrmError::Invalid("cursor: malformed".into()))?, id.to_string())
            }
            None => (i64::MAX, String::new()),
        };
        let exists = sqlx::query("SELECT 1 FROM contacts WHERE id = $1")
            .bind(contact_id)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        if !exists {
            return Err(CrmError::NotFound(format!("contact_id: no contact {contact_id:?}")));
        }
        let rows = sqlx::query(
            "SELECT id, channel, queue, agent_id, started_ms, ended_ms, outcome, disposition, notes, summary \
             FROM interactions WHERE contact_id = $1 \
             AND (started_ms < $2 OR (started_ms = $2 AND id < $3)) \
             ORDER BY started_ms DESC, id DESC LIMIT $4",
        )
        .bind(contact_id)
        .bind(c_ms)
        .bind(&c_id)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut entries: Vec<HistoryEntry> = rows.iter().map(history_row).collect::<Result<_>>()?;
        let next = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries.last().map(|e| format!("{}:{}", e.started_ms, e.interaction_id))
        } else {
            None
        };
        Ok((entries, next))
    }

    /// Stores a batch of events in order; a repeated event id is skipped. Returns (stored, duplicates).
    pub async fn log_events(&self, events: &[LogEvent]) -> Result<(u32, u32)> {
        if events.len() > MAX_EVENTS_PER_BATCH {
            return Err(CrmError::Invalid(format!("events: at most {MAX_EVENTS_PER_BATCH} per call")));
        }
        for (i, e) in events.iter().enumerate() {
            if e.id.is_empty() || e.id.len() > 128 {
                return Err(CrmError::Invalid(format!("events[{i}].id: must be 1..=128 bytes")));
            }
            if e.typ.is_empty() || e.typ.len() > 64 {
                return Err(CrmError::Invalid(format!("events[{i}].type: must be 1..=64 bytes")));
            }
            switchboard_model::validate_len(&format!("events[{i}].interaction_id"), &e.interaction_id, 128)
                .map_err(|x| CrmError::Invalid(x.to_string()))?;
            if !e.details.is_object() {
                return Err(CrmError::Invalid(format!("events[{i}].details_json: must be a JSON object")));
            }
            switchboard_model::validate_len(&format!("events[{i}].actor"), &e.actor, MAX_ACTOR_LEN)
                .map_err(|x| CrmError::Invalid(x.to_string()))?;
            switchboard_model::validate_len(
                &format!("events[{i}].actor_address"),
                &e.actor_address,
                MAX_ACTOR_ADDRESS_LEN,
            )
            .map_err(|x| CrmError::Invalid(x.to_string()))?;
        }
        let (mut stored, mut dups) = (0, 0);
        let received = now_ms();
        let mut tx = self.write_tx().await?;
        self.lock_log(&mut tx).await?;
        let first = Self::next_received_seq(&mut tx).await?;
        for (i, e) in events.iter().enumerate() {
            let blanked = self.unless_erased(&mut tx, e).await?;
            let e = blanked.as_ref().unwrap_or(e);
            let details = e.details.to_string();
            let r = sqlx::query(
                "INSERT INTO events (id, interaction_id, type, at_ms, agent_id, queue, details, received_ms, received_seq, \
                 actor, actor_address, audit) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&e.id)
            .bind(&e.interaction_id)
            .bind(&e.typ)
            .bind(e.at_ms)
            .bind(&e.agent_id)
            .bind(&e.queue)
            .bind(&details)
            .bind(received)
            .bind(first + i as i64)
            .bind(&e.actor)
            .bind(&e.actor_address)
            .bind(i32::from(e.is_audit()))
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 0 {
                dups += 1;
                continue;
            }
            stored += 1;
            // An opt-out may concern no interaction (STOP with no conversation open): it still
            // marks the customer's contact.
            if !e.interaction_id.is_empty() || e.kind() == Some(EventKind::OptOut) {
                self.project(&mut tx, e).await?;
            }
        }
        tx.commit().await?;
        Ok((stored, dups))
    }

    /// Folds one new event into the interaction's history row.
    async fn project(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, e: &LogEvent) -> Result<()> {
        let s = |k: &str| e.details.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let ix = e.interaction_id.as_str();
        if e.kind() == Some(EventKind::Created) {
            let channel = e.channel.map(Channel::as_str).unwrap_or_default();
            sqlx::query(
                "INSERT INTO interactions (id, channel, customer_address, queue, started_ms) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(ix)
            .bind(channel)
            .bind(&e.customer_address)
            .bind(&e.queue)
            .bind(e.at_ms)
            .execute(&mut **tx)
            .await?;
            // An address that does not normalize (a malformed caller id) is logged without a contact.
            let identity = e.channel.and_then(|ch| Some((identity_kind(ch), self.norm(ch, &e.customer_address).ok()?)));
            if let Some((kind, address)) = &identity {
                sqlx::query("UPDATE interactions SET identity_kind = $2, identity = $3 WHERE id = $1")
                    .bind(ix)
                    .bind(*kind)
                    .bind(address)
                    .execute(&mut **tx)
                    .await?;
            }
            if let Some((kind, address)) = identity
                && let Some(contact) = self.contact_for(tx, kind, &address, e.at_ms).await?
            {
                sqlx::query("UPDATE interactions SET contact_id = $2 WHERE id = $1")
                    .bind(ix)
                    .bind(contact)
                    .execute(&mut **tx)
                    .await?;
            }
            return Ok(());
        }
        if !e.queue.is_empty() {
            sqlx::query("UPDATE interactions SET queue = $2 WHERE id = $1")
                .bind(ix)
                .bind(&e.queue)
                .execute(&mut **tx)
                .await?;
        }
        match e.kind() {
            Some(EventKind::Accepted) => {
                sqlx::query("UPDATE interactions SET agent_id = $2 WHERE id = $1")
                    .bind(ix)
                    .bind(&e.agent_id)
                    .execute(&mut **tx)
                    .await?;
            }
            Some(EventKind::MessageIn | EventKind::MessageOut | EventKind::MessageSystem) if erasure::is_blanked(e) => {
            }
            Some(kind @ (EventKind::MessageIn | EventKind::MessageOut | EventKind::MessageSystem)) => {
                let seq = e.details.get("seq").and_then(serde_json::Value::as_i64).unwrap_or(0);
                let body = s("body");
                let author = match kind {
                    EventKind::MessageIn => "customer",
                    EventKind::MessageOut => "agent",
                    _ => "system",
                };
                sqlx::query(
                    "INSERT INTO messages (interaction_id, seq, author, agent_id, body, at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (interaction_id, seq) DO NOTHING",
                )
                .bind(ix)
                .bind(seq)
                .bind(author)
                .bind(&e.agent_id)
                .bind(&body)
                .bind(e.at_ms)
                .execute(&mut **tx)
                .await?;
                if kind == EventKind::MessageIn {
                    let summary: String = body.chars().take(SUMMARY_CHARS).collect();
                    sqlx::query("UPDATE interactions SET summary = $2 WHERE id = $1 AND summary = ''")
                        .bind(ix)
                        .bind(summary)
                        .execute(&mut **tx)
                        .await?;
                }
            }
            Some(EventKind::Completed) => {
                sqlx::query(
                    "UPDATE interactions SET ended_ms = $2, outcome = 'completed', disposition = $3, notes = $4, \
                     agent_id = CASE WHEN $5 = '' THEN agent_id ELSE $5 END WHERE id = $1",
                )
                .bind(ix)
                .bind(e.at_ms)
                .bind(s("disposition"))
                .bind(s("notes"))
                .bind(&e.agent_id)
                .execute(&mut **tx)
                .await?;
            }
            Some(EventKind::Disposition) => {
                sqlx::query("UPDATE interactions SET disposition = $2, notes = $3 WHERE id = $1")
                    .bind(ix)
                    .bind(s("disposition"))
                    .bind(s("notes"))
                    .execute(&mut **tx)
                    .await?;
            }
            Some(EventKind::Abandoned) => {
                sqlx::query("UPDATE interactions SET ended_ms = $2, outcome = 'abandoned', notes = $3 WHERE id = $1")
                    .bind(ix)
                    .bind(e.at_ms)
                    .bind(s("reason"))
                    .execute(&mut **tx)
                    .await?;
            }
            // The customer's standing with one of our numbers, on their contact (if they have
            // one: an opt-out creates none, and an erased customer has none).
            Some(EventKind::OptOut) if !erasure::is_blanked(e) => {
                let out = e.details.get("opted_out").and_then(serde_json::Value::as_bool).unwrap_or(false);
                let field = format!("sms_opt_out:{}", s("number"));
                if let Ok(address) = self.norm(Channel::Sms, &s("customer")) {
                    self.set_contact_field(tx, identity_kind(Channel::Sms), &address, &field, out.then_some("true"))
                        .await?;
                }
            }
            // A call has no messages to summarize: its history line says how it went.
            Some(EventKind::Released) if !erasure::is_blanked(e) => {
                let n = |k: &str| e.details.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
                sqlx::query("UPDATE interactions SET summary = $2 WHERE id = $1 AND summary = ''")
                    .bind(ix)
                    .bind(call_summary(n("talk_ms"), n("hold_ms"), &s("by"), &s("cause")))
                    .execute(&mut **tx)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Sets (or, with None, removes) one field of the contact an identity belongs to, if any.
    async fn set_contact_field(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        kind: &str,
        address: &str,
        field: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let row = sqlx::query("SELECT contact_id FROM identities WHERE kind = $1 AND address = $2")
            .bind(kind)
            .bind(address)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else { return Ok(()) };
        let contact: String = row.try_get(0)?;
        let select = if self.is_sqlite() {
            "SELECT fields FROM contacts WHERE id = $1"
        } else {
            "SELECT fields FROM contacts WHERE id = $1 FOR UPDATE"
        };
        let Some(cur) = sqlx::query(select).bind(&contact).fetch_optional(&mut **tx).await? else { return Ok(()) };
        let cur: String = cur.try_get(0)?;
        let mut fields: BTreeMap<String, String> = serde_json::from_str(&cur).unwrap_or_default();
        match value {
            Some(v) => {
                if fields.len() >= MAX_FIELDS && !fields.contains_key(field) {
                    return Ok(());
                }
                fields.insert(field.to_string(), v.to_string());
            }
            None => {
                fields.remove(field);
            }
        }
        sqlx::query("UPDATE contacts SET fields = $2, updated_ms = $3 WHERE id = $1")
            .bind(&contact)
            .bind(serde_json::to_string(&fields).expect("fields serialize"))
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The contact for a normalized identity; unknown customers get one when configured so.
    async fn contact_for(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        kind: &str,
        address: &str,
        at_ms: i64,
    ) -> Result<Option<String>> {
        let find = async |tx: &mut sqlx::Transaction<'_, sqlx::Any>| -> Result<Option<String>> {
            let row = sqlx::query("SELECT contact_id FROM identities WHERE kind = $1 AND address = $2")
                .bind(kind)
                .bind(address)
                .fetch_optional(&mut **tx)
                .await?;
            Ok(match row {
                Some(r) => Some(r.try_get(0)?),
                None => None,
            })
        };
        if let Some(id) = find(tx).await? {
            return Ok(Some(id));
        }
        if !self.opts.create_unknown_contacts {
            return Ok(None);
        }
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query("INSERT INTO contacts (id, name, fields, created_ms, updated_ms) VALUES ($1, '', '{}', $2, $2)")
            .bind(&id)
            .bind(at_ms)
            .execute(&mut **tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO identities (kind, address, contact_id) VALUES ($1, $2, $3) ON CONFLICT (kind, address) DO NOTHING",
        )
        .bind(kind)
        .bind(address)
        .bind(&id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Another writer created this customer's contact meanwhile: use that one.
            sqlx::query("DELETE FROM contacts WHERE id = $1").bind(&id).execute(&mut **tx).await?;
            return find(tx).await;
        }
        Ok(Some(id))
    }

    /// A page of the audit trail in arrival order, and the token of the next one (set whenever the
    /// page is not empty, so a reader can come back for what arrives later). What people wrote is
    /// left out ([`WRITTEN_FIELDS`]): the trail says who did what, and reading it is no way to read
    /// conversations.
    pub async fn audit_events(&self, q: &AuditQuery) -> Result<(Vec<LogEvent>, Option<String>)> {
        let limit = if q.limit == 0 { DEFAULT_AUDIT_LIMIT } else { q.limit.min(MAX_AUDIT_LIMIT) };
        if let (Some(since), Some(until)) = (q.since_ms, q.until_ms)
            && until <= since
        {
            return Err(CrmError::Invalid("until: must be after since".into()));
        }
        switchboard_model::validate_len("actor", &q.actor, MAX_ACTOR_LEN)
            .map_err(|x| CrmError::Invalid(x.to_string()))?;
        if q.types.len() > MAX_AUDIT_TYPES {
            return Err(CrmError::Invalid(format!("types: at most {MAX_AUDIT_TYPES}")));
        }
        for (i, t) in q.types.iter().enumerate() {
            if t.is_empty() || t.len() > 64 {
                return Err(CrmError::Invalid(format!("types[{i}]: must be 1..=64 bytes")));
            }
        }
        let (after_seq, after_id) =
            if q.page_token.is_empty() { (0, String::new()) } else { parse_audit_token(&q.page_token)? };
        let mut sql = String::from(
            "SELECT id, interaction_id, type, at_ms, agent_id, queue, details, actor, actor_address, received_seq \
             FROM events WHERE audit = 1 \
             AND received_seq >= $1 AND (received_seq > $1 OR id > $2) \
             AND at_ms >= $3 AND at_ms < $4 AND ($5 = '' OR actor = $5)",
        );
        if !q.types.is_empty() {
            let marks: Vec<String> = (0..q.types.len()).map(|i| format!("${}", i + 7)).collect();
            sql.push_str(&format!(" AND type IN ({})", marks.join(", ")));
        }
        sql.push_str(" ORDER BY received_seq, id LIMIT $6");
        // Safe: the only text added to the statement is numbered placeholders; the values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after_seq)
            .bind(&after_id)
            .bind(q.since_ms.unwrap_or(i64::MIN))
            .bind(q.until_ms.unwrap_or(i64::MAX))
            .bind(&q.actor)
            .bind(i64::from(limit));
        for t in &q.types {
            query = query.bind(t);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut next = None;
        let mut events = Vec::with_capacity(rows.len());
        for r in &rows {
            let details: String = r.try_get(6)?;
            let mut details: serde_json::Value =
                serde_json::from_str(&details).unwrap_or_else(|_| serde_json::json!({}));
            if let Some(d) = details.as_object_mut() {
                for field in WRITTEN_FIELDS {
                    d.remove(*field);
                }
            }
            let id: String = r.try_get(0)?;
            next = Some(audit_token(r.try_get(9)?, &id));
            events.push(LogEvent {
                id,
                interaction_id: r.try_get(1)?,
                typ: r.try_get(2)?,
                at_ms: r.try_get(3)?,
                agent_id: r.try_get(4)?,
                queue: r.try_get(5)?,
                channel: None,
                customer_address: String::new(),
                details,
                actor: r.try_get(7)?,
                actor_address: r.try_get(8)?,
            });
        }
        Ok((events, next))
    }

    /// Message bodies of an interaction, for tests and tools.
    pub async fn messages(&self, interaction_id: &str) -> Result<Vec<(i64, String, String)>> {
        let rows = sqlx::query("SELECT seq, author, body FROM messages WHERE interaction_id = $1 ORDER BY seq")
            .bind(interaction_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// (event id, type) of an interaction in the order they arrived, for tests and tools.
    pub async fn event_types(&self, interaction_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT id, type FROM events WHERE interaction_id = $1 ORDER BY received_seq")
            .bind(interaction_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// (type, details as stored) of an interaction's events, in arrival order.
    pub async fn event_details(&self, interaction_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT type, details FROM events WHERE interaction_id = $1 ORDER BY received_seq")
            .bind(interaction_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Every event stored (the daemons' logs' and the CRM's own, audited or not) in arrival
    /// order: (id, interaction id, type, agent, details as stored), for tests and tools.
    pub async fn all_events(&self) -> Result<Vec<(String, String, String, String, String)>> {
        let rows = sqlx::query("SELECT id, interaction_id, type, agent_id, details FROM events ORDER BY received_seq")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?))).collect()
    }

    pub async fn count_events(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM events").fetch_one(&self.pool).await?.try_get(0)?)
    }
}

fn history_row(r: &AnyRow) -> Result<HistoryEntry> {
    let ch: String = r.try_get(1)?;
    Ok(HistoryEntry {
        interaction_id: r.try_get(0)?,
        channel: Channel::parse(&ch),
        queue: r.try_get(2)?,
        agent_id: r.try_get(3)?,
        started_ms: r.try_get(4)?,
        ended_ms: r.try_get(5)?,
        outcome: r.try_get(6)?,
        disposition: r.try_get(7)?,
        notes: r.try_get(8)?,
        summary: r.try_get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(typ: &str, actor: &str) -> LogEvent {
        LogEvent {
            id: "sb:1-0".into(),
            interaction_id: String::new(),
            typ: typ.into(),
            at_ms: 1,
            agent_id: String::new(),
            queue: String::new(),
            channel: None,
            customer_address: String::new(),
            details: serde_json::json!({}),
            actor: actor.into(),
            actor_address: String::new(),
        }
    }

    #[test]
    fn the_audit_trail_is_what_someone_asked_for_sessions_instances_and_erasures() {
        for typ in ["login", "logout", "disconnected", "instance_lost", "instance_restarted", CONTACT_ERASED] {
            assert!(ev(typ, "").is_audit(), "{typ}");
        }
        for typ in ["offered", "queued", "presence", "message_in", "a_kind_from_a_newer_daemon"] {
            assert!(!ev(typ, "").is_audit(), "{typ}");
            assert!(ev(typ, "supervisor:lead").is_audit(), "{typ} by someone");
        }
    }

    #[test]
    fn a_call_reads_as_how_it_went() {
        assert_eq!(
            call_summary(200_000, 10_000, "caller", "normal_clearing"),
            "Call: talked 3:20, on hold 0:10; the caller hung up (normal_clearing)"
        );
        assert_eq!(call_summary(59_999, 0, "", ""), "Call: talked 0:59; ended");
        assert_eq!(call_summary(3_600_000, 0, "agent", "x\ny"), "Call: talked 60:00; the agent hung up (xy)");
    }

    #[test]
    fn page_tokens_round_trip_and_anything_else_is_refused() {
        for id in ["sb:{default}:1700000000000-0", "crm:0191-x.y", "a.b.c"] {
            assert_eq!(parse_audit_token(&audit_token(42, id)).unwrap(), (42, id.to_string()));
        }
        for bad in ["", "42", "42.", ".x", "x.y", "1700000000000:ix-1", "-.x"] {
            match parse_audit_token(bad) {
                Err(CrmError::Invalid(m)) => assert!(m.starts_with("page_token:"), "{bad:?}: {m}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
