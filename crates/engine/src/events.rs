//! Reading the interaction log (the `events` stream): the one place that turns its entries into
//! [`LoggedEvent`]s, for a tail that follows it from now (supervisor watches) and for the CRM
//! deliverer's consumer-group reads.

use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};

use crate::{DedicatedConnection, Engine, LoggedEvent, Result};

/// The log's events in a stream read reply, in order. An entry holds the events of one routing
/// call (`emit` in `lib.lua`): the first under its plain field names, the n-th after it under
/// `n.` (`at`, `by` and `from` shared); each gets an id of its own, the entry's then `<entry>.n`.
pub(crate) fn logged_events(reply: Option<StreamReadReply>) -> Vec<LoggedEvent> {
    reply.map(|r| r.keys).unwrap_or_default().iter().flat_map(|k| entries_events(&k.ids)).collect()
}

/// The events of these entries of the log, in order.
pub fn entries_events(entries: &[StreamId]) -> Vec<LoggedEvent> {
    let mut out = Vec::new();
    for e in entries {
        expand_entry(e, &mut out);
    }
    out
}

/// The events of one entry of the log, appended to `out`.
fn expand_entry(e: &StreamId, out: &mut Vec<LoggedEvent>) {
    let g = |f: &str| e.get::<String>(f).unwrap_or_default();
    let (at_ms, by, from) = (g("at").parse().unwrap_or(0), g("by"), g("from"));
    let first = out.len();
    out.push(LoggedEvent {
        typ: g("type"),
        interaction_id: g("ix"),
        agent_id: g("agent"),
        queue: g("queue"),
        at_ms,
        details: g("details"),
        by: by.clone(),
        from: from.clone(),
        id: e.id.clone(),
        entry: e.id.clone(),
        ends_entry: false,
    });
    for n in 1.. {
        let Some(typ) = e.get::<String>(&format!("{n}.type")) else { break };
        let f = |name: &str| e.get::<String>(&format!("{n}.{name}")).unwrap_or_default();
        out.push(LoggedEvent {
            typ,
            interaction_id: f("ix"),
            agent_id: f("agent"),
            queue: f("queue"),
            at_ms,
            details: f("details"),
            by: by.clone(),
            from: from.clone(),
            id: format!("{}.{n}", e.id),
            entry: e.id.clone(),
            ends_entry: false,
        });
    }
    if let Some(last) = out.get_mut(first..).and_then(<[LoggedEvent]>::last_mut) {
        last.ends_entry = true;
    }
}

/// Follows the log from where it was when opened, on a connection of its own (reads block).
pub struct EventTail {
    con: DedicatedConnection,
    key: String,
    last: String,
}

impl EventTail {
    /// A tail that yields what is logged from now on.
    pub async fn from_now(engine: &Engine) -> Result<EventTail> {
        let mut con = engine.dedicated_connection().await?;
        let key = engine.keys().events();
        let tail: StreamRangeReply = con.xrevrange_count(&key, "+", "-", 1).await?;
        let last = tail.ids.first().map_or_else(|| "0".to_string(), |e| e.id.clone());
        Ok(EventTail { con, key, last })
    }

    /// What has been logged since the last read, without waiting (up to `count`), and when the
    /// earliest routing timer is due (ms), in one round trip (the simulator's step). With
    /// `stop_clock_at`, the same round trip also stops the routing clock there (see
    /// [`Engine::set_clock`]): the simulator's guess at its next step's time, which saves it a
    /// round trip a step whenever the guess is right.
    pub async fn poll_with_next_timer(
        &mut self,
        engine: &Engine,
        count: usize,
        stop_clock_at: Option<u64>,
    ) -> Result<(Vec<LoggedEvent>, Option<u64>)> {
        let mut pipe = redis::pipe();
        pipe.cmd("XREAD")
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(&self.last)
            .cmd("ZRANGE")
            .arg(engine.keys().timers())
            .arg(0)
            .arg(0)
            .arg("WITHSCORES");
        if let Some(at) = stop_clock_at {
            pipe.cmd("SET").arg(engine.keys().clock()).arg(crate::ops::instances::stopped_clock(at)).ignore();
        }
        let (reply, first): (Option<StreamReadReply>, Vec<(String, f64)>) = pipe.query_async(&mut self.con).await?;
        Ok((self.advance(reply), first.first().map(|(_, due)| *due as u64)))
    }

    /// The next entries, waiting up to `block` for some (up to `count` at once); empty if none.
    pub async fn next(&mut self, block: Duration, count: usize) -> Result<Vec<LoggedEvent>> {
        let opts = StreamReadOptions::default().block(block.as_millis() as usize).count(count);
        let reply: Option<StreamReadReply> =
            self.con.xread_options(&[self.key.as_str()], &[self.last.as_str()], &opts).await?;
        Ok(self.advance(reply))
    }

    /// The entries of a read, the tail moved past them.
    fn advance(&mut self, reply: Option<StreamReadReply>) -> Vec<LoggedEvent> {
        let events = logged_events(reply);
        if let Some(e) = events.last() {
            self.last.clone_from(&e.entry);
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use redis::Value;
    use redis::streams::StreamId;

    use super::expand_entry;

    fn entry(id: &str, fields: &[(&str, &str)]) -> StreamId {
        StreamId {
            id: id.into(),
            map: fields.iter().map(|(k, v)| (k.to_string(), Value::BulkString(v.as_bytes().to_vec()))).collect(),
            milliseconds_elapsed_from_delivery: None,
            delivered_count: None,
        }
    }

    #[test]
    fn an_entry_holds_a_calls_events_each_with_an_id_of_its_own() {
        let e = entry(
            "17-3",
            &[
                ("type", "created"),
                ("ix", "i1"),
                ("agent", ""),
                ("queue", "sales"),
                ("at", "1700"),
                ("details", "{\"channel\":\"chat\"}"),
                ("by", "api:web"),
                ("from", "10.0.0.1"),
                ("1.type", "queued"),
                ("1.ix", "i1"),
                ("1.queue", "sales"),
                ("1.details", "{\"stage\":0}"),
                ("2.type", "offered"),
                ("2.ix", "i1"),
                ("2.agent", "ann"),
                ("2.queue", "sales"),
                ("2.details", "{}"),
            ],
        );
        let mut out = Vec::new();
        expand_entry(&e, &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|e| (e.id.as_str(), e.typ.as_str(), e.agent_id.as_str(), e.at_ms, e.by.as_str(), e.ends_entry))
            .collect();
        assert_eq!(
            got,
            [
                ("17-3", "created", "", 1700, "api:web", false),
                ("17-3.1", "queued", "", 1700, "api:web", false),
                ("17-3.2", "offered", "ann", 1700, "api:web", true),
            ]
        );
        assert!(out.iter().all(|e| e.entry == "17-3" && e.queue == "sales" && e.interaction_id == "i1"));
        assert_eq!(out[1].details, "{\"stage\":0}");
        assert_eq!(out.iter().filter_map(|e| e.acknowledges()).collect::<Vec<_>>(), ["17-3"]);
    }

    #[test]
    fn an_entry_of_one_event_is_read_as_before() {
        let e = entry("18-0", &[("type", "presence"), ("ix", ""), ("agent", "ann"), ("at", "5"), ("details", "{}")]);
        let mut out = vec![];
        expand_entry(&e, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].id.as_str(), out[0].typ.as_str(), out[0].acknowledges()),
            ("18-0", "presence", Some("18-0"))
        );
    }
}
