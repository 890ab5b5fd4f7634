//! Reading the interaction log (the `events` stream): the one place that turns its entries into
//! [`LoggedEvent`]s, for a tail that follows it from now (supervisor watches) and for the CRM
//! deliverer's consumer-group reads.

use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};

use crate::{DedicatedConnection, Engine, LoggedEvent, Result};

/// The log's entries in a stream read reply, in order.
pub(crate) fn logged_events(reply: Option<StreamReadReply>) -> Vec<LoggedEvent> {
    let mut out = Vec::new();
    for k in reply.map(|r| r.keys).unwrap_or_default() {
        for e in k.ids {
            let g = |f: &str| e.get::<String>(f).unwrap_or_default();
            out.push(LoggedEvent {
                typ: g("type"),
                interaction_id: g("ix"),
                agent_id: g("agent"),
                queue: g("queue"),
                at_ms: g("at").parse().unwrap_or(0),
                details: g("details"),
                by: g("by"),
                from: g("from"),
                id: e.id,
            });
        }
    }
    out
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
            self.last.clone_from(&e.id);
        }
        events
    }
}
