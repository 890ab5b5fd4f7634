//! The markdown reports: `bench.md` for a run, `sweep.md` for a sweep, with the settings they ran with.

use crate::args::BenchArgs;
use crate::ceiling::Ceiling;
use crate::cti::{CTI_HEAD, CTI_NOTE, cti_row};
use crate::domains::domains_section;
use crate::row::Row;
use crate::sms::{SMS_HEAD, sms_note, sms_row};
use crate::table::{
    ROLES_HEAD, ROLES_NOTE, SLOW_HEAD, SLOW_NOTE, SPLIT_HEAD, SPLIT_NOTE, TABLE_HEAD, ceiling_line, roles_row,
    slow_row, split_row, table_row,
};

pub fn report(args: &BenchArgs, rows: &[Row], ceiling: Ceiling) -> String {
    let mut md = ceiling_line(ceiling);
    md.push_str(TABLE_HEAD);
    for r in rows {
        md.push_str(&table_row(r, ceiling));
    }
    if rows.iter().any(|r| r.cti.is_some()) {
        md.push_str(CTI_NOTE);
        md.push_str(CTI_HEAD);
        for r in rows {
            md.push_str(&cti_row(r, ceiling));
        }
    }
    if rows.iter().any(|r| r.sms.is_some()) {
        md.push_str(&sms_note());
        md.push_str(SMS_HEAD);
        for r in rows {
            md.push_str(&sms_row(r, ceiling));
        }
    }
    md.push_str(&domains_section(args, rows));
    // A CTI request or a text takes several round trips of its own (their total is in the first
    // table), and its latency is not split by role: these two tables are the routing point's.
    let routing: Vec<&Row> = rows.iter().filter(|r| r.cti.is_none() && r.sms.is_none()).collect();
    if !routing.is_empty() {
        md.push_str(ROLES_NOTE);
        md.push_str(ROLES_HEAD);
        for r in &routing {
            md.push_str(&roles_row(&r.phase, r));
        }
        md.push_str(SPLIT_NOTE);
        md.push_str(SPLIT_HEAD);
        for r in &routing {
            md.push_str(&split_row(&r.phase, r));
        }
    }
    md.push_str(SLOW_NOTE);
    md.push_str(SLOW_HEAD);
    for r in rows {
        md.push_str(&slow_row(&r.phase, r));
    }
    // The routing point's backlog phase measured the memory (the domains point has none).
    if let Some(r) = rows.iter().find(|r| r.cti.is_none() && r.sms.is_none() && r.domains.is_none()) {
        md.push_str(&format!(
            "\nRedis memory per waiting interaction (no message bodies): {:.0} bytes: {:.0} of the interaction's own \
             state (its hash, waiting-set and queue-index entries) and {:.0} of event-log entries not yet delivered \
             (trimmed once the CRM has them; this run has no CRM). \
             Process memory per connected agent stream (daemon and benchmark desktop in one process): {:.1} KiB.\n",
            r.mem_per_waiting,
            r.mem_per_waiting - r.events_per_waiting,
            r.events_per_waiting,
            r.kib_per_agent
        ));
    }
    md.push_str("\nRedis commands per decision, by command (those inside scripts included): calls, and Redis µs.\n\n");
    for r in rows {
        let parts: Vec<String> = r.by_command.iter().map(|(c, n, us)| format!("{c} {n:.1} ({us:.0} µs)")).collect();
        md.push_str(&format!("- {}: {}\n", r.phase, parts.join(", ")));
    }
    md.push_str(&settings(args));
    md
}

fn settings(args: &BenchArgs) -> String {
    format!(
        "\nSettings: {} agents, {} queues, {} skills, skill sets {} (0: each agent its own), {} decisions a phase, \
         {} waiting, {} creators, seed {}. A decision is an offer delivered on an agent's desktop stream. \
         \"max\" phases run open loop as fast as they can (throughput; their latency includes queueing); paced phases \
         run at the rate shown (latency). \"freed → next offer\": from a completion leaving the desktop to the \
         offer on that channel of an interaction already waiting then (a completion that found nothing of its channel \
         waiting in its queues is not counted). Per-decision figures count all the phase's work (creating, offering, accepting, \
         completing) divided by its offers; Redis commands include those run inside scripts, round trips are counted \
         as they leave the process (a pipeline is one).\n",
        args.agents,
        args.queues,
        args.skills,
        args.combos,
        args.interactions,
        args.backlog,
        args.concurrency,
        args.seed
    ) + &cti_settings(args)
        + &sms_settings(args)
}

/// The CTI point's settings, when the run has one (a sweep has none).
fn cti_settings(args: &BenchArgs) -> String {
    if !args.cti_point() {
        return String::new();
    }
    let rates: Vec<String> = args.cti_rates.iter().map(u32::to_string).collect();
    format!(
        "CTI point: {} route requests a phase, {} callers at `max`, paced at {} calls/s; the held-call phase \
         releases {} calls at each of those rates.\n",
        args.interactions,
        args.concurrency,
        rates.join(", "),
        args.interactions
    )
}

/// The SMS point's settings, when the run has one.
fn sms_settings(args: &BenchArgs) -> String {
    if !args.sms_point() {
        return String::new();
    }
    let rates: Vec<String> =
        args.sms_rates.iter().map(|&r| if r == 0 { "max".to_string() } else { format!("{r}/s") }).collect();
    format!(
        "SMS point: {} conversations a phase (each a new customer number), at {}; {} senders at `max`.\n",
        args.interactions,
        rates.join(", "),
        args.concurrency
    )
}

pub fn sweep_report(args: &BenchArgs, rows: &[Row], ceiling: Ceiling, rate: u32) -> String {
    let mut md = ceiling_line(ceiling);
    md.push_str(&format!(
        "Paced phases at {rate}/s. Latency against scale: `sweep.svg`. Each point is a fresh Redis and daemon.\n"
    ));
    let mut series: Vec<&str> = Vec::new();
    for r in rows {
        if !series.contains(&r.series.as_str()) {
            series.push(&r.series);
        }
    }
    for s in series {
        md.push_str(&format!("\n### As {s} grow\n\n"));
        md.push_str(TABLE_HEAD);
        for r in rows.iter().filter(|r| r.series == s) {
            md.push_str(&table_row(r, ceiling));
        }
        // The per-phase tables again, with a column for the series' scale.
        for (title, head, row) in [
            ("Redis round trips per decision, by role", ROLES_HEAD, roles_row as fn(&str, &Row) -> String),
            ("Where the latency goes", SPLIT_HEAD, split_row),
            ("Calls that ran 2 ms or more inside Redis", SLOW_HEAD, slow_row),
        ] {
            md.push_str(&format!("\n{title} (see below).\n\n"));
            md.push_str(&head.replacen("| phase |", &format!("| {s} | phase |"), 1).replacen("|---|", "|---|---|", 1));
            for r in rows.iter().filter(|r| r.series == s) {
                md.push_str(&row(&format!("{} | {}", r.x, r.phase), r));
            }
        }
        md.push('\n');
        for r in rows.iter().filter(|r| r.series == s && r.phase.starts_with("created → offered, max")) {
            md.push_str(&format!(
                "- {s} = {}: {:.0} bytes of Redis per waiting interaction ({:.0} of state, {:.0} of undelivered \
                 event log), {:.1} KiB per agent stream\n",
                r.x,
                r.mem_per_waiting,
                r.mem_per_waiting - r.events_per_waiting,
                r.events_per_waiting,
                r.kib_per_agent
            ));
        }
    }
    md.push_str(ROLES_NOTE.trim_end());
    md.push_str(SPLIT_NOTE.trim_end());
    md.push_str(SLOW_NOTE.trim_end());
    md.push_str(
        "\n\nKiB per agent stream is the growth of this process's memory while a point's desktops log in. All points \
         run in one process, so after the first (1,000 agents) a point reuses memory freed by earlier ones and reads \
         low; the headline run measures it in a fresh process.\n",
    );
    md.push_str(&settings(args));
    md
}
