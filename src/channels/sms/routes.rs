//! The SMS gateways' webhooks on the daemon's HTTP listener: `/sms/<gateway>/inbound` (customers'
//! texts) and `/sms/<gateway>/status` (reports on ours). Any method: Kannel calls with GET,
//! Twilio-shaped providers POST forms. Each gateway authenticates its caller its own way.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::SmsChannel;
use super::gateway::{Hook, WebhookRequest};

/// Filled once Redis is connected; until then the webhooks answer 503 (providers retry).
pub type SmsSlot = Arc<OnceLock<Arc<SmsChannel>>>;

pub fn router(slot: SmsSlot) -> Router {
    Router::new()
        .route("/sms/{gateway}/inbound", any(inbound))
        .route("/sms/{gateway}/status", any(status))
        .with_state(slot)
}

async fn inbound(
    State(slot): State<SmsSlot>,
    Path(gateway): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    hook(slot, gateway, Hook::Inbound, peer, req).await
}

async fn status(
    State(slot): State<SmsSlot>,
    Path(gateway): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    hook(slot, gateway, Hook::Status, peer, req).await
}

async fn hook(slot: SmsSlot, gateway: String, which: Hook, peer: SocketAddr, req: Request) -> Response {
    let Some(sms) = slot.get().cloned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting; try again shortly\n").into_response();
    };
    let Some(hooks) = sms.gateways.get(&gateway).and_then(|e| e.hooks.clone()) else {
        return (StatusCode::NOT_FOUND, "no such SMS gateway\n").into_response();
    };
    let (parts, body) = req.into_parts();
    let limit = sms.cfg.max_request_bytes;
    if parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return (StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {limit} bytes\n")).into_response();
    }
    let Ok(body) = axum::body::to_bytes(Body::new(body), limit).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {limit} bytes\n")).into_response();
    };
    let req = WebhookRequest { method: parts.method, uri: parts.uri, headers: parts.headers, body, peer };
    hooks.webhook(which, req, sms.as_ref()).await
}
