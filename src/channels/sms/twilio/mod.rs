//! Twilio-compatible HTTP (Twilio and the providers that copy its shape): signed webhooks in
//! (`signature.rs`), the Messages REST API out, status callbacks to the reply's delivery state.
//!
//! Inbound: a form POST (`MessageSid`, `From`, `To`, `Body`, `NumMedia`, `MediaUrl{N}`, ...) to
//! `/sms/<gateway>/inbound`, answered with an empty TwiML `<Response/>` once stored. Outbound:
//! `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json` with Basic auth, `To`, `From`
//! (or `MessagingServiceSid`), `Body` and `StatusCallback` = `/sms/<gateway>/status`.

pub mod signature;

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use switchboard_model::DeliveryState;
use tracing::warn;

use super::SmsError;
use super::config::TwilioConfig;
use super::gateway::{
    Accepted, Gateway, Hook, InboundSms, OutSms, Receiver, SendError, StatusReport, WebhookRequest, Webhooks,
};

/// Media links kept per text (MMS carries up to 10).
const MAX_MEDIA: usize = 10;

pub struct Twilio {
    cfg: TwilioConfig,
    http: reqwest::Client,
    /// `public_url` without a trailing slash.
    public: String,
}

impl Twilio {
    pub fn new(cfg: TwilioConfig) -> Result<Twilio, SmsError> {
        let http = switchboard_auth::https_client(cfg.ca_file.as_deref(), Duration::from_secs(cfg.timeout_secs.into()))
            .map_err(|e| SmsError::Gateway { gateway: cfg.name.clone(), message: e.to_string() })?;
        let public = cfg.public_url.trim_end_matches('/').to_string();
        Ok(Twilio { cfg, http, public })
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.cfg.base_url.trim_end_matches('/'),
            self.cfg.account_sid
        )
    }

    /// The request's parameters and whether its signature holds. A GET is signed over its URL
    /// alone (the parameters are in it); a POST over its URL and its form fields.
    fn authenticate(&self, req: &WebhookRequest) -> Result<Vec<(String, String)>, &'static str> {
        let path = req.uri.path_and_query().map_or("/", axum::http::uri::PathAndQuery::as_str);
        let url = format!("{}{}", self.public, path);
        let form: Vec<(String, String)> = if req.method == axum::http::Method::POST {
            form_urlencoded::parse(&req.body).into_owned().collect()
        } else {
            Vec::new()
        };
        let Some(given) = req.headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()) else {
            warn!(message = "SMS webhook without a signature refused.", gateway = %self.cfg.name, peer = %req.peer);
            return Err("X-Twilio-Signature is required\n");
        };
        if !signature::verify(self.cfg.auth_token.expose(), &url, &form, given) {
            warn!(message = "SMS webhook with a wrong signature refused.", gateway = %self.cfg.name, peer = %req.peer);
            return Err("X-Twilio-Signature does not match\n");
        }
        if req.method == axum::http::Method::POST {
            return Ok(form);
        }
        Ok(req.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default())
    }
}

fn field<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn bad_request(what: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, format!("{what}\n")).into_response()
}

fn twiml_ok() -> Response {
    let mut r = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    r
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    // The provider retries on a 5xx; nothing of the text was acknowledged.
    (StatusCode::SERVICE_UNAVAILABLE, format!("not stored, try again: {e}\n")).into_response()
}

/// Twilio's message statuses as delivery states (None: says nothing about delivery).
pub fn delivery_state(status: &str) -> Option<DeliveryState> {
    Some(match status {
        "accepted" | "queued" | "scheduled" => DeliveryState::Accepted,
        "sending" | "sent" => DeliveryState::Sent,
        "delivered" | "read" => DeliveryState::Delivered,
        "undelivered" => DeliveryState::Undelivered,
        "failed" | "canceled" => DeliveryState::Failed,
        _ => return None,
    })
}

/// The inbound text a webhook's parameters describe, or what is missing.
pub fn inbound_from(gateway: &str, params: &[(String, String)]) -> Result<InboundSms, String> {
    let id = field(params, "MessageSid").or(field(params, "SmsSid")).filter(|s| !s.is_empty());
    let id = id.ok_or("MessageSid is required")?;
    let from = field(params, "From").filter(|s| !s.is_empty()).ok_or("From is required")?;
    let to = field(params, "To").filter(|s| !s.is_empty()).ok_or("To is required")?;
    let body = field(params, "Body").unwrap_or_default();
    let num_media: usize = match field(params, "NumMedia") {
        None | Some("") => 0,
        Some(n) => n.parse().map_err(|_| format!("NumMedia: {n:?} is not a number"))?,
    };
    let media: Vec<String> = (0..num_media.min(MAX_MEDIA))
        .filter_map(|i| field(params, &format!("MediaUrl{i}")).map(str::to_string))
        .collect();
    if body.is_empty() && media.is_empty() {
        return Err("Body is empty and there is no media".into());
    }
    if id.len() > 64 {
        return Err("MessageSid is longer than 64 characters".into());
    }
    Ok(InboundSms {
        gateway: gateway.to_string(),
        provider_id: id.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        body: body.to_string(),
        media,
    })
}

#[async_trait::async_trait]
impl Webhooks for Twilio {
    async fn webhook(&self, hook: Hook, req: WebhookRequest, rx: &dyn Receiver) -> Response {
        let params = match self.authenticate(&req) {
            Ok(p) => p,
            Err(refused) => return (StatusCode::FORBIDDEN, refused).into_response(),
        };
        match hook {
            Hook::Inbound => {
                let sms = match inbound_from(&self.cfg.name, &params) {
                    Ok(s) => s,
                    Err(what) => return bad_request(what),
                };
                match rx.receive(sms).await {
                    Ok(_) => twiml_ok(),
                    Err(e) => unavailable(e),
                }
            }
            Hook::Status => {
                let Some(id) = field(&params, "MessageSid").or(field(&params, "SmsSid")).filter(|s| !s.is_empty())
                else {
                    return bad_request("MessageSid is required");
                };
                let status = field(&params, "MessageStatus").or(field(&params, "SmsStatus")).unwrap_or_default();
                let Some(state) = delivery_state(status) else {
                    // `receiving`, `received`: about inbound texts; nothing to show.
                    return (StatusCode::NO_CONTENT, "").into_response();
                };
                let report = StatusReport {
                    gateway: self.cfg.name.clone(),
                    provider_id: id.to_string(),
                    state,
                    code: field(&params, "ErrorCode").unwrap_or_default().chars().take(32).collect(),
                };
                match rx.status(report).await {
                    Ok(()) => (StatusCode::NO_CONTENT, "").into_response(),
                    Err(e) => unavailable(e),
                }
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct Created {
    sid: String,
}

#[derive(serde::Deserialize, Default)]
struct ApiError {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: String,
}

#[async_trait::async_trait]
impl Gateway for Twilio {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn send(&self, sms: &OutSms) -> Result<Accepted, SendError> {
        let status_callback = format!("{}/sms/{}/status", self.public, self.cfg.name);
        let mut form: Vec<(&str, &str)> =
            vec![("To", &sms.to), ("Body", &sms.body), ("StatusCallback", &status_callback)];
        if self.cfg.messaging_service_sid.is_empty() {
            form.push(("From", &sms.from));
        } else {
            form.push(("MessagingServiceSid", &self.cfg.messaging_service_sid));
        }
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let res = self
            .http
            .post(self.messages_url())
            .basic_auth(&self.cfg.account_sid, Some(self.cfg.auth_token.expose()))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            // Never connected: the provider cannot have it.
            Err(e) if e.is_connect() => {
                return Err(SendError::Transient(format!("cannot reach the provider: {}", e.without_url())));
            }
            Err(e) => return Err(SendError::Uncertain(format!("no answer from the provider: {}", e.without_url()))),
        };
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if status.is_success() {
            let created: Created = serde_json::from_str(&text).map_err(|e| {
                SendError::Uncertain(format!("the provider answered {status} with no message sid: {e}"))
            })?;
            return Ok(Accepted { provider_ids: vec![created.sid] });
        }
        let err: ApiError = serde_json::from_str(&text).unwrap_or_default();
        let code = match err.code {
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::String(s)) => s,
            _ => status.as_u16().to_string(),
        };
        let reason: String = if err.message.is_empty() { status.to_string() } else { err.message };
        let reason: String = reason.chars().take(300).collect();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() || status == StatusCode::UNAUTHORIZED {
            // Throttled, the provider's trouble, or credentials being rotated: not taken.
            return Err(SendError::Transient(format!("{status}: {reason}")));
        }
        Err(SendError::Permanent { code, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn inbound_fields_are_read_and_checked() {
        let ok = inbound_from(
            "tw",
            &p(&[
                ("MessageSid", "SM1"),
                ("From", "+15551230000"),
                ("To", "+18005551212"),
                ("Body", "hi"),
                ("NumMedia", "2"),
                ("MediaUrl0", "https://m/0"),
                ("MediaUrl1", "https://m/1"),
                ("AccountSid", "AC1"),
            ]),
        )
        .unwrap();
        assert_eq!(ok.provider_id, "SM1");
        assert_eq!(ok.media, vec!["https://m/0", "https://m/1"]);
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("From", "+1555"), ("To", "+1800"), ("Body", "x")], "MessageSid"),
            (&[("MessageSid", "SM1"), ("To", "+1800"), ("Body", "x")], "From"),
            (&[("MessageSid", "SM1"), ("From", "+1555"), ("Body", "x")], "To"),
            (&[("MessageSid", "SM1"), ("From", "+1555"), ("To", "+1800")], "Body"),
            (
                &[("MessageSid", "SM1"), ("From", "+1555"), ("To", "+1800"), ("Body", "x"), ("NumMedia", "two")],
                "NumMedia",
            ),
        ];
        for (fields, names) in cases {
            let e = inbound_from("tw", &p(fields)).unwrap_err();
            assert!(e.contains(names), "{e} should name {names}");
        }
    }

    #[test]
    fn statuses_map_to_delivery_states() {
        assert_eq!(delivery_state("queued"), Some(DeliveryState::Accepted));
        assert_eq!(delivery_state("sent"), Some(DeliveryState::Sent));
        assert_eq!(delivery_state("delivered"), Some(DeliveryState::Delivered));
        assert_eq!(delivery_state("undelivered"), Some(DeliveryState::Undelivered));
        assert_eq!(delivery_state("failed"), Some(DeliveryState::Failed));
        assert_eq!(delivery_state("received"), None);
    }
}
