//! What this machine allows before any routing, measured in the same run: Redis's own ceiling and a
//! no-op gRPC call's, so the figures read against the machine they ran on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::procfs::own_cpu_us;
use crate::slowlog::local_redis;

/// What this machine allows before any routing: Redis's own ceiling and a no-op gRPC call's.
#[derive(Debug, Clone, Copy)]
pub struct Ceiling {
    /// Plain round trips (PING) per second.
    pub ping: f64,
    /// EVALSHA of a 6-command script per second.
    pub evalsha: f64,
    /// No-op unary gRPC calls per second.
    pub grpc_calls: f64,
    /// This process's CPU (client and server side) per no-op gRPC call, µs.
    pub grpc_cpu_us: f64,
}

impl Ceiling {
    /// Both ceilings (3 s a measurement), Redis's on a Redis of its own.
    pub async fn measure() -> anyhow::Result<Ceiling> {
        let redis = local_redis();
        println!("ceiling: measuring Redis on this machine ({CEILING_CLIENTS} clients, 3 s each) ...");
        let (ping, evalsha) = redis_ceiling(&redis.url, CEILING_CLIENTS, Duration::from_secs(3)).await?;
        println!("ceiling: measuring a no-op gRPC call on this machine ({CEILING_CLIENTS} clients, 3 s) ...");
        let (grpc_calls, grpc_cpu_us) = grpc_ceiling(CEILING_CLIENTS, Duration::from_secs(3)).await?;
        Ok(Ceiling { ping, evalsha, grpc_calls, grpc_cpu_us })
    }
}

/// Redis's own ceiling: ops/s for a plain round trip and for an EVALSHA of comparable work.
async fn redis_ceiling(url: &str, clients: usize, dur: Duration) -> anyhow::Result<(f64, f64)> {
    let client = redis::Client::open(url)?;
    let script = redis::Script::new(
        "local k = KEYS[1]
         redis.call('ZADD', k .. ':z', ARGV[1], ARGV[1])
         local r = redis.call('ZRANGEBYSCORE', k .. ':z', '-inf', '+inf', 'LIMIT', 0, 1)
         redis.call('ZREM', k .. ':z', r[1])
         redis.call('HINCRBY', k .. ':h', 'n', 1)
         redis.call('XADD', k .. ':s', 'MAXLEN', '~', 1000, '*', 'f', ARGV[1])
         redis.call('HSET', k .. ':h2', 'last', ARGV[1])
         return 1",
    );
    let mut out = [0.0; 2];
    for (i, o) in out.iter_mut().enumerate() {
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let mut con = client.get_multiplexed_async_connection().await?;
            let count = count.clone();
            let script = script.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < dur {
                    let ok = if i == 0 {
                        redis::cmd("PING").query_async::<String>(&mut con).await.is_ok()
                    } else {
                        script.key(format!("bench:{c}")).arg(n).invoke_async::<i64>(&mut con).await.is_ok()
                    };
                    if ok {
                        n += 1;
                    }
                }
                count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }));
        }
        for t in tasks {
            t.await?;
        }
        *o = count.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    }
    Ok((out[0], out[1]))
}

/// Concurrent clients in each ceiling measurement.
pub const CEILING_CLIENTS: usize = 50;

/// Concurrent callers per HTTP/2 connection in the gRPC ceiling: several connections, each
/// multiplexing many calls, as the benchmark's desktops share theirs.
pub const GRPC_CALLERS_PER_CHANNEL: usize = 10;

/// What a no-op unary gRPC call costs on this machine with the daemon's tonic setup (the health
/// service's `Check`): calls per second, and this process's CPU per call (client and server, as
/// the benchmark's figures for the daemon and its desktops). Creating, accepting and completing
/// an interaction through the API are three such requests and an offer is a stream message, so
/// this bounds decisions per second from the daemon's side whatever Redis does.
async fn grpc_ceiling(clients: usize, dur: Duration) -> anyhow::Result<(f64, f64)> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let (_health, service) = tonic_health::server::health_reporter();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let stop = CancellationToken::new();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(20)))
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned()),
    );
    let mut channels = Vec::new();
    for _ in 0..clients.div_ceil(GRPC_CALLERS_PER_CHANNEL) {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())?.connect().await?;
        // The first call on a connection pays for its set-up; that is not what is measured.
        HealthClient::new(channel.clone()).check(HealthCheckRequest::default()).await?;
        channels.push(channel);
    }
    let cpu_before = own_cpu_us();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = HealthClient::new(channels[c / GRPC_CALLERS_PER_CHANNEL].clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < dur {
                client.check(HealthCheckRequest::default()).await?;
                n += 1;
            }
            Ok::<_, anyhow::Error>(n)
        }));
    }
    let mut calls = 0;
    for t in tasks {
        calls += t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = own_cpu_us().saturating_sub(cpu_before);
    stop.cancel();
    server.await??;
    Ok((calls as f64 / elapsed, cpu as f64 / calls.max(1) as f64))
}
