//! AgentDesktop: one session per logged-in desktop. A native desktop holds it on the
//! bidirectional `Session` stream; a browser, which cannot send on a stream, opens it with `Open`
//! (events only) and sends each request with `Act`. Both log in the same way (`login.rs`), stream
//! through the same loop (`stream.rs`) and run requests through the same handler (`requests.rs`).

mod act;
mod login;
mod requests;
mod stream;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};

use super::access::{caller, check_interaction};
use super::pb::{self, agent_event::Kind as Ev, agent_request::Kind as Rq};
use crate::channels::Channels;
use crate::crm::screen_pop::{ScreenPopData, ScreenPopper};
use crate::hub::Hub;
use crate::model::{self, Principal};
use switchboard_auth::Throttle;

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AgentEvent, Status>> + Send>>;

/// How long a new stream may take to log in before it is closed.
const LOGIN_WITHIN: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct AgentDesktopService {
    pub engine: switchboard_engine::Engine,
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
    /// Callbacks agents schedule for their customers.
    pub voice: Arc<crate::channels::voice::Voice>,
}

/// Streams that may wait for their login at once on one instance.
pub const MAX_PENDING_LOGINS: usize = 1000;

#[tonic::async_trait]
impl pb::agent_desktop_server::AgentDesktop for AgentDesktopService {
    type SessionStream = EventStream;
    type OpenStream = EventStream;

    async fn get_screen_pop(
        &self,
        request: Request<pb::GetScreenPopRequest>,
    ) -> Result<Response<pb::ScreenPop>, Status> {
        let p = caller(&request)?;
        let iid = request.into_inner().interaction_id;
        model::validate_id("interaction_id", &iid).map_err(super::invalid)?;
        let ix = self.engine.get_interaction(&iid, false).await.map_err(super::status)?;
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
        let _pending = self.pending_login()?;
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
        let opened = self.log_in(authenticated, peer, login).await?;
        let ack = event(Ev::Ack(pb::Ack { request_id: first.request_id, ..Default::default() }));
        Ok(Response::new(self.stream(opened, Some(ack), inbound, lapse).await))
    }

    async fn open(&self, request: Request<pb::Login>) -> Result<Response<Self::OpenStream>, Status> {
        let authenticated = request.extensions().get::<Principal>().cloned();
        let lapse = switchboard_auth::lapsed(&request);
        let peer = switchboard_auth::peer_ip(request.extensions());
        let _pending = self.pending_login()?;
        let opened = self.log_in(authenticated, peer, request.into_inner()).await?;
        // The requests come by `Act`, so the stream has none to read.
        Ok(Response::new(self.stream(opened, None, futures::stream::pending(), lapse).await))
    }

    async fn act(&self, request: Request<pb::ActRequest>) -> Result<Response<pb::Ack>, Status> {
        self.act_in_session(request).await.map(Response::new)
    }
}

fn event(kind: Ev) -> pb::AgentEvent {
    pb::AgentEvent { kind: Some(kind) }
}

impl AgentDesktopService {
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
}
