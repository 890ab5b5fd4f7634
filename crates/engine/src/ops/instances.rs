//! Instances and time: heartbeats and restarts, the leases one holder at a time may hold, the
//! routing clock and the timer sweep.

use std::time::Duration;

use redis::AsyncCommands;

use super::argv::argv;
use crate::decode::parse_u64;
use crate::{Engine, Result};

/// What one holder at a time may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease<'a> {
    /// Delivering the event log to the CRM.
    Outbox,
    /// Reading this mailbox.
    Mailbox(&'a str),
    /// Bridging this SIP node (a Kamailio's evapi socket) to the CTI hook.
    SipNode(&'a str),
    /// Holding this SMPP bind to an SMSC.
    Smpp(&'a str),
    /// Processing an SMS conversation's inbound text, or sending one reply (`out|<reply key>`).
    SmsConversation(&'a str),
}

/// Result of one timer sweep.
#[derive(Debug, Clone, Copy)]
pub struct TimerSweep {
    pub fired: usize,
    pub next_due_ms: Option<u64>,
    pub now_ms: u64,
}

argv! {
    struct TimersArgs {
        limit: usize,
    }
}

argv! {
    struct LeaseArgs<'a> {
        which: &'a str,
        name: &'a str,
        holder: &'a str,
        ttl: Option<u64>,
    }
}

argv! {
    struct HeartbeatArgs<'a> {
        inst: &'a str,
        mode: &'a str,
    }
}

impl Engine {
    pub async fn fire_timers(&self, max: usize) -> Result<TimerSweep> {
        let r = self.run(TimersArgs { limit: max }).await?;
        Ok(TimerSweep {
            fired: parse_u64(r.first())? as usize,
            next_due_ms: r.get(1).and_then(|s| s.parse::<f64>().ok()).map(|f| f as u64),
            now_ms: parse_u64(r.get(2))?,
        })
    }

    /// Takes or renews `lease` for `holder` for `ttl_ms` (true while it holds it), or, with no
    /// ttl, releases it if `holder` holds it.
    pub async fn lease(&self, lease: Lease<'_>, holder: &str, ttl_ms: Option<u64>) -> Result<bool> {
        let (which, name) = match lease {
            Lease::Outbox => ("outbox", ""),
            Lease::Mailbox(m) => ("mailbox", m),
            Lease::SipNode(n) => ("sip_node", n),
            Lease::Smpp(n) => ("smpp", n),
            Lease::SmsConversation(n) => ("sms", n),
        };
        let r = self.run(LeaseArgs { which, name, holder, ttl: ttl_ms }).await?;
        Ok(r.first().is_some_and(|s| s == "1"))
    }

    pub async fn heartbeat(&self, instance: &str, stopping: bool) -> Result<()> {
        let mode = if stopping { "stop" } else { "" };
        self.run(HeartbeatArgs { inst: instance, mode }).await.map(|_| ())
    }

    /// An instance starting under `instance`: every desktop session an earlier run of that id
    /// held is released (its agent offline, its offers back to the queue), since a crashed run
    /// leaves them marked connected and this run's heartbeats would keep them so. Returns how
    /// many sessions were released. Call before serving any desktop.
    pub async fn instance_started(&self, instance: &str) -> Result<u64> {
        let r = self.run(HeartbeatArgs { inst: instance, mode: "start" }).await?;
        parse_u64(r.get(1))
    }

    /// Redis time plus the test clock offset, in ms — the clock every script uses (or the time a
    /// stopped clock shows, see [`Engine::set_clock`]).
    pub async fn now_ms(&self) -> Result<u64> {
        let mut con = self.con.clone();
        let (t, clock): ((u64, u64), Option<String>) =
            redis::pipe().cmd("TIME").get(self.keys.clock()).query_async(&mut con).await?;
        if let Some(at) = clock.as_deref().and_then(|c| c.strip_prefix('=')) {
            return at.parse().map_err(|_| crate::EngineError::Corrupt(format!("clock {at:?}")));
        }
        let off = clock.and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
        Ok((t.0 * 1000 + t.1 / 1000).saturating_add_signed(off))
    }

    /// Stops the routing clock of this domain at `at_ms`: every function call sees that time until
    /// the next call of this. The simulator's virtual time, on a private Redis of its own;
    /// production never calls it.
    pub async fn set_clock(&self, at_ms: u64) -> Result<()> {
        let mut con = self.con.clone();
        let () = con.set(self.keys.clock(), stopped_clock(at_ms)).await?;
        Ok(())
    }

    /// When the earliest routing timer is due (ms), if any.
    pub async fn next_timer_due(&self) -> Result<Option<u64>> {
        let mut con = self.con.clone();
        let first: Vec<(String, f64)> = con.zrange_withscores(self.keys.timers(), 0, 0).await?;
        Ok(first.first().map(|(_, due)| *due as u64))
    }

    /// Moves the routing clock forward for every instance of this domain. Tests use it to make
    /// timers due without waiting; production never calls it.
    pub async fn advance_clock(&self, by: Duration) -> Result<()> {
        let mut con = self.con.clone();
        let _: i64 = con.incr(self.keys.clock(), by.as_millis() as i64).await?;
        Ok(())
    }
}

/// The clock key's value for a clock stopped at `at_ms` (read back by `now_ms` above and by the
/// routing functions' `begin`).
pub(crate) fn stopped_clock(at_ms: u64) -> String {
    format!("={at_ms}")
}
