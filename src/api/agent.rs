//! AgentDesktop: one bidirectional stream per logged-in desktop.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use super::access::{caller, check_interaction};
use super::pb::{self, agent_event::Kind as Ev, agent_request::Kind as Rq};
use super::{interaction_to_pb, message_to_pb, offer_to_pb, presence_to_pb, status};
use crate::channels::{Channels, VetError};
use crate::crm::screen_pop::{ScreenPopData, ScreenPopper};
use crate::hub::{Delivery, Hub, InboxId, Push};
use crate::model::Principal;
use crate::model::{self, InteractionState};
use switchboard_auth::Throttle;
use switchboard_engine::{Caller, Engine, EngineError, Returned, TransferTarget};

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AgentEvent, Status>> + Send>>;

/// How long a session waits for the hub to have read the inbox up to the pushes a reply
/// returned (it normally has, or is one read away).
const INBOX_CATCH_UP: Duration = Duration::from_secs(2);

/// How long a new stream may take to log in before it is closed.
const LOGIN_WITHIN: Duration = Duration::from_secs(10);

/// Default wait for a named-agent transfer.
const AGENT_TRANSFER_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct AgentDesktopService {
    pub engine: Engine,
    pub hub: Arc<Hub>,
    pub channels: Channels,
    pub shutdown: CancellationToken,
    /// Session tasks, so a stopping instance waits for each to record its end.
    pub tasks: TaskTracker,
    /// None when no CRM is configured.
    pub screen_pop: Option<Arc<ScreenPopper>>,
    /// Failed logins, per agent and per address (shared with the trust boundary's).
    pub throttle: Arc<Throttle>,
    /// Streams still waiting for their login message: each holds a place until it logs in or
    /// fails, so clients that open streams and never log in cannot pile up.
    pub pending_logins: Arc<tokio::sync::Semaphore>,
}

/// Streams that may wait for their login at once on one instance.
pub const MAX_PENDING_LOGINS: usize = 1000;

#[tonic::async_trait]
impl pb::agent_desktop_server::AgentDesktop for AgentDesktopService {
    type SessionStream = EventStream;

    async fn get_screen_pop(
        &self,
        request: Request<pb::GetScreenPopRequest>,
    ) -> Result<Response<pb::ScreenPop>, Status> {
        let p = caller(&request)?;
        let iid = request.into_inner().interaction_id;
        model::validate_id("interaction_id", &iid).map_err(super::invalid)?;
        let ix = self.engine.get_interaction(&iid, false).await.map_err(status)?;
        check_interaction(&p, &ix)?;
        let pop = self.pop(&ix, true).await;
        Ok(Response::new(super::screen_pop_to_pb(&pop)))
    }

    async fn session(
        &self,
        request: Request<Streaming<pb::AgentRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        // Set when the stream's metadata carried an agent's credential (key, JWT or Basic).
        let authenticated = request.extensions().get::<Principal>().cloned();
        let lapse = switchboard_auth::lapsed(&request);
        let peer = switchboard_auth::peer_ip(request.extensions());
        let Ok(_pending) = self.pending_logins.clone().try_acquire_owned() else {
            metrics::counter!("switchboard_limit_refusals_total", "limit" => "pending_logins").increment(1);
            return Err(Status::resource_exhausted(
                "too many desktop logins in progress on this instance; retry shortly",
            ));
        };
        let mut inbound = request.into_inner();
        let first = match tokio::time::timeout(LOGIN_WITHIN, inbound.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => return Err(Status::invalid_argument("stream ended before login")),
            Err(_) => {
                return Err(Status::deadline_exceeded(format!("no login within {} s", LOGIN_WITHIN.as_secs())));
            }
        };
        let Some(Rq::Login(login)) = first.kind else {
            return Err(Status::unauthenticated("the first request must be login"));
        };
        let agent = match (&authenticated, login.agent_id.as_str()) {
            (Some(p), "") => p.agent_id.clone(),
            (_, id) => id.to_string(),
        };
        model::validate_id("login.agent_id", &agent).map_err(super::invalid)?;
        if let Some(p) = &authenticated
            && p.agent_id != agent
        {
            return Err(Status::permission_denied(format!(
                "this credential is agent {:?}'s, not {agent:?}'s",
                p.agent_id
            )));
        }
        let peer_key = format!("ip:{}", peer.map_or_else(|| "unknown".into(), |ip| ip.to_string()));
        let agent_key = format!("agent:{agent}");
        // Guessing one agent's token locks that agent's logins for a while (each further failure
        // longer); a guessing address is slowed down only in what it gets wrong.
        if let Some(wait) = self.throttle.blocked(&agent_key) {
            metrics::counter!("switchboard_login_failures_total", "reason" => "throttled").increment(1);
            return Err(Status::resource_exhausted(format!(
                "too many failed logins; retry in {} s",
                wait.as_secs().max(1)
            )));
        }
        if authenticated.is_none() && (login.token.is_empty() || login.token.len() > 256) {
            return Err(self.login_failed(&agent, &agent_key, &peer_key));
        }
        let session = uuid::Uuid::new_v4().to_string();
        let (push_tx, mut push_rx) = mpsc::unbounded_channel();
        self.hub.register(&agent, &session, push_tx);
        let token = if authenticated.is_some() { None } else { Some(login.token.as_str()) };
        // The login is on record under the agent, from where it came.
        let actor = crate::model::Actor {
            who: format!("agent:{agent}"),
            from: peer.map(|p| p.to_string()).unwrap_or_default(),
        };
        if let Err(e) = self.engine.acting_as(actor).login(&agent, token, self.hub.instance(), &session).await {
            self.hub.unregister(&agent, &session);
            if matches!(e, EngineError::Unauthenticated(_)) {
                return Err(self.login_failed(&agent, &agent_key, &peer_key));
            }
            return Err(status(e));
        }
        self.throttle.success(&agent_key);
        info!(message = "Agent logged in.", agent, session, via = ?authenticated.map(|p| p.credential));
        let snapshot = match self.snapshot(&agent).await {
            Ok(s) => s,
            Err(e) => {
                self.end_session(&agent, &session, false).await;
                return Err(e);
            }
        };
        let (out_tx, out_rx) = mpsc::channel::<Result<pb::AgentEvent, Status>>(256);
        let _ = out_tx.send(Ok(event(Ev::LoggedIn(snapshot)))).await;
        let _ = out_tx.send(Ok(event(Ev::Ack(pb::Ack { request_id: first.request_id, ..Default::default() })))).await;

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
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out_rx))))
    }
}

fn event(kind: Ev) -> pb::AgentEvent {
    pb::AgentEvent { kind: Some(kind) }
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
            let state = InteractionState::parse(&state).map(super::state_to_pb).unwrap_or_default();
            Ev::InteractionEnded(pb::InteractionEnded { interaction_id, state: state as i32, reason })
        }
        Push::Presence { presence, cause } => {
            Ev::PresenceChanged(pb::PresenceChanged { presence: Some(presence_to_pb(&presence)), cause })
        }
        Push::Closed { reason } => Ev::SessionClosed(pb::SessionClosed { reason }),
        Push::Call { interaction_id, state, since_ms, hold_ms } => {
            Ev::CallState(pb::CallState { interaction_id, state, since: Some(super::ts(since_ms)), hold_ms })
        }
        Push::Delivery { interaction_id, seq, delivery } => {
            Ev::Delivery(pb::DeliveryUpdate { interaction_id, seq, delivery: Some(super::delivery_to_pb(&delivery)) })
        }
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

fn required<'a>(field: &str, v: &'a str) -> Result<&'a str, Status> {
    if v.is_empty() {
        return Err(Status::invalid_argument(format!("{field}: is required")));
    }
    model::validate_len(field, v, 64).map_err(super::invalid)?;
    Ok(v)
}

impl AgentDesktopService {
    /// One failed login: counted, logged without the token, and slowing the next attempts.
    fn login_failed(&self, agent: &str, agent_key: &str, peer_key: &str) -> Status {
        let peer_blocked = self.throttle.blocked(peer_key);
        let a = self.throttle.failure(agent_key);
        let p = self.throttle.failure(peer_key);
        warn!(
            message = "Desktop login refused.",
            agent,
            peer = peer_key.trim_start_matches("ip:"),
            backoff_secs = a.max(p).map(|d| d.as_secs())
        );
        if let Some(wait) = peer_blocked {
            metrics::counter!("switchboard_login_failures_total", "reason" => "throttled").increment(1);
            return Status::resource_exhausted(format!("too many failed logins; retry in {} s", wait.as_secs().max(1)));
        }
        metrics::counter!("switchboard_login_failures_total", "reason" => "invalid").increment(1);
        Status::unauthenticated("unknown agent or wrong token")
    }

    async fn snapshot(&self, agent: &str) -> Result<pb::LoggedIn, Status> {
        let st = self.engine.agent_status(agent).await.map_err(status)?;
        let work = self.engine.agent_work(agent).await.map_err(status)?;
        let (offers, held): (Vec<_>, Vec<_>) = work.into_iter().partition(|ix| ix.state == InteractionState::Offered);
        let mut offer_events = Vec::new();
        for ix in &offers {
            let pop = self.pop(ix, false).await;
            offer_events.push(offer_to_pb(ix, &pop));
        }
        Ok(pb::LoggedIn {
            agent: Some(super::agent_state_to_pb(&st)),
            offers: offer_events,
            interactions: held.iter().map(interaction_to_pb).collect(),
        })
    }

    async fn pop(&self, ix: &model::Interaction, fresh: bool) -> ScreenPopData {
        // Whoever forged a customer's address must not see that customer's history, whatever
        // the CRM makes of the address.
        if ix.attributes.get("email.sender_verified").is_some_and(|v| v == "false") {
            return ScreenPopData::unknown_customer();
        }
        match &self.screen_pop {
            Some(p) => p.lookup(ix.channel, &ix.customer_address, &ix.id, fresh).await,
            None => ScreenPopData::not_configured(),
        }
    }

    /// Sends a push to the desktop; false once the stream has ended or the push ended it.
    async fn show(&self, out: &mpsc::Sender<Result<pb::AgentEvent, Status>>, push: Push) -> bool {
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
        out: &mpsc::Sender<Result<pb::AgentEvent, Status>>,
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

    /// `release_offers`: this instance is shutting down (see [`Engine::disconnect`]).
    async fn end_session(&self, agent: &str, session: &str, release_offers: bool) {
        self.hub.unregister(agent, session);
        if let Err(e) = self.engine.disconnect(agent, session, release_offers).await {
            warn!(message = "Could not record the end of a desktop session.", error = %e, agent);
        }
        info!(message = "Agent stream closed.", agent, session, release_offers);
    }

    async fn handle(&self, caller: &Caller, req: pb::AgentRequest) -> Result<pb::Ack, Status> {
        let started = std::time::Instant::now();
        let (op, result) = match req.kind {
            None => ("none", Err(Status::invalid_argument("request: no request kind set"))),
            Some(Rq::Login(_)) => ("login", Err(Status::failed_precondition("login: already logged in"))),
            Some(Rq::SetPresence(p)) => ("set_presence", self.set_presence(caller, p).await),
            Some(Rq::Accept(a)) => ("accept", self.accept(caller, a).await),
            Some(Rq::Reject(r)) => ("reject", self.reject(caller, r).await),
            Some(Rq::SendReply(r)) => ("send_reply", self.send_reply(caller, r).await),
            Some(Rq::Complete(c)) => ("complete", self.complete(caller, c).await),
            Some(Rq::EndWrapUp(e)) => ("end_wrap_up", self.end_wrap_up(caller, e).await),
            Some(Rq::Transfer(t)) => ("transfer", self.transfer(caller, t).await),
            Some(Rq::SetTyping(t)) => ("set_typing", self.set_typing(caller, t).await),
        };
        let code = match &result {
            Ok(_) => "ok".to_string(),
            Err(s) => format!("{:?}", s.code()),
        };
        metrics::counter!("switchboard_agent_requests_total", "op" => op, "code" => code).increment(1);
        metrics::histogram!("switchboard_agent_request_seconds", "op" => op).record(started.elapsed().as_secs_f64());
        result
    }

    async fn set_presence(&self, caller: &Caller, p: pb::SetPresence) -> Result<pb::Ack, Status> {
        let presence = super::presence_from_pb("presence", p.presence.as_ref())?;
        self.engine.calls(caller).set_presence(&presence, "agent").await.map_err(status)?;
        let st = self.engine.agent_status(caller.agent()).await.map_err(status)?;
        Ok(pb::Ack { agent: Some(super::agent_state_to_pb(&st)), ..Default::default() })
    }

    async fn accept(&self, caller: &Caller, a: pb::AcceptOffer) -> Result<pb::Ack, Status> {
        let iid = required("interaction_id", &a.interaction_id)?;
        let ix = self.engine.calls(caller).accept(iid).await.map_err(status)?;
        Ok(pb::Ack { interaction: Some(interaction_to_pb(&ix)), ..Default::default() })
    }

    async fn reject(&self, caller: &Caller, r: pb::RejectOffer) -> Result<pb::Ack, Status> {
        let iid = required("interaction_id", &r.interaction_id)?;
        self.engine.calls(caller).reject(iid, &r.reason).await.map_err(status)?;
        let ix = self.engine.get_interaction(iid, false).await.map_err(status)?;
        Ok(pb::Ack { interaction: Some(interaction_to_pb(&ix)), ..Default::default() })
    }

    async fn send_reply(&self, caller: &Caller, r: pb::SendReply) -> Result<pb::Ack, Status> {
        let iid = required("interaction_id", &r.interaction_id)?;
        // Read first: the channel may refuse the reply (an opted-out customer, too many SMS
        // segments) before anything is stored.
        let ix = self.engine.get_interaction(iid, false).await.map_err(status)?;
        // Only on the agent's own conversation: anyone else gets the reply's own refusal.
        if ix.agent_id == caller.agent() {
            self.channels.vet(&ix, &r.body).await.map_err(|e| match e {
                VetError::Invalid(m) => Status::invalid_argument(m),
                VetError::Refused(m) => Status::failed_precondition(m),
                VetError::Unavailable(m) => Status::unavailable(m),
            })?;
        }
        let msg = self.engine.calls(caller).reply(iid, &r.body).await.map_err(status)?;
        // Stored first (durable), then handed to the channel; a failed hand-off is reported, the
        // message stays in the thread.
        if let Err(e) = self.channels.deliver(&ix, &msg).await {
            warn!(message = "Reply delivery failed.", error = %e, interaction = iid, channel = %ix.channel);
            return Err(Status::unavailable(format!("reply stored as message {} but not delivered: {e}", msg.seq)));
        }
        Ok(pb::Ack { message: Some(message_to_pb(&msg)), ..Default::default() })
    }

    async fn set_typing(&self, caller: &Caller, t: pb::SetTyping) -> Result<pb::Ack, Status> {
        let iid = required("interaction_id", &t.interaction_id)?;
        self.engine.calls(caller).agent_typing(iid, t.typing).await.map_err(status)?;
        Ok(pb::Ack::default())
    }

    async fn complete(&self, caller: &Caller, c: pb::CompleteInteraction) -> Result<pb::Ack, Status> {
        let iid = required("interaction_id", &c.interaction_id)?;
        let ix = self.engine.calls(caller).complete(iid, &c.disposition, &c.notes).await.map_err(status)?;
        Ok(pb::Ack { interaction: Some(interaction_to_pb(&ix)), ..Default::default() })
    }

    async fn end_wrap_up(&self, caller: &Caller, e: pb::EndWrapUp) -> Result<pb::Ack, Status> {
        let iid = required("interaction_id", &e.interaction_id)?;
        let ix = self.engine.calls(caller).end_wrap_up(iid, &e.disposition, &e.notes).await.map_err(status)?;
        Ok(pb::Ack { interaction: Some(interaction_to_pb(&ix)), ..Default::default() })
    }

    async fn transfer(&self, caller: &Caller, t: pb::TransferInteraction) -> Result<pb::Ack, Status> {
        use pb::transfer_interaction::Target;
        let iid = required("interaction_id", &t.interaction_id)?;
        let target = match t.target {
            Some(Target::Queue(q)) => TransferTarget::Queue(q),
            Some(Target::AgentId(id)) => {
                let wait = if t.agent_wait_secs == 0 {
                    AGENT_TRANSFER_WAIT
                } else {
                    Duration::from_secs(t.agent_wait_secs.into())
                };
                if wait > Duration::from_secs(3600) {
                    return Err(Status::invalid_argument("agent_wait_secs: must be at most 3600"));
                }
                TransferTarget::Agent { id, wait }
            }
            None => return Err(Status::invalid_argument("target: a queue or an agent_id is required")),
        };
        let ix = self.engine.calls(caller).transfer(iid, &target, t.priority_boost).await.map_err(status)?;
        Ok(pb::Ack { interaction: Some(interaction_to_pb(&ix)), ..Default::default() })
    }
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
