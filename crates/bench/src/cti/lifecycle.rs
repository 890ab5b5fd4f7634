//! A call's life as the telephony system drives it: routed (RouteCall), answered on the phone,
//! released. Each step's failure is counted, never fatal: the phase reports it.

use std::time::Instant;

use super::calls::Calls;
use super::platform::{Acked, Platform, call_event, pb};

/// What RouteCall said, as the phases need it.
pub enum Routed {
    /// Ringing `agent` now (also a held call whose ring came before the "hold" answer did).
    Ring { call: String, agent: String },
    /// On hold: the ring instruction will come on WatchRoutes.
    Held,
    /// The default destination, or an error (counted).
    Other,
}

/// Asks where a new call to the routing point `dialled` rings, on caller `lane`, timing the answer.
pub async fn route(platform: &Platform, calls: &Calls, lane: usize, dialled: &str) -> Routed {
    use pb::route_response::Action;
    let (call, caller) = calls.new_call();
    let req =
        pb::RouteRequest { call_id: call.clone(), caller, dialled: dialled.into(), attempt: 1, ..Default::default() };
    let started = Instant::now();
    let r = match platform.route(lane, req).await {
        Ok(r) => r,
        Err(s) => {
            calls.error(format!("RouteCall {call}: {:?} {}", s.code(), s.message()));
            return Routed::Other;
        }
    };
    calls.answered(started, &r.action);
    match r.action {
        Some(Action::Ring(ring)) => {
            check_device(calls, &ring);
            Routed::Ring { call, agent: ring.agent_id }
        }
        Some(Action::Hold(_)) => match calls.held(&call) {
            Some((ring, at)) => {
                calls.held_rung(&ring.agent_id, at);
                Routed::Ring { call, agent: ring.agent_id }
            }
            None => Routed::Held,
        },
        _ => Routed::Other,
    }
}

/// Every agent has a phone here: a ring without one means the setup is wrong.
pub fn check_device(calls: &Calls, ring: &pb::RingAgent) {
    if ring.device.is_empty() {
        calls.error(format!("a ring for agent {} without a device", ring.agent_id));
    }
}

/// The phone answers `call` ringing at `agent`; then the call is hung up at once (`release`) or
/// the agent stays on it (joining `talking`).
pub async fn answer(platform: &Platform, calls: &Calls, call: &str, agent: &str, release: bool) {
    let answered = call_event(call, agent, 1, pb::call_event::Kind::Answered(pb::Answered {}));
    if release {
        for a in platform.events(vec![answered, released(call)]).await {
            applied(calls, a);
        }
    } else if applied(calls, platform.event(answered).await).is_some() {
        calls.talking.lock().expect("lock").push_back((agent.to_string(), call.to_string()));
    }
}

/// Hangs up an answered call (its agent frees up); when the ack arrived, if it was applied.
pub async fn release(platform: &Platform, calls: &Calls, call: &str) -> Option<Instant> {
    applied(calls, platform.event(released(call)).await)
}

fn released(call: &str) -> pb::TelephonyEvent {
    let r = pb::Released { cause: "normal_clearing".into(), by: pb::Party::Caller as i32 };
    call_event(call, "", 2, pb::call_event::Kind::Released(r))
}

/// When the ack arrived, if the event was applied; anything else is counted as an error.
fn applied(calls: &Calls, r: anyhow::Result<Acked>) -> Option<Instant> {
    match r {
        Ok(a) if a.ack.outcome == pb::Outcome::Applied as i32 => Some(a.at),
        Ok(a) => {
            let outcome = pb::Outcome::try_from(a.ack.outcome).map_or("?", |o| o.as_str_name());
            calls.error(format!("event {}: {outcome} {}", a.ack.event_id, a.ack.error_message));
            None
        }
        Err(e) => {
            calls.error(format!("{e:#}"));
            None
        }
    }
}
