//! The agent desktop (`/agent`) and the supervisor wallboard (`/supervisor`): static pages on the
//! HTTP listener that call the gRPC API with gRPC-Web, like any other client, behind the same
//! trust boundary (`server.grpc_web_origins` must list the pages' origin).
//!
//! No build step: the pages are plain HTML, CSS and JavaScript embedded in the binary, and their
//! protobuf codec reads the messages from `web/schema.json`, which comes from the descriptor set
//! the daemon was built with. Every path is relative, so a reverse proxy may serve them under
//! any prefix.

pub mod config;
mod schema;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

pub use config::WebConfig;

const AGENT_HTML: &str = include_str!("assets/agent.html");
const SUPERVISOR_HTML: &str = include_str!("assets/supervisor.html");
const STYLE_CSS: &str = include_str!("assets/style.css");
const GRPC_JS: &str = include_str!("assets/grpc.js");
const COMMON_JS: &str = include_str!("assets/common.js");
const AGENT_JS: &str = include_str!("assets/agent.js");
const SUPERVISOR_JS: &str = include_str!("assets/supervisor.js");

/// What the pages need to know about the daemon serving them.
#[derive(Clone)]
pub struct WebSlot {
    pub config: WebConfig,
    /// The gRPC listener's port and whether it speaks TLS: with no `grpc_url`, the pages call
    /// the host they came from at this port.
    pub grpc_port: u16,
    pub grpc_tls: bool,
    schema: Arc<str>,
}

impl WebSlot {
    pub fn new(config: WebConfig, grpc_port: u16, grpc_tls: bool) -> WebSlot {
        let schema = schema::schema_json(super::FILE_DESCRIPTOR_SET).expect("the built-in descriptor set decodes");
        WebSlot { config, grpc_port, grpc_tls, schema: schema.into() }
    }

    /// The origin the pages call, as the Content-Security-Policy names it ('self' for a path).
    fn grpc_origin(&self, host: Option<&str>) -> String {
        let u = self.config.grpc_url.trim();
        if u.starts_with('/') {
            return "'self'".into();
        }
        if let Ok(parsed) = url::Url::parse(u) {
            return parsed.origin().ascii_serialization();
        }
        let scheme = if self.grpc_tls { "https" } else { "http" };
        match host.and_then(host_name) {
            Some(h) => format!("{scheme}://{h}:{}", self.grpc_port),
            None => "'self'".into(),
        }
    }
}

/// The host name of a `Host` header (no port), if it is one a URL can carry.
fn host_name(host: &str) -> Option<String> {
    let parsed = url::Url::parse(&format!("http://{host}")).ok()?;
    Some(match parsed.host()? {
        url::Host::Ipv6(a) => format!("[{a}]"),
        h => h.to_string(),
    })
}

pub fn router(slot: WebSlot) -> Router {
    Router::new()
        .route("/agent", get(|s: State<WebSlot>, h: HeaderMap| async move { page(&s, &h, AGENT_HTML) }))
        .route("/supervisor", get(|s: State<WebSlot>, h: HeaderMap| async move { page(&s, &h, SUPERVISOR_HTML) }))
        .route("/web/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
        .route("/web/grpc.js", get(|| async { asset("text/javascript; charset=utf-8", GRPC_JS) }))
        .route("/web/common.js", get(|| async { asset("text/javascript; charset=utf-8", COMMON_JS) }))
        .route("/web/agent.js", get(|| async { asset("text/javascript; charset=utf-8", AGENT_JS) }))
        .route("/web/supervisor.js", get(|| async { asset("text/javascript; charset=utf-8", SUPERVISOR_JS) }))
        .route("/web/schema.json", get(|s: State<WebSlot>| async move { json_response(s.schema.to_string()) }))
        .route("/web/config.json", get(config_json))
        .with_state(slot)
}

async fn config_json(State(s): State<WebSlot>) -> Response {
    let c = &s.config;
    let body = json!({
        "grpcUrl": c.grpc_url.trim(),
        "grpcPort": s.grpc_port,
        "grpcTls": s.grpc_tls,
        "serviceLevelTargetPercent": c.service_level_target_percent,
        "waitingAlert": c.waiting_alert,
        "longestWaitAlertSecs": c.longest_wait_alert_secs,
    });
    json_response(body.to_string())
}

fn json_response(body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated each load: an upgraded daemon's pages and schema always go together.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// A page, with a policy that lets it run only its own scripts and talk only to the API: text a
/// customer wrote can never become code, even if some path rendered it as HTML.
fn page(slot: &WebSlot, headers: &HeaderMap, html: &'static str) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' data:; \
         connect-src 'self' {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        slot.grpc_origin(host)
    );
    let mut r = (StatusCode::OK, html).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(grpc_url: &str) -> WebSlot {
        WebSlot::new(WebConfig { grpc_url: grpc_url.into(), ..WebConfig::default() }, 50051, false)
    }

    #[test]
    fn the_pages_call_the_host_they_came_from_unless_told_otherwise() {
        assert_eq!(slot("").grpc_origin(Some("desk.example.com:8080")), "http://desk.example.com:50051");
        assert_eq!(slot("").grpc_origin(Some("[::1]:8080")), "http://[::1]:50051");
        assert_eq!(slot("https://api.example.com/x").grpc_origin(Some("a")), "https://api.example.com");
        assert_eq!(slot("/").grpc_origin(Some("a")), "'self'");
        assert_eq!(slot("").grpc_origin(Some("bad host/<x>")), "'self'");
    }

    #[test]
    fn pages_reference_their_assets_relatively() {
        for html in [AGENT_HTML, SUPERVISOR_HTML] {
            assert!(html.contains("src=\"web/grpc.js\""));
            assert!(!html.contains("src=\"/"), "an absolute path breaks behind a prefix");
        }
    }
}
