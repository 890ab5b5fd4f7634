//! What the telephony system's tasks share in the CTI point: which calls wait on hold for a ring,
//! who is on a call, the releases being timed, the latency histograms and the counts.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Instant;

use hdrhistogram::Histogram;

use super::platform::pb;
use crate::shared::hist;

/// What the platform knows of a call it has not seen rung after a hold.
enum Known {
    /// RouteCall answered "hold": a ring instruction on WatchRoutes will name its agent.
    Held,
    /// A ring instruction came before RouteCall's "hold" answer did (the agent freed in between).
    Rang(pb::RingAgent, Instant),
}

/// One timed release in the held-call phase: when it left, when its ack came back, and when the
/// ring for a held call reached the agent it freed.
#[derive(Clone, Copy)]
pub struct Release {
    pub sent: Instant,
    pub acked: Option<Instant>,
    pub rang: Option<Instant>,
}

#[derive(Default)]
struct Releases {
    list: Vec<Release>,
    /// Agent → their release in `list` not yet answered by a ring.
    open: HashMap<String, usize>,
}

/// Counts that only grow; a phase's are the difference of two readings.
#[derive(Clone, Copy, Default, Debug)]
pub struct Counts {
    /// RouteCall answers: ring an agent now, hold in queue, the default destination.
    pub rings: u64,
    pub holds: u64,
    pub defaults: u64,
    /// Ring instructions on WatchRoutes for calls held before.
    pub rung_after_hold: u64,
    /// Ring cancellations on WatchRoutes (an offer withdrawn: none is expected).
    pub cancels: u64,
    /// Failed requests and events not applied.
    pub errors: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, a: Counts) -> Counts {
        Counts {
            rings: self.rings - a.rings,
            holds: self.holds - a.holds,
            defaults: self.defaults - a.defaults,
            rung_after_hold: self.rung_after_hold - a.rung_after_hold,
            cancels: self.cancels - a.cancels,
            errors: self.errors - a.errors,
        }
    }
}

pub struct Calls {
    known: Mutex<HashMap<String, Known>>,
    next_call: AtomicU64,
    /// Agents on a call, the longest first: (agent, call id). The held-call phase frees them in
    /// this order; an agent rung for a held call joins at the back once the call is answered.
    pub talking: Mutex<VecDeque<(String, String)>>,
    releases: Mutex<Releases>,
    /// Hang up a held call as soon as its ring is answered (the route-rate phase), or keep the
    /// agent on it (the held-call phase, where everyone stays busy).
    pub release_after_hold: AtomicBool,
    /// RouteCall: from the request leaving to its answer, µs.
    pub route_latency: Mutex<Histogram<u64>>,
    /// When the latest RouteCall answer came, in µs since `epoch`.
    pub last_answer_us: AtomicU64,
    pub epoch: Instant,
    rings: AtomicU64,
    holds: AtomicU64,
    defaults: AtomicU64,
    rung_after_hold: AtomicU64,
    cancels: AtomicU64,
    errors: AtomicU64,
    /// The first few errors' words, shown after the phase.
    first_errors: Mutex<Vec<String>>,
}

impl Calls {
    pub fn new() -> Calls {
        Calls {
            known: Mutex::default(),
            next_call: AtomicU64::new(0),
            talking: Mutex::default(),
            releases: Mutex::default(),
            release_after_hold: AtomicBool::new(true),
            route_latency: Mutex::new(hist()),
            last_answer_us: AtomicU64::new(0),
            epoch: Instant::now(),
            rings: AtomicU64::new(0),
            holds: AtomicU64::new(0),
            defaults: AtomicU64::new(0),
            rung_after_hold: AtomicU64::new(0),
            cancels: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_errors: Mutex::default(),
        }
    }

    /// A new call: its id and the caller's number, each unique in the point (so no caller is
    /// sticky to an agent: every call is routed afresh).
    pub fn new_call(&self) -> (String, String) {
        let n = self.next_call.fetch_add(1, Relaxed);
        (format!("call-{n}"), format!("+49 30 {n:08}"))
    }

    pub fn counts(&self) -> Counts {
        Counts {
            rings: self.rings.load(Relaxed),
            holds: self.holds.load(Relaxed),
            defaults: self.defaults.load(Relaxed),
            rung_after_hold: self.rung_after_hold.load(Relaxed),
            cancels: self.cancels.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }

    /// Records RouteCall's answer: its latency and what it said.
    pub fn answered(&self, started: Instant, action: &Option<pb::route_response::Action>) {
        use pb::route_response::Action;
        let now = Instant::now();
        crate::shared::record(&self.route_latency, now.duration_since(started).as_micros() as u64);
        self.last_answer_us.fetch_max(now.duration_since(self.epoch).as_micros() as u64, Relaxed);
        let counter = match action {
            Some(Action::Ring(_)) => &self.rings,
            Some(Action::Hold(_)) => &self.holds,
            Some(Action::DefaultRoute(_)) => &self.defaults,
            None => &self.errors,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn error(&self, what: impl std::fmt::Display) {
        self.errors.fetch_add(1, Relaxed);
        let mut first = self.first_errors.lock().expect("lock");
        if first.len() < 5 {
            first.push(what.to_string());
        }
    }

    /// The errors' words so far (the first few), emptied.
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.first_errors.lock().expect("lock"))
    }

    pub fn cancelled(&self) {
        self.cancels.fetch_add(1, Relaxed);
    }

    /// RouteCall answered "hold" for `call`: its ring, if it came already.
    pub fn held(&self, call: &str) -> Option<(pb::RingAgent, Instant)> {
        let mut known = self.known.lock().expect("lock");
        match known.remove(call) {
            Some(Known::Rang(ring, at)) => Some((ring, at)),
            _ => {
                known.insert(call.to_string(), Known::Held);
                None
            }
        }
    }

    /// A ring instruction for `call` arrived at `at`: whether it is the ring of a held call (the
    /// caller must answer it). Any other is kept in case its call's "hold" answer is on its way.
    pub fn rang(&self, call: &str, ring: &pb::RingAgent, at: Instant) -> bool {
        let mut known = self.known.lock().expect("lock");
        if let Some(Known::Held) = known.get(call) {
            known.remove(call);
            return true;
        }
        known.insert(call.to_string(), Known::Rang(ring.clone(), at));
        false
    }

    /// Counts a held call's ring and stops the clock of the release that freed its agent.
    pub fn held_rung(&self, agent: &str, at: Instant) {
        self.rung_after_hold.fetch_add(1, Relaxed);
        let mut r = self.releases.lock().expect("lock");
        if let Some(i) = r.open.remove(agent) {
            r.list[i].rang = Some(at);
        }
    }

    /// Calls still waiting for their ring.
    pub fn on_hold(&self) -> usize {
        self.known.lock().expect("lock").values().filter(|k| matches!(k, Known::Held)).count()
    }

    /// Forgets the rings of calls that were never held (RouteCall rang them at once; WatchRoutes
    /// repeats each), so the map holds only what may still matter.
    pub fn forget_rings(&self) {
        self.known.lock().expect("lock").retain(|_, k| matches!(k, Known::Held));
    }

    /// Starts timing the release of `agent`'s call; returns its number.
    pub fn release_sent(&self, agent: &str) -> usize {
        let mut r = self.releases.lock().expect("lock");
        let i = r.list.len();
        r.list.push(Release { sent: Instant::now(), acked: None, rang: None });
        r.open.insert(agent.to_string(), i);
        i
    }

    pub fn release_acked(&self, i: usize, at: Instant) {
        self.releases.lock().expect("lock").list[i].acked = Some(at);
    }

    /// The releases timed so far, emptied (a phase's).
    pub fn take_releases(&self) -> Vec<Release> {
        let mut r = self.releases.lock().expect("lock");
        r.open.clear();
        std::mem::take(&mut r.list)
    }

    /// Releases still waiting for a ring.
    pub fn releases_open(&self) -> usize {
        self.releases.lock().expect("lock").open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(agent: &str) -> pb::RingAgent {
        pb::RingAgent { agent_id: agent.into(), ..Default::default() }
    }

    #[test]
    fn a_held_calls_ring_is_its_own_whichever_comes_first_and_others_are_repeats() {
        let calls = Calls::new();
        // "Hold" first, then the ring: the watcher answers it.
        assert!(calls.held("c1").is_none());
        assert_eq!(calls.on_hold(), 1);
        assert!(calls.rang("c1", &ring("a1"), Instant::now()));
        assert_eq!(calls.on_hold(), 0);
        // The ring first (the agent freed before "hold" arrived): the router answers it.
        assert!(!calls.rang("c2", &ring("a2"), Instant::now()));
        assert_eq!(calls.held("c2").map(|(r, _)| r.agent_id), Some("a2".to_string()));
        assert_eq!(calls.on_hold(), 0);
        // RouteCall's own ring repeated on WatchRoutes: nothing to do, and forgotten later.
        assert!(!calls.rang("c3", &ring("a3"), Instant::now()));
        calls.forget_rings();
        assert!(calls.held("c3").is_none(), "a forgotten ring is not taken for this call's");
    }

    #[test]
    fn a_release_is_timed_to_the_ring_of_the_agent_it_freed() {
        let calls = Calls::new();
        let k = calls.release_sent("a1");
        calls.release_sent("a2");
        let at = Instant::now();
        calls.release_acked(k, at);
        calls.held_rung("a1", at);
        assert_eq!(calls.releases_open(), 1, "a2's release has no ring yet");
        let r = calls.take_releases();
        assert_eq!((r[0].acked, r[0].rang), (Some(at), Some(at)));
        assert!(r[1].rang.is_none());
        assert_eq!(calls.counts().rung_after_hold, 1);
    }
}
