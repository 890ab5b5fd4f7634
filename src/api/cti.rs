//! The CTI hook (`switchboard.cti.v1`): telephony systems report calls and ask where they ring.
//! Protobuf stops here; the logic is the voice channel's (`channels/voice`). The caller's key
//! name is the telephony system's id: every call id is scoped by it.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::feed::EventFeed;
use crate::channels::voice::callback::{CallbackMade, NewCallback};
use crate::channels::voice::watch::Instruction;
use crate::channels::voice::{
    Applied, CallReport, CallReportKind, Ring, RouteAction, RouteCall, RouteDecision, Voice, VoiceError,
};
use crate::model::voice::{CallUpdate, HungUpBy, PhoneState, RingFailure, TransferTo};
use crate::model::{Actor, Principal};
use switchboard_engine::CallOutcome;
pub use switchboard_proto::cti as pb;

/// Events in flight on one PublishEvents stream before the platform must read its acks.
const ACK_BUFFER: usize = 256;

#[derive(Clone)]
pub struct CtiService {
    pub voice: Arc<Voice>,
    pub feed: EventFeed,
    pub shutdown: CancellationToken,
}

/// The telephony system calling, and how its changes are recorded.
fn system<T>(req: &Request<T>) -> Result<(String, Actor), Status> {
    let p: Principal = super::access::caller(req)?;
    let from = switchboard_auth::peer_ip(req.extensions());
    Ok((p.name.clone(), Actor::new(&p, from)))
}

pub(crate) fn voice_status(e: VoiceError) -> Status {
    match e {
        VoiceError::Invalid(m) => Status::invalid_argument(m),
        VoiceError::NotFound(m) => Status::not_found(m),
        VoiceError::Engine(e) => super::status(e),
    }
}

fn ring_to_pb(r: Ring) -> pb::RingAgent {
    pb::RingAgent {
        agent_id: r.agent_id,
        device: r.device,
        route_id: r.route_id,
        ring_until: (r.ring_until_ms > 0).then(|| super::ts(r.ring_until_ms)),
    }
}

fn decision_to_pb(call_id: String, d: RouteDecision) -> pb::RouteResponse {
    use pb::route_response::Action;
    let action = match d.action {
        RouteAction::Ring(r) => Action::Ring(ring_to_pb(r)),
        RouteAction::Hold { queue, position } => Action::Hold(pb::HoldInQueue { queue, position }),
        RouteAction::Default { destination, reason } => Action::DefaultRoute(pb::DefaultRoute { destination, reason }),
    };
    pb::RouteResponse { call_id, interaction_id: d.interaction_id, action: Some(action) }
}

fn callback_to_pb(made: CallbackMade) -> pb::CallbackResponse {
    pb::CallbackResponse {
        number: made.interaction.callback.as_ref().map(|c| c.number.clone()).unwrap_or_default(),
        interaction_id: made.interaction.id,
        position: made.position,
        created: made.created,
    }
}

fn outcome_to_pb(o: CallOutcome) -> pb::Outcome {
    match o {
        CallOutcome::Applied => pb::Outcome::Applied,
        CallOutcome::Duplicate => pb::Outcome::Duplicate,
        CallOutcome::Stale => pb::Outcome::Stale,
        CallOutcome::Ignored => pb::Outcome::Ignored,
    }
}

fn ring_failure(v: i32) -> Result<RingFailure, Status> {
    match pb::RingFailure::try_from(v) {
        Ok(pb::RingFailure::NoAnswer) => Ok(RingFailure::NoAnswer),
        Ok(pb::RingFailure::Busy) => Ok(RingFailure::Busy),
        Ok(pb::RingFailure::Unreachable) => Ok(RingFailure::Unreachable),
        _ => Err(Status::invalid_argument("failed.cause: must be no_answer, busy or unreachable")),
    }
}

fn route_call_from_pb(r: pb::RouteRequest) -> RouteCall {
    RouteCall {
        call_id: r.call_id,
        caller: r.caller,
        dialled: r.dialled,
        routing_point: r.routing_point,
        user_data: r.user_data.into_iter().collect(),
        queue: r.queue,
        priority: r.priority,
    }
}

/// One event of the stream, in domain terms. Errors name the field that is wrong.
enum Event {
    Call(Box<CallReport>),
    Phone { agent_id: String, device: String, state: PhoneState },
}

fn event_from_pb(e: pb::TelephonyEvent) -> Result<Event, Status> {
    use pb::call_event::Kind;
    match e.event {
        Some(pb::telephony_event::Event::Phone(p)) => {
            let state = match pb::PhoneState::try_from(p.state) {
                Ok(pb::PhoneState::Registered) => PhoneState::Registered,
                Ok(pb::PhoneState::Unregistered) => PhoneState::Unregistered,
                Ok(pb::PhoneState::Dnd) => PhoneState::Dnd,
                Ok(pb::PhoneState::Busy) => PhoneState::Busy,
                _ => return Err(Status::invalid_argument("phone.state: is required")),
            };
            Ok(Event::Phone { agent_id: p.agent_id, device: p.device, state })
        }
        Some(pb::telephony_event::Event::Call(c)) => {
            let kind = match c.kind {
                Some(Kind::Offered(o)) => CallReportKind::Offered(RouteCall {
                    call_id: c.call_id.clone(),
                    caller: c.caller.clone(),
                    dialled: c.dialled.clone(),
                    routing_point: o.routing_point,
                    user_data: c.user_data.clone().into_iter().collect(),
                    queue: o.queue,
                    priority: o.priority,
                }),
                Some(Kind::Ringing(_)) => CallReportKind::Update(CallUpdate::Ringing),
                Some(Kind::Answered(_)) => CallReportKind::Update(CallUpdate::Answered),
                Some(Kind::Held(_)) => CallReportKind::Update(CallUpdate::Held),
                Some(Kind::Retrieved(_)) => CallReportKind::Update(CallUpdate::Retrieved),
                Some(Kind::Conferenced(_)) => CallReportKind::Update(CallUpdate::Conferenced),
                Some(Kind::RingNoAnswer(_)) => CallReportKind::Update(CallUpdate::RingFailed(RingFailure::NoAnswer)),
                Some(Kind::Abandoned(a)) => CallReportKind::Update(CallUpdate::Abandoned { cause: a.cause }),
                Some(Kind::Released(r)) => {
                    let by = match pb::Party::try_from(r.by) {
                        Ok(pb::Party::Caller) => HungUpBy::Caller,
                        Ok(pb::Party::Agent) => HungUpBy::Agent,
                        _ => HungUpBy::Unknown,
                    };
                    CallReportKind::Update(CallUpdate::Released { cause: r.cause, by })
                }
                Some(Kind::Transferred(t)) => {
                    use pb::transferred::Target;
                    let to = match t.target {
                        Some(Target::Queue(q)) => TransferTo::Queue(q),
                        Some(Target::AgentId(a)) => TransferTo::Agent(a),
                        Some(Target::External(x)) => TransferTo::External(x),
                        None => return Err(Status::invalid_argument("call.transferred.target: is required")),
                    };
                    CallReportKind::Update(CallUpdate::Transferred { to, attended: t.attended })
                }
                None => return Err(Status::invalid_argument("call.kind: is required")),
            };
            let mut details = serde_json::Map::new();
            for (k, v) in [("leg_id", &c.leg_id), ("linked_call_id", &c.linked_call_id), ("device", &c.device)] {
                if !v.is_empty() {
                    switchboard_model::validate_line(&format!("call.{k}"), v, 256).map_err(super::invalid)?;
                    details.insert(k.into(), v.clone().into());
                }
            }
            Ok(Event::Call(Box::new(CallReport {
                call_id: c.call_id,
                sequence: c.sequence,
                agent_id: c.agent_id,
                device: c.device,
                kind,
                details: serde_json::Value::Object(details),
            })))
        }
        None => Err(Status::invalid_argument("event: call or phone is required")),
    }
}

impl CtiService {
    async fn apply(&self, system: &str, by: &Actor, e: pb::TelephonyEvent) -> pb::EventAck {
        let event_id = e.event_id.clone();
        let r: Result<Applied, Status> = async {
            if event_id.is_empty() {
                return Err(Status::invalid_argument("event_id: is required"));
            }
            switchboard_model::validate_line("event_id", &event_id, 256).map_err(super::invalid)?;
            match event_from_pb(e)? {
                Event::Call(report) => {
                    self.voice.call_event(system, by, &event_id, &report).await.map_err(voice_status)
                }
                Event::Phone { agent_id, device, state } => {
                    let changed = self.voice.phone_event(by, &agent_id, &device, state).await.map_err(voice_status)?;
                    let outcome = if changed { CallOutcome::Applied } else { CallOutcome::Ignored };
                    Ok(Applied { outcome, interaction_id: String::new() })
                }
            }
        }
        .await;
        let outcome = match &r {
            Ok(a) => a.outcome.as_str(),
            Err(_) => "rejected",
        };
        metrics::counter!("switchboard_cti_events_total", "outcome" => outcome).increment(1);
        match r {
            Ok(a) => pb::EventAck {
                event_id,
                outcome: outcome_to_pb(a.outcome) as i32,
                interaction_id: a.interaction_id,
                ..Default::default()
            },
            Err(s) => pb::EventAck {
                event_id,
                outcome: pb::Outcome::Rejected as i32,
                error_code: s.code() as i32,
                error_message: s.message().to_string(),
                ..Default::default()
            },
        }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::cti_server::Cti for CtiService {
    async fn route_call(&self, request: Request<pb::RouteRequest>) -> Result<Response<pb::RouteResponse>, Status> {
        let (system, by) = system(&request)?;
        let r = request.into_inner();
        let call_id = r.call_id.clone();
        let d = self.voice.route_call(&system, &by, &route_call_from_pb(r)).await.map_err(voice_status)?;
        let action = match &d.action {
            RouteAction::Ring(_) => "ring",
            RouteAction::Hold { .. } => "hold",
            RouteAction::Default { .. } => "default",
        };
        metrics::counter!("switchboard_cti_routes_total", "action" => action).increment(1);
        Ok(Response::new(decision_to_pb(call_id, d)))
    }

    type WatchRoutesStream = BoxStream<pb::RouteInstruction>;

    async fn watch_routes(
        &self,
        request: Request<pb::WatchRoutesRequest>,
    ) -> Result<Response<Self::WatchRoutesStream>, Status> {
        let (system, _) = system(&request)?;
        let lapse = switchboard_auth::lapsed(&request);
        let mut sub = self.feed.subscribe().await?;
        let (tx, rx) = mpsc::channel(ACK_BUFFER);
        let (voice, shutdown) = (self.voice.clone(), self.shutdown.clone());
        let closer = tx.clone();
        let watch = async move {
            loop {
                let batch = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                    b = sub.events.recv() => b,
                };
                let batch = match batch {
                    Ok(b) => b,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        // Rings missed here time out and go to the next agent; say so.
                        tracing::warn!(
                            message = "A route watcher fell behind; some ring instructions were skipped.",
                            skipped_batches = n,
                            system
                        );
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let instructions = match voice.instructions(&system, &batch).await {
                    Ok(i) => i,
                    Err(error) => {
                        tracing::warn!(message = "Ring instructions could not be read.", %error, system);
                        continue;
                    }
                };
                for i in instructions {
                    let m = match i {
                        Instruction::Ring { call_id, interaction_id, ring } => pb::RouteInstruction {
                            call_id,
                            interaction_id,
                            action: Some(pb::route_instruction::Action::Ring(ring_to_pb(ring))),
                        },
                        Instruction::Dial { call_id, interaction_id, dial } => pb::RouteInstruction {
                            call_id,
                            interaction_id,
                            action: Some(pb::route_instruction::Action::Dial(pb::DialCallback {
                                agent_id: dial.agent_id,
                                device: dial.device,
                                number: dial.number,
                                route_id: dial.route_id,
                                attempt: dial.attempt,
                                max_attempts: dial.max_attempts,
                                dialled: dial.dialled,
                            })),
                        },
                        Instruction::Cancel { call_id, interaction_id, agent_id, device, reason } => {
                            pb::RouteInstruction {
                                call_id,
                                interaction_id,
                                action: Some(pb::route_instruction::Action::Cancel(pb::CancelRing {
                                    agent_id,
                                    device,
                                    route_id: String::new(),
                                    reason,
                                })),
                            }
                        }
                    };
                    if tx.send(Ok(m)).await.is_err() {
                        return;
                    }
                }
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                () = watch => {}
                () = lapse.wait() => drop(closer.send(Err(super::lapsed_status())).await),
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn report_route(&self, request: Request<pb::RouteReport>) -> Result<Response<pb::RouteReportAck>, Status> {
        let (system, by) = system(&request)?;
        let r = request.into_inner();
        let failure = match r.result {
            Some(pb::route_report::Result::Used(_)) => None,
            Some(pb::route_report::Result::Failed(f)) => {
                switchboard_model::validate_line("failed.detail", &f.detail, 256).map_err(super::invalid)?;
                Some(ring_failure(f.cause)?)
            }
            None => return Err(Status::invalid_argument("result: used or failed is required")),
        };
        let outcome =
            self.voice.report_route(&system, &by, &r.call_id, &r.route_id, failure).await.map_err(voice_status)?;
        Ok(Response::new(pb::RouteReportAck { outcome: outcome_to_pb(outcome) as i32 }))
    }

    async fn request_callback(
        &self,
        request: Request<pb::CallbackRequest>,
    ) -> Result<Response<pb::CallbackResponse>, Status> {
        let (system, by) = system(&request)?;
        let r = request.into_inner();
        let not_before = super::optional_ms("not_before", r.not_before)?;
        let made =
            self.voice.request_callback(&system, &by, &r.call_id, &r.number, not_before).await.map_err(voice_status)?;
        if made.created {
            metrics::counter!("switchboard_cti_callbacks_total", "from" => "call").increment(1);
        }
        Ok(Response::new(callback_to_pb(made)))
    }

    async fn create_callback(
        &self,
        request: Request<pb::NewCallback>,
    ) -> Result<Response<pb::CallbackResponse>, Status> {
        let (system, by) = system(&request)?;
        let r = request.into_inner();
        let cb = NewCallback {
            waiting_since_ms: super::optional_ms("waiting_since", r.waiting_since)?,
            not_before_ms: super::optional_ms("not_before", r.not_before)?,
            callback_id: r.callback_id,
            number: r.number,
            queue: r.queue,
            routing_point: r.routing_point,
            dialled: r.dialled,
            priority: r.priority,
            user_data: r.user_data.into_iter().collect(),
        };
        let made = self.voice.create_callback(&system, &by, &cb).await.map_err(voice_status)?;
        if made.created {
            metrics::counter!("switchboard_cti_callbacks_total", "from" => "ivr").increment(1);
        }
        Ok(Response::new(callback_to_pb(made)))
    }

    type PublishEventsStream = BoxStream<pb::EventAck>;

    async fn publish_events(
        &self,
        request: Request<Streaming<pb::TelephonyEvent>>,
    ) -> Result<Response<Self::PublishEventsStream>, Status> {
        let (system, by) = system(&request)?;
        let lapse = switchboard_auth::lapsed(&request);
        let mut events = request.into_inner();
        let (tx, rx) = mpsc::channel(ACK_BUFFER);
        let (service, shutdown) = (self.clone(), self.shutdown.clone());
        let closer = tx.clone();
        let publish = async move {
            // One at a time: a platform's events of one call arrive in order on its stream, and
            // are applied in that order.
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = events.message() => n,
                };
                let e = match next {
                    Ok(Some(e)) => e,
                    Ok(None) => return,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let ack = service.apply(&system, &by, e).await;
                if tx.send(Ok(ack)).await.is_err() {
                    return;
                }
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                () = publish => {}
                () = lapse.wait() => drop(closer.send(Err(super::lapsed_status())).await),
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}
