//! What the desktops and the phases share: the clocks a decision is timed by, the histograms, the
//! held slots and the counts of requests sent.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Instant;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use switchboard_proto::v1 as pb;

/// State the desktops and the phases share.
pub struct Shared {
    pub epoch: Instant,
    /// `epoch` on the wall clock (µs since 1970), which Redis's decision timestamps are on.
    pub epoch_wall_us: u64,
    /// When interaction `i` (customer address `c{i}`) was handed to Redis, in µs since `epoch`.
    pub created_at: Vec<AtomicU64>,
    pub created_to_offer: Mutex<Histogram<u64>>,
    pub freed_to_offer: Mutex<Histogram<u64>>,
    pub measure_created: AtomicBool,
    pub measure_freed: AtomicBool,
    /// Each measured decision of the phase: µs from its start to where the deciding function call
    /// started running in Redis (the interaction's "offered" timestamp), and from there to the
    /// desktop.
    pub split: Mutex<Vec<(u64, u64)>>,
    pub offers: AtomicU64,
    /// µs since `epoch` of the latest offer.
    pub last_offer_us: AtomicU64,
    /// Desktops keep what they accept (for the completer to free later) instead of completing it.
    pub hold: AtomicBool,
    /// Agent, interaction, channel.
    pub held: Mutex<VecDeque<(usize, String, i32)>>,
    pub senders: Mutex<Vec<Option<mpsc::Sender<pb::AgentRequest>>>>,
    /// Per agent: when the completer last freed one of its slots, and on which channel.
    pub freed_at: Vec<Mutex<Option<Freed>>>,
    /// Requests sent that each run one script (one round trip), so a phase's round trips can be
    /// split by what they were for.
    pub creates: AtomicU64,
    pub presence_changes: AtomicU64,
    pub accepts: AtomicU64,
    pub completes: AtomicU64,
}

#[derive(Clone, Copy)]
pub struct Freed {
    pub at: Instant,
    /// The same moment, in µs since `epoch`.
    pub at_us: u64,
    pub channel: i32,
}

impl Shared {
    pub fn new(agents: usize, interactions: usize) -> Shared {
        Shared {
            epoch: Instant::now(),
            epoch_wall_us: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            created_at: (0..interactions).map(|_| AtomicU64::new(0)).collect(),
            created_to_offer: Mutex::new(hist()),
            freed_to_offer: Mutex::new(hist()),
            measure_created: AtomicBool::new(false),
            measure_freed: AtomicBool::new(false),
            split: Mutex::new(Vec::new()),
            offers: AtomicU64::new(0),
            last_offer_us: AtomicU64::new(0),
            hold: AtomicBool::new(false),
            held: Mutex::new(VecDeque::new()),
            senders: Mutex::new(vec![None; agents]),
            freed_at: (0..agents).map(|_| Mutex::new(None)).collect(),
            creates: AtomicU64::new(0),
            presence_changes: AtomicU64::new(0),
            accepts: AtomicU64::new(0),
            completes: AtomicU64::new(0),
        }
    }

    pub fn us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub fn offers(&self) -> u64 {
        self.offers.load(Relaxed)
    }

    /// Splits a measured decision that started at `start_us` and reached the desktop at `now_us`
    /// (both since `epoch`) where the deciding function call started running in Redis. That moment
    /// is on the wall clock in whole ms, so each part is off by up to half a millisecond.
    pub fn record_split(&self, ix: &pb::Interaction, start_us: u64, now_us: u64) {
        let Some(offered) = ix.timestamps.get("offered") else { return };
        let decided_wall = offered.seconds as u64 * 1_000_000 + offered.nanos as u64 / 1000 + 500;
        let decided = decided_wall.saturating_sub(self.epoch_wall_us).clamp(start_us, now_us);
        self.split.lock().expect("lock").push((decided - start_us, now_us - decided));
    }
}

pub fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

pub fn record(h: &Mutex<Histogram<u64>>, us: u64) {
    let _ = h.lock().expect("histogram lock").record(us.max(1));
}
