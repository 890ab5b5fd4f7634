//! The checks that depend on data, after the policy table let a role through: a supervisor
//! limited to some queues sees and changes only those (and the agents who serve them); an
//! agent sees only its own interactions. Also the [`Actor`] every change is recorded under.

use std::collections::HashSet;

use tonic::{Request, Status};

use crate::model::{Actor, Interaction, Principal, Role, routing};
use switchboard_engine::Engine;

use super::status;

/// The caller the trust boundary put on the request.
pub fn caller<T>(req: &Request<T>) -> Result<Principal, Status> {
    switchboard_auth::principal(req).cloned()
}

/// The engine acting for the request's caller: what it changes is logged under their name and address.
pub fn acting<T>(engine: &Engine, req: &Request<T>) -> Result<(Engine, Principal), Status> {
    let p = caller(req)?;
    let from = switchboard_auth::peer_ip(req.extensions());
    Ok((engine.acting_as(Actor::new(&p, from)), p))
}

pub fn denied_queue(queue: &str) -> Status {
    Status::permission_denied(format!("queue {queue:?} is outside the queues this caller may supervise"))
}

pub fn check_queue(p: &Principal, queue: &str) -> Result<(), Status> {
    if p.covers_queue(queue) { Ok(()) } else { Err(denied_queue(queue)) }
}

/// Whether `p` may see or change this interaction.
pub fn check_interaction(p: &Principal, ix: &Interaction) -> Result<(), Status> {
    match p.role {
        Role::Agent if ix.agent_id != p.agent_id || p.agent_id.is_empty() => {
            Err(Status::permission_denied("this interaction is not offered to or handled by this agent"))
        }
        Role::Supervisor => check_queue(p, &ix.queue),
        _ => Ok(()),
    }
}

/// Whether a supervisor may change interaction `iid`: only one limited to queues needs it read
/// (everyone else the table let through may act on any interaction).
pub async fn check_interaction_id(engine: &Engine, p: &Principal, iid: &str) -> Result<(), Status> {
    if !p.is_scoped() {
        return Ok(());
    }
    check_interaction(p, &engine.get_interaction(iid, false).await.map_err(status)?)
}

/// The agents a scoped supervisor may see and act on (those eligible for one of its queues);
/// `None` for everyone.
pub async fn agents_in_scope(engine: &Engine, p: &Principal) -> Result<Option<HashSet<String>>, Status> {
    if !p.is_scoped() {
        return Ok(None);
    }
    let agents = engine.list_agents().await.map_err(status)?;
    let queues = engine.list_queues().await.map_err(status)?;
    let mut ids = HashSet::new();
    for q in queues.iter().filter(|q| p.covers_queue(&q.name)) {
        ids.extend(routing::queue_members(q, &agents).into_iter().map(|(id, _, _)| id));
    }
    Ok(Some(ids))
}

pub async fn check_agent(engine: &Engine, p: &Principal, agent_id: &str) -> Result<(), Status> {
    match agents_in_scope(engine, p).await? {
        Some(ids) if !ids.contains(agent_id) => Err(Status::permission_denied(format!(
            "agent {agent_id:?} serves none of the queues this caller may supervise"
        ))),
        _ => Ok(()),
    }
}
