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
