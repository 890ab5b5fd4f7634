//! Right to erasure, and the tombstones that keep it erased.
//!
//! Events reach the store at least once and some time after they happened: the outbox may still
//! hold a contact's events when the contact is erased, and a redelivery may come days later. So
//! erasure leaves tombstones (`erasures`, migration 0003): one per interaction of the contact, and
//! one per identity it had, as a hash rather than the address. An event of a tombstoned
//! interaction is kept without its details; a `created` event for a tombstoned identity that
//! happened before the erasure tombstones its interaction too instead of linking (or creating) a
//! contact. A customer who gets in touch after the erasure is a new contact.

use sqlx::Row;
use switchboard_model::access::secret_hash;
use switchboard_model::{Actor, Channel, EventKind};

use super::{CONTACT_ERASED, CrmDb, CrmError, LogEvent, Result, channel_of_kind, identity_kind, now_ms};

/// What an erased event's details become.
const ERASED_DETAILS: &str = r#"{"erased":true}"#;

/// What an erasure did, for the caller that goes on to erase copies elsewhere (Switchboard's
/// threads in Redis): the counts, and the contact's interactions and identities as they were.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Erasure {
    pub interactions: u32,
    pub messages_erased: u32,
    pub interaction_ids: Vec<String>,
    /// Normalized, as the store kept them.
    pub identities: Vec<(Channel, String)>,
}

/// The tombstone of an identity: a hash, so the list of erased customers is no list of their
/// addresses.
fn identity_tombstone(kind: &str, address: &str) -> String {
    secret_hash(&format!("switchboard-erased-identity\0{kind}\0{address}"))
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl CrmDb {
    /// Right to erasure, on behalf of `by`. The erasure joins the audit trail in the same
    /// transaction: no erasure without its record, and the record names only ids and counts,
    /// never what was erased.
    pub async fn erase_contact(&self, id: &str, by: &Actor) -> Result<Erasure> {
        let mut tx = self.write_tx().await?;
        self.lock_log(&mut tx).await?;
        let exists = sqlx::query("SELECT 1 FROM contacts WHERE id = $1 AND erased = 0")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(CrmError::NotFound(format!("contact_id: no contact {id:?}")));
        }
        let now = now_ms();
        let interaction_ids: Vec<String> = sqlx::query("SELECT id FROM interactions WHERE contact_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let identities: Vec<(String, String)> =
            sqlx::query("SELECT kind, address FROM identities WHERE contact_id = $1 ORDER BY kind, address")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()?;
        for ix in &interaction_ids {
            Self::tombstone(&mut tx, "interaction", ix, now).await?;
        }
        for (kind, address) in &identities {
            Self::tombstone(&mut tx, "identity", &identity_tombstone(kind, address), now).await?;
        }
        let msgs = sqlx::query(
            "DELETE FROM messages WHERE interaction_id IN (SELECT id FROM interactions WHERE contact_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE events SET details = $2 \
             WHERE interaction_id IN (SELECT id FROM interactions WHERE contact_id = $1) \
             AND type IN ('created', 'message_in', 'message_out', 'message_system', 'completed', 'disposition', \
             'abandoned', 'ended_by_customer')",
        )
        .bind(id)
        .bind(ERASED_DETAILS)
        .execute(&mut *tx)
        .await?;
        let ixs = sqlx::query(
            "UPDATE interactions SET customer_address = '', identity = '', summary = '', notes = '' WHERE contact_id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM identities WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("UPDATE contacts SET name = '', fields = '{}', erased = 1, updated_ms = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let (interactions, messages_erased) = (ixs as u32, msgs as u32);
        let details =
            serde_json::json!({ "contact_id": id, "interactions": interactions, "messages_erased": messages_erased });
        let seq = Self::next_received_seq(&mut tx).await?;
        sqlx::query(
            "INSERT INTO events (id, type, at_ms, details, received_ms, received_seq, actor, actor_address, audit) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)",
        )
        .bind(format!("crm:{}", uuid::Uuid::now_v7()))
        .bind(CONTACT_ERASED)
        .bind(now)
        .bind(details.to_string())
        .bind(now)
        .bind(seq)
        .bind(&by.who)
        .bind(&by.from)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let identities =
            identities.into_iter().filter_map(|(kind, address)| Some((channel_of_kind(&kind)?, address))).collect();
        Ok(Erasure { interactions, messages_erased, interaction_ids, identities })
    }

    async fn tombstone(tx: &mut Tx, kind: &str, key: &str, at_ms: i64) -> Result<()> {
        sqlx::query("INSERT INTO erasures (kind, id, erased_ms) VALUES ($1, $2, $3) ON CONFLICT (kind, id) DO NOTHING")
            .bind(kind)
            .bind(key)
            .bind(at_ms)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn tombstoned(tx: &mut Tx, kind: &str, key: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT erased_ms FROM erasures WHERE kind = $1 AND id = $2")
            .bind(kind)
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// The event as it may be stored: blanked if it belongs to an erased interaction (or starts
    /// one for an erased customer before the erasure). An `erased` event (Switchboard erased its
    /// own copy of the interaction) tombstones the interaction and blanks what was stored of it.
    pub(super) async fn unless_erased(&self, tx: &mut Tx, e: &LogEvent) -> Result<Option<LogEvent>> {
        if e.interaction_id.is_empty() {
            return Ok(None);
        }
        let ix = e.interaction_id.as_str();
        if e.kind() == Some(EventKind::Erased) {
            Self::tombstone(tx, "interaction", ix, e.at_ms).await?;
            self.blank_interaction(tx, ix).await?;
            return Ok(Some(blank(e)));
        }
        if Self::tombstoned(tx, "interaction", ix).await?.is_some() {
            return Ok(Some(blank(e)));
        }
        if e.kind() != Some(EventKind::Created) {
            return Ok(None);
        }
        let Some(ch) = e.channel else { return Ok(None) };
        let Ok(address) = self.norm(ch, &e.customer_address) else { return Ok(None) };
        let key = identity_tombstone(identity_kind(ch), &address);
        match Self::tombstoned(tx, "identity", &key).await? {
            Some(erased_ms) if e.at_ms <= erased_ms => {
                Self::tombstone(tx, "interaction", ix, erased_ms).await?;
                Ok(Some(blank(e)))
            }
            _ => Ok(None),
        }
    }

    /// What the store holds of one interaction that was erased after it arrived: its messages,
    /// its events' details and the customer's part of its row. The row stays (anonymous counts);
    /// it stays in an erased contact's history but leaves a live contact it had joined.
    async fn blank_interaction(&self, tx: &mut Tx, ix: &str) -> Result<()> {
        sqlx::query("DELETE FROM messages WHERE interaction_id = $1").bind(ix).execute(&mut **tx).await?;
        sqlx::query("UPDATE events SET details = $2 WHERE interaction_id = $1")
            .bind(ix)
            .bind(ERASED_DETAILS)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "UPDATE interactions SET customer_address = '', identity_kind = '', identity = '', summary = '', notes = '', \
             contact_id = CASE WHEN contact_id IN (SELECT id FROM contacts WHERE erased = 1) THEN contact_id END \
             WHERE id = $1",
        )
        .bind(ix)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// The event without anything that could identify the customer or say what was written.
fn blank(e: &LogEvent) -> LogEvent {
    LogEvent {
        customer_address: String::new(),
        details: serde_json::from_str(ERASED_DETAILS).expect("constant JSON"),
        ..e.clone()
    }
}

/// Whether an event's details were blanked by an erasure: nothing of it is projected.
pub(super) fn is_blanked(e: &LogEvent) -> bool {
    e.details.get("erased") == Some(&serde_json::Value::Bool(true))
}
