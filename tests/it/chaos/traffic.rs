//! The customers: each item from its own customer (an address used once), sent until its channel
//! acknowledges it — through the API with an idempotency key (chats) or the call id (calls),
//! retried on another instance; into the mailbox (an APPEND the IMAP server took); to the phone
//! network (a text fakesmsc handed to Kannel).

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::api::cti::pb as cti;
use switchboard::api::pb;
use switchboard_testkit::dovecot::{IMAP_PASSWORD, IMAP_USER};

use super::{Ch, OUR_NUMBER, QUEUE, SUPPORT_LINE, Shared, acked, count};
use crate::common::email::customer_mail;
use crate::common::*;

/// How long a customer keeps trying before giving up on an item.
const GIVE_UP: Duration = Duration::from_secs(60);

async fn connect(ep: &str, key: &str) -> Result<Authed, tonic::Status> {
    let ch = tonic::transport::Endpoint::from_shared(ep.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .map_err(|_| tonic::Status::unavailable("connect"))?;
    Ok(tonic::service::interceptor::InterceptedService::new(ch, bearer(key)))
}

/// Web chats through `CreateInteraction`, the same key retried on the next instance.
pub async fn chats(endpoints: Vec<String>, until: Instant, start: Instant, pace: Duration, seen: Shared) {
    let mut n = 0u64;
    let mut next = 0usize;
    while Instant::now() < until {
        n += 1;
        let customer = format!("visitor-{n}");
        let give_up = Instant::now() + GIVE_UP;
        loop {
            let ep = &endpoints[next % endpoints.len()];
            next += 1;
            let req = pb::CreateInteractionRequest {
                idempotency_key: format!("chat-{n}"),
                ..new_chat(QUEUE, &customer, "hello")
            };
            let r = async {
                let mut c = pb::interactions_client::InteractionsClient::new(connect(ep, CHANNEL_KEY).await?);
                c.create_interaction(req).await
            }
            .await;
            match r {
                Ok(ix) => {
                    acked(&seen, Ch::Chat, &customer, start.elapsed(), Some(ix.into_inner().id));
                    break;
                }
                Err(st) => {
                    count(&seen, "chat create", st.code());
                    if Instant::now() > give_up {
                        *seen.lock().unwrap().unacked.entry(Ch::Chat).or_default() += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tokio::time::sleep(pace).await;
    }
}

/// Phone calls: `RouteCall` (the call id is the key), held in a queue no agent serves; the caller
/// hangs up a moment later (an `abandoned` call event, its event id the key). Returns once every
/// hang-up is acknowledged.
pub async fn calls(endpoints: Vec<String>, until: Instant, start: Instant, pace: Duration, seen: Shared) {
    let mut n = 0u64;
    let mut next = 0usize;
    let mut hangups = Vec::new();
    while Instant::now() < until {
        n += 1;
        let call_id = format!("call-{n}");
        let caller = format!("+4930555{n:06}");
        let give_up = Instant::now() + GIVE_UP;
        loop {
            let ep = &endpoints[next % endpoints.len()];
            next += 1;
            let req = cti::RouteRequest {
                call_id: call_id.clone(),
                caller: caller.clone(),
                dialled: SUPPORT_LINE.into(),
                attempt: 1,
                ..Default::default()
            };
            let r = async {
                let mut c = cti::cti_client::CtiClient::new(connect(ep, TELEPHONY_KEY).await?);
                c.route_call(req).await
            }
            .await;
            match r {
                Ok(r) => {
                    acked(&seen, Ch::Voice, &caller, start.elapsed(), Some(r.into_inner().interaction_id));
                    hangups.push(tokio::spawn(hang_up(endpoints.clone(), call_id.clone(), seen.clone())));
                    break;
                }
                Err(st) => {
                    count(&seen, "voice route", st.code());
                    if Instant::now() > give_up {
                        *seen.lock().unwrap().unacked.entry(Ch::Voice).or_default() += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tokio::time::sleep(pace).await;
    }
    for h in hangups {
        let _ = h.await;
    }
}

async fn hang_up(endpoints: Vec<String>, call_id: String, seen: Shared) {
    // The caller waits a moment on hold (pacing, not a condition).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut turn = call_id.len();
    while Instant::now() < give_up {
        let ep = &endpoints[turn % endpoints.len()];
        turn += 1;
        let event = cti::TelephonyEvent {
            event_id: format!("hangup-{call_id}"),
            at: None,
            event: Some(cti::telephony_event::Event::Call(cti::CallEvent {
                call_id: call_id.clone(),
                sequence: 2,
                kind: Some(cti::call_event::Kind::Abandoned(cti::Abandoned { cause: "caller hung up".into() })),
                ..Default::default()
            })),
        };
        let r = async {
            let mut c = cti::cti_client::CtiClient::new(connect(ep, TELEPHONY_KEY).await?);
            let mut acks = c.publish_events(tokio_stream::iter([event])).await?.into_inner();
            match acks.message().await? {
                Some(a) if a.outcome == cti::Outcome::Rejected as i32 => {
                    Err(tonic::Status::new(tonic::Code::from(a.error_code), a.error_message))
                }
                Some(_) => Ok(()),
                None => Err(tonic::Status::unavailable("no ack")),
            }
        }
        .await;
        match r {
            Ok(()) => return,
            Err(st) => {
                count(&seen, "voice hang-up", st.code());
                // The call's interaction is not there (Redis lost it): nothing to hang up.
                if st.code() == tonic::Code::NotFound {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Customers' mail into the support mailbox, each from its own address with its own Message-ID
/// (the key the reader dedupes on); an APPEND the server refused or never answered is tried again.
pub async fn mails(imap_port: u16, until: Instant, start: Instant, pace: Duration, seen: Shared) {
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let from = format!("e{n}@customer.test");
        let raw = customer_mail(&from, &format!("chaos-{n}@customer.test"), &format!("Question {n}"), "Hello?", "");
        let give_up = Instant::now() + GIVE_UP;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), append(imap_port, &raw)).await {
                Ok(Ok(())) => {
                    acked(&seen, Ch::Email, &from, start.elapsed(), None);
                    break;
                }
                _ => {
                    count(&seen, "email append", tonic::Code::Unavailable);
                    if Instant::now() > give_up {
                        *seen.lock().unwrap().unacked.entry(Ch::Email).or_default() += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        tokio::time::sleep(pace).await;
    }
}

async fn append(port: u16, raw: &[u8]) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let mut c = async_imap::Client::new(tcp);
    c.read_response().await.map_err(|e| e.to_string())?;
    let mut s = c.login(IMAP_USER, IMAP_PASSWORD).await.map_err(|(e, _)| e.to_string())?;
    s.append("INBOX", None, None, raw).await.map_err(|e| e.to_string())?;
    let _ = s.logout().await;
    Ok(())
}

/// Texts from phones, each from its own number; the phone network holds a text while Kannel is
/// away and hands it over when it is back.
pub async fn texts(
    kannel: Arc<std::sync::Mutex<Kannel>>,
    until: Instant,
    start: Instant,
    pace: Duration,
    seen: Shared,
) {
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let from = format!("+4915100{n:06}");
        let k = kannel.clone();
        let f = from.clone();
        tokio::task::spawn_blocking(move || k.lock().unwrap().phone_sends(&f, OUR_NUMBER, &format!("Hello {n}")))
            .await
            .unwrap();
        acked(&seen, Ch::Sms, &from, start.elapsed(), None);
        tokio::time::sleep(pace).await;
    }
}
