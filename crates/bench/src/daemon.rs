//! The daemon, in-process, without a CRM or web chat: the benchmark measures routing.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use switchboard::config::Config;
use switchboard::server::{Server, ServerError};

pub struct Daemon {
    /// Its gRPC address, for the desktops and the telephony system.
    pub endpoint: String,
    /// Its HTTP listener (the SMS point's webhooks).
    pub http: std::net::SocketAddr,
    server: JoinHandle<Result<(), ServerError>>,
    shutdown: CancellationToken,
}

impl Daemon {
    /// Starts it on Redis at `redis_url`; `tune` changes the config first (the CTI point adds its
    /// telephony key and routing points, the SMS point its `[sms]`).
    pub async fn start(redis_url: &str, tune: impl FnOnce(&mut Config)) -> anyhow::Result<Daemon> {
        let mut cfg = Config::default();
        cfg.redis.url = redis_url.to_string();
        cfg.crm.enabled = false;
        cfg.webchat.enabled = false;
        tune(&mut cfg);
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", grpc.local_addr()?);
        let http_addr = http.local_addr()?;
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(Server::new(cfg).run(grpc, http, shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Daemon { endpoint, http: http_addr, server, shutdown })
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.server).await;
    }
}
