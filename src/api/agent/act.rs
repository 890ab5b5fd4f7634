//! `Act`: one request of a session opened with `Open`. The session id stands for the agent's
//! credential, as a web session's cookie does, so any instance can take the request.

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

use super::AgentDesktopService;
use crate::api::pb::{self, agent_request::Kind as Rq};
use crate::api::{invalid, status};
use crate::model::{self, Principal};
use switchboard_engine::{Caller, EngineError};

const ENDED: &str = "this session has ended (replaced by a newer sign-in, logged out, or expired); sign in again";

/// Whether `given` is the agent's open session `current`, in a time that does not tell how much
/// of it was right.
fn is_current(current: &str, given: &str) -> bool {
    !current.is_empty() && bool::from(current.as_bytes().ct_eq(given.as_bytes()))
}

impl AgentDesktopService {
    pub(super) async fn act_in_session(&self, request: Request<pb::ActRequest>) -> Result<pb::Ack, Status> {
        // Set when the call's metadata carried an agent's credential (key, JWT or Basic).
        let authenticated = request.extensions().get::<Principal>().cloned();
        let peer = switchboard_auth::peer_ip(request.extensions());
        let pb::ActRequest { agent_id, session_id, request } = request.into_inner();
        // Neither a session nor a credential: answered as the trust boundary answers any other
        // RPC called without a credential.
        if authenticated.is_none() && session_id.is_empty() {
            return Err(Status::unauthenticated(
                "session_id: is required (the LoggedIn.session_id of the agent's open session)",
            ));
        }
        model::validate_id("agent_id", &agent_id).map_err(invalid)?;
        if session_id.is_empty() {
            return Err(Status::invalid_argument("session_id: is required"));
        }
        model::validate_len("session_id", &session_id, 64).map_err(invalid)?;
        let Some(req) = request else {
            return Err(Status::invalid_argument("request: is required"));
        };
        let caller = Caller::remote(&agent_id);
        if matches!(req.kind, None | Some(Rq::Login(_))) {
            // The handler refuses these before any call, with the stream's errors and metrics;
            // here before the session is looked at, as any invalid request.
            return self.handle(&caller, req).await;
        }
        if let Some(p) = &authenticated
            && p.agent_id != agent_id
        {
            return Err(Status::permission_denied(format!(
                "this credential is agent {:?}'s, not {agent_id:?}'s",
                p.agent_id
            )));
        }
        // An unknown agent is answered like a wrong session, as a login with a wrong token is.
        let current = match self.engine.agent_status(&agent_id).await {
            Ok(st) if st.connected => st.session,
            Ok(_) | Err(EngineError::NotFound(_)) => String::new(),
            Err(e) => return Err(status(e)),
        };
        if !is_current(&current, &session_id) {
            // Counted with failed logins, so guessing ids slows down and shows like guessing
            // tokens. The right id is never refused for others' failures: a stranger's guesses
            // must not lock an agent out of the session it holds.
            return Err(self.login_failed(&agent_id, peer, "session", Status::unauthenticated(ENDED)));
        }
        let request_id = req.request_id.clone();
        // Not the stream's caller: this instance may not hold the stream, so every push the
        // request causes goes through the inbox to whichever does, in inbox order.
        let ack = self.handle(&caller, req).await?;
        Ok(pb::Ack { request_id, ..ack })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_session_is_current() {
        let id = "5f0b6a4e-3c1d-4b8e-9a7f-2d6c8e1f0a3b";
        assert!(is_current(id, id));
        assert!(!is_current(id, "5f0b6a4e-3c1d-4b8e-9a7f-2d6c8e1f0a3c"));
        assert!(!is_current(id, &id[..35]));
        assert!(!is_current("", ""), "no session is no one's");
    }
}
