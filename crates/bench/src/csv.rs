//! `bench.csv` and `sweep.csv`: every row's figures, one line each.

use crate::ceiling::Ceiling;
use crate::domains::{DOMAINS_CSV_HEAD, domains_cells};
use crate::row::Row;
use crate::sms::{SMS_CSV_HEAD, sms_cells};

pub fn csv(rows: &[Row], ceiling: Ceiling) -> String {
    let mut csv = String::from(
        "series,x,phase,agents,skill_sets,waiting,decisions,decisions_per_s,ceiling_ratio,p50_ms,p99_ms,p999_ms,\
         round_trips_per_decision,commands_per_decision,redis_cpu_us_per_decision,process_cpu_us_per_decision,\
         redis_bytes_per_waiting,redis_event_log_bytes_per_waiting,kib_per_agent_stream,routing_round_trips_per_decision,hub_round_trips_per_decision,\
         agent_round_trips_per_decision,arrival_round_trips_per_decision,other_round_trips_per_decision,\
         grpc_noop_calls_per_s,grpc_cpu_us_per_call,before_decision_p50_ms,before_decision_p99_ms,\
         after_decision_p50_ms,after_decision_p99_ms,cpu_stolen_pct,\
         cti_requests,cti_answers_per_s,cti_grpc_ceiling_ratio,cti_rings,cti_holds,cti_defaults,cti_held_rung,\
         cti_not_rung,cti_errors,cti_max_ms,cti_from_ack_p50_ms,cti_from_ack_p99_ms,cti_rings_before_ack,",
    );
    csv.push_str(SMS_CSV_HEAD);
    csv.push(',');
    csv.push_str(DOMAINS_CSV_HEAD);
    csv.push('\n');
    for r in rows {
        csv.push_str(&format!(
            // Phase names hold commas ("created → offered, max").
"{},{},\"{}\",{},{},{},{},{:.1},{:.4},{:.3},{:.3},{:.3},{:.3},{:.2},{:.1},{:.1},{:.0},{:.0},{:.1},{:.3},{:.3},{:.3},{:.3},{:.3},{:.0},{:.1},{},{:.1},{},{},{}\n",
            r.series,
            r.x,
            r.phase,
            r.agents,
            r.combos,
            r.waiting,
            r.decisions,
            r.per_sec,
            r.per_sec / ceiling.evalsha.max(1.0),
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.round_trips,
            r.commands,
            r.redis_cpu_us,
            r.own_cpu_us,
            r.mem_per_waiting,
            r.events_per_waiting,
            r.kib_per_agent,
            r.roles.routing,
            r.roles.hub,
            r.roles.agent,
            r.roles.arrivals,
            r.roles.other,
            ceiling.grpc_calls,
            ceiling.grpc_cpu_us,
            r.split.map_or(",,,".to_string(), |s| format!(
                "{:.3},{:.3},{:.3},{:.3}",
                s.before_p50, s.before_p99, s.after_p50, s.after_p99
            )),
            r.steal_pct,
            cti_cells(r, ceiling),
            sms_cells(r),
            domains_cells(r, rows)
        ));
    }
    csv
}

/// The CTI columns: empty for the routing point's rows.
fn cti_cells(r: &Row, ceiling: Ceiling) -> String {
    let Some(c) = &r.cti else { return ",".repeat(12) };
    let k = &c.counts;
    let (ack50, ack99) =
        c.from_ack.map_or((String::new(), String::new()), |(a, b)| (format!("{a:.3}"), format!("{b:.3}")));
    format!(
        "{},{:.1},{:.4},{},{},{},{},{},{},{:.3},{ack50},{ack99},{}",
        c.requests,
        c.answers_per_s,
        c.answers_per_s / ceiling.grpc_calls.max(1.0),
        k.rings,
        k.holds,
        k.defaults,
        k.rung_after_hold,
        c.unrung,
        k.errors + k.cancels,
        c.max_ms,
        c.ring_before_ack
    )
}
