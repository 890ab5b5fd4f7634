//! `switchboard bench` as a user runs it, at a tiny size: every phase is reported (the CTI, SMS and
//! domains points' too), each decision is an offer on a desktop, the routing path's round trips are what the README
//! claims, the domains of the cluster layout land on three shards, and a run cut short leaves no Redis behind. No figure of speed is asserted; those are the
//! benchmark's to report.

use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard-bench")
}

/// A CSV line's fields; a quoted field may hold commas (the phase names do).
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn col<'a>(header: &[String], row: &'a [String], name: &str) -> &'a str {
    let i = header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    &row[i]
}

fn num(header: &[String], row: &[String], name: &str) -> f64 {
    let v = col(header, row, name);
    v.parse().unwrap_or_else(|_| panic!("{name}: not a number: {v:?}"))
}

#[test]
fn a_tiny_run_reports_every_phase_with_one_round_trip_per_freed_slot() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(bin())
        .args(["--agents", "20", "--queues", "4", "--skills", "6", "--interactions", "30"])
        .args(["--backlog", "400", "--rate", "40", "--latency-rates", "60", "--cti-rates", "50"])
        .args(["--sms", "on", "--sms-rates", "50,max", "--domains", "on", "--domain-rates", "50", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(run.status.success(), "bench failed: {}", String::from_utf8_lossy(&run.stderr));

    let csv = std::fs::read_to_string(out.path().join("bench.csv")).unwrap();
    let mut lines = csv.lines();
    let header = fields(lines.next().unwrap());
    let rows: Vec<Vec<String>> = lines.map(fields).collect();
    let phases: Vec<&str> = rows.iter().map(|r| col(&header, r, "phase")).collect();
    assert_eq!(
        phases,
        [
            "created → offered, max",
            "created → offered at 40/s",
            "created → offered at 60/s",
            "agents ready → offers up to capacity",
            "freed → next offer, max",
            "freed → next offer at 40/s",
            "freed → next offer at 60/s",
            "CTI route call → answer, max",
            "CTI route call → answer at 50/s",
            "CTI agent freed → held call rung at 50/s",
            "SMS text → offered at 50/s",
            "SMS text → offered, max",
            "1 domain on 1 Redis: created → offered, max",
            "1 domain on 1 Redis: created → offered at 50/s a domain",
            "3 domains on a 3-shard cluster: created → offered, max",
            "3 domains on a 3-shard cluster: created → offered at 50/s a domain",
            "3 domains on 1 Redis: created → offered, max",
            "3 domains on 1 Redis: created → offered at 50/s a domain",
        ]
    );
    for r in &rows {
        let phase = col(&header, r, "phase");
        if !phase.contains("domain") {
            assert_eq!(num(&header, r, "agents"), 20.0, "{phase}");
        }
        if phase.starts_with("created") || phase.starts_with("freed") {
            // Each phase waits for all its decisions: an offer on a desktop stream per interaction.
            assert_eq!(num(&header, r, "decisions"), 30.0, "{phase}");
            assert!(num(&header, r, "p50_ms") > 0.0, "{phase}: no latency recorded");
            assert!(num(&header, r, "p99_ms") >= num(&header, r, "p50_ms"), "{phase}");
        }
        if phase.starts_with("freed") {
            // The next offer comes back with the completion's reply: one round trip per decision,
            // the completion itself. The hub delivers none of them; all it may have done is wake
            // from its blocking inbox read, which gives up once a second.
            let (routing, hub) =
                (num(&header, r, "routing_round_trips_per_decision"), num(&header, r, "hub_round_trips_per_decision"));
            assert!((routing - hub - 1.0).abs() < 0.001, "{phase}: {routing} routing round trips, {hub} the hub's");
            let secs = num(&header, r, "decisions") / num(&header, r, "decisions_per_s");
            assert!(hub * 30.0 <= secs + 2.0, "{phase}: the hub read {} times in {secs:.1} s", hub * 30.0);
        }
        if phase.starts_with("CTI") {
            cti_phase_ran(&header, r);
        } else if phase.starts_with("SMS") {
            sms_phase_ran(&header, r);
        } else if phase.contains("domain") {
            // Every domain's 30, all its agents.
            let domains = num(&header, r, "domains_count");
            assert_eq!(num(&header, r, "decisions"), 30.0 * domains, "{phase}");
            assert_eq!(num(&header, r, "agents"), 20.0 * domains, "{phase}");
        } else {
            assert!(num(&header, r, "redis_bytes_per_waiting") > 0.0, "{phase}");
        }
        assert!(num(&header, r, "commands_per_decision") > 0.0, "{phase}");
    }
    let md = std::fs::read_to_string(out.path().join("bench.md")).unwrap();
    for section in [
        "Redis ceiling on this machine",
        "Where the latency goes",
        "Calls that ran 2 ms or more",
        "CTI hook",
        "SMS channel",
        "Routing domains",
        "This machine caps the ratio",
    ] {
        assert!(md.contains(section), "bench.md lacks {section:?}");
    }
    domains_ran(&std::fs::read_to_string(out.path().join("domains.csv")).unwrap());
}

/// `domains.csv`: each domain made its 30 decisions in each phase, timed; on the cluster the three
/// domains are on three Redis processes, on 1 Redis all on one.
fn domains_ran(csv: &str) {
    let mut lines = csv.lines();
    let header = fields(lines.next().unwrap());
    let rows: Vec<Vec<String>> = lines.map(fields).collect();
    assert_eq!(rows.len(), 2 * (1 + 3 + 3), "a line per domain and phase: {csv}");
    for layout in ["single", "cluster", "one_redis"] {
        let of: Vec<&Vec<String>> = rows.iter().filter(|r| col(&header, r, "layout") == layout).collect();
        let mut ports: Vec<&str> = of.iter().map(|r| col(&header, r, "redis_port")).collect();
        ports.sort_unstable();
        ports.dedup();
        let shards = if layout == "cluster" { 3 } else { 1 };
        assert_eq!(ports.len(), shards, "{layout}: the domains' Redis processes {ports:?}");
        for r in of {
            let domain = col(&header, r, "domain");
            assert_eq!(num(&header, r, "decisions"), 30.0, "{layout} {domain}");
            assert!(num(&header, r, "p50_ms") > 0.0, "{layout} {domain}: no latency recorded");
        }
    }
}

/// A CTI phase made its 30 requests (route requests, or releases), each answered, with no request
/// refused, no event rejected and no ring cancelled, and timed some.
fn cti_phase_ran(header: &[String], r: &[String]) {
    let phase = col(header, r, "phase");
    assert_eq!(num(header, r, "cti_requests"), 30.0, "{phase}");
    assert_eq!(num(header, r, "cti_errors"), 0.0, "{phase}: see the run's output for what failed");
    assert!(num(header, r, "decisions") > 0.0, "{phase}: no call reached a desktop");
    assert!(num(header, r, "p50_ms") > 0.0, "{phase}: no latency recorded");
    assert!(num(header, r, "cti_max_ms") > 0.0, "{phase}");
    let (rings, holds, defaults) =
        (num(header, r, "cti_rings"), num(header, r, "cti_holds"), num(header, r, "cti_defaults"));
    if phase.starts_with("CTI route call") {
        // Every request answered: ring now or hold (every queue has a routing point, so no default).
        assert_eq!((rings + holds, defaults), (30.0, 0.0), "{phase}");
        // A held call is rung once an agent frees up, and that is answered too.
        assert_eq!(num(header, r, "cti_held_rung"), holds, "{phase}");
    } else {
        // Each release frees an agent for a held call, unless their queues have none left.
        let rung = num(header, r, "cti_held_rung");
        assert!(rung > 0.0, "{phase}: no held call was rung");
        assert_eq!(rung + num(header, r, "cti_not_rung"), 30.0, "{phase}");
    }
}

/// An SMS phase: 30 conversations, each offered, answered and its reply at the provider; every
/// 4th customer's second text stored and on the agent's desktop; nothing refused, and timed.
fn sms_phase_ran(header: &[String], r: &[String]) {
    let phase = col(header, r, "phase");
    assert_eq!(num(header, r, "decisions"), 30.0, "{phase}: an offer per conversation");
    let joining = num(header, r, "sms_joining");
    // Every 4th conversation of the run: 7 or 8 of a phase's 30.
    assert!(joining == 7.0 || joining == 8.0, "{phase}: {joining} customers texted twice");
    assert_eq!(num(header, r, "sms_texts"), 30.0 + joining, "{phase}");
    assert_eq!(num(header, r, "sms_stored"), 30.0 + joining, "{phase}: every webhook answered 200");
    assert_eq!(num(header, r, "sms_joined"), joining, "{phase}: every second text on the agent's desktop");
    assert_eq!(num(header, r, "sms_replies"), 30.0, "{phase}: every reply sent to the provider");
    assert_eq!(
        (num(header, r, "sms_not_stored"), num(header, r, "sms_errors")),
        (0.0, 0.0),
        "{phase}: see the run's output for what failed"
    );
    for timed in ["p50_ms", "sms_stored_p50_ms", "sms_join_p50_ms", "sms_reply_provider_p50_ms"] {
        assert!(num(header, r, timed) > 0.0, "{phase}: no {timed} recorded");
    }
}

#[test]
fn settings_it_cannot_measure_are_refused_by_flag_before_anything_runs() {
    for (flag, value) in [("--agents", "0"), ("--interactions", "0"), ("--concurrency", "0")] {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("results");
        let run = Command::new(bin()).args([flag, value, "--out"]).arg(&dir).output().unwrap();
        assert!(!run.status.success(), "{flag} {value} was accepted");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(&format!("{flag}: must be at least 1")), "{flag}: {err}");
        assert!(!dir.exists(), "{flag} {value}: the run wrote results");
    }
}

/// The live (not zombie) children of `pid` whose command line contains `name`.
fn live_children(pid: u32, name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // `pid (comm) state ppid ...`; comm may hold spaces, so read after its closing paren.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else { continue };
        let mut f = rest.split(' ');
        let (state, ppid) = (f.next().unwrap_or(""), f.next().and_then(|p| p.parse::<u32>().ok()));
        let cmdline = std::fs::read_to_string(format!("/proc/{child}/cmdline")).unwrap_or_default();
        if ppid == Some(pid) && state != "Z" && cmdline.contains(name) {
            out.push(child);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

/// Stops, by PID, whatever a failed assertion would otherwise leave running.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

#[test]
fn a_run_stopped_by_sigterm_stops_the_redis_it_started() {
    use std::io::{BufRead, BufReader};
    let out = tempfile::tempdir().unwrap();
    let mut bench = Command::new(bin())
        .args(["--agents", "5", "--interactions", "5", "--backlog", "10", "--out"])
        .arg(out.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(vec![bench.id()]);
    // The first thing a run does is measure Redis's ceiling, for 3 s, on a Redis of its own.
    let mut lines = BufReader::new(bench.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("ceiling: measuring Redis"), "{first}");
    let redis = live_children(bench.id(), "redis-server");
    assert_eq!(redis.len(), 1, "expected the bench's one redis-server, found {redis:?}");
    guard.0.extend(&redis);

    let status = Command::new("kill").args(["-TERM", &bench.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = bench.wait().unwrap();
    assert!(!exit.success(), "a terminated run must not report success");
    assert!(!alive(redis[0]), "the bench's redis-server (pid {}) outlived it", redis[0]);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut bench.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("terminated (SIGTERM)"), "{err}");
}
