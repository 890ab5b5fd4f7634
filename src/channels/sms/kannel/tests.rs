//! The gateway against a local HTTP server standing in for smsbox's `sendsms` (each answer of
//! Kannel 1.4.5, a dead port, a hung server), and its webhooks with a recording receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine as _;
use switchboard_model::DeliveryState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::channels::sms::gateway::{InboundSms, ReceiveError, Received, StatusReport};
use crate::config::Secret;

fn cfg(sendsms_url: &str) -> KannelConfig {
    KannelConfig {
        name: "kannel".into(),
        sendsms_url: sendsms_url.into(),
        username: "sb".into(),
        password: Secret("sendsms-secret".into()),
        webhook_user: "hook".into(),
        webhook_password: Secret("hook-secret".into()),
        public_url: "http://127.0.0.1:8080".into(),
        dlr_mask: 31,
        smsc: String::new(),
        timeout_secs: 1,
    }
}

fn sms() -> OutSms {
    OutSms { key: "int-1|3".into(), from: "4900000".into(), to: "+4915112345678".into(), body: "Hi there".into() }
}

/// A one-request-at-a-time HTTP server answering `answer` (None: read the request, never
/// answer), recording each request's target.
async fn server(answer: Option<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cgi-bin/sendsms", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                log.lock().unwrap().push(head.split(' ').nth(1).unwrap_or_default().to_string());
                match answer {
                    Some((code, body)) => {
                        let resp = format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.write_all(resp.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn accepted_and_queued_answers_take_the_text_under_our_key() {
    for (code, body) in [(202, "0: Accepted for delivery"), (202, "3: Queued for later delivery"), (200, "Sent.")] {
        let (url, seen) = server(Some((code, body))).await;
        let k = Kannel::new(cfg(&url)).unwrap();
        let got = k.send(&sms()).await.unwrap();
        assert_eq!(got.provider_ids, vec!["int-1|3".to_string()], "{code} {body}");
        let target = seen.lock().unwrap()[0].clone();
        assert!(target.starts_with("/cgi-bin/sendsms?username=sb&password=sendsms-secret&"), "{target}");
        assert!(target.contains("&dlr-url=http%3A%2F%2Fhook%3Ahook-secret%40127.0.0.1%3A8080%2Fsms%2Fkannel%2Fstatus"));
    }
}

#[tokio::test]
async fn refusals_are_permanent_with_kannels_reason() {
    for (code, body) in
        [(403, "Authorization failed for sendsms"), (400, "Empty receiver number not allowed, rejected")]
    {
        let (url, _) = server(Some((code, body))).await;
        let err = Kannel::new(cfg(&url)).unwrap().send(&sms()).await.unwrap_err();
        assert_eq!(err, SendError::Permanent { code: code.to_string(), reason: body.into() });
    }
}

#[tokio::test]
async fn busy_or_unreachable_kannel_is_transient() {
    let (url, _) = server(Some((503, "Temporal failure, try again later."))).await;
    let err = Kannel::new(cfg(&url)).unwrap().send(&sms()).await.unwrap_err();
    assert!(matches!(&err, SendError::Transient(m) if m.contains("503")), "{err:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/cgi-bin/sendsms");
    let err = Kannel::new(cfg(&url)).unwrap().send(&sms()).await.unwrap_err();
    let SendError::Transient(m) = &err else { panic!("{err:?}") };
    assert!(m.contains("cannot reach Kannel at http://127.0.0.1"), "{m}");
    assert!(!m.contains("secret"), "the password is in the URL, never in errors: {m}");
}

#[tokio::test]
async fn no_answer_after_sending_is_uncertain() {
    let (url, seen) = server(None).await;
    let err = Kannel::new(cfg(&url)).unwrap().send(&sms()).await.unwrap_err();
    let SendError::Uncertain(m) = &err else { panic!("{err:?}") };
    assert_eq!(seen.lock().unwrap().len(), 1, "the request left");
    assert!(!m.contains("secret") && !m.contains("password"), "{m}");
}

#[test]
fn a_sendsms_url_that_is_not_one_is_refused_at_start() {
    assert!(Kannel::new(cfg("ftp://127.0.0.1/x")).is_err());
    assert!(Kannel::new(cfg("not a url")).is_err());
}

/// Records what the gateway hands in; fails while `fail` is set.
#[derive(Default)]
struct Rx {
    texts: Mutex<Vec<InboundSms>>,
    reports: Mutex<Vec<StatusReport>>,
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Receiver for Rx {
    async fn receive(&self, sms: InboundSms) -> Result<Received, ReceiveError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ReceiveError(switchboard_engine::EngineError::Retry("redis away".into())));
        }
        self.texts.lock().unwrap().push(sms);
        Ok(Received::Created("i-1".into()))
    }
    async fn status(&self, report: StatusReport) -> Result<(), ReceiveError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ReceiveError(switchboard_engine::EngineError::Retry("redis away".into())));
        }
        self.reports.lock().unwrap().push(report);
        Ok(())
    }
}

fn call(uri: &str, user_pass: Option<&str>) -> WebhookRequest {
    let mut headers = HeaderMap::new();
    if let Some(up) = user_pass {
        let v = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(up));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
    }
    WebhookRequest {
        method: Method::GET,
        uri: uri.parse().unwrap(),
        headers,
        body: Default::default(),
        peer: "127.0.0.1:9".parse().unwrap(),
    }
}

async fn body(r: Response) -> String {
    String::from_utf8(axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap()
}

const MO: &str =
    "/sms/kannel/inbound?from=%2B4915112345678&to=4900000&text=Hallo++Welt&id=68f116c9&coding=0&charset=UTF-8";

#[tokio::test]
async fn a_text_is_answered_with_an_empty_200_once_stored() {
    let k = Kannel::new(cfg("http://127.0.0.1:13013/cgi-bin/sendsms")).unwrap();
    let rx = Rx::default();
    let r = k.webhook(Hook::Inbound, call(MO, Some("hook:hook-secret")), &rx).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await, "", "smsbox would text a body back to the phone");
    let texts = rx.texts.lock().unwrap().clone();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].body, "Hallo  Welt");
    assert_eq!(texts[0].provider_id, "68f116c9");
}

#[tokio::test]
async fn calls_without_the_right_credentials_store_nothing() {
    let k = Kannel::new(cfg("http://127.0.0.1:13013/cgi-bin/sendsms")).unwrap();
    let rx = Rx::default();
    for creds in [None, Some("hook:wrong"), Some("other:hook-secret"), Some("hook:")] {
        for (hook, uri) in [(Hook::Inbound, MO), (Hook::Status, "/sms/kannel/status?key=a&type=1")] {
            let r = k.webhook(hook, call(uri, creds), &rx).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{creds:?}");
            assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"switchboard-sms\"");
        }
    }
    assert!(rx.texts.lock().unwrap().is_empty());
    assert!(rx.reports.lock().unwrap().is_empty());
}

#[tokio::test]
async fn malformed_calls_get_a_400_naming_the_problem() {
    let k = Kannel::new(cfg("http://127.0.0.1:13013/cgi-bin/sendsms")).unwrap();
    let rx = Rx::default();
    let r =
        k.webhook(Hook::Inbound, call("/sms/kannel/inbound?from=1&to=2&text=x", Some("hook:hook-secret")), &rx).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body(r).await.contains("id is required"));
    let r = k.webhook(Hook::Status, call("/sms/kannel/status?key=a&type=3", Some("hook:hook-secret")), &rx).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body(r).await.contains("type: 3"));
    assert!(rx.texts.lock().unwrap().is_empty() && rx.reports.lock().unwrap().is_empty());
}

#[tokio::test]
async fn dlrs_report_on_the_key_given_in_the_dlr_url() {
    let k = Kannel::new(cfg("http://127.0.0.1:13013/cgi-bin/sendsms")).unwrap();
    let rx = Rx::default();
    for t in [8, 1] {
        let uri = format!("/sms/kannel/status?key=int-1%7C3&type={t}");
        let r = k.webhook(Hook::Status, call(&uri, Some("hook:hook-secret")), &rx).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let got: Vec<(String, DeliveryState)> =
        rx.reports.lock().unwrap().iter().map(|r| (r.provider_id.clone(), r.state)).collect();
    assert_eq!(got, vec![("int-1|3".into(), DeliveryState::Sent), ("int-1|3".into(), DeliveryState::Delivered)]);
}

#[tokio::test]
async fn storing_failures_answer_503_so_kannel_retries() {
    let k = Kannel::new(cfg("http://127.0.0.1:13013/cgi-bin/sendsms")).unwrap();
    let rx = Rx::default();
    rx.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = k.webhook(Hook::Inbound, call(MO, Some("hook:hook-secret")), &rx).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = k.webhook(Hook::Status, call("/sms/kannel/status?key=a&type=1", Some("hook:hook-secret")), &rx).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}
