//! A logged-in session's stream of events: the snapshot, then every push in the order Redis made
//! it, until the session ends. `Session` also reads its requests here; `Open`'s come by `Act`,
//! whose pushes reach this loop through the inbox like anyone else's.

use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::Status;
use tracing::{Instrument, debug, info, info_span, warn};

use super::login::Opened;
use super::{AgentDesktopService, EventStream, event};
use crate::api::pb::{self, agent_event::Kind as Ev};
use crate::api::{interaction_to_pb, message_to_pb, offer_to_pb, presence_to_pb};
use crate::crm::screen_pop::ScreenPopData;
use crate::hub::{Delivery, InboxId, Push};
use crate::model::InteractionState;
use switchboard_auth::LapseFuture;
use switchboard_engine::{Caller, Returned};

/// How long a session waits for the hub to have read the inbox up to the pushes a reply
/// returned (it normally has, or is one read away).
const INBOX_CATCH_UP: Duration = Duration::from_secs(2);

type Out = mpsc::Sender<Result<pb::AgentEvent, Status>>;

impl AgentDesktopService {
    /// Streams `opened`'s events: `LoggedIn`, then `ack` (the login's, on `Session`), then what
    /// happens, with the answers to `inbound`'s requests. The session ends when the desktop goes
    /// away, the instance stops, its credential lapses or a push closes it.
    pub(super) async fn stream<S>(
        &self,
        opened: Opened,
        ack: Option<pb::AgentEvent>,
        inbound: S,
        lapse: LapseFuture,
    ) -> EventStream
    where
        S: Stream<Item = Result<pb::AgentRequest, Status>> + Send + Unpin + 'static,
    {
        let Opened { agent, session, pushes: mut push_rx, snapshot } = opened;
        let mut inbound = inbound;
        let (out_tx, out_rx) = mpsc::channel::<Result<pb::AgentEvent, Status>>(256);
        let _ = out_tx.send(Ok(event(Ev::LoggedIn(snapshot)))).await;
        if let Some(ack) = ack {
            let _ = out_tx.send(Ok(ack)).await;
        }
        let svc = self.clone();
        let caller = Caller::new(&agent, &session, self.hub.instance());
        let span = info_span!("agent_session", agent = %agent, session = %session);
        self.tasks.spawn(
            async move {
                // A push the hub handed over after those a reply returned: shown next.
                let mut held: Option<Delivery> = None;
                let mut shutting_down = false;
                let lapsed = lapse.wait();
                tokio::pin!(lapsed);
                loop {
                    if let Some((_, push)) = held.take() {
                        if !svc.show(&out_tx, push).await {
                            break;
                        }
                        continue;
                    }
                    tokio::select! {
                        // Shutdown: tell the desktop, then end the stream. Its pending offers
                        // go back to the queue at once; the agent keeps its presence through the
                        // grace period, so it can resume on another instance.
                        _ = svc.shutdown.cancelled() => {
                            let _ = out_tx.send(Ok(event(Ev::SessionClosed(pb::SessionClosed { reason: "shutdown".into() })))).await;
                            shutting_down = true;
                            break;
                        }
                        // The key, JWT or token the stream was opened with is no longer valid.
                        () = &mut lapsed => {
                            let _ = out_tx.send(Ok(event(Ev::SessionClosed(pb::SessionClosed { reason: "credential_lapsed".into() })))).await;
                            break;
                        }
                        // The desktop went away: with no requests to read (`Open`), nothing
                        // else would notice before the next push.
                        () = out_tx.closed() => break,
                        delivery = push_rx.recv() => {
                            let Some((_, push)) = delivery else { break };
                            if !svc.show(&out_tx, push).await {
                                break;
                            }
                        }
                        msg = inbound.next() => {
                            let req = match msg {
                                Some(Ok(r)) => r,
                                Some(Err(e)) => {
                                    debug!(message = "Desktop stream error.", error = %e);
                                    break;
                                }
                                None => break,
                            };
                            let request_id = req.request_id.clone();
                            let result = svc.handle(&caller, req).await;
                            let reply = match result {
                                Ok(ack) => Ev::Ack(pb::Ack { request_id, ..ack }),
                                Err(s) => Ev::Error(pb::RequestError {
                                    request_id,
                                    code: s.code() as i32,
                                    message: s.message().to_string(),
                                }),
                            };
                            if out_tx.send(Ok(event(reply))).await.is_err() {
                                break;
                            }
                            // What the request's own calls returned for this session, after the ack.
                            let mut open = true;
                            for batch in caller.take_returned() {
                                match svc.show_returned(&agent, &out_tx, &mut push_rx, held.take(), batch).await {
                                    Some(next) => held = next,
                                    None => {
                                        open = false;
                                        break;
                                    }
                                }
                            }
                            if !open {
                                break;
                            }
                        }
                    }
                }
                svc.end_session(&agent, &session, shutting_down).await;
            }
            .instrument(span),
        );
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(out_rx))
    }

    /// Sends a push to the desktop; false once the stream has ended or the push ended it.
    async fn show(&self, out: &Out, push: Push) -> bool {
        let closing = matches!(push, Push::Closed { .. });
        // The look-up runs here, in this session's own task: a slow CRM delays only this agent's
        // offer, by at most the deadline, and keeps its order.
        let event = match push {
            Push::Offer(ix) => {
                let pop = self.pop(&ix, false).await;
                event(Ev::Offer(offer_to_pb(&ix, &pop)))
            }
            other => push_to_event(other),
        };
        out.send(Ok(event)).await.is_ok() && !closing
    }

    /// Shows the pushes one of a request's calls returned for this session, after every push the
    /// inbox held for it up to the id they follow (`held`: one the hub already handed over, later
    /// than an earlier batch's). Returns the first push handed over after them (to be shown next),
    /// or None once the stream has ended.
    async fn show_returned(
        &self,
        agent: &str,
        out: &Out,
        inbox: &mut mpsc::UnboundedReceiver<Delivery>,
        held: Option<Delivery>,
        batch: Returned,
    ) -> Option<Option<Delivery>> {
        let after = batch.after;
        if !self.hub.delivered_through(after, INBOX_CATCH_UP).await {
            // The hub is stuck (Redis unreachable?): showing them now beats holding the desktop.
            warn!(message = "The inbox was not read up to a reply's pushes in time; showing them anyway.", agent);
        }
        let (before, next) = match held {
            // Everything still in the channel comes after `held`, itself after these pushes.
            Some(h) if h.0 > after => (Vec::new(), Some(h)),
            Some(h) => {
                let (mut before, next) = handed_over_through(inbox, after);
                before.insert(0, h);
                (before, next)
            }
            None => handed_over_through(inbox, after),
        };
        for (_, push) in before {
            if !self.show(out, push).await {
                return None;
            }
        }
        for push in batch.pushes {
            if !self.show(out, push).await {
                return None;
            }
        }
        Some(next)
    }

    /// `release_offers`: this instance is shutting down (see [`switchboard_engine::Engine::disconnect`]).
    pub(super) async fn end_session(&self, agent: &str, session: &str, release_offers: bool) {
        self.hub.unregister(agent, session);
        if let Err(e) = self.engine.disconnect(agent, session, release_offers).await {
            warn!(message = "Could not record the end of a desktop session.", error = %e, agent);
        }
        info!(message = "Agent stream closed.", agent, session, release_offers);
    }
}

fn push_to_event(push: Push) -> pb::AgentEvent {
    event(match push {
        Push::Offer(ix) => Ev::Offer(offer_to_pb(&ix, &ScreenPopData::not_configured())),
        Push::Revoked { interaction_id, reason } => Ev::OfferRevoked(pb::OfferRevoked { interaction_id, reason }),
        Push::Assigned(ix) => Ev::Assigned(pb::Assigned { interaction: Some(interaction_to_pb(&ix)) }),
        Push::CustomerMessage { interaction_id, message } => {
            Ev::CustomerMessage(pb::CustomerMessage { interaction_id, message: Some(message_to_pb(&message)) })
        }
        Push::CustomerTyping { interaction_id, on } => {
            Ev::CustomerTyping(pb::CustomerTyping { interaction_id, typing: on })
        }
        Push::Ended { interaction_id, state, reason } => {
            let state = InteractionState::parse(&state).map(crate::api::state_to_pb).unwrap_or_default();
            Ev::InteractionEnded(pb::InteractionEnded { interaction_id, state: state as i32, reason })
        }
        Push::Presence { presence, cause } => {
            Ev::PresenceChanged(pb::PresenceChanged { presence: Some(presence_to_pb(&presence)), cause })
        }
        Push::Closed { reason } => Ev::SessionClosed(pb::SessionClosed { reason }),
        Push::Call { interaction_id, state, since_ms, hold_ms } => {
            Ev::CallState(pb::CallState { interaction_id, state, since: Some(crate::api::ts(since_ms)), hold_ms })
        }
        Push::Delivery { interaction_id, seq, delivery } => Ev::Delivery(pb::DeliveryUpdate {
            interaction_id,
            seq,
            delivery: Some(crate::api::delivery_to_pb(&delivery)),
        }),
    })
}

/// The pushes the hub has handed over up to inbox id `after`, in order, and the first after it.
fn handed_over_through(
    inbox: &mut mpsc::UnboundedReceiver<Delivery>,
    after: InboxId,
) -> (Vec<Delivery>, Option<Delivery>) {
    let mut before = Vec::new();
    while let Ok(d) = inbox.try_recv() {
        if d.0 > after {
            return (before, Some(d));
        }
        before.push(d);
    }
    (before, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked(ix: &str) -> Push {
        Push::Revoked { interaction_id: ix.into(), reason: "r".into() }
    }

    #[test]
    fn pushes_up_to_the_id_go_first_and_the_next_one_is_held() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let id = |s: &str| InboxId::parse(s).unwrap();
        for (i, ix) in [("5-0", "a"), ("7-1", "b"), ("7-2", "c"), ("9-0", "d")] {
            tx.send((id(i), revoked(ix))).unwrap();
        }
        let (before, next) = handed_over_through(&mut rx, id("7-1"));
        assert_eq!(before, vec![(id("5-0"), revoked("a")), (id("7-1"), revoked("b"))]);
        assert_eq!(next, Some((id("7-2"), revoked("c"))));
        // The rest stays in the channel, in order.
        assert_eq!(rx.try_recv().unwrap(), (id("9-0"), revoked("d")));
    }

    #[test]
    fn with_nothing_after_the_id_nothing_is_held() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send((InboxId::parse("3-0").unwrap(), revoked("a"))).unwrap();
        let (before, next) = handed_over_through(&mut rx, InboxId::parse("3-0").unwrap());
        assert_eq!(before, vec![(InboxId::parse("3-0").unwrap(), revoked("a"))]);
        assert_eq!(next, None);
    }
}
