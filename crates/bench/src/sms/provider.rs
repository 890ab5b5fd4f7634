//! The benchmark as a Twilio-compatible provider, both ways: it calls the daemon's inbound webhook
//! with each customer's text, signed as Twilio signs (`X-Twilio-Signature`, written here from
//! Twilio's documentation rather than taken from the daemon), and it serves the Messages REST API
//! the daemon sends replies through, answering 201 with a message sid at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use tokio_util::sync::CancellationToken;

use switchboard::channels::sms::config::{GatewayConfig, NumberConfig, SmsConfig, TwilioConfig};
use switchboard::config::Secret;

use super::texts::{Texts, customer};

/// The gateway's name in `[[sms.gateways]]`, and so its webhooks' path.
pub const GATEWAY: &str = "tw";
const ACCOUNT_SID: &str = "AC0000000000000000000000000000be01";
/// Where the provider believes the daemon is (a proxy in front of it, as in production): what
/// the webhooks are signed against.
const PUBLIC_URL: &str = "https://sms.bench.test";
/// How long a webhook may take before it counts as not stored.
const WEBHOOK_PATIENCE: Duration = Duration::from_secs(30);

/// `X-Twilio-Signature`: base64 of HMAC-SHA1, keyed with the auth token, over the URL followed by
/// each POST field's name and value, the fields sorted by name.
pub fn signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A token for this run only: the daemon is on loopback and lives as long as the point.
fn auth_token() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("bench-sms-{nanos:032x}{:08x}", std::process::id())
}

pub struct Provider {
    token: String,
    /// The Messages API, on 127.0.0.1.
    rest: SocketAddr,
    /// The daemon's HTTP listener, where the webhooks go.
    daemon: SocketAddr,
    http: reqwest::Client,
}

#[derive(Clone)]
struct Api {
    texts: Arc<Texts>,
    /// `Authorization` as the daemon must send it.
    basic: Arc<String>,
    sids: Arc<AtomicU64>,
}

async fn messages(State(api): State<Api>, Path(account): Path<String>, headers: HeaderMap, body: String) -> Response {
    let to = form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == "To").map(|(_, v)| v.into_owned());
    let to = to.unwrap_or_default();
    let auth_ok =
        account == ACCOUNT_SID && headers.get("authorization").is_some_and(|v| v.as_bytes() == api.basic.as_bytes());
    api.texts.reply_at_provider(&to, auth_ok);
    let sid = format!("SM{:032x}", api.sids.fetch_add(1, Relaxed));
    let json = format!("{{\"sid\":\"{sid}\",\"status\":\"queued\"}}");
    (StatusCode::CREATED, [("content-type", "application/json")], json).into_response()
}

impl Provider {
    /// Serves the Messages API (until `stop`); the webhooks go to `daemon` once it is set.
    pub async fn start(texts: Arc<Texts>, stop: CancellationToken) -> anyhow::Result<Provider> {
        let token = auth_token();
        let basic =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{token}")));
        let api = Api { texts, basic: Arc::new(basic), sids: Arc::default() };
        let app = axum::Router::new()
            .route("/2010-04-01/Accounts/{account}/Messages.json", axum::routing::post(messages))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let rest = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
        });
        // reqwest has no crypto provider of its own in this workspace: the daemon's client builder.
        let http = switchboard_auth::https_client(None, Duration::from_secs(5))?;
        Ok(Provider { token, rest, daemon: SocketAddr::from(([127, 0, 0, 1], 0)), http })
    }

    /// `[sms]` for the daemon: this provider as its one gateway, `lines` (our number, queue) on it.
    pub fn config(&self, lines: &[(String, String)]) -> SmsConfig {
        SmsConfig {
            gateways: vec![GatewayConfig::Twilio(TwilioConfig {
                name: GATEWAY.into(),
                account_sid: ACCOUNT_SID.into(),
                auth_token: Secret(self.token.clone()),
                base_url: format!("http://{}", self.rest),
                messaging_service_sid: String::new(),
                public_url: PUBLIC_URL.into(),
                ca_file: None,
                timeout_secs: 10,
            })],
            numbers: lines
                .iter()
                .map(|(number, queue)| NumberConfig {
                    number: number.clone(),
                    queue: queue.clone(),
                    gateway: GATEWAY.into(),
                    priority: None,
                })
                .collect(),
            ..SmsConfig::default()
        }
    }

    /// Sends the webhooks to the daemon whose HTTP listener is at `daemon`, once its SMS channel
    /// answers (it says 503 until it is connected to Redis).
    pub async fn connect(&mut self, daemon: SocketAddr) -> anyhow::Result<()> {
        self.daemon = daemon;
        let url = format!("http://{daemon}/sms/{GATEWAY}/inbound");
        for _ in 0..300 {
            // Unsigned: refused (403) once the channel is up, without anything stored.
            let r = self.http.post(&url).body("").send().await;
            if r.is_ok_and(|r| r.status() == StatusCode::FORBIDDEN) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the daemon's SMS webhook at {url} did not come up within 30 s")
    }

    /// Conversation `idx`'s customer texts (`second`: again, into the open conversation), timed
    /// from the request leaving to the daemon's answer; only a 200 counts as stored.
    pub async fn text(&self, texts: &Texts, idx: usize, second: bool) {
        let from = customer(idx);
        let sid = format!("SM{idx:030x}{}", if second { "02" } else { "01" });
        let body = if second { "It is order 4711, by the way." } else { "Hello, my parcel has not arrived." };
        let params = [
            ("MessageSid", sid.as_str()),
            ("AccountSid", ACCOUNT_SID),
            ("From", from.as_str()),
            ("To", texts.to(idx)),
            ("Body", body),
            ("NumMedia", "0"),
        ];
        let path = format!("/sms/{GATEWAY}/inbound");
        let sig = signature(&self.token, &format!("{PUBLIC_URL}{path}"), &params);
        let form = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let req = self
            .http
            .post(format!("http://{}{path}", self.daemon))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", sig)
            .timeout(WEBHOOK_PATIENCE)
            .body(form);
        let sent = texts.text_sent(idx, second);
        let refused = match req.send().await {
            Ok(r) if r.status() == StatusCode::OK => {
                texts.text_answered(sent, true);
                return;
            }
            Ok(r) => {
                let status = r.status();
                format!("{status} {}", r.text().await.unwrap_or_default().trim())
            }
            Err(e) => e.without_url().to_string(),
        };
        texts.text_answered(sent, false);
        texts.error(format!("webhook for conversation {idx}: {refused}"));
        // Given up: no offer (or no message) is waited for, so the phase ends.
        texts.done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio's published example (its security documentation).
    #[test]
    fn signs_twilios_published_example() {
        let params = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ];
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }
}
