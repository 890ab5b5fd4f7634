//! Interactions: how channel adapters and integrations enqueue work.

use tonic::{Request, Response, Status};

use super::access::{acting, caller, check_interaction};
use super::pb;
use super::{channel_from_pb, interaction_to_pb, message_to_pb, status};
use crate::model::{self, NewInteraction};
use switchboard_engine::{Engine, IfRefused};

#[derive(Clone)]
pub struct InteractionsService {
    pub engine: Engine,
}

fn iid(v: &str) -> Result<&str, Status> {
    model::validate_id("interaction_id", v).map_err(super::invalid)?;
    Ok(v)
}

#[tonic::async_trait]
impl pb::interactions_server::Interactions for InteractionsService {
    async fn create_interaction(
        &self,
        request: Request<pb::CreateInteractionRequest>,
    ) -> Result<Response<pb::Interaction>, Status> {
        let r = request.into_inner();
        let new = NewInteraction {
            idempotency_key: r.idempotency_key,
            channel: Some(channel_from_pb("channel", r.channel)?),
            customer_address: r.customer_address,
            subject: r.subject,
            attributes: r.attributes.into_iter().collect(),
            queue: r.queue,
            priority: r.priority,
            body: r.body,
            preferred_agent_id: r.preferred_agent_id,
            preferred_agent_wait_secs: r.preferred_agent_wait_secs,
            ..NewInteraction::default()
        };
        // A closed queue refusing the channel fails the call, unless the adapter holds it anyway:
        // the adapter answers the customer itself (Supervisor.ListOpenings says when it opens).
        let if_refused = if r.hold_when_closed { IfRefused::Hold } else { IfRefused::Fail };
        // Validated by the engine, which every channel's writes go through too.
        let (ix, created) = self.engine.create_interaction_if_refused(&new, if_refused).await.map_err(status)?;
        if created {
            metrics::counter!("switchboard_interactions_created_total", "channel" => ix.channel.as_str()).increment(1);
        }
        Ok(Response::new(interaction_to_pb(&ix)))
    }

    async fn append_message(
        &self,
        request: Request<pb::AppendMessageRequest>,
    ) -> Result<Response<pb::Message>, Status> {
        let r = request.into_inner();
        let id = iid(&r.interaction_id)?;
        let m = if r.idempotency_key.is_empty() {
            self.engine.append_customer_message(id, &r.body).await
        } else {
            model::validate_len("idempotency_key", &r.idempotency_key, 200).map_err(super::invalid)?;
            // Scoped to the interaction, so keys of different interactions never collide.
            self.engine
                .append_customer_message_once(id, &r.body, &format!("msg|{id}|{}", r.idempotency_key))
                .await
                .map(|(m, _)| m)
        }
        .map_err(status)?;
        Ok(Response::new(message_to_pb(&m)))
    }

    async fn withdraw_interaction(
        &self,
        request: Request<pb::WithdrawInteractionRequest>,
    ) -> Result<Response<pb::Interaction>, Status> {
        let (engine, _) = acting(&self.engine, &request)?;
        let r = request.into_inner();
        let ix = engine.withdraw(iid(&r.interaction_id)?, &r.reason).await.map_err(status)?;
        Ok(Response::new(interaction_to_pb(&ix)))
    }

    async fn get_interaction(
        &self,
        request: Request<pb::GetInteractionRequest>,
    ) -> Result<Response<pb::Interaction>, Status> {
        let p = caller(&request)?;
        let r = request.into_inner();
        let mut ix = self.engine.get_interaction(iid(&r.interaction_id)?, r.include_messages).await.map_err(status)?;
        check_interaction(&p, &ix)?;
        self.engine.with_exclusions(std::slice::from_mut(&mut ix)).await.map_err(status)?;
        Ok(Response::new(interaction_to_pb(&ix)))
    }
}
