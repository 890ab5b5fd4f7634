//! The run on one Redis with AOF (`appendfsync always`; `everysec` for one crash a round): chats
//! and calls into three instances while instances and Redis are killed and frozen and the CRM is
//! down, then all of it at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::check::{Arrived, Run, finish};
use super::peers::CrmProcess;
use super::traffic::{calls, chats};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_and_redis_faults_lose_nothing_double_nothing_and_never_overfill_an_agent() {
    let knobs = Knobs::from_env(40);
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let crm = CrmProcess::start().await;
    let (crm_endpoint, crm_db) = (crm.endpoint(), crm.database_url());
    let crm = Arc::new(Mutex::new(crm));
    let dir = RunDir::new();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, config_toml(&Extra { crm_endpoint: crm_endpoint.clone(), channels: String::new() }))
        .unwrap();
    let mut instances: Vec<Instance> =
        (0..3).map(|i| Instance::new(&format!("solo-{i}"), &config, &redis.url, &[])).collect();
    start_instances(&mut instances).await;
    let endpoints: Vec<String> = instances.iter().map(Instance::endpoint).collect();

    let seen: Shared = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let (start, start_ms) = (Instant::now(), wall_ms());
    let end = start + Duration::from_secs(knobs.secs);
    let agents: Vec<_> = (0..AGENTS)
        .map(|i| tokio::spawn(agents::agent(i, endpoints.clone(), start, stop.clone(), seen.clone())))
        .collect();
    let traffic = [
        tokio::spawn(chats(endpoints.clone(), end, start, Duration::from_millis(150), seen.clone())),
        tokio::spawn(calls(endpoints.clone(), end, start, Duration::from_millis(700), seen.clone())),
    ];

    const STEPS: usize = 7;
    let mut plan = Schedule::new(start, &knobs, STEPS * knobs.rounds as usize);
    for round in 0..knobs.rounds as usize {
        let victim = round % instances.len();
        let j = round * STEPS;

        plan.turn(j).await;
        let t = plan.now();
        instances[victim].kill();
        tokio::time::sleep(Duration::from_secs(2)).await;
        instances[victim].spawn();
        plan.record(format!("kill -9 instance {}, restarted 2 s later", instances[victim].id), t, false);

        plan.turn(j + 1).await;
        let other = (victim + 1) % instances.len();
        let t = plan.now();
        instances[other].signal("-STOP");
        tokio::time::sleep(Duration::from_secs(3)).await;
        instances[other].signal("-CONT");
        plan.record(format!("SIGSTOP instance {} for 3 s", instances[other].id), t, false);

        plan.turn(j + 2).await;
        let t = plan.now();
        tokio::task::block_in_place(|| redis.restart());
        plan.record("kill -9 Redis (AOF, appendfsync always), restarted at once", t, false);

        plan.turn(j + 3).await;
        let t = plan.now();
        signal_pid(redis.pid(), "-STOP");
        tokio::time::sleep(Duration::from_secs(3)).await;
        signal_pid(redis.pid(), "-CONT");
        plan.record("SIGSTOP Redis for 3 s", t, false);

        plan.turn(j + 4).await;
        plan.crm_down(&crm);

        plan.turn(j + 5).await;
        let t = plan.now();
        let victim = (victim + 2) % instances.len();
        instances[victim].kill();
        signal_pid(redis.pid(), "-STOP");
        tokio::time::sleep(Duration::from_secs(3)).await;
        signal_pid(redis.pid(), "-CONT");
        instances[victim].spawn();
        plan.record(
            format!("overlapping: kill -9 instance {} and SIGSTOP Redis for 3 s, CRM down", instances[victim].id),
            t,
            false,
        );

        plan.turn(j + 6).await;
        let mut con = redis.client().await;
        let _: () =
            redis::cmd("CONFIG").arg("SET").arg("appendfsync").arg("everysec").query_async(&mut con).await.unwrap();
        // Traffic under everysec for a while, then the crash (restarted with `always` again).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = plan.now();
        tokio::task::block_in_place(|| redis.restart());
        plan.record("kill -9 Redis (AOF, appendfsync everysec), restarted at once", t, true);
    }
    plan.finish(Duration::from_secs(knobs.secs)).await;
    for t in traffic {
        t.await.unwrap();
    }

    let run = Run {
        title: "Redis standalone: instances and Redis killed and frozen, CRM down".into(),
        knobs: &knobs,
        start_ms,
        seen: &seen,
        faults: &plan.faults,
        endpoint: endpoints[0].clone(),
        crm_db,
    };
    let redis = &redis;
    finish(run, || redis.client(), || stop.cancel(), || async { Arrived::default() }).await;
    for a in agents {
        let _ = a.await;
    }
}
