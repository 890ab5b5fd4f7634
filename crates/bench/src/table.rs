//! The markdown tables and notes both reports are made of: the ceiling line, the per-phase table,
//! round trips by role, where the latency goes, and the slow calls.

use std::collections::BTreeMap;

use crate::ceiling::{CEILING_CLIENTS, Ceiling, GRPC_CALLERS_PER_CHANNEL};
use crate::row::Row;

pub fn ceiling_line(ceiling: Ceiling) -> String {
    format!(
        "Redis ceiling on this machine, measured in the same run: {:.0} round trips/s (PING, {} clients), \
         {:.0} EVALSHA/s (a 6-command script). gRPC: {:.0} no-op unary calls/s, {:.0} µs CPU per call \
         (health `Check`, {} clients over {} connections, the daemon's tonic setup; client and server CPU, \
         as in \"daemon+desktops CPU\"). A decision through the API takes three requests (create, accept, \
         complete) and a stream message.\n\n",
        ceiling.ping,
        CEILING_CLIENTS,
        ceiling.evalsha,
        ceiling.grpc_calls,
        ceiling.grpc_cpu_us,
        CEILING_CLIENTS,
        CEILING_CLIENTS.div_ceil(GRPC_CALLERS_PER_CHANNEL)
    )
}

pub const TABLE_HEAD: &str = "| phase | agents | skill sets | waiting | decisions | decisions/s | % of EVALSHA ceiling | p50 ms | p99 ms | p99.9 ms | Redis round trips/decision | Redis commands/decision | Redis CPU µs/decision | daemon+desktops CPU µs/decision |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

pub fn table_row(r: &Row, ceiling: Ceiling) -> String {
    let lat = |v: f64| if r.p50_ms == 0.0 { "–".to_string() } else { format!("{v:.2}") };
    format!(
        "| {} | {} | {} | {} | {} | {:.0} | {:.0} % | {} | {} | {} | {:.2} | {:.1} | {:.0} | {:.0} |\n",
        r.phase,
        r.agents,
        r.combos,
        r.waiting,
        r.decisions,
        r.per_sec,
        100.0 * r.per_sec / ceiling.evalsha.max(1.0),
        lat(r.p50_ms),
        lat(r.p99_ms),
        lat(r.p999_ms),
        r.round_trips,
        r.commands,
        r.redis_cpu_us,
        r.own_cpu_us
    )
}

pub const ROLES_HEAD: &str = "| phase | routing round trips/decision | of which the hub's | agent actions | arrivals | other | total |\n|---|---|---|---|---|---|---|\n";

pub fn roles_row(label: &str, r: &Row) -> String {
    let o = &r.roles;
    format!(
        "| {label} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
        o.routing, o.hub, o.agent, o.arrivals, o.other, r.round_trips
    )
}

pub const ROLES_NOTE: &str = "\nRedis round trips per decision, by role. Routing: the script run that makes the phase's \
decisions (create; a presence change to ready; complete for \"freed → next offer\") and the hub's round trips \
delivering the offer (its inbox reads, the one pipelined read of what a batch of pushes refers to, the occasional \
inbox trim). An offer made by the agent's own request (going ready, a completion) comes back with its reply: the \
hub has no part in it. Agent actions: accept, and complete where it is not the deciding script. Arrivals: creates that are \
not the deciding script (new interactions keeping the backlog). Other: the rest (timers, heartbeats). Each \
request counted is one script run; the few still in flight at a phase's end may move between phases.\n\n";

pub const SPLIT_NOTE: &str = "\nWhere the latency goes, split where the function call that decides starts running in \
Redis (its clock reading is the interaction's \"offered\" timestamp). Before: from the phase's start (the create \
handed to Redis; the completion leaving the desktop) to then: the request on its way to the daemon and Redis, and \
its wait there. After: the function's run, the hub's read of its push (for an offer made by a create; one made by \
the agent's own completion comes back with the reply) and the agent's stream, to the offer on the desktop. The timestamp is in whole milliseconds, so each part is off by up to half of one. The last two columns are the means of \
each part over the slowest 1 % of the phase's decisions. Stolen: the share of the machine's CPU time the \
hypervisor gave to other guests during the phase (/proc/stat); on a shared virtual machine it shows as latency \
the code did not cause.\n\n";

pub const SPLIT_HEAD: &str = "| phase | before the deciding call runs p50 ms | p99 ms | from its run to the desktop p50 ms | p99 ms | slowest 1 %: before, mean ms | after, mean ms | CPU stolen % |\n|---|---|---|---|---|---|---|---|\n";

pub fn split_row(label: &str, r: &Row) -> String {
    match r.split {
        Some(s) => format!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |\n",
            s.before_p50, s.before_p99, s.after_p50, s.after_p99, s.slow_before, s.slow_after, r.steal_pct
        ),
        None => String::new(),
    }
}

pub const SLOW_NOTE: &str = "\nCalls that ran 2 ms or more inside Redis during the phase (its slow log): how many, the \
longest, and which. Redis runs one call at a time, so every request arriving meanwhile waits for it; latency \
with none here was spent outside Redis (the network, the daemon, the desktop, the hypervisor).\n\n";

pub const SLOW_HEAD: &str = "| phase | calls ≥ 2 ms | longest ms | which (count, longest ms) |\n|---|---|---|---|\n";

pub fn slow_row(label: &str, r: &Row) -> String {
    format!("| {label} | {} |\n", slow_cells(&r.slow))
}

/// How many, the longest (ms), and by what: count and longest, the most frequent first.
fn slow_cells(slow: &[(u64, String)]) -> String {
    let mut by: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for (us, what) in slow {
        let e = by.entry(what.as_str()).or_default();
        e.0 += 1;
        e.1 = e.1.max(*us);
    }
    let mut by: Vec<_> = by.into_iter().collect();
    by.sort_by_key(|y| std::cmp::Reverse(y.1));
    let which: Vec<String> = by.iter().map(|(w, (n, us))| format!("{w} {n} ({:.1})", *us as f64 / 1000.0)).collect();
    let longest = slow.iter().map(|s| s.0).max().unwrap_or(0) as f64 / 1000.0;
    format!("{} | {longest:.1} | {}", slow.len(), which.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_calls_are_counted_by_what_most_frequent_first() {
        let slow = [(2500, "complete"), (12_400, "accept"), (3100, "complete"), (2000, "hset")]
            .map(|(us, w)| (us, w.to_string()));
        assert_eq!(slow_cells(&slow), "4 | 12.4 | complete 2 (3.1), accept 1 (12.4), hset 1 (2.0)");
        assert_eq!(slow_cells(&[]), "0 | 0.0 | ");
    }
}
