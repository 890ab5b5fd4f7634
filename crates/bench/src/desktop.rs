//! The agents' desktops, one gRPC stream each, as a user's would be: they accept every offer and
//! time it; the completer frees the slots they hold.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use pb::agent_event::Kind as Ev;
use pb::agent_request::Kind as Rq;
use switchboard_proto::v1 as pb;

use crate::shared::{Freed, Shared, record};

/// Desktops waiting for their login at once: an instance refuses streams beyond its cap of those
/// (`MAX_PENDING_LOGINS`, 1,000), and 10,000 started together would wait forever.
const LOGINS_AT_ONCE: usize = 500;

/// A desktop for each of `agents` agents on the daemon at `endpoint`, each logged in when this
/// returns; the first desktop that fails to log in fails it, saying why.
pub async fn log_in(
    endpoint: &str,
    agents: usize,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(agents.max(1));
    // Many streams per HTTP/2 connection, but not all on one.
    let mut channels = Vec::new();
    for _ in 0..agents.div_ceil(100) {
        channels.push(tonic::transport::Endpoint::from_shared(endpoint.to_string())?.connect().await?);
    }
    let gate = Arc::new(Semaphore::new(LOGINS_AT_ONCE));
    for a in 0..agents {
        let place = gate.clone().acquire_owned().await?;
        let ready = ready_tx.clone();
        let run = desktop(channels[a / 100].clone(), a, shared.clone(), stop.clone(), ready.clone(), place);
        tokio::spawn(async move {
            if let Err(e) = run.await {
                let _ = ready.try_send(Err(format!("agent a{a}: {e:#}")));
            }
        });
    }
    for _ in 0..agents {
        match ready_rx.recv().await.context("the desktops stopped before logging in")? {
            Ok(()) => {}
            Err(e) => anyhow::bail!("a desktop failed to log in: {e}"),
        }
    }
    Ok(())
}

/// One desktop: accepts every offer, then completes it at once or keeps it for the completer.
async fn desktop(
    channel: tonic::transport::Channel,
    idx: usize,
    shared: Arc<Shared>,
    stop: CancellationToken,
    ready: mpsc::Sender<Result<(), String>>,
    place: OwnedSemaphorePermit,
) -> anyhow::Result<()> {
    // Held until the login is acknowledged: the place among those logging in at once.
    let mut place = Some(place);
    let mut client = pb::agent_desktop_client::AgentDesktopClient::new(channel);
    let (tx, rx) = mpsc::channel(64);
    let agent = format!("a{idx}");
    tx.send(pb::AgentRequest {
        request_id: "login".into(),
        kind: Some(Rq::Login(pb::Login { agent_id: agent.clone(), token: format!("tok-{agent}") })),
    })
    .await?;
    let mut events = client.session(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    shared.senders.lock().expect("lock")[idx] = Some(tx.clone());
    let mut logged_in = false;
    let mut n = 0u64;
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            e = events.next() => match e { Some(e) => e?, None => return Ok(()) },
        };
        match ev.kind {
            Some(Ev::Ack(a)) if a.request_id == "login" && !logged_in => {
                logged_in = true;
                place.take();
                let _ = ready.send(Ok(())).await;
            }
            Some(Ev::Offer(o)) => {
                let now = shared.us();
                let received = Instant::now();
                let ix = o.interaction.unwrap_or_default();
                // A call is answered on the phone (the CTI point's telephony system reports it);
                // the desktop shows it and may not accept it. It counts as a decision delivered.
                if ix.channel == pb::Channel::Voice as i32 {
                    shared.offers.fetch_add(1, Relaxed);
                    shared.last_offer_us.fetch_max(now, Relaxed);
                    continue;
                }
                // µs since `epoch` at which this interaction was handed to Redis (0: unknown).
                let created = ix
                    .customer_address
                    .strip_prefix('c')
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| shared.created_at.get(i))
                    .map_or(0, |a| a.load(Relaxed));
                if shared.measure_created.load(Relaxed) && created > 0 {
                    record(&shared.created_to_offer, now.saturating_sub(created));
                    shared.record_split(&ix, created, now);
                }
                // An offer answers a freed slot if it is on that channel and was already waiting
                // when the slot was freed. A completion that found nothing of its channel waiting
                // (its queues' sets for it were empty) is not a routing delay; its record is
                // dropped at the next offer on that channel, which came from a new arrival.
                let freed = {
                    let mut slot = shared.freed_at[idx].lock().expect("lock");
                    slot.filter(|f| f.channel == ix.channel).and_then(|_| slot.take())
                };
                if let Some(f) = freed
                    && shared.measure_freed.load(Relaxed)
                    && created > 0
                    && created < f.at_us
                {
                    record(&shared.freed_to_offer, received.duration_since(f.at).as_micros() as u64);
                    shared.record_split(&ix, f.at_us, now);
                }
                shared.offers.fetch_add(1, Relaxed);
                shared.last_offer_us.fetch_max(now, Relaxed);
                n += 1;
                shared.accepts.fetch_add(1, Relaxed);
                tx.send(pb::AgentRequest {
                    request_id: format!("a{n}"),
                    kind: Some(Rq::Accept(pb::AcceptOffer { interaction_id: ix.id.clone() })),
                })
                .await?;
                if shared.hold.load(Relaxed) {
                    shared.held.lock().expect("lock").push_back((idx, ix.id, ix.channel));
                } else {
                    shared.completes.fetch_add(1, Relaxed);
                    tx.send(complete_request(ix.id)).await?;
                }
            }
            _ => {}
        }
    }
}

fn complete_request(iid: String) -> pb::AgentRequest {
    pb::AgentRequest {
        request_id: format!("c-{iid}"),
        kind: Some(Rq::Complete(pb::CompleteInteraction {
            interaction_id: iid,
            disposition: "bench".into(),
            notes: String::new(),
        })),
    }
}

/// Frees `n` held slots, oldest first, at `rate` per second (0: as fast as it can), each
/// completion timed from when it leaves for the agent's next offer.
pub async fn complete_held(shared: &Shared, n: usize, rate: u32) {
    let start = tokio::time::Instant::now();
    for i in 0..n {
        if rate > 0 {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / f64::from(rate))).await;
        }
        let mut waited = 0;
        let (idx, iid, channel) = loop {
            let next = shared.held.lock().expect("lock").pop_front();
            match next {
                Some(h) => break h,
                None if waited < 5000 => {
                    waited += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                None => return,
            }
        };
        let tx = shared.senders.lock().expect("lock")[idx].clone();
        if let Some(tx) = tx {
            *shared.freed_at[idx].lock().expect("lock") =
                Some(Freed { at: Instant::now(), at_us: shared.us(), channel });
            shared.completes.fetch_add(1, Relaxed);
            let _ = tx.send(complete_request(iid)).await;
        }
    }
}
