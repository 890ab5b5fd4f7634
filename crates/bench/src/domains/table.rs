//! The domains section of `bench.md`, the `domains_*` columns of `bench.csv` and `domains.csv`
//! (a line per domain and phase), each figure also as a ratio to one domain on one Redis in the
//! same run.

use super::figures::{DomainFigures, DomainLine, Layout};
use crate::args::BenchArgs;
use crate::row::Row;

/// The same phase (the same rate per domain) of one domain on one Redis.
fn single(rows: &[Row], rate: u32) -> Option<&Row> {
    rows.iter().find(|r| r.domains.as_ref().is_some_and(|d| d.layout == Layout::Single && d.rate == rate))
}

/// Its one domain.
fn single_domain(rows: &[Row], rate: u32) -> Option<&DomainLine> {
    single(rows, rate).and_then(|b| b.domains.as_ref()).and_then(|b| b.domains.first())
}

fn ratio(x: f64, of: Option<f64>) -> Option<f64> {
    of.filter(|&o| o > 0.0).map(|o| x / o)
}

fn times(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}×"))
}

fn phase_of(f: &DomainFigures) -> String {
    if f.rate == 0 { "max".into() } else { format!("{}/s a domain", f.rate) }
}

/// Each Redis process's CPU: `:port` % of a core (its share of the layout's Redis CPU).
fn shard_cells(f: &DomainFigures) -> String {
    let shares = f.shard_shares();
    let cells: Vec<String> = f
        .shards
        .iter()
        .zip(shares)
        .map(|(s, share)| format!(":{} ({}) {:.0} % ({share:.0} %)", s.port, s.domains.join(" "), s.cpu_pct))
        .collect();
    cells.join(" · ")
}

pub fn domains_section(args: &BenchArgs, rows: &[Row]) -> String {
    let figures: Vec<(&Row, &DomainFigures)> = rows.iter().filter_map(|r| r.domains.as_ref().map(|d| (r, d))).collect();
    let Some((_, first)) = figures.first() else { return String::new() };
    let count = args.domain_count;
    let mut md = format!(
        "\nRouting domains, on a point of their own: do domains contend? A domain is one hash slot (every key \
under `sb:{{<domain>}}:`), so on a Redis Cluster all of it is on one primary; each daemon serves one domain \
and talks only to that primary. The same load per domain in each layout: {agents} agents logged in on desktop \
streams, interactions created → offered → accepted → completed, unpaced (`max`, {conc} creators a domain) and \
then paced per domain ({rates}). Three layouts, one after the other, each with its own Redis and daemons (in this \
process): 1 domain on 1 Redis; {count} domains on a Redis Cluster of 3 primaries (no replicas), a daemon \
each, all at once; the same {count} domains on 1 Redis. Ratios (×) are to 1 domain on 1 Redis in the same \
phase. Redis CPU: each redis-server process's (/proc/<pid>/stat, all threads) over the phase, in % of one \
core, and its share of the layout's Redis CPU.\n\n\
**This machine caps the ratio.** It has {cores} cores, and with {count} domains, {count} Redis shards (or 1), \
{count} daemons, every desktop and the load generator share them: the aggregate throughput cannot grow \
{count}× here, and `max` phases end where the machine is busy (the busy column). What shows whether domains \
contend is where each domain's Redis work lands — on the cluster each shard does its own domains' work (the \
CPU split), on 1 Redis one thread does everyone's — and whether a domain's latency at a pace it sustains \
grows with the other domains' load beyond what the machine's CPU explains. Machine busy: every process on \
it (/proc/stat), this run's and any other's; in brackets, this run's part (its Redis processes and its own).\n\n",
        agents = args.agents,
        conc = args.concurrency,
        cores = first.cores,
        rates = {
            let r: Vec<String> = args.domain_rates.iter().filter(|&&r| r > 0).map(|r| format!("{r}/s")).collect();
            if r.is_empty() { "none".to_string() } else { r.join(", ") }
        },
    );
    md.push_str(
        "| layout | phase | decisions | decisions/s, all domains | × 1 domain | each domain's decisions/s (×) | p50 ms | p99 ms | \
Redis CPU by process (its domains): % of a core (share) | Redis CPU µs/decision | daemons+desktops+creators % of a core | machine busy % (this run's part) | CPU stolen % |\n\
|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (r, f) in &figures {
        let base = single(rows, f.rate);
        let one = single_domain(rows, f.rate).map(|b| b.per_sec);
        let each: Vec<String> =
            f.domains.iter().map(|d| format!("{:.0} ({})", d.per_sec, times(ratio(d.per_sec, one)))).collect();
        md.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {:.2} | {:.2} | {} | {:.0} | {:.0} | {:.0} ({:.0}) of {} cores | {:.1} |\n",
            f.layout.label(f.domains.len()),
            phase_of(f),
            r.decisions,
            r.per_sec,
            times(ratio(r.per_sec, base.map(|b| b.per_sec))),
            each.join(" · "),
            r.p50_ms,
            r.p99_ms,
            shard_cells(f),
            r.redis_cpu_us,
            f.process_cpu_pct,
            f.machine_busy_pct,
            f.own_part_pct(),
            f.cores,
            r.steal_pct
        ));
    }
    md.push_str(
        "\nEach domain on its own (× its decisions/s and p99 to 1 domain on 1 Redis). On the cluster, Redis is \
the primary holding the domain's slot.\n\n\
| layout | phase | domain | Redis | decisions | decisions/s | × | p50 ms | p99 ms | p99 × | p99.9 ms | that Redis: % of a core, µs/decision |\n\
|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (_, f) in &figures {
        let base = single_domain(rows, f.rate);
        for d in &f.domains {
            let shard = f.shards.iter().find(|s| s.port == d.shard);
            md.push_str(&format!(
                "| {} | {} | {} | :{} | {} | {:.0} | {} | {:.2} | {:.2} | {} | {:.2} | {} |\n",
                f.layout.label(f.domains.len()),
                phase_of(f),
                d.name,
                d.shard,
                d.decisions,
                d.per_sec,
                times(ratio(d.per_sec, base.map(|b| b.per_sec))),
                d.p50_ms,
                d.p99_ms,
                times(ratio(d.p99_ms, base.map(|b| b.p99_ms))),
                d.p999_ms,
                shard.map_or("–".into(), |s| format!("{:.0} %, {:.0}", s.cpu_pct, s.cpu_us_per_decision))
            ));
        }
    }
    md.push_str(&format!(
        "\nDomains point: {} agents and {} decisions a phase per domain, {} domains at once (`--domain-count`).\n",
        args.agents, args.interactions, count
    ));
    md
}

/// The `domains_*` columns' names, after the SMS ones.
pub const DOMAINS_CSV_HEAD: &str = "domains_layout,domains_count,domains_rate_per_domain,domains_ratio_to_single,\
domains_min_domain_ratio_to_single,domains_max_domain_p99_ms,domains_redis_cpu_pct_by_port,\
domains_process_cpu_pct,domains_machine_busy_pct,domains_own_part_pct";

/// The `domains_*` cells: empty for the other points' rows.
pub fn domains_cells(r: &Row, rows: &[Row]) -> String {
    let Some(f) = &r.domains else { return ",".repeat(DOMAINS_CSV_HEAD.matches(',').count()) };
    let base = single(rows, f.rate);
    let base_domain = single_domain(rows, f.rate).map(|d| d.per_sec);
    let min_ratio =
        f.domains.iter().filter_map(|d| ratio(d.per_sec, base_domain)).min_by(f64::total_cmp).unwrap_or(0.0);
    let max_p99 = f.domains.iter().map(|d| d.p99_ms).fold(0.0, f64::max);
    let cpu: Vec<String> = f.shards.iter().map(|s| format!("{}:{:.1}", s.port, s.cpu_pct)).collect();
    format!(
        "{},{},{},{:.3},{:.3},{:.3},{},{:.1},{:.1},{:.1}",
        f.layout.key(),
        f.domains.len(),
        f.rate,
        ratio(r.per_sec, base.map(|b| b.per_sec)).unwrap_or(0.0),
        min_ratio,
        max_p99,
        cpu.join(";"),
        f.process_cpu_pct,
        f.machine_busy_pct,
        f.own_part_pct()
    )
}

/// `domains.csv`: a line per domain and phase; None when the run has no domains point.
pub fn domains_csv(rows: &[Row]) -> Option<String> {
    let mut csv = String::from(
        "layout,domains,rate_per_domain,domain,redis_port,decisions,decisions_per_s,ratio_to_single,p50_ms,p99_ms,\
         p999_ms,p99_ratio_to_single,redis_cpu_pct,redis_cpu_us_per_decision\n",
    );
    let mut any = false;
    for f in rows.iter().filter_map(|r| r.domains.as_ref()) {
        any = true;
        let base = single_domain(rows, f.rate);
        for d in &f.domains {
            let shard = f.shards.iter().find(|s| s.port == d.shard);
            csv.push_str(&format!(
                "{},{},{},{},{},{},{:.1},{:.3},{:.3},{:.3},{:.3},{:.3},{:.1},{:.0}\n",
                f.layout.key(),
                f.domains.len(),
                f.rate,
                d.name,
                d.shard,
                d.decisions,
                d.per_sec,
                ratio(d.per_sec, base.map(|b| b.per_sec)).unwrap_or(0.0),
                d.p50_ms,
                d.p99_ms,
                d.p999_ms,
                ratio(d.p99_ms, base.map(|b| b.p99_ms)).unwrap_or(0.0),
                shard.map_or(0.0, |s| s.cpu_pct),
                shard.map_or(0.0, |s| s.cpu_us_per_decision)
            ));
        }
    }
    any.then_some(csv)
}
