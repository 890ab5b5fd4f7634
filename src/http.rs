//! The HTTP listener: liveness, readiness, Prometheus metrics, and the web chat (WebSocket,
//! widget, demo page) when it is enabled.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::channels::webchat::routes::WebChatSlot;
use switchboard_engine::Engine;

#[derive(Clone)]
pub struct HttpState {
    /// None until the first Redis connection is up.
    pub engine: std::sync::Arc<tokio::sync::RwLock<Option<Engine>>>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The web chat's routes, when it is enabled.
    pub webchat: Option<WebChatSlot>,
}

pub fn router(state: HttpState) -> Router {
    let webchat = state.webchat.clone();
    let r = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(|State(s): State<HttpState>| async move { s.metrics.render() }))
        .with_state(state);
    match webchat {
        Some(slot) => r.merge(crate::channels::webchat::routes::router(slot)),
        None => r,
    }
}

async fn readyz(State(s): State<HttpState>) -> (StatusCode, String) {
    let engine = s.engine.read().await.clone();
    match engine {
        None => (StatusCode::SERVICE_UNAVAILABLE, "redis: not connected yet\n".into()),
        Some(engine) => match tokio::time::timeout(std::time::Duration::from_secs(2), engine.ping()).await {
            Ok(Ok(())) => (StatusCode::OK, "ready\n".into()),
            Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("redis: {e}\n")),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "redis: no answer within 2 s\n".into()),
        },
    }
}

pub async fn serve(listener: TcpListener, state: HttpState, shutdown: CancellationToken) -> std::io::Result<()> {
    // The peer address feeds the web chat's per-IP limits.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}
