//! Admin: agents and queues at runtime.

use tonic::{Request, Response, Status};

use super::pb;
use super::{agent_spec_from_pb, agent_spec_to_pb, queue_spec_from_pb, queue_spec_to_pb, status};
use crate::model;
use switchboard_engine::Engine;

#[derive(Clone)]
pub struct AdminService {
    pub engine: Engine,
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn put_agent(&self, request: Request<pb::PutAgentRequest>) -> Result<Response<pb::Agent>, Status> {
        let r = request.into_inner();
        let spec = agent_spec_from_pb(r.agent.ok_or_else(|| Status::invalid_argument("agent: is required"))?)?;
        self.engine.put_agent(&spec, r.allow_update).await.map_err(status)?;
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
        let id = request.into_inner().agent_id;
        model::validate_id("agent_id", &id).map_err(super::invalid)?;
        self.engine.delete_agent(&id).await.map_err(status)?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn put_queue(&self, request: Request<pb::PutQueueRequest>) -> Result<Response<pb::Queue>, Status> {
        let r = request.into_inner();
        let spec = queue_spec_from_pb(r.queue.ok_or_else(|| Status::invalid_argument("queue: is required"))?)?;
        self.engine.put_queue(&spec, r.allow_update).await.map_err(status)?;
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
        let name = request.into_inner().name;
        model::validate_id("name", &name).map_err(super::invalid)?;
        self.engine.delete_queue(&name).await.map_err(status)?;
        Ok(Response::new(pb::DeleteResponse {}))
    }
}
