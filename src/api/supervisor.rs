//! Supervisor: live figures and interventions. A supervisor limited to some queues sees and
//! changes only those, and the agents who serve them; every intervention is recorded under the caller.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::warn;

use super::access::{acting, agents_in_scope, caller, check_agent, check_interaction_id, check_queue};
use super::pb::{self, supervisor_event::Kind as Ev};
use super::{agent_state_to_pb, figures_to_pb, interaction_to_pb, status};
use crate::model;
use crate::model::EventKind;
use switchboard_engine::{Engine, EngineError};
use tokio::sync::broadcast::error::RecvError;

/// Queue figures are pushed at most this often per queue.
const FIGURES_MIN_INTERVAL: Duration = Duration::from_secs(1);

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::SupervisorEvent, Status>> + Send>>;

#[derive(Clone)]
pub struct SupervisorService {
    pub engine: Engine,
    pub shutdown: CancellationToken,
    /// The instance's one tail of the event log, and the cap on watches.
    pub feed: super::feed::EventFeed,
}

fn iid(v: &str) -> Result<&str, Status> {
    model::validate_id("interaction_id", v).map_err(super::invalid)?;
    Ok(v)
}

fn aid(v: &str) -> Result<&str, Status> {
    model::validate_id("agent_id", v).map_err(super::invalid)?;
    Ok(v)
}

#[tonic::async_trait]
impl pb::supervisor_server::Supervisor for SupervisorService {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let p = caller(&request)?;
        let lapse = switchboard_auth::lapsed(&request);
        let r = request.into_inner();
        for (i, q) in r.queues.iter().enumerate() {
            model::validate_id(&format!("queues[{i}]"), q).map_err(super::invalid)?;
            check_queue(&p, q)?;
            self.engine.get_queue(q).await.map_err(status)?;
        }
        // A scoped supervisor asking for "all" gets all of its own.
        let queues: HashSet<String> = if r.queues.is_empty() && p.is_scoped() {
            p.queues.iter().cloned().collect()
        } else {
            r.queues.into_iter().collect()
        };
        let agents = if r.include_agents { agents_in_scope(&self.engine, &p).await? } else { None };
        let subscription = self.feed.subscribe().await?;
        let (tx, rx) = mpsc::channel(1024);
        let watcher = Watcher {
            subscription,
            engine: self.engine.clone(),
            all_queues: queues.is_empty(),
            queues,
            include_agents: r.include_agents,
            agents,
            tx,
        };
        let shutdown = self.shutdown.clone();
        let closer = watcher.tx.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = watcher.run(shutdown) => if let Err(e) = r {
                    warn!(message = "Supervisor watch ended with an error.", error = %e);
                    // Said to the client, not ended as if all were well: it reconnects.
                    drop(closer.send(Err(status(e))).await);
                },
                () = lapse.wait() => drop(closer.send(Err(super::lapsed_status())).await),
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn get_queue_figures(
        &self,
        request: Request<pb::GetQueueFiguresRequest>,
    ) -> Result<Response<pb::QueueFigures>, Status> {
        let p = caller(&request)?;
        let q = request.into_inner().queue;
        model::validate_id("queue", &q).map_err(super::invalid)?;
        check_queue(&p, &q)?;
        let f = self.engine.queue_figures(&q).await.map_err(status)?;
        Ok(Response::new(figures_to_pb(&f)))
    }

    async fn list_agent_states(
        &self,
        request: Request<pb::ListAgentStatesRequest>,
    ) -> Result<Response<pb::ListAgentStatesResponse>, Status> {
        let p = caller(&request)?;
        let scope = agents_in_scope(&self.engine, &p).await?;
        let mut agents = self.engine.list_agent_statuses().await.map_err(status)?;
        if let Some(ids) = scope {
            agents.retain(|a| ids.contains(&a.id));
        }
        Ok(Response::new(pb::ListAgentStatesResponse { agents: agents.iter().map(agent_state_to_pb).collect() }))
    }

    async fn force_presence(
        &self,
        request: Request<pb::ForcePresenceRequest>,
    ) -> Result<Response<pb::AgentState>, Status> {
        let (engine, p) = acting(&self.engine, &request)?;
        let r = request.into_inner();
        let id = aid(&r.agent_id)?;
        let presence = super::presence_from_pb("presence", r.presence.as_ref())?;
        check_agent(&self.engine, &p, id).await?;
        engine.set_presence(id, &presence, "supervisor").await.map_err(status)?;
        let st = self.engine.agent_status(id).await.map_err(status)?;
        Ok(Response::new(agent_state_to_pb(&st)))
    }

    async fn logout_agent(&self, request: Request<pb::LogoutAgentRequest>) -> Result<Response<pb::AgentState>, Status> {
        let (engine, p) = acting(&self.engine, &request)?;
        let r = request.into_inner();
        let id = aid(&r.agent_id)?;
        check_agent(&self.engine, &p, id).await?;
        engine.logout(id).await.map_err(status)?;
        let st = self.engine.agent_status(id).await.map_err(status)?;
        Ok(Response::new(agent_state_to_pb(&st)))
    }

    async fn move_interaction(
        &self,
        request: Request<pb::MoveInteractionRequest>,
    ) -> Result<Response<pb::Interaction>, Status> {
        let (engine, p) = acting(&self.engine, &request)?;
        let r = request.into_inner();
        let id = iid(&r.interaction_id)?;
        check_interaction_id(&self.engine, &p, id).await?;
        if !r.queue.is_empty() {
            check_queue(&p, &r.queue)?;
        }
        let ix = engine.move_interaction(id, &r.queue, r.clear_exclusions).await.map_err(status)?;
        Ok(Response::new(interaction_to_pb(&ix)))
    }

    async fn reprioritize_interaction(
        &self,
        request: Request<pb::ReprioritizeInteractionRequest>,
    ) -> Result<Response<pb::Interaction>, Status> {
        let (engine, p) = acting(&self.engine, &request)?;
        let r = request.into_inner();
        let id = iid(&r.interaction_id)?;
        check_interaction_id(&self.engine, &p, id).await?;
        let ix = engine.reprioritize(id, r.priority).await.map_err(status)?;
        Ok(Response::new(interaction_to_pb(&ix)))
    }

    async fn withdraw_interaction(
        &self,
        request: Request<pb::SupervisorWithdrawRequest>,
    ) -> Result<Response<pb::Interaction>, Status> {
        let (engine, p) = acting(&self.engine, &request)?;
        let r = request.into_inner();
        let reason = if r.reason.is_empty() { "supervisor".to_string() } else { r.reason };
        let id = iid(&r.interaction_id)?;
        check_interaction_id(&self.engine, &p, id).await?;
        let ix = engine.withdraw(id, &reason).await.map_err(status)?;
        Ok(Response::new(interaction_to_pb(&ix)))
    }

    async fn explain_interaction(
        &self,
        request: Request<pb::ExplainInteractionRequest>,
    ) -> Result<Response<pb::InteractionExplanation>, Status> {
        let p = caller(&request)?;
        let id = iid(&request.get_ref().interaction_id)?.to_string();
        check_interaction_id(&self.engine, &p, &id).await?;
        let e = self.engine.explain_interaction(&id).await.map_err(status)?;
        Ok(Response::new(super::explain::interaction_explanation_to_pb(&e)))
    }

    async fn explain_agent(
        &self,
        request: Request<pb::ExplainAgentRequest>,
    ) -> Result<Response<pb::AgentExplanation>, Status> {
        let p = caller(&request)?;
        let id = aid(&request.get_ref().agent_id)?.to_string();
        check_agent(&self.engine, &p, &id).await?;
        let e = self.engine.explain_agent(&id).await.map_err(status)?;
        let queues: Option<HashSet<String>> = p.is_scoped().then(|| p.queues.iter().cloned().collect());
        Ok(Response::new(super::explain::agent_explanation_to_pb(&e, queues.as_ref())))
    }

    async fn list_waiting(
        &self,
        request: Request<pb::ListWaitingRequest>,
    ) -> Result<Response<pb::ListWaitingResponse>, Status> {
        let p = caller(&request)?;
        let r = request.into_inner();
        let queue = if r.queue.is_empty() {
            None
        } else {
            model::validate_id("queue", &r.queue).map_err(super::invalid)?;
            check_queue(&p, &r.queue)?;
            Some(r.queue.as_str())
        };
        let limit = if r.limit == 0 { 100 } else { r.limit.min(1000) } as usize;
        let mut list = match (queue, p.is_scoped()) {
            (None, true) => {
                // Best first across this supervisor's queues.
                let mut all = Vec::new();
                for q in &p.queues {
                    match self.engine.list_waiting(Some(q), limit).await {
                        Ok(l) => all.extend(l),
                        Err(switchboard_engine::EngineError::NotFound(_)) => {}
                        Err(e) => return Err(status(e)),
                    }
                }
                all.sort_by(|a, b| {
                    crate::routing::wait_score(a.priority, a.enqueued_ms)
                        .total_cmp(&crate::routing::wait_score(b.priority, b.enqueued_ms))
                });
                all
            }
            _ => self.engine.list_waiting(queue, limit).await.map_err(status)?,
        };
        list.truncate(limit);
        Ok(Response::new(pb::ListWaitingResponse { interactions: list.iter().map(interaction_to_pb).collect() }))
    }

    async fn list_openings(
        &self,
        request: Request<pb::ListOpeningsRequest>,
    ) -> Result<Response<pb::ListOpeningsResponse>, Status> {
        let p = caller(&request)?;
        Ok(Response::new(super::calendars::list_openings(&self.engine, &p, request.into_inner()).await?))
    }
}

struct Watcher {
    subscription: super::feed::Subscription,
    engine: Engine,
    all_queues: bool,
    queues: HashSet<String>,
    include_agents: bool,
    /// The agents a scoped supervisor may see; `None`: all.
    agents: Option<HashSet<String>>,
    tx: mpsc::Sender<Result<pb::SupervisorEvent, Status>>,
}

fn sev(kind: Ev) -> Result<pb::SupervisorEvent, Status> {
    Ok(pb::SupervisorEvent { kind: Some(kind) })
}

impl Watcher {
    /// Snapshot, then follow the event stream: changed agents at once, changed queues at most
    /// once a second each.
    async fn run(mut self, shutdown: CancellationToken) -> Result<(), EngineError> {
        if self.all_queues {
            self.queues = self.engine.list_queue_names().await?.into_iter().collect();
        }
        let mut dirty_q: HashSet<String> = self.queues.clone();
        let mut dirty_a: HashSet<String> = HashSet::new();
        if self.include_agents {
            let mut all = self.engine.list_agent_statuses().await?;
            if let Some(ids) = &self.agents {
                all.retain(|a| ids.contains(&a.id));
            }
            for a in all {
                if self.tx.send(sev(Ev::Agent(agent_state_to_pb(&a)))).await.is_err() {
                    return Ok(());
                }
            }
        }
        let mut sent_at: HashMap<String, Instant> = HashMap::new();
        // When a queue's calendar opens or closes: its figures say so then, with no event to tell.
        let mut changes: HashMap<String, Instant> = HashMap::new();
        loop {
            if !self.flush_queues(&mut dirty_q, &mut sent_at, &mut changes).await? {
                return Ok(());
            }
            if !dirty_a.is_empty() {
                let ids: Vec<String> = dirty_a.drain().collect();
                for a in self.engine.agent_statuses(&ids).await? {
                    if self.tx.send(sev(Ev::Agent(agent_state_to_pb(&a)))).await.is_err() {
                        return Ok(());
                    }
                }
            }
            let next_change = changes.values().min().copied();
            let events = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.tx.closed() => return Ok(()),
                () = tokio::time::sleep_until(next_change.unwrap_or_else(Instant::now).into()), if next_change.is_some() => {
                    let now = Instant::now();
                    changes.retain(|q, at| {
                        let due = *at <= now;
                        if due {
                            dirty_q.insert(q.clone());
                        }
                        !due
                    });
                    continue;
                }
                // Figures held back by their once-a-second limit go out when it allows.
                _ = tokio::time::sleep(Duration::from_millis(250)), if !dirty_q.is_empty() => continue,
                // The log cannot be read (Redis down): say so rather than go quiet.
                Ok(()) = self.subscription.positioned.changed() => {
                    if !*self.subscription.positioned.borrow_and_update() {
                        return Err(EngineError::unreachable("the event log cannot be read"));
                    }
                    continue;
                }
                r = self.subscription.events.recv() => match r {
                    Ok(batch) if !batch.is_empty() => batch,
                    // Fell behind, or the feed reopened the log: refresh everything shown.
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        if self.all_queues {
                            self.queues = self.engine.list_queue_names().await?.into_iter().collect();
                        }
                        dirty_q.extend(self.queues.iter().cloned());
                        if self.include_agents {
                            let mut all: Vec<String> =
                                self.engine.list_agent_statuses().await?.into_iter().map(|a| a.id).collect();
                            if let Some(ids) = &self.agents {
                                all.retain(|a| ids.contains(a));
                            }
                            dirty_a.extend(all);
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
            };
            for e in events.iter().cloned() {
                let kind = e.kind();
                let (queue, agent) = (e.queue, e.agent_id);
                if kind == Some(EventKind::QueueCreated) && self.all_queues {
                    self.queues.insert(queue.clone());
                }
                if kind == Some(EventKind::QueueDeleted) {
                    self.queues.remove(&queue);
                    dirty_q.remove(&queue);
                    changes.remove(&queue);
                    continue;
                }
                // New hours may open or close any queue that keeps the calendar.
                if matches!(kind, Some(EventKind::CalendarCreated | EventKind::CalendarUpdated)) {
                    dirty_q.extend(self.queues.iter().cloned());
                }
                if !queue.is_empty() && self.queues.contains(&queue) {
                    dirty_q.insert(queue);
                }
                if !agent.is_empty() {
                    if self.include_agents && self.agents.as_ref().is_none_or(|ids| ids.contains(&agent)) {
                        dirty_a.insert(agent);
                    }
                    // Presence shifts every queue's agent counts and occupancy.
                    if matches!(
                        kind,
                        Some(
                            EventKind::Presence | EventKind::Login | EventKind::Disconnected | EventKind::AgentUpdated
                        )
                    ) {
                        dirty_q.extend(self.queues.iter().cloned());
                    }
                }
            }
        }
    }

    async fn flush_queues(
        &self,
        dirty: &mut HashSet<String>,
        sent_at: &mut HashMap<String, Instant>,
        changes: &mut HashMap<String, Instant>,
    ) -> Result<bool, EngineError> {
        let now = Instant::now();
        let due: Vec<String> = dirty
            .iter()
            .filter(|q| sent_at.get(*q).is_none_or(|t| now.duration_since(*t) >= FIGURES_MIN_INTERVAL))
            .cloned()
            .collect();
        for q in due {
            dirty.remove(&q);
            match self.engine.queue_figures(&q).await {
                Ok(f) => {
                    match f.next_change_ms {
                        Some(at) => changes.insert(q.clone(), now + Duration::from_millis(at.saturating_sub(f.at_ms))),
                        None => changes.remove(&q),
                    };
                    sent_at.insert(q, now);
                    if self.tx.send(sev(Ev::Queue(figures_to_pb(&f)))).await.is_err() {
                        return Ok(false);
                    }
                }
                Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}
