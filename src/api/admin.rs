//! Admin: agents, queues, calendars and API keys at runtime. Every change is recorded under the caller.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::access::{acting, caller};
use super::calendars::{calendar_from_pb, calendar_to_pb};
use super::pb;
use super::{agent_spec_from_pb, agent_spec_to_pb, queue_spec_from_pb, queue_spec_to_pb, status};
use crate::crm::erasure::Eraser;
use crate::model::{self, Actor, ApiKeyRecord, Role};
use switchboard_auth::Authenticator;
use switchboard_engine::Engine;

#[derive(Clone)]
pub struct AdminService {
    pub engine: Engine,
    /// Told when a key is revoked here, so this instance stops accepting it at once.
    pub auth: Arc<Authenticator>,
    /// None without a CRM store.
    pub eraser: Option<Arc<Eraser>>,
}

fn key_to_pb(k: &ApiKeyRecord) -> pb::ApiKey {
    pb::ApiKey {
        id: k.id.clone(),
        name: k.name.clone(),
        role: k.role.to_string(),
        queues: k.queues.clone(),
        agent_id: k.agent_id.clone(),
        created_at: Some(super::ts(k.created_ms)),
        created_by: k.created_by.clone(),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn put_agent(&self, request: Request<pb::PutAgentRequest>) -> Result<Response<pb::Agent>, Status> {
        let (engine, _) = acting(&self.engine, &request)?;
        let r = request.into_inner();
        let spec = agent_spec_from_pb(r.agent.ok_or_else(|| Status::invalid_argument("agent: is required"))?)?;
        engine.put_agent(&spec, r.allow_update).await.map_err(super::in_field("agent"))?;
        let stored = self.engine.get_agent(&spec.id).await.map_err(status)?;
        Ok(Response::new(agent_spec_to_pb(&stored)))
    }

    async fn get_agent(&self, request: Request<pb::GetAgentRequest>) -> Result<Response<pb::Agent>, Status> {
        let id = request.into_inner().agent_id;
        model::validate_id("agent_id", &id).map_err(super::invalid)?;
        let a = self.engine.get_agent(&id).await.map_err(status)?;
        Ok(Response::new(agent_spec_to_pb(&a)))
    }

    async fn list_agents(
        &self,
        _request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let agents = self.engine.list_agents().await.map_err(status)?;
        Ok(Response::new(pb::ListAgentsResponse { agents: agents.iter().map(agent_spec_to_pb).collect() }))
    }

    async fn delete_agent(
        &self,
        request: Request<pb::DeleteAgentRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let (engine, _) = acting(&self.engine, &request)?;
        let id = request.into_inner().agent_id;
        model::validate_id("agent_id", &id).map_err(super::invalid)?;
        engine.delete_agent(&id).await.map_err(status)?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn put_queue(&self, request: Request<pb::PutQueueRequest>) -> Result<Response<pb::Queue>, Status> {
        let (engine, _) = acting(&self.engine, &request)?;
        let r = request.into_inner();
        let spec = queue_spec_from_pb(r.queue.ok_or_else(|| Status::invalid_argument("queue: is required"))?)?;
        engine.put_queue(&spec, r.allow_update).await.map_err(super::in_field_or_missing("queue"))?;
        let stored = self.engine.get_queue(&spec.name).await.map_err(status)?;
        Ok(Response::new(queue_spec_to_pb(&stored)))
    }

    async fn get_queue(&self, request: Request<pb::GetQueueRequest>) -> Result<Response<pb::Queue>, Status> {
        let name = request.into_inner().name;
        model::validate_id("name", &name).map_err(super::invalid)?;
        let q = self.engine.get_queue(&name).await.map_err(status)?;
        Ok(Response::new(queue_spec_to_pb(&q)))
    }

    async fn list_queues(
        &self,
        _request: Request<pb::ListQueuesRequest>,
    ) -> Result<Response<pb::ListQueuesResponse>, Status> {
        let queues = self.engine.list_queues().await.map_err(status)?;
        Ok(Response::new(pb::ListQueuesResponse { queues: queues.iter().map(queue_spec_to_pb).collect() }))
    }

    async fn delete_queue(
        &self,
        request: Request<pb::DeleteQueueRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let (engine, _) = acting(&self.engine, &request)?;
        let name = request.into_inner().name;
        model::validate_id("name", &name).map_err(super::invalid)?;
        engine.delete_queue(&name).await.map_err(status)?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn put_calendar(&self, request: Request<pb::PutCalendarRequest>) -> Result<Response<pb::Calendar>, Status> {
        let (engine, _) = acting(&self.engine, &request)?;
        let r = request.into_inner();
        let spec = calendar_from_pb(r.calendar.ok_or_else(|| Status::invalid_argument("calendar: is required"))?);
        engine.put_calendar(&spec, r.allow_update).await.map_err(super::in_field("calendar"))?;
        let stored = self.engine.get_calendar(&spec.name).await.map_err(status)?;
        Ok(Response::new(calendar_to_pb(&stored)))
    }

    async fn get_calendar(&self, request: Request<pb::GetCalendarRequest>) -> Result<Response<pb::Calendar>, Status> {
        let name = request.into_inner().name;
        model::validate_id("name", &name).map_err(super::invalid)?;
        let c = self.engine.get_calendar(&name).await.map_err(status)?;
        Ok(Response::new(calendar_to_pb(&c)))
    }

    async fn list_calendars(
        &self,
        _request: Request<pb::ListCalendarsRequest>,
    ) -> Result<Response<pb::ListCalendarsResponse>, Status> {
        let calendars = self.engine.list_calendars().await.map_err(status)?;
        Ok(Response::new(pb::ListCalendarsResponse { calendars: calendars.iter().map(calendar_to_pb).collect() }))
    }

    async fn delete_calendar(
        &self,
        request: Request<pb::DeleteCalendarRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let (engine, _) = acting(&self.engine, &request)?;
        let name = request.into_inner().name;
        model::validate_id("name", &name).map_err(super::invalid)?;
        engine.delete_calendar(&name).await.map_err(status)?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let (engine, p) = acting(&self.engine, &request)?;
        let r = request.into_inner();
        let role: Role = r.role.parse().map_err(super::invalid)?;
        model::access::validate_key_spec(&r.name, role, &r.queues, &r.agent_id).map_err(super::invalid)?;
        let now = engine.now_ms().await.map_err(status)?;
        let key = switchboard_auth::key::generate(&r.name, role, r.queues, &r.agent_id, now, &p.actor());
        engine.put_api_key(&key.record).await.map_err(status)?;
        tracing::info!(message = "API key created.", id = %key.record.id, name = %key.record.name, role = %role, by = %p.actor());
        Ok(Response::new(pb::CreateApiKeyResponse { key: Some(key_to_pb(&key.record)), secret: key.secret }))
    }

    async fn list_api_keys(
        &self,
        _request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let keys = self.engine.list_api_keys().await.map_err(status)?;
        Ok(Response::new(pb::ListApiKeysResponse { keys: keys.iter().map(key_to_pb).collect() }))
    }

    async fn revoke_api_key(&self, request: Request<pb::RevokeApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let (engine, p) = acting(&self.engine, &request)?;
        let id = request.into_inner().id;
        model::validate_id("id", &id).map_err(super::invalid)?;
        let record = engine.revoke_api_key(&id).await.map_err(status)?;
        self.auth.forget_cached();
        tracing::info!(message = "API key revoked.", id = %record.id, name = %record.name, by = %p.actor());
        Ok(Response::new(key_to_pb(&record)))
    }

    async fn erase_contact(
        &self,
        request: Request<pb::EraseContactRequest>,
    ) -> Result<Response<pb::EraseContactResponse>, Status> {
        let by = Actor::new(&caller(&request)?, switchboard_auth::peer_ip(request.extensions()));
        let id = request.into_inner().contact_id;
        model::validate_line("contact_id", &id, 128).map_err(super::invalid)?;
        if id.is_empty() {
            return Err(Status::invalid_argument("contact_id: is required"));
        }
        let eraser = self.eraser.as_ref().ok_or_else(|| {
            Status::failed_precondition("no CRM store is configured (crm.endpoint): nothing to erase")
        })?;
        let e = eraser.erase(&id, &by).await?;
        tracing::info!(
            message = "Contact erased.",
            contact = %id,
            by = %by.who,
            interactions = e.interactions,
            copies_erased = e.copies_erased,
            ended = e.ended
        );
        Ok(Response::new(pb::EraseContactResponse {
            interactions: e.interactions,
            messages_erased: e.messages_erased,
            copies_erased: e.copies_erased,
            ended: e.ended,
        }))
    }
}
