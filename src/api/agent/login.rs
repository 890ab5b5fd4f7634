//! Logging a desktop in, the same for `Session` (its first request) and `Open`: the checks, the
//! throttling of failures, and the snapshot the session starts from.

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tonic::Status;
use tracing::{info, warn};

use super::AgentDesktopService;
use crate::api::pb;
use crate::api::{interaction_to_pb, offer_to_pb, status};
use crate::hub::Delivery;
use crate::model::{self, Actor, InteractionState, Principal};
use switchboard_engine::EngineError;

/// A session that has just logged in: registered with the hub, its snapshot read.
pub(super) struct Opened {
    pub agent: String,
    pub session: String,
    /// What the hub hands over for the session, from before the login on.
    pub pushes: mpsc::UnboundedReceiver<Delivery>,
    pub snapshot: pb::LoggedIn,
}

/// The throttle's keys for a login of `agent` from `peer`.
pub(super) fn throttle_keys(agent: &str, peer: Option<IpAddr>) -> (String, String) {
    let peer_key = format!("ip:{}", peer.map_or_else(|| "unknown".into(), |ip| ip.to_string()));
    (format!("agent:{agent}"), peer_key)
}

fn too_many_failures(wait: Duration) -> Status {
    metrics::counter!("switchboard_login_failures_total", "reason" => "throttled").increment(1);
    Status::resource_exhausted(format!("too many failed logins; retry in {} s", wait.as_secs().max(1)))
}

impl AgentDesktopService {
    /// A place among the logins in progress on this instance, held until the login is done.
    pub(super) fn pending_login(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.pending_logins.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("switchboard_limit_refusals_total", "limit" => "pending_logins").increment(1);
            Status::resource_exhausted("too many desktop logins in progress on this instance; retry shortly")
        })
    }

    /// Logs `login` in. `authenticated`: the agent's credential from the call's metadata, which
    /// stands in for the login's token.
    pub(super) async fn log_in(
        &self,
        authenticated: Option<Principal>,
        peer: Option<IpAddr>,
        login: pb::Login,
    ) -> Result<Opened, Status> {
        // Nothing that could be checked: answered as the trust boundary answers any other RPC
        // called without a credential.
        if authenticated.is_none() && login.agent_id.is_empty() && login.token.is_empty() {
            return Err(Status::unauthenticated(
                "no credential: log in with an agent_id and its token, or an agent's credential in the metadata",
            ));
        }
        let agent = match (&authenticated, login.agent_id.as_str()) {
            (Some(p), "") => p.agent_id.clone(),
            (_, id) => id.to_string(),
        };
        model::validate_id("login.agent_id", &agent).map_err(crate::api::invalid)?;
        if let Some(p) = &authenticated
            && p.agent_id != agent
        {
            return Err(Status::permission_denied(format!(
                "this credential is agent {:?}'s, not {agent:?}'s",
                p.agent_id
            )));
        }
        let (agent_key, _) = throttle_keys(&agent, peer);
        // Guessing one agent's token locks that agent's logins for a while (each further failure
        // longer); a guessing address is slowed down only in what it gets wrong.
        if let Some(wait) = self.throttle.blocked(&agent_key) {
            return Err(too_many_failures(wait));
        }
        let unknown = || Status::unauthenticated("unknown agent or wrong token");
        if authenticated.is_none() && (login.token.is_empty() || login.token.len() > 256) {
            return Err(self.login_failed(&agent, peer, "invalid", unknown()));
        }
        let session = uuid::Uuid::new_v4().to_string();
        let (push_tx, pushes) = mpsc::unbounded_channel();
        self.hub.register(&agent, &session, push_tx);
        let token = if authenticated.is_some() { None } else { Some(login.token.as_str()) };
        // The login is on record under the agent, from where it came.
        let actor = Actor { who: format!("agent:{agent}"), from: peer.map(|p| p.to_string()).unwrap_or_default() };
        if let Err(e) = self.engine.acting_as(actor).login(&agent, token, self.hub.instance(), &session).await {
            self.hub.unregister(&agent, &session);
            if matches!(e, EngineError::Unauthenticated(_)) {
                return Err(self.login_failed(&agent, peer, "invalid", unknown()));
            }
            return Err(status(e));
        }
        self.throttle.success(&agent_key);
        info!(message = "Agent logged in.", agent, session, via = ?authenticated.map(|p| p.credential));
        match self.snapshot(&agent, &session).await {
            Ok(snapshot) => Ok(Opened { agent, session, pushes, snapshot }),
            Err(e) => {
                self.end_session(&agent, &session, false).await;
                Err(e)
            }
        }
    }

    /// One failed login, or a wrong session id (`Act`'s stand-in for a login): counted under
    /// `reason`, logged without the secret, and slowing the next attempts. `refusal` is the answer
    /// unless the address was already backing off.
    pub(super) fn login_failed(
        &self,
        agent: &str,
        peer: Option<IpAddr>,
        reason: &'static str,
        refusal: Status,
    ) -> Status {
        let (agent_key, peer_key) = throttle_keys(agent, peer);
        let peer_blocked = self.throttle.blocked(&peer_key);
        let a = self.throttle.failure(&agent_key);
        let p = self.throttle.failure(&peer_key);
        warn!(
            message = "Desktop login refused.",
            agent,
            peer = peer_key.trim_start_matches("ip:"),
            reason,
            backoff_secs = a.max(p).map(|d| d.as_secs())
        );
        if let Some(wait) = peer_blocked {
            return too_many_failures(wait);
        }
        metrics::counter!("switchboard_login_failures_total", "reason" => reason).increment(1);
        refusal
    }

    /// What the desktop starts from: the agent's state, its offers and its interactions.
    async fn snapshot(&self, agent: &str, session: &str) -> Result<pb::LoggedIn, Status> {
        let st = self.engine.agent_status(agent).await.map_err(status)?;
        let work = self.engine.agent_work(agent).await.map_err(status)?;
        let (offers, held): (Vec<_>, Vec<_>) = work.into_iter().partition(|ix| ix.state == InteractionState::Offered);
        let mut offer_events = Vec::new();
        for ix in &offers {
            let pop = self.pop(ix, false).await;
            offer_events.push(offer_to_pb(ix, &pop));
        }
        Ok(pb::LoggedIn {
            agent: Some(crate::api::agent_state_to_pb(&st)),
            offers: offer_events,
            interactions: held.iter().map(interaction_to_pb).collect(),
            session_id: session.to_string(),
        })
    }
}
