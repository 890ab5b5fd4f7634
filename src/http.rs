//! The HTTP listener: liveness, readiness, Prometheus metrics, and the web chat (WebSocket,
//! widget, demo page) when it is enabled. Optionally over TLS; `/metrics` can move to an
//! internal listener of its own.
//!
//! Connections are served by hyper directly (not `axum::serve`) for the limits a public
//! listener needs: a request's headers must arrive within a deadline, and so must the next
//! request on a kept-alive connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::channels::webchat::routes::WebChatSlot;
use switchboard_auth::ServerTls;
use switchboard_engine::Engine;

#[derive(Clone)]
pub struct HttpState {
    /// None until the first Redis connection is up.
    pub engine: std::sync::Arc<tokio::sync::RwLock<Option<Engine>>>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The web chat's routes, when it is enabled.
    pub webchat: Option<WebChatSlot>,
    /// The SMS gateways' webhooks, when the channel is configured.
    pub sms: Option<crate::channels::sms::routes::SmsSlot>,
    /// The agent desktop and wallboard pages, when enabled.
    pub web: Option<crate::api::web::WebSlot>,
}

/// The public listener's routes; `/metrics` among them unless it has a listener of its own.
pub fn router(state: HttpState, with_metrics: bool) -> Router {
    let webchat = state.webchat.clone();
    let sms = state.sms.clone();
    let web = state.web.clone();
    let mut r = Router::new().route("/healthz", get(|| async { "ok\n" })).route("/readyz", get(readyz));
    if with_metrics {
        r = r.route("/metrics", get(|State(s): State<HttpState>| async move { s.metrics.render() }));
    }
    let mut r = r.with_state(state);
    if let Some(slot) = webchat {
        r = r.merge(crate::channels::webchat::routes::router(slot));
    }
    if let Some(slot) = sms {
        r = r.merge(crate::channels::sms::routes::router(slot));
    }
    if let Some(slot) = web {
        r = r.merge(crate::api::web::router(slot));
    }
    r
}

async fn readyz(State(s): State<HttpState>) -> (StatusCode, String) {
    let engine = s.engine.read().await.clone();
    match engine {
        None => (StatusCode::SERVICE_UNAVAILABLE, "redis: not connected yet\n".into()),
        // Ready means "can route": Redis answers, with the config's data and the routing functions.
        Some(engine) => match tokio::time::timeout(std::time::Duration::from_secs(2), engine.readiness()).await {
            Ok(Ok(())) => (StatusCode::OK, "ready\n".into()),
            Ok(Err(why)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "redis: no answer within 2 s\n".into()),
        },
    }
}

/// How long a client may take to send a request's headers (and, on a kept-alive connection,
/// to start the next request).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let connections = tokio_util::task::TaskTracker::new();
    let accepted = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Box<dyn Io>, SocketAddr)>(64);
    let accept = {
        let stop = accepted.clone();
        let shutdown = shutdown.clone();
        async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = listener.accept() => match r {
                        Ok(c) => c,
                        Err(error) => {
                            tracing::warn!(message = "HTTP accept failed.", %error);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                match &tls {
                    None => {
                        if tx.send((Box::new(tcp), peer)).await.is_err() {
                            return;
                        }
                    }
                    Some(tls) => {
                        let acceptor = tls.acceptor();
                        let tx = tx.clone();
                        let stop = stop.clone();
                        tokio::spawn(async move {
                            let handshake = tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(tcp));
                            tokio::select! {
                                _ = stop.cancelled() => {}
                                r = handshake => match r {
                                    Ok(Ok(s)) => { let _ = tx.send((Box::new(s), peer)).await; }
                                    _ => metrics::counter!("switchboard_tls_handshake_failures_total").increment(1),
                                }
                            }
                        });
                    }
                }
            }
        }
    };
    tokio::spawn(accept);
    loop {
        let (io, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            c = rx.recv() => match c { Some(c) => c, None => break },
        };
        // The peer address feeds the web chat's per-IP limits.
        let svc = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let stop = shutdown.clone();
        connections.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    // The request in flight finishes; the connection is not kept alive after it.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(error) = r {
                tracing::debug!(message = "HTTP connection ended with an error.", %error);
            }
        });
    }
    accepted.cancel();
    connections.close();
    // Upgraded WebSockets are the web chat's to close on shutdown.
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
    Ok(())
}

/// A plain or TLS connection.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Only `/metrics`, for an internal listener.
pub fn metrics_router(metrics: metrics_exporter_prometheus::PrometheusHandle) -> Router {
    Router::new().route("/metrics", get(move || async move { metrics.render() }))
}
