//! SMS peers that are not packages: a Twilio-compatible provider (records the REST calls, answers
//! as planned, signs the webhooks it sends with the published algorithm, written here again from
//! Twilio's documentation rather than taken from the daemon).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use switchboard::api::pb;
use switchboard::channels::sms::config::{GatewayConfig, NumberConfig, SmsConfig, TwilioConfig};
use switchboard::config::Secret;

use super::server::{Desktop, TestServer};

pub const TWILIO_SID: &str = "AC00000000000000000000000000000001";
pub const TWILIO_TOKEN: &str = "test-twilio-auth-token-0123456789";
/// Where the provider believes the daemon is (a proxy in front of it, as in production).
pub const PUBLIC_URL: &str = "https://sms.example.test";

/// X-Twilio-Signature, per Twilio's documentation: HMAC-SHA1 keyed with the auth token over the
/// URL followed by each POST field's name and value, fields sorted by name; base64.
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// One REST call the provider received.
#[derive(Debug, Clone)]
pub struct SentSms {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub status_callback: String,
    pub basic_auth_ok: bool,
}

/// How the provider answers the next REST call (default: 201 with a new sid).
#[derive(Debug, Clone)]
pub enum Answer {
    Created,
    Status(u16, String),
    /// Created, but the provider reports `status` to the daemon at `daemon` (signed, to the
    /// message's StatusCallback) before it answers the REST call: a report that comes before the
    /// daemon has recorded the message's sid.
    CreatedReportingFirst {
        daemon: SocketAddr,
        status: String,
    },
}

#[derive(Default)]
struct Inner {
    sent: Vec<SentSms>,
    plan: VecDeque<Answer>,
    calls: usize,
}

/// A Twilio-compatible provider on 127.0.0.1.
#[derive(Clone)]
pub struct FakeTwilio {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
    _stop: Arc<tokio::sync::Notify>,
}

async fn messages(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let f = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let want =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}")));
    let auth_ok = sid == TWILIO_SID && headers.get("authorization").is_some_and(|v| v.as_bytes() == want.as_bytes());
    let answer = {
        let mut g = inner.lock().unwrap();
        g.calls += 1;
        g.plan.pop_front().unwrap_or(Answer::Created)
    };
    if let Answer::CreatedReportingFirst { daemon, status } = &answer {
        let sid = format!("SM{:032x}", inner.lock().unwrap().calls);
        let sent = SentSms {
            sid: sid.clone(),
            to: f("To"),
            from: f("From"),
            body: f("Body"),
            status_callback: f("StatusCallback"),
            basic_auth_ok: auth_ok,
        };
        let path = sent.status_callback.strip_prefix(PUBLIC_URL).unwrap_or_default().to_string();
        let params = [("MessageSid", sid.as_str()), ("MessageStatus", status.as_str()), ("AccountSid", TWILIO_SID)];
        let sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &params);
        let http = switchboard_auth::https_client(None, std::time::Duration::from_secs(5)).unwrap();
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let res = http
            .post(format!("http://{daemon}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "the early report was refused: {}", res.status());
        inner.lock().unwrap().sent.push(sent);
        let json = serde_json::json!({"sid": sid, "status": "queued"});
        return (StatusCode::CREATED, [("content-type", "application/json")], json.to_string()).into_response();
    }
    let mut g = inner.lock().unwrap();
    match answer {
        Answer::CreatedReportingFirst { .. } => unreachable!("answered above"),
        Answer::Status(code, body) => {
            (StatusCode::from_u16(code).unwrap(), [("content-type", "application/json")], body).into_response()
        }
        Answer::Created => {
            let msid = format!("SM{:032x}", g.calls);
            g.sent.push(SentSms {
                sid: msid.clone(),
                to: f("To"),
                from: f("From"),
                body: f("Body"),
                status_callback: f("StatusCallback"),
                basic_auth_ok: auth_ok,
            });
            let json = serde_json::json!({"sid": msid, "status": "queued", "to": f("To"), "from": f("From")});
            (StatusCode::CREATED, [("content-type", "application/json")], json.to_string()).into_response()
        }
    }
}

impl FakeTwilio {
    pub async fn start() -> FakeTwilio {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", axum::routing::post(messages))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(tokio::sync::Notify::new());
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { s.notified().await }).await;
        });
        // reqwest has no crypto provider of its own here (ring only): the daemon's client builder.
        let http = switchboard_auth::https_client(None, std::time::Duration::from_secs(5)).unwrap();
        FakeTwilio { addr, inner, http, _stop: stop }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next answers to REST calls, in order.
    pub fn plan(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.lock().unwrap().plan.extend(answers);
    }

    pub fn sent(&self) -> Vec<SentSms> {
        self.inner.lock().unwrap().sent.clone()
    }

    /// POSTs a signed form to the daemon at `http` (its real address) for `path`, signing it as
    /// the provider sees the daemon (`PUBLIC_URL`). Returns the status and body.
    pub async fn post_signed(&self, http: SocketAddr, path: &str, params: &[(&str, &str)]) -> (u16, String) {
        let sig = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), params);
        self.post(http, path, params, Some(&sig)).await
    }

    pub async fn post(
        &self,
        http: SocketAddr,
        path: &str,
        params: &[(&str, &str)],
        sig: Option<&str>,
    ) -> (u16, String) {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let mut req = self
            .http
            .post(format!("http://{http}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(sig) = sig {
            req = req.header("x-twilio-signature", sig);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// A customer's text, as the provider's inbound webhook.
    pub async fn text_in(&self, http: SocketAddr, sid: &str, from: &str, to: &str, body: &str) -> (u16, String) {
        let params = [
            ("MessageSid", sid),
            ("AccountSid", TWILIO_SID),
            ("From", from),
            ("To", to),
            ("Body", body),
            ("NumMedia", "0"),
        ];
        self.post_signed(http, "/sms/tw/inbound", &params).await
    }

    /// A status callback for a sent message, to the URL the daemon gave for it.
    pub async fn status(&self, http: SocketAddr, sent: &SentSms, status: &str, error_code: &str) -> (u16, String) {
        let path = sent.status_callback.strip_prefix(PUBLIC_URL).expect("status callback under the public URL");
        let mut params = vec![("MessageSid", sent.sid.as_str()), ("MessageStatus", status), ("AccountSid", TWILIO_SID)];
        if !error_code.is_empty() {
            params.push(("ErrorCode", error_code));
        }
        self.post_signed(http, path, &params).await
    }
}

/// `[sms]` with one Twilio-compatible gateway `tw` and the given numbers (number → queue).
pub fn twilio_sms_config(provider: &FakeTwilio, numbers: &[(&str, &str)]) -> SmsConfig {
    SmsConfig {
        gateways: vec![GatewayConfig::Twilio(TwilioConfig {
            name: "tw".into(),
            account_sid: TWILIO_SID.into(),
            auth_token: Secret(TWILIO_TOKEN.into()),
            base_url: provider.base_url(),
            messaging_service_sid: String::new(),
            public_url: PUBLIC_URL.into(),
            ca_file: None,
            timeout_secs: 5,
        })],
        numbers: numbers
            .iter()
            .map(|(n, q)| NumberConfig {
                number: n.to_string(),
                queue: q.to_string(),
                gateway: "tw".into(),
                priority: None,
            })
            .collect(),
        help_text: "Support texts: we answer 9-17. Text STOP to opt out.".into(),
        opt_out_text: "You will get no more texts from us. Text START to opt back in.".into(),
        ..SmsConfig::default()
    }
}

/// An SMPP gateway `smsc` bound to the SMSC simulator on `port` (short timeouts: a test waits
/// for no link longer than it must).
pub fn smpp_gateway(port: u16) -> switchboard::channels::sms::config::SmppConfig {
    switchboard::channels::sms::config::SmppConfig {
        name: "smsc".into(),
        host: "127.0.0.1".into(),
        port,
        system_id: "switchboard".into(),
        password: Secret("secret".into()),
        system_type: String::new(),
        window: 10,
        enquire_link_secs: 30,
        response_timeout_secs: 5,
        max_backoff_secs: 2,
        source_ton: 1,
        source_npi: 1,
    }
}

/// `[sms]` with the one SMPP gateway and the given numbers (number → queue); HELP and opt-out
/// answers as in [`twilio_sms_config`].
pub fn smpp_sms_config(gateway: switchboard::channels::sms::config::SmppConfig, numbers: &[(&str, &str)]) -> SmsConfig {
    let name = gateway.name.clone();
    SmsConfig {
        gateways: vec![GatewayConfig::Smpp(gateway)],
        numbers: numbers
            .iter()
            .map(|(n, q)| NumberConfig {
                number: n.to_string(),
                queue: q.to_string(),
                gateway: name.clone(),
                priority: None,
            })
            .collect(),
        help_text: "Support texts: we answer 9-17. Text STOP to opt out.".into(),
        opt_out_text: "You will get no more texts from us. Text START to opt back in.".into(),
        ..SmsConfig::default()
    }
}

/// The parts of a concatenated ASCII text as a phone sends them: each part a deliver_sm with
/// UDHI set and the 8-bit concatenation UDH (IEI 0x00: reference, total, index — 3GPP TS 23.040
/// §9.2.3.24.1), written here from the specification rather than taken from the daemon.
pub fn concatenated_mo(from: &str, to: &str, reference: u8, parts: &[&str]) -> Vec<switchboard_testkit::Mo> {
    let total = u8::try_from(parts.len()).expect("at most 255 parts");
    parts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut short_message = vec![0x05, 0x00, 0x03, reference, total, i as u8 + 1];
            short_message.extend_from_slice(text.as_bytes());
            switchboard_testkit::Mo { esm_class: 0x40, short_message, ..switchboard_testkit::Mo::ascii(from, to, "") }
        })
        .collect()
}

/// An agent (token `tok-<id>`, as [`agent`] makes them) logged in and ready.
pub async fn ready(sb: &TestServer, id: &str) -> Desktop {
    let mut d = sb.desktop(id, &format!("tok-{id}")).await;
    d.ready().await;
    d
}

/// An interaction with its thread, as a channel reads it.
pub async fn interaction(sb: &TestServer, id: &str) -> pb::Interaction {
    let mut c = sb.interactions().await;
    c.get_interaction(pb::GetInteractionRequest { interaction_id: id.into(), include_messages: true })
        .await
        .unwrap()
        .into_inner()
}

/// How many interactions wait in `support`, the SMS tests' queue.
pub async fn waiting(sb: &TestServer) -> usize {
    let mut s = sb.supervisor().await;
    let r = s.list_waiting(pb::ListWaitingRequest { queue: "support".into(), ..Default::default() }).await.unwrap();
    r.into_inner().interactions.len()
}
