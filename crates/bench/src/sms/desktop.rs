//! The agents' desktops in the SMS point, one gRPC stream each: an offered text is accepted; once
//! the accept is acknowledged the agent replies (SendReply, acknowledged once the provider took the
//! text) and completes. In a conversation whose customer texts twice, the accept's ack sets the
//! customer's second text off and the agent replies once it arrives on the desktop. Each step
//! waits for the previous one's ack, so every timing starts on an idle stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use pb::agent_event::Kind as Ev;
use pb::agent_request::Kind as Rq;
use switchboard_proto::v1 as pb;

use super::provider::Provider;
use super::texts::{Texts, conversation_of, joins};
use crate::shared::Shared;

/// Desktops waiting for their login at once (the daemon refuses more than 1,000 such streams).
const LOGINS_AT_ONCE: usize = 500;

const REPLY: &str = "Thank you, we are looking into it and will text you back today.";

/// What the desktops share: the point's texts, the provider (for customers' second texts) and
/// the counters every phase's row is read from.
pub struct Desks {
    pub texts: Arc<Texts>,
    pub provider: Arc<Provider>,
    pub shared: Arc<Shared>,
}

/// A desktop for each of `agents` agents on the daemon at `endpoint`, each logged in when this
/// returns; the first that fails to log in fails it, saying why.
pub async fn log_in(endpoint: &str, agents: usize, desks: &Arc<Desks>, stop: &CancellationToken) -> anyhow::Result<()> {
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(agents.max(1));
    let mut channels = Vec::new();
    for _ in 0..agents.div_ceil(100) {
        channels.push(tonic::transport::Endpoint::from_shared(endpoint.to_string())?.connect().await?);
    }
    let gate = Arc::new(Semaphore::new(LOGINS_AT_ONCE));
    for a in 0..agents {
        let place = gate.clone().acquire_owned().await?;
        let ready = ready_tx.clone();
        let run = desktop(channels[a / 100].clone(), a, desks.clone(), stop.clone(), ready.clone(), place);
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

/// A request the desktop waits on: what it was, for which interaction and conversation, and (a
/// reply) when it left.
enum Step {
    Accept,
    Reply(u64),
    Complete,
}

struct Desk {
    desks: Arc<Desks>,
    tx: mpsc::Sender<pb::AgentRequest>,
    waiting: HashMap<String, (Step, String, Option<usize>)>,
    /// Interactions whose customer's second text is on its way: their conversation.
    second_due: HashMap<String, usize>,
    n: u64,
}

async fn desktop(
    channel: tonic::transport::Channel,
    idx: usize,
    desks: Arc<Desks>,
    stop: CancellationToken,
    ready: mpsc::Sender<Result<(), String>>,
    place: OwnedSemaphorePermit,
) -> anyhow::Result<()> {
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
    let mut desk = Desk { desks, tx, waiting: HashMap::new(), second_due: HashMap::new(), n: 0 };
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            e = events.next() => match e { Some(e) => e?, None => return Ok(()) },
        };
        match ev.kind {
            Some(Ev::Ack(a)) if a.request_id == "login" && place.take().is_some() => {
                let _ = ready.send(Ok(())).await;
            }
            Some(Ev::Error(e)) if e.request_id == "login" => anyhow::bail!("login refused: {}", e.message),
            Some(Ev::Ack(a)) => desk.acked(&a.request_id).await?,
            Some(Ev::Error(e)) => desk.refused(e).await?,
            Some(Ev::Offer(o)) => desk.offered(o.interaction.unwrap_or_default()).await?,
            Some(Ev::CustomerMessage(m)) => desk.message(&m.interaction_id).await?,
            _ => {}
        }
    }
}

impl Desk {
    async fn send(&mut self, step: Step, iid: &str, conv: Option<usize>, kind: Rq) -> anyhow::Result<()> {
        self.n += 1;
        let request_id = format!("r{}", self.n);
        self.waiting.insert(request_id.clone(), (step, iid.to_string(), conv));
        self.tx.send(pb::AgentRequest { request_id, kind: Some(kind) }).await?;
        Ok(())
    }

    async fn offered(&mut self, ix: pb::Interaction) -> anyhow::Result<()> {
        let d = self.desks.clone();
        // The texts' clock is the desktops' (`Shared::epoch`).
        let now = d.shared.us();
        let conv = conversation_of(&ix.customer_address);
        d.texts.offered(conv, now);
        // The counters every phase's row is read from.
        d.shared.offers.fetch_add(1, Relaxed);
        d.shared.last_offer_us.fetch_max(now, Relaxed);
        if let Some(first) = conv.map(|c| d.texts.first_text_at(c)).filter(|&t| t > 0) {
            d.shared.record_split(&ix, first, now);
        }
        d.shared.accepts.fetch_add(1, Relaxed);
        self.send(Step::Accept, &ix.id, conv, Rq::Accept(pb::AcceptOffer { interaction_id: ix.id.clone() })).await
    }

    async fn acked(&mut self, request_id: &str) -> anyhow::Result<()> {
        let Some((step, iid, conv)) = self.waiting.remove(request_id) else { return Ok(()) };
        match step {
            Step::Accept => match conv {
                Some(c) if joins(c) => {
                    // The customer texts again, now that an agent has the conversation.
                    self.second_due.insert(iid, c);
                    let (provider, texts) = (self.desks.provider.clone(), self.desks.texts.clone());
                    tokio::spawn(async move { provider.text(&texts, c, true).await });
                    Ok(())
                }
                _ => self.reply(&iid, conv).await,
            },
            Step::Reply(sent) => {
                self.desks.texts.reply_acked(sent);
                self.complete(&iid, conv).await
            }
            Step::Complete => {
                self.desks.texts.done();
                Ok(())
            }
        }
    }

    /// A request refused: counted; the conversation is completed anyway if it can be, so the
    /// agent frees up and the phase ends.
    async fn refused(&mut self, e: pb::RequestError) -> anyhow::Result<()> {
        let Some((step, iid, conv)) = self.waiting.remove(&e.request_id) else { return Ok(()) };
        let what = match step {
            Step::Accept => "accept",
            Step::Reply(_) => "reply",
            Step::Complete => "complete",
        };
        self.desks.texts.error(format!("{what} of {iid}: code {} {}", e.code, e.message));
        match step {
            Step::Reply(_) => self.complete(&iid, conv).await,
            Step::Accept | Step::Complete => {
                self.desks.texts.done();
                Ok(())
            }
        }
    }

    async fn message(&mut self, iid: &str) -> anyhow::Result<()> {
        let Some(c) = self.second_due.remove(iid) else { return Ok(()) };
        self.desks.texts.joined(c, self.desks.texts.us());
        self.reply(iid, Some(c)).await
    }

    async fn reply(&mut self, iid: &str, conv: Option<usize>) -> anyhow::Result<()> {
        let sent = conv.map_or_else(|| self.desks.texts.us(), |c| self.desks.texts.reply_sent(c));
        let kind = Rq::SendReply(pb::SendReply { interaction_id: iid.to_string(), body: REPLY.into() });
        self.send(Step::Reply(sent), iid, conv, kind).await
    }

    async fn complete(&mut self, iid: &str, conv: Option<usize>) -> anyhow::Result<()> {
        self.desks.shared.completes.fetch_add(1, Relaxed);
        let kind = Rq::Complete(pb::CompleteInteraction {
            interaction_id: iid.to_string(),
            disposition: "bench".into(),
            notes: String::new(),
        });
        self.send(Step::Complete, iid, conv, kind).await
    }
}
