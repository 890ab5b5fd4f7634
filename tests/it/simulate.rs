//! `switchboard simulate` as people run it: a day through today's config and a proposed one, the
//! report side by side, the same seed giving the same report; bad input refused before anything
//! runs, with an error naming what is wrong.

use std::process::Command;

fn simulate(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("simulate")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run switchboard simulate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const AGENTS: &str = r#"
[[agents]]
id = "ann"
token = "t1"
skills = { billing = 6 }
capacity = { voice = 1, chat = 0, sms = 0, email = 0 }

[[agents]]
id = "bob"
token = "t2"
skills = { billing = 3 }
capacity = { voice = 1, chat = 0, sms = 0, email = 0 }
"#;

const QUEUE: &str = r#"
[[queues]]
name = "billing"
channels = ["voice"]
requirements = [{ skill = "billing", min_level = 5 }]
service_level_secs = 20
"#;

const SCENARIO: &str = r#"
seed = 5
hours = 1
accept_delay_secs = 1
[[arrivals]]
queue = "billing"
per_hour = 40
handle_secs = 120
patience_secs = 60
"#;

#[test]
fn a_proposed_config_is_compared_on_the_same_day_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("today.toml"), format!("{AGENTS}{QUEUE}")).unwrap();
    // Proposed: Bob (billing 3) takes billing after 10 s of waiting.
    let relaxed = QUEUE.to_string()
        + "escalation = [{ after_secs = 10, lower_level = { skill = \"billing\", min_level = 3 } }]\n";
    std::fs::write(d.join("proposed.toml"), format!("{AGENTS}{relaxed}")).unwrap();
    std::fs::write(d.join("day.toml"), SCENARIO).unwrap();
    let args = ["--config", "today.toml", "--proposed", "proposed.toml", "--scenario", "day.toml", "--out", "r1"];
    let (ok, stdout, stderr) = simulate(d, &args);
    assert!(ok, "{stderr}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| billing |")).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(rows[0].starts_with("| billing | today |") && rows[1].starts_with("| billing | proposed |"), "{stdout}");
    let csv = std::fs::read_to_string(d.join("r1/report.csv")).unwrap();
    let field = |row: usize, name: &str| -> f64 {
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let i = header.iter().position(|h| *h == name).unwrap();
        csv.lines().nth(row).unwrap().split(',').nth(i).unwrap().parse().unwrap()
    };
    // The same arrivals in both; with Bob helping, the proposed config answers more, sooner.
    assert_eq!(field(1, "arrivals"), field(2, "arrivals"));
    assert!(field(1, "arrivals") > 20.0, "{csv}");
    assert!(field(2, "answered") >= field(1, "answered"), "{csv}");
    assert!(field(2, "asa_secs") < field(1, "asa_secs"), "{csv}");
    // The same seed gives the same report.
    let (ok, _, stderr) = simulate(
        d,
        &["--config", "today.toml", "--proposed", "proposed.toml", "--scenario", "day.toml", "--out", "r2"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(csv, std::fs::read_to_string(d.join("r2/report.csv")).unwrap());

    // Bad input: a clear error naming what is wrong, and nothing written.
    std::fs::write(d.join("bad-rate.toml"), SCENARIO.replace("per_hour = 40", "per_hour = 0")).unwrap();
    let (ok, _, stderr) = simulate(d, &["--config", "today.toml", "--scenario", "bad-rate.toml", "--out", "r3"]);
    assert!(!ok);
    assert!(stderr.contains("arrivals[0].per_hour: must be a positive number"), "{stderr}");
    std::fs::write(d.join("bad-queue.toml"), SCENARIO.replace("queue = \"billing\"", "queue = \"sales\"")).unwrap();
    let (ok, _, stderr) = simulate(d, &["--config", "today.toml", "--scenario", "bad-queue.toml", "--out", "r3"]);
    assert!(!ok);
    assert!(stderr.contains("arrivals[0].queue: the today config has no queue \"sales\""), "{stderr}");
    std::fs::write(d.join("broken.toml"), format!("{AGENTS}{QUEUE}\n[[queues]]\nname = \"\"\n")).unwrap();
    let (ok, _, stderr) =
        simulate(d, &["--config", "today.toml", "--proposed", "broken.toml", "--scenario", "day.toml", "--out", "r3"]);
    assert!(!ok);
    assert!(stderr.contains("broken.toml") && stderr.contains("queues[1].name"), "{stderr}");
    assert!(!d.join("r3/report.md").exists(), "nothing ran");
}

/// One CSV field of a report row (1: the first configuration's first queue).
fn report_field(csv: &str, row: usize, name: &str) -> f64 {
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let i = header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}: {csv}"));
    csv.lines().nth(row).unwrap().split(',').nth(i).unwrap().parse().unwrap()
}

const RECORDED_HEADER: &str = "at,interaction_id,channel,queue,priority,handle_secs,patience_secs,wrap_up_secs";

#[test]
fn a_recorded_day_replays_contact_for_contact_and_bad_lines_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Wrap-up may take up to 5 minutes; Ann's recorded wrap-ups took 10 s (she ended them early).
    std::fs::write(d.join("today.toml"), format!("{AGENTS}{QUEUE}wrap_up_secs = 300\n")).unwrap();
    // Only Ann (billing 6) takes billing. The first caller keeps her 100 s; the second comes 10 s
    // later and gives up after 5 s; then one every 5 minutes, each answered at once (with the
    // queue's whole wrap-up she would still be in it).
    let mut rows = vec![
        RECORDED_HEADER.to_string(),
        "2026-12-07T09:20:00.000Z,i0,voice,billing,0,100.000,,10.000".into(),
        "2026-12-07T09:20:10.000Z,i1,voice,billing,0,,5.000,".into(),
    ];
    for i in 0..7 {
        rows.push(format!("2026-12-07T09:{:02}:00.000Z,r{i},voice,billing,0,60.000,,10.000", 25 + i * 5));
    }
    std::fs::write(d.join("day.csv"), rows.join("\n") + "\n").unwrap();
    std::fs::write(d.join("day.toml"), "recorded = \"day.csv\"\naccept_delay_secs = 1\n").unwrap();
    let (ok, _, stderr) = simulate(d, &["--config", "today.toml", "--scenario", "day.toml", "--out", "r"]);
    assert!(ok, "{stderr}");
    let csv = std::fs::read_to_string(d.join("r/report.csv")).unwrap();
    assert_eq!(report_field(&csv, 1, "arrivals"), 9.0, "{csv}");
    assert_eq!(report_field(&csv, 1, "answered"), 8.0, "{csv}");
    assert_eq!(report_field(&csv, 1, "abandoned"), 1.0, "{csv}");
    // Everyone answered waited only the accept delay.
    assert_eq!(report_field(&csv, 1, "asa_secs"), 1.0, "{csv}");
    // Without the recorded wrap-ups each takes the queue's 5 minutes, longer than the gap to the
    // next caller: they wait, and every one is still answered once the wrap-up timers run out.
    let whole_wrap: Vec<String> = rows.iter().map(|r| r.replace(",10.000", ",")).collect();
    std::fs::write(d.join("whole.csv"), whole_wrap.join("\n") + "\n").unwrap();
    std::fs::write(d.join("whole.toml"), "recorded = \"whole.csv\"\naccept_delay_secs = 1\n").unwrap();
    let (ok, _, stderr) = simulate(d, &["--config", "today.toml", "--scenario", "whole.toml", "--out", "w"]);
    assert!(ok, "{stderr}");
    let whole = std::fs::read_to_string(d.join("w/report.csv")).unwrap();
    assert_eq!(report_field(&whole, 1, "answered"), 8.0, "{whole}");
    assert!(report_field(&whole, 1, "asa_secs") > 60.0, "{whole}");
    // The chart tells the day's own clock: it began at 09:00.
    let chart = std::fs::read_to_string(d.join("r/chart.svg")).unwrap();
    assert!(chart.contains("09:00"), "the chart starts at the recorded hour");

    // A row out of order, a row for a queue the config lacks, a broken row: named by line.
    let bad = |body: &[&str]| {
        let mut text = vec![RECORDED_HEADER];
        text.extend_from_slice(body);
        std::fs::write(d.join("day.csv"), text.join("\n")).unwrap();
        let (ok, _, stderr) = simulate(d, &["--config", "today.toml", "--scenario", "day.toml", "--out", "bad"]);
        assert!(!ok);
        assert!(!d.join("bad/report.md").exists(), "nothing ran: {stderr}");
        stderr
    };
    let e = bad(&["2026-12-07T09:20:00Z,i0,voice,billing,0,100,,", "2026-12-07T09:19:00Z,i1,voice,billing,0,100,,"]);
    assert!(e.contains("day.csv: line 3: at: 2026-12-07T09:19:00Z is before line 2's time"), "{e}");
    let e = bad(&["2026-12-07T09:20:00Z,i0,voice,billing,0,100,,", "2026-12-07T09:21:00Z,i1,voice,sales,0,100,,"]);
    assert!(e.contains("day.csv: line 3: queue: the today config has no queue \"sales\""), "{e}");
    let e = bad(&["2026-12-07T09:20:00Z,i0,voice,billing,0,100,"]);
    assert!(e.contains("day.csv: line 2: 7 fields, expected 8"), "{e}");
}

#[test]
fn agents_work_their_shifts_and_turn_down_or_miss_offers_as_told() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two agents who both take billing, so one turning an offer down passes it to the other.
    let both = QUEUE.replace("min_level = 5", "min_level = 3");
    std::fs::write(d.join("today.toml"), format!("{AGENTS}{both}")).unwrap();
    let light = "seed = 9\nhours = 2\naccept_delay_secs = 1\n\
                 [[arrivals]]\nqueue = \"billing\"\nper_hour = 20\nhandle_secs = 60\n";
    let run = |name: &str, scenario: &str| -> String {
        std::fs::write(d.join(format!("{name}.toml")), scenario).unwrap();
        let (ok, _, stderr) =
            simulate(d, &["--config", "today.toml", "--scenario", &format!("{name}.toml"), "--out", name]);
        assert!(ok, "{name}: {stderr}");
        std::fs::read_to_string(d.join(format!("{name}/report.csv"))).unwrap()
    };
    // Everyone all day: everything answered.
    let all_day = run("all-day", light);
    let arrivals = report_field(&all_day, 1, "arrivals");
    assert!(arrivals > 20.0, "{all_day}");
    assert_eq!(report_field(&all_day, 1, "answered"), arrivals, "{all_day}");
    // Both on shift for the first hour only: what comes later waits unanswered (nobody leaves).
    let shifts = run("shifts", &format!("{light}[[shifts]]\nagents = [\"ann\", \"b*\"]\nfrom_hour = 0\nto_hour = 1\n"));
    let answered = report_field(&shifts, 1, "answered");
    assert!(answered > 0.0 && answered < arrivals, "answered {answered} of {arrivals}: {shifts}");
    // Everyone turns every offer down: both are then kept from each contact, which waits on.
    let rejecting = run("rejecting", &format!("reject_percent = 100\n{light}"));
    assert_eq!(report_field(&rejecting, 1, "answered"), 0.0, "{rejecting}");
    // Half the offers ring out (the queue's offer timeout, 20 s; then the agent is not ready for
    // 20 s and never offered that contact again): a contact both missed waits on unanswered, and
    // the answered waited longer than when nobody misses.
    let missing = run("missing", &format!("miss_percent = 50\nready_after_miss_secs = 20\n{light}"));
    let answered = report_field(&missing, 1, "answered");
    assert!(answered > 0.0 && answered < arrivals, "answered {answered} of {arrivals}: {missing}");
    assert!(report_field(&missing, 1, "asa_secs") > report_field(&all_day, 1, "asa_secs") + 5.0, "{missing}");

    // A shift naming nobody in the config is refused, naming the field.
    std::fs::write(
        d.join("nobody.toml"),
        format!("{light}[[shifts]]\nagents = [\"zed\"]\nfrom_hour = 0\nto_hour = 1\n"),
    )
    .unwrap();
    let (ok, _, stderr) = simulate(d, &["--config", "today.toml", "--scenario", "nobody.toml", "--out", "nobody"]);
    assert!(!ok);
    assert!(stderr.contains("shifts[0].agents[0]: \"zed\" names no agent of the today config"), "{stderr}");
}
