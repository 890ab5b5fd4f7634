//! The CTI section of `bench.md`: a row per CTI phase, against the same run's ceilings.

use super::CtiFigures;
use crate::ceiling::Ceiling;
use crate::row::Row;

pub const CTI_NOTE: &str = "\nCTI hook (`switchboard.cti.v1`), on a point of its own: a fresh Redis and daemon, the \
same agents with a phone each taking one call at a time, logged in on desktop streams; the benchmark is the \
telephony system (a `telephony` key). Route call → answer: RouteCall for a new call, timed from the request \
leaving to its answer (ring an agent now, hold, or the default destination); `max` with one call at a time on \
each of the `--concurrency` callers, then paced. Every call rung is answered and released at once (PublishEvents), \
so agents free up and the phase stays where it began; a call put on hold is answered and released when \
WatchRoutes rings it. Answers/s: RouteCall answers per second. Agent freed → held call rung: every agent on a \
call and calls on hold; calls are released one by one, the longest first, and each timed from the release leaving \
the platform to the ring instruction for a held call reaching it on WatchRoutes (the platform answers it, so \
everyone stays busy); \"from the ack\" times the same ring from the release's ack (the release's function call \
makes the offer, so the ring may come first: then it counts 0). Errors: requests refused, events not applied and rings cancelled (none is expected); not rung: releases \
whose agent's queues had no held call left. Per-call figures divide the phase's work \
(routing, answering, releasing, the ring instructions) by its calls rung. Ceiling shares: answers/s against \
the same run's no-op gRPC calls/s and EVALSHA/s.\n\n";

pub const CTI_HEAD: &str = "| phase | agents | requests | answers/s | % of gRPC ceiling | % of EVALSHA ceiling | p50 ms | p99 ms | p99.9 ms | max ms | from the ack p50 / p99 ms | ring · hold · default | held calls rung | not rung | errors | Redis round trips/call | Redis CPU µs/call | daemon+bench CPU µs/call | CPU stolen % |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

pub fn cti_row(r: &Row, ceiling: Ceiling) -> String {
    let Some(c) = &r.cti else { return String::new() };
    let CtiFigures { requests, answers_per_s, counts: k, max_ms, from_ack, unrung, .. } = c;
    let from_ack = from_ack.map_or("–".to_string(), |(p50, p99)| format!("{p50:.2} / {p99:.2}"));
    format!(
        "| {} | {} | {requests} | {answers_per_s:.0} | {:.1} % | {:.1} % | {:.2} | {:.2} | {:.2} | {max_ms:.2} | {from_ack} | {} · {} · {} | {} | {unrung} | {} | {:.2} | {:.0} | {:.0} | {:.1} |\n",
        r.phase,
        r.agents,
        100.0 * answers_per_s / ceiling.grpc_calls.max(1.0),
        100.0 * answers_per_s / ceiling.evalsha.max(1.0),
        r.p50_ms,
        r.p99_ms,
        r.p999_ms,
        k.rings,
        k.holds,
        k.defaults,
        k.rung_after_hold,
        k.errors + k.cancels,
        r.round_trips,
        r.redis_cpu_us,
        r.own_cpu_us,
        r.steal_pct
    )
}
