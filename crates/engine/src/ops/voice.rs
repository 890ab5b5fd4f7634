//! Calls from telephony systems: their events move voice interactions (`call_event.lua`), and
//! agents' phones gate voice routing (`phone.lua`).

use redis::AsyncCommands;
use switchboard_model::voice::{CallUpdate, HungUpBy, PhoneState};

use super::argv::argv;
use crate::{Engine, EngineError, Result};

argv! {
    struct CallEventArgs<'a> {
        iid: &'a str,
        call: &'a str,
        event_id: &'a str,
        seq: u64,
        oseq: String,
        kind: &'a str,
        aid: &'a str,
        cause: &'a str,
        by: &'a str,
        details: String,
        sticky_secs: u64,
    }
}

argv! {
    struct PhoneArgs<'a> {
        aid: &'a str,
        state: &'a str,
    }
}

/// What decides whether a call event is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOrder {
    /// The platform's per-call sequence: applied only above the last one applied.
    Sequence(u64),
    /// About one offer (a ring): applied only while that offer (its number) stands.
    Offer(u64),
}

/// What became of a call event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Applied,
    /// Its event id was seen before.
    Duplicate,
    /// The call had moved past it (its sequence number is not above the last applied).
    Stale,
    /// Valid, but nothing to change in the call's state (ringing for an offer that moved on).
    Ignored,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Applied => "applied",
            CallOutcome::Duplicate => "duplicate",
            CallOutcome::Stale => "stale",
            CallOutcome::Ignored => "ignored",
        }
    }
}

/// The interaction id a telephony system's call is known by: the idempotency key its creation
/// used, so a call is one interaction however often it is offered or asked about.
pub fn call_key(system: &str, call_id: &str) -> String {
    format!("cti|{system}|{call_id}")
}

impl Engine {
    /// Applies one event of call `call` (of interaction `iid`): once per `event_id` (none: no such check) and only if
    /// `order` allows. `agent` is who it is about. Returns what became of it and the
    /// interaction's state after.
    /// A call that ends after an answer remembers its agent for `sticky` under the caller its
    /// interaction's `cti.sticky` attribute names (sticky routing of repeat callers).
    #[allow(clippy::too_many_arguments)]
    pub async fn call_event(
        &self,
        iid: &str,
        call: &str,
        event_id: &str,
        order: CallOrder,
        agent: &str,
        update: &CallUpdate,
        details: &serde_json::Value,
        sticky: std::time::Duration,
    ) -> Result<(CallOutcome, String)> {
        let (seq, oseq) = match order {
            CallOrder::Sequence(0) => {
                return Err(EngineError::InvalidArgument("sequence: must be 1 or more".into()));
            }
            CallOrder::Sequence(n) => (n, String::new()),
            CallOrder::Offer(n) => (0, n.to_string()),
        };
        let (cause, by) = match update {
            CallUpdate::RingFailed(f) => (f.as_str().to_string(), HungUpBy::Unknown),
            CallUpdate::Released { cause, by } => (cause.clone(), *by),
            CallUpdate::Abandoned { cause } => (cause.clone(), HungUpBy::Unknown),
            _ => (String::new(), HungUpBy::Unknown),
        };
        let args = CallEventArgs {
            iid,
            call,
            event_id,
            seq,
            oseq,
            kind: update.kind(),
            aid: agent,
            cause: &cause,
            by: by.as_str(),
            details: details.to_string(),
            sticky_secs: sticky.as_secs(),
        };
        let r = self.run(args).await?;
        let outcome = match r.first().map(String::as_str) {
            Some("applied") => CallOutcome::Applied,
            Some("duplicate") => CallOutcome::Duplicate,
            Some("stale") => CallOutcome::Stale,
            Some("ignored") => CallOutcome::Ignored,
            other => return Err(EngineError::Corrupt(format!("call_event reply {other:?}"))),
        };
        Ok((outcome, r.get(1).cloned().unwrap_or_default()))
    }

    /// Records an agent's phone state; returns whether it changed.
    pub async fn phone_state(&self, agent: &str, state: PhoneState) -> Result<bool> {
        let r = self.run(PhoneArgs { aid: agent, state: state.as_str() }).await?;
        Ok(r.first().is_some_and(|s| s == "1"))
    }

    /// In one round trip: the interaction of a telephony system's call, if it has reached
    /// Switchboard, and who talked to `caller` (`<channel>|<address>`) last, if recently.
    pub async fn call_lookup(
        &self,
        system: &str,
        call_id: &str,
        caller: Option<&str>,
    ) -> Result<(Option<String>, Option<String>)> {
        let mut con = self.connection();
        let mut pipe = redis::pipe();
        pipe.get(self.keys().idem(&call_key(system, call_id)));
        pipe.get(self.keys().last_agent(caller.unwrap_or("-")));
        let (ix, last): (Option<String>, Option<String>) = pipe.query_async(&mut con).await?;
        Ok((ix, if caller.is_some() { last } else { None }))
    }

    /// The agent a device belongs to.
    pub async fn agent_for_device(&self, device: &str) -> Result<Option<String>> {
        let mut con = self.connection();
        Ok(con.hget(self.keys().devices(), device).await?)
    }

    /// The interaction of a telephony system's call, if it has reached Switchboard.
    pub async fn call_interaction(&self, system: &str, call_id: &str) -> Result<Option<String>> {
        let mut con = self.connection();
        Ok(con.get(self.keys().idem(&call_key(system, call_id))).await?)
    }
}
