//! Round trips to Redis, counted where they leave the process: one per command sent on its own,
//! one per pipeline (however many commands it holds). The routing benchmark reports them per
//! routing decision, so a change that adds a round trip to the hot path shows.
//!
//! Round trips are also counted by role: those of the tasks that read a stream on a dedicated
//! connection (the hub delivering pushes to desktop streams; the event-log outbox, the web chat
//! tail and supervisor watches too, which the benchmark does not run) apart from everyone
//! else's. Such a task also reads through the shared connection (the hub fetches what a batch of
//! pushes refers to with one pipeline there), so a task that has used a dedicated connection is
//! remembered and its round trips on the shared one are counted as its own.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Shared,
    Reader,
}

static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);
static READER_ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);

/// Tasks that have used a dedicated connection, by a hash of their task id. Direct-mapped so it
/// stays this small however many such tasks come and go: task ids are never reused, so a stale
/// entry matches nothing, and a slot two live readers share only moves a few of one's counts.
static READER_TASKS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

/// Round trips this process has made to Redis so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundTrips {
    pub all: u64,
    /// Those made by tasks that read a stream on a dedicated connection, on either connection.
    pub readers: u64,
}

pub fn round_trips() -> RoundTrips {
    RoundTrips { all: ROUND_TRIPS.load(Ordering::Relaxed), readers: READER_ROUND_TRIPS.load(Ordering::Relaxed) }
}

/// A non-zero key for the current task (0 marks an empty slot); none outside a Tokio task.
fn task_key() -> Option<u64> {
    let id = tokio::task::try_id()?;
    let mut h = std::hash::DefaultHasher::new();
    id.hash(&mut h);
    Some(h.finish() | 1)
}

fn count(role: Role) {
    ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
    let Some(key) = task_key() else { return };
    let slot = &READER_TASKS[(key % READER_TASKS.len() as u64) as usize];
    let reader = match role {
        Role::Reader => {
            slot.store(key, Ordering::Relaxed);
            true
        }
        Role::Shared => slot.load(Ordering::Relaxed) == key,
    };
    if reader {
        READER_ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
    }
}

/// A Redis connection whose requests are counted.
#[derive(Clone)]
pub struct Counted<C> {
    con: C,
    role: Role,
}

impl<C> Counted<C> {
    /// The connection everyone shares.
    pub(crate) fn shared(con: C) -> Counted<C> {
        Counted { con, role: Role::Shared }
    }

    /// A connection of its own, for a task that reads a stream.
    pub(crate) fn dedicated(con: C) -> Counted<C> {
        Counted { con, role: Role::Reader }
    }
}

impl<C: ConnectionLike + Send> ConnectionLike for Counted<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        count(self.role);
        self.con.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self::count(self.role);
        self.con.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.con.get_db()
    }
}
