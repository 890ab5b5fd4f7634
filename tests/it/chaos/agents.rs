//! An agent at a desktop: signs in on one instance after another (whenever its stream ends), stays
//! ready, and takes offers — most accepted (an email or a text answered once, then completed), some
//! rejected, some left to time out. A completion that failed is sent again until acknowledged (as
//! an agent clicks again); one that is not the agent's any more is given up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::api::pb::agent_request::Kind as Rq;
use tokio_stream::StreamExt;

use super::{Ch, Shared, count};

pub async fn agent(
    i: usize,
    endpoints: Vec<String>,
    start: Instant,
    stop: tokio_util::sync::CancellationToken,
    seen: Shared,
) {
    let id = format!("a{i}");
    let trace = std::env::var_os("SWITCHBOARD_CHAOS_TRACE").is_some();
    let say = |what: &str| {
        if trace {
            eprintln!("chaos {:>7.2} a{i}: {what}", start.elapsed().as_secs_f64());
        }
    };
    let mut turn = i;
    let mut rng = i as u64 * 7919 + 1;
    let mut roll = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % 100
    };
    while !stop.is_cancelled() {
        let ep = endpoints[turn % endpoints.len()].clone();
        turn += 1;
        say(&format!("connecting to {ep}"));
        let Ok(ch) = tonic::transport::Endpoint::from_shared(ep)
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut client = pb::agent_desktop_client::AgentDesktopClient::new(ch);
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let mut n = 0u64;
        let mut send = |kind: Rq| {
            n += 1;
            let id = format!("r{n}");
            let _ = tx.try_send(pb::AgentRequest { request_id: id.clone(), kind: Some(kind) });
            id
        };
        send(Rq::Login(pb::Login { agent_id: id.clone(), token: format!("tok-{id}") }));
        let ready = || {
            Rq::SetPresence(pb::SetPresence {
                presence: Some(pb::Presence { state: pb::PresenceState::Ready as i32, reason: String::new() }),
            })
        };
        send(ready());
        let Ok(resp) = client.session(tokio_stream::wrappers::ReceiverStream::new(rx)).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut events = resp.into_inner();
        say("session open");
        // Accepted work to complete, and when.
        let mut due: Vec<(Instant, String)> = Vec::new();
        // Requests in flight: request id → what it was for.
        let mut accepting: HashMap<String, (String, Ch, String)> = HashMap::new();
        let mut replying: HashMap<String, (Ch, String)> = HashMap::new();
        let mut completing: HashMap<String, (String, Ch)> = HashMap::new();
        let mut channel_of: HashMap<String, Ch> = HashMap::new();
        loop {
            let tick = tokio::time::sleep(Duration::from_millis(50));
            let e = tokio::select! {
                _ = stop.cancelled() => return,
                () = tick => None,
                e = events.next() => match e {
                    Some(Ok(e)) => Some(e),
                    other => {
                        say(&format!("session ended: {other:?}"));
                        break;
                    }
                },
            };
            let now = Instant::now();
            for (at, iid) in due.iter_mut().filter(|(at, _)| *at <= now) {
                let rid = send(Rq::Complete(pb::CompleteInteraction {
                    interaction_id: iid.clone(),
                    disposition: "done".into(),
                    notes: String::new(),
                }));
                completing.insert(rid, (iid.clone(), channel_of.get(iid.as_str()).copied().unwrap_or(Ch::Chat)));
                *at = now + Duration::from_secs(2);
            }
            let Some(e) = e else { continue };
            if trace {
                say(&format!("{:?}", e.kind).chars().take(200).collect::<String>());
            }
            let offers = match e.kind {
                // Signed in again (after an instance died): the snapshot's work is carried on.
                Some(Ev::LoggedIn(li)) => {
                    for ix in li.interactions {
                        if let Some(c) = Ch::of(ix.channel) {
                            channel_of.insert(ix.id.clone(), c);
                        }
                        if !due.iter().any(|(_, id)| *id == ix.id) {
                            due.push((now + Duration::from_millis(200), ix.id));
                        }
                    }
                    li.offers
                }
                Some(Ev::Offer(o)) => vec![o],
                Some(Ev::PresenceChanged(p))
                    if p.presence.as_ref().is_some_and(|p| p.state != pb::PresenceState::Ready as i32) =>
                {
                    // Missed, or made not ready some other way: ready again.
                    send(ready());
                    continue;
                }
                Some(Ev::Ack(a)) => {
                    if let Some((iid, ch, customer)) = accepting.remove(&a.request_id) {
                        if matches!(ch, Ch::Email | Ch::Sms) {
                            let rid = send(Rq::SendReply(pb::SendReply {
                                interaction_id: iid.clone(),
                                body: format!("Answer for {customer}"),
                            }));
                            replying.insert(rid, (ch, customer));
                        }
                        due.push((now + Duration::from_millis(200 + 10 * roll()), iid));
                    } else if let Some((ch, customer)) = replying.remove(&a.request_id) {
                        seen.lock().unwrap().replied.entry(ch).or_default().insert(customer);
                    } else if let Some((iid, ch)) = completing.remove(&a.request_id) {
                        due.retain(|(_, id)| *id != iid);
                        *seen.lock().unwrap().completed.entry(ch).or_default() += 1;
                    }
                    continue;
                }
                Some(Ev::Error(er)) => {
                    let code = tonic::Code::from(er.code);
                    if let Some((_, ch, _)) = accepting.remove(&er.request_id) {
                        count(&seen, &format!("{} accept", ch.name()), code);
                    } else if let Some((ch, _)) = replying.remove(&er.request_id) {
                        count(&seen, &format!("{} reply", ch.name()), code);
                    } else if let Some((iid, ch)) = completing.remove(&er.request_id) {
                        count(&seen, &format!("{} complete", ch.name()), code);
                        // Not this agent's any more (the offer moved on): stop trying.
                        if matches!(code, tonic::Code::FailedPrecondition | tonic::Code::NotFound) {
                            due.retain(|(_, id)| *id != iid);
                        }
                    } else {
                        count(&seen, "desktop", code);
                    }
                    continue;
                }
                _ => continue,
            };
            for o in offers {
                let Some(ix) = o.interaction else { continue };
                let ch = Ch::of(ix.channel).unwrap_or(Ch::Chat);
                channel_of.insert(ix.id.clone(), ch);
                let mut s = seen.lock().unwrap();
                s.offers_at.push(start.elapsed());
                let r = roll();
                if r < 80 {
                    *s.accepted.entry(ch).or_default() += 1;
                    let rid = send(Rq::Accept(pb::AcceptOffer { interaction_id: ix.id.clone() }));
                    accepting.insert(rid, (ix.id, ch, ix.customer_address));
                } else if r < 90 {
                    *s.rejected.entry(ch).or_default() += 1;
                    send(Rq::Reject(pb::RejectOffer { interaction_id: ix.id, reason: "busy".into() }));
                } else {
                    *s.ignored.entry(ch).or_default() += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
