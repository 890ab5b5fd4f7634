//! Round trips to Redis, counted where they leave the process: one per command sent on its own,
//! one per pipeline (however many commands it holds). The routing benchmark reports them per
//! routing decision, so a change that adds a round trip to the hot path shows.
//!
//! Round trips are also counted by role: those of the tasks that read a stream on a dedicated
//! connection apart from everyone else's. The hub also reads through the shared connection (it
//! fetches what a batch of pushes refers to with one pipeline there), so it runs inside
//! [`as_reader`] and its round trips on either connection count as a reader's.

use std::future::Future;
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

tokio::task_local! {
    static READER: ();
}

/// Runs `f` as a stream reader: its round trips on the shared connection count as a reader's.
pub async fn as_reader<F: Future>(f: F) -> F::Output {
    READER.scope((), f).await
}

/// Round trips this process has made to Redis so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundTrips {
    pub all: u64,
    /// Those made by stream readers (the hub delivering pushes; the outbox, web chat tail and
    /// supervisor watches on their dedicated connections), on either connection.
    pub readers: u64,
}

pub fn round_trips() -> RoundTrips {
    RoundTrips { all: ROUND_TRIPS.load(Ordering::Relaxed), readers: READER_ROUND_TRIPS.load(Ordering::Relaxed) }
}

fn count(role: Role) {
    ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
    if role == Role::Reader || READER.try_with(|_| ()).is_ok() {
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
