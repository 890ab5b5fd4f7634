//! The web chat's HTTP routes on the daemon's HTTP listener.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::WebChat;
use super::config::{MAX_FRAME_BYTES, normalize_origin};

const WIDGET_JS: &str = include_str!("assets/widget.js");
const WIDGET_CSS: &str = include_str!("assets/widget.css");
const DEMO_HTML: &str = include_str!("assets/demo.html");

/// Filled once Redis is connected; until then `/chat/ws` answers 503.
pub type WebChatSlot = Arc<OnceLock<Arc<WebChat>>>;

pub fn router(slot: WebChatSlot) -> Router {
    Router::new()
        .route("/chat/ws", get(ws))
        .route("/widget.js", get(|| async { asset("text/javascript; charset=utf-8", WIDGET_JS) }))
        .route("/widget.css", get(|| async { asset("text/css; charset=utf-8", WIDGET_CSS) }))
        .route("/chat/demo", get(|| async { asset("text/html; charset=utf-8", DEMO_HTML) }))
        .with_state(slot)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Any site may load the widget; what it may do is decided by the origin check on /chat/ws.
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    r
}

/// Why a page's origin may not open a chat (None: it may).
fn origin_refusal(chat: &WebChat, headers: &HeaderMap) -> Option<String> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Some("an Origin header is required".into());
    };
    let Ok(origin) = normalize_origin(origin) else {
        return Some(format!("origin {origin:?} is not allowed"));
    };
    let allowed = &chat.config().allowed_origins;
    if allowed.iter().any(|a| a == "*" || normalize_origin(a).is_ok_and(|a| a == origin)) {
        return None;
    }
    // The server's own pages (the demo) may always chat.
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    if origin.split_once("://").is_some_and(|(_, h)| h == host) {
        return None;
    }
    Some(format!("origin {origin:?} is not allowed; add it to webchat.allowed_origins"))
}

/// The right-most address of the proxy's header: the one the proxy itself added (addresses to
/// its left come from the client and could be forged).
fn client_ip(header: &str, headers: &HeaderMap) -> Option<IpAddr> {
    if header.is_empty() {
        return None;
    }
    let v = headers.get_all(header).iter().filter_map(|v| v.to_str().ok()).next_back()?;
    v.rsplit(',').next()?.trim().parse().ok()
}

async fn ws(
    State(slot): State<WebChatSlot>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(chat) = slot.get().cloned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "chat is starting; try again shortly\n").into_response();
    };
    if let Some(why) = origin_refusal(&chat, &headers) {
        metrics::counter!("switchboard_webchat_refused_total", "why" => "origin").increment(1);
        return (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
    }
    let ip = client_ip(&chat.config().client_ip_header, &headers).unwrap_or(peer.ip());
    let Some(slot) = chat.open_slot(ip) else {
        metrics::counter!("switchboard_webchat_refused_total", "why" => "open_connections").increment(1);
        return (StatusCode::TOO_MANY_REQUESTS, "too many open chat connections from your address; close one first\n")
            .into_response();
    };
    // Shared by every instance (in Redis); this instance's own count if Redis cannot be asked.
    let limit = u64::from(chat.config().ip_connections_per_minute);
    let over = match chat.engine().count_in_window("webchat_conn", &ip.to_string(), Duration::from_secs(60)).await {
        Ok((n, _)) => n > limit,
        Err(_) => chat.ip_connections.check_key(&ip).is_err(),
    };
    if over {
        metrics::counter!("switchboard_webchat_refused_total", "why" => "rate").increment(1);
        return (StatusCode::TOO_MANY_REQUESTS, "too many chat connections from your address; try again in a minute\n")
            .into_response();
    }
    upgrade.max_message_size(MAX_FRAME_BYTES).max_frame_size(MAX_FRAME_BYTES).on_upgrade(move |socket| async move {
        // Held for as long as the connection is open.
        let _slot = slot;
        super::socket::serve(chat, socket, ip).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ip_comes_from_the_proxy_header_when_configured() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 198.51.100.7"));
        assert_eq!(client_ip("", &h), None);
        assert_eq!(client_ip("X-Forwarded-For", &h), Some("198.51.100.7".parse().unwrap()));
        h.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(client_ip("X-Forwarded-For", &h), None);
    }

    #[test]
    fn assets_are_embedded() {
        assert!(WIDGET_JS.contains("textContent"));
        assert!(!WIDGET_JS.contains("innerHTML"), "the widget must never render text as HTML");
        assert!(DEMO_HTML.contains("/widget.js"));
        assert!(WIDGET_CSS.contains(".sbw-"));
    }
}
