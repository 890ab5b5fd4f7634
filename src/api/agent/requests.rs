//! One request of a desktop session, whether it came on the `Session` stream or by `Act`: the
//! same checks, metrics and errors for both. The [`Caller`] decides where the pushes the request
//! causes go (back with the reply to the stream that made it, or through the inbox).

use std::time::Duration;

use tonic::Status;
use tracing::warn;

use super::AgentDesktopService;
use crate::api::pb::{self, agent_request::Kind as Rq};
use crate::api::{interaction_to_pb, message_to_pb, status};
use crate::channels::VetError;
use crate::model;
use switchboard_engine::{Caller, TransferTarget};

/// Default wait for a named-agent transfer.
const AGENT_TRANSFER_WAIT: Duration = Duration::from_secs(60);

fn required<'a>(field: &str, v: &'a str) -> Result<&'a str, Status> {
    if v.is_empty() {
        return Err(Status::invalid_argument(format!("{field}: is required")));
    }
    model::validate_len(field, v, 64).map_err(crate::api::invalid)?;
    Ok(v)
}

impl AgentDesktopService {
    pub(super) async fn handle(&self, caller: &Caller, req: pb::AgentRequest) -> Result<pb::Ack, Status> {
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
            Some(Rq::ScheduleCallback(c)) => ("schedule_callback", self.schedule_callback(caller, c).await),
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
        let presence = crate::api::presence_from_pb("presence", p.presence.as_ref())?;
        self.engine.calls(caller).set_presence(&presence, "agent").await.map_err(status)?;
        let st = self.engine.agent_status(caller.agent()).await.map_err(status)?;
        Ok(pb::Ack { agent: Some(crate::api::agent_state_to_pb(&st)), ..Default::default() })
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

    async fn schedule_callback(&self, caller: &Caller, c: pb::ScheduleCallback) -> Result<pb::Ack, Status> {
        let iid = required("interaction_id", &c.interaction_id)?;
        let not_before = crate::api::optional_ms("not_before", c.not_before)?;
        let ix = self.engine.get_interaction(iid, false).await.map_err(status)?;
        let made = self
            .voice
            .schedule_callback(caller.agent(), &ix, &c.number, not_before)
            .await
            .map_err(crate::api::cti::voice_status)?;
        Ok(pb::Ack { interaction: Some(interaction_to_pb(&made.interaction)), ..Default::default() })
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
