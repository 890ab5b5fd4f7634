//! The event log's delivery to the CRM: its consumer group, the lease of the one deliverer,
//! acknowledging and trimming, dead letters; and the customer versions screen-pop caches check.

use std::time::Duration;

use redis::AsyncCommands;
use switchboard_model::{Channel, EventKind};

use super::instances::Lease;
use crate::{DedicatedConnection, Engine, Result, events};

/// One event of the event log (the `events` stream), whose entries hold the events of one routing
/// call each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Unique within the routing domain, time-ordered: the stream entry's id for its first event,
    /// `<entry>.<n>` for the n-th after it.
    pub id: String,
    /// The stream entry holding it: what a reader acknowledges, or resumes after.
    pub entry: String,
    /// The entry's last event: acknowledging the entry once this one is delivered loses nothing.
    pub ends_entry: bool,
    pub typ: String,
    pub interaction_id: String,
    pub agent_id: String,
    pub queue: String,
    pub at_ms: u64,
    /// JSON object.
    pub details: String,
    /// Who asked for the change (`role:name`), for admin, supervisor and API actions; empty for
    /// what the routing does on its own.
    pub by: String,
    /// The caller's address, when known.
    pub from: String,
}

impl LoggedEvent {
    /// None for a kind this build does not know (a newer instance wrote it): such an event is
    /// still delivered, as its wire name.
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::parse(&self.typ)
    }

    /// The entry to acknowledge once this event is delivered: its own, if it is the entry's last.
    pub fn acknowledges(&self) -> Option<&str> {
        self.ends_entry.then_some(self.entry.as_str())
    }
}

/// The consumer group the CRM deliverer reads the event log through.
pub const OUTBOX_GROUP: &str = "crm";

impl Engine {
    /// Creates the deliverer's consumer group (from the start of the log, so nothing emitted
    /// before the first deliverer ran is missed).
    pub async fn outbox_init(&self) -> Result<()> {
        let mut con = self.con.clone();
        let r: redis::RedisResult<String> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.keys.events())
            .arg(OUTBOX_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut con)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The next events to deliver, oldest first: first any delivered-but-unacknowledged ones
    /// (this consumer's, and those of a previous deliverer that died), then new ones, waiting up
    /// to `block` for them.
    pub async fn outbox_read(
        &self,
        con: &mut DedicatedConnection,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<LoggedEvent>> {
        let events = self.keys.events();
        // Claim whatever other consumers left pending; only the lease holder reads, so they are dead.
        let _: redis::Value = redis::cmd("XAUTOCLAIM")
            .arg(&events)
            .arg(OUTBOX_GROUP)
            .arg(consumer)
            .arg(0)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .arg("JUSTID")
            .query_async(con)
            .await?;
        let pending = self.outbox_group_read(con, consumer, count, None, "0").await?;
        if !pending.is_empty() {
            return Ok(pending);
        }
        self.outbox_group_read(con, consumer, count, Some(block), ">").await
    }

    async fn outbox_group_read(
        &self,
        con: &mut DedicatedConnection,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
        from: &str,
    ) -> Result<Vec<LoggedEvent>> {
        let mut opts = redis::streams::StreamReadOptions::default().group(OUTBOX_GROUP, consumer).count(count);
        if let Some(b) = block {
            opts = opts.block(b.as_millis() as usize);
        }
        let keys = [self.keys.events()];
        let reply: Option<redis::streams::StreamReadReply> = con.xread_options(&keys, &[from], &opts).await?;
        Ok(events::logged_events(reply))
    }

    /// Acknowledges delivered entries (see [`LoggedEvent::acknowledges`]) and trims the log up to
    /// the last of them.
    pub async fn outbox_ack(&self, ids: &[String]) -> Result<()> {
        let Some(last) = ids.last() else { return Ok(()) };
        let mut con = self.con.clone();
        let events = self.keys.events();
        let mut ack = redis::cmd("XACK");
        ack.arg(&events).arg(OUTBOX_GROUP).arg(ids);
        // MINID keeps entries >= the id given: the successor of the last delivered one.
        let (ms, seq) = last.split_once('-').unwrap_or((last, "0"));
        let next = format!("{ms}-{}", seq.parse::<u64>().unwrap_or(0) + 1);
        let _: (i64, i64) = redis::pipe()
            .add_command(ack)
            .cmd("XTRIM")
            .arg(&events)
            .arg("MINID")
            .arg(next)
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Current version of a customer's CRM data (0 if never bumped).
    pub async fn customer_version(&self, channel: Channel, address: &str) -> Result<u64> {
        let mut con = self.con.clone();
        let v: Option<u64> = con.get(self.keys.popv(&format!("{channel}|{address}"))).await?;
        Ok(v.unwrap_or(0))
    }

    /// Marks customers whose CRM data changed (new events acknowledged by the CRM).
    pub async fn bump_customer_versions(&self, customers: &[(Channel, String)]) -> Result<()> {
        if customers.is_empty() {
            return Ok(());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for (c, a) in customers {
            let k = self.keys.popv(&format!("{c}|{a}"));
            pipe.incr(&k, 1).ignore().expire(&k, 86_400).ignore();
        }
        let _: () = pipe.query_async(&mut con).await?;
        Ok(())
    }

    /// Parks an event the CRM refused as invalid, then acknowledges it, so the log moves on and
    /// an operator can still see (and replay) it.
    pub async fn outbox_dead_letter(&self, e: &LoggedEvent, reason: &str) -> Result<()> {
        let mut con = self.con.clone();
        let _: String = redis::cmd("XADD")
            .arg(self.keys.events_dead())
            .arg("*")
            .arg(&[
                ("id", e.id.as_str()),
                ("type", e.typ.as_str()),
                ("ix", e.interaction_id.as_str()),
                ("agent", e.agent_id.as_str()),
                ("queue", e.queue.as_str()),
                ("at", &e.at_ms.to_string()),
                ("details", e.details.as_str()),
                ("reason", reason),
            ])
            .query_async(&mut con)
            .await?;
        match e.acknowledges() {
            Some(entry) => self.outbox_ack(&[entry.to_string()]).await,
            None => Ok(()),
        }
    }

    /// Events not yet delivered (the log is trimmed as they are).
    pub async fn outbox_backlog(&self) -> Result<u64> {
        let mut con = self.con.clone();
        Ok(con.xlen(self.keys.events()).await?)
    }

    /// Takes or renews the event-log delivery lease; true while this instance holds it.
    pub async fn outbox_lease(&self, instance: &str, ttl: Duration) -> Result<bool> {
        self.lease(Lease::Outbox, instance, Some(ttl.as_millis() as u64)).await
    }
}
