//! Delivers the event log to the CRM: at least once, in order, trimmed only once acknowledged.
//!
//! One instance delivers at a time (a lease in Redis), reading the `events` stream through a
//! consumer group; a successor claims what a dead deliverer left unacknowledged, and the CRM's
//! idempotency by event id makes the redelivery harmless — effectively exactly once, in order.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{CrmClient, channel_to_pb, pb, ts};
use crate::model::{Channel, EventKind};
use switchboard_engine::{Engine, LoggedEvent};

const BATCH: usize = 500;
const LEASE_TTL: Duration = Duration::from_secs(10);
const LEASE_RENEW: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The CRM event for a log entry. Event ids carry the routing domain, so one CRM can serve many.
pub fn to_crm_event(key_root: &str, e: &LoggedEvent) -> pb::Event {
    let details: serde_json::Value = serde_json::from_str(&e.details).unwrap_or_else(|_| serde_json::json!({}));
    let (channel, customer) = if e.kind() == Some(EventKind::Created) {
        let ch = details.get("channel").and_then(|v| v.as_str()).and_then(Channel::parse);
        let cust = details.get("customer").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        (ch.map(channel_to_pb).unwrap_or_default() as i32, cust)
    } else {
        (0, String::new())
    };
    pb::Event {
        id: format!("{key_root}{}", e.id),
        interaction_id: e.interaction_id.clone(),
        r#type: e.typ.clone(),
        at: ts(e.at_ms as i64),
        agent_id: e.agent_id.clone(),
        queue: e.queue.clone(),
        channel,
        customer_address: customer,
        // An empty object rather than the empty string a missing field would give.
        details_json: if e.details.is_empty() { "{}".into() } else { e.details.clone() },
        actor: e.by.clone(),
        actor_address: e.from.clone(),
    }
}

/// The customer an event changes the history of, if it says.
fn customer_of(e: &LoggedEvent) -> Option<(Channel, String)> {
    if !e.kind().is_some_and(EventKind::changes_history) {
        return None;
    }
    let d: serde_json::Value = serde_json::from_str(&e.details).ok()?;
    let ch = Channel::parse(d.get("channel")?.as_str()?)?;
    Some((ch, d.get("customer")?.as_str()?.to_string()))
}

/// One `LogEvents` call, abandoned after `deadline` (a frozen CRM answers nothing, ever).
async fn log_events(
    crm: &mut CrmClient,
    events: Vec<pb::Event>,
    deadline: Duration,
) -> Result<tonic::Response<pb::LogEventsResponse>, tonic::Status> {
    let mut req = tonic::Request::new(pb::LogEventsRequest { events });
    req.set_timeout(deadline);
    match tokio::time::timeout(deadline, crm.log_events(req)).await {
        Ok(r) => r,
        Err(_) => Err(tonic::Status::deadline_exceeded(format!("the CRM did not answer within {deadline:?}"))),
    }
}

/// Waits `backoff` (or until cancelled: false) and doubles it for next time.
async fn pause(backoff: &mut Duration, cancel: &CancellationToken) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

pub async fn run(engine: Engine, mut crm: CrmClient, instance: String, deadline: Duration, cancel: CancellationToken) {
    if let Err(error) = engine.outbox_init().await {
        warn!(message = "Could not create the event-log consumer group.", %error);
    }
    let key_root = engine.keys().root().to_string();
    let mut con = None;
    let mut leader = false;
    let mut renewed = Instant::now() - LEASE_RENEW;
    // CRM failures and Redis failures back off apart: a read that works says nothing of the CRM.
    let mut backoff = Duration::from_millis(100);
    let mut read_backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        if renewed.elapsed() >= LEASE_RENEW {
            match engine.outbox_lease(&instance, LEASE_TTL).await {
                Ok(l) => {
                    if l != leader {
                        info!(
                            message = if l {
                                "Delivering the event log to the CRM."
                            } else {
                                "Another instance delivers the event log."
                            }
                        );
                    }
                    leader = l;
                    renewed = Instant::now();
                }
                Err(error) => {
                    warn!(message = "Event-log lease check failed.", %error);
                    leader = false;
                }
            }
        }
        if !leader {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(LEASE_RENEW) => continue,
            }
        }
        if con.is_none() {
            con = engine.dedicated_connection().await.ok();
        }
        let Some(c) = con.as_mut() else {
            if !pause(&mut read_backoff, &cancel).await {
                return;
            }
            continue;
        };
        let batch = tokio::select! {
            _ = cancel.cancelled() => return,
            r = engine.outbox_read(c, &instance, BATCH, Duration::from_millis(1000)) => r,
        };
        let batch = match batch {
            Ok(b) => {
                read_backoff = Duration::from_millis(100);
                b
            }
            // The group is gone (Redis lost its data, or someone deleted it): make it again. The
            // log it reads is new too, so nothing is skipped.
            Err(switchboard_engine::EngineError::Redis(e)) if e.code() == Some("NOGROUP") => {
                warn!(message = "The event log's consumer group is missing; creating it again.", retry_in = ?read_backoff);
                if let Err(error) = engine.outbox_init().await {
                    warn!(message = "Could not create the event-log consumer group.", %error);
                }
                if !pause(&mut read_backoff, &cancel).await {
                    return;
                }
                continue;
            }
            Err(error) => {
                warn!(message = "Reading the event log failed.", %error, retry_in = ?read_backoff);
                con = None;
                if !pause(&mut read_backoff, &cancel).await {
                    return;
                }
                continue;
            }
        };
        if let Ok(n) = engine.outbox_backlog().await {
            metrics::gauge!("switchboard_outbox_backlog").set(n as f64);
        }
        if batch.is_empty() {
            continue;
        }
        let events: Vec<pb::Event> = batch.iter().map(|e| to_crm_event(&key_root, e)).collect();
        let started = Instant::now();
        match log_events(&mut crm, events, deadline).await {
            Ok(r) => {
                let r = r.into_inner();
                let ids: Vec<String> = batch.iter().filter_map(LoggedEvent::acknowledges).map(String::from).collect();
                if let Err(error) = engine.outbox_ack(&ids).await {
                    // Delivered but not acknowledged: it is redelivered, and the CRM skips it.
                    warn!(message = "Acknowledging delivered events failed.", %error);
                }
                delivered(&engine, &batch, started).await;
                debug!(
                    message = "Delivered events to the CRM.",
                    count = batch.len(),
                    stored = r.stored,
                    duplicates = r.duplicates
                );
                backoff = Duration::from_millis(100);
            }
            // One event the CRM will never take must not hold back the rest: deliver one by one
            // and park what it refuses.
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                warn!(message = "The CRM refused a batch as invalid; delivering its events one by one.", error = %status.message());
                for e in &batch {
                    let done = match log_events(&mut crm, vec![to_crm_event(&key_root, e)], deadline).await {
                        Ok(_) => match e.acknowledges() {
                            Some(entry) => engine.outbox_ack(&[entry.to_string()]).await,
                            None => Ok(()),
                        },
                        Err(s) if s.code() == tonic::Code::InvalidArgument => {
                            metrics::counter!("switchboard_outbox_dead_letters_total").increment(1);
                            tracing::error!(message = "The CRM refused an event; parked in events_dead.", event = %e.id, kind = %e.typ, error = %s.message());
                            engine.outbox_dead_letter(e, s.message()).await
                        }
                        // Anything else is worth retrying: the rest stays pending, in order.
                        Err(_) => break,
                    };
                    if let Err(error) = done {
                        warn!(message = "Acknowledging an event failed.", %error);
                        break;
                    }
                }
                delivered(&engine, &batch, started).await;
            }
            Err(status) => {
                metrics::counter!("switchboard_outbox_failures_total").increment(1);
                warn!(message = "CRM delivery failed; retrying.", code = ?status.code(), error = %status.message(), retry_in = ?backoff);
                if !pause(&mut backoff, &cancel).await {
                    return;
                }
            }
        }
    }
}

/// Bookkeeping after a batch reached the CRM: screen-pop versions and metrics.
async fn delivered(engine: &Engine, batch: &[LoggedEvent], started: Instant) {
    // Screen-pop caches on every instance notice that these customers' history changed.
    let mut customers: Vec<(Channel, String)> = batch.iter().filter_map(customer_of).collect();
    customers.sort();
    customers.dedup();
    if let Err(error) = engine.bump_customer_versions(&customers).await {
        warn!(message = "Could not mark changed contacts.", %error);
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    for e in batch {
        metrics::histogram!("switchboard_outbox_delivery_lag_seconds")
            .record(now.saturating_sub(e.at_ms) as f64 / 1000.0);
    }
    metrics::counter!("switchboard_outbox_delivered_total").increment(batch.len() as u64);
    metrics::histogram!("switchboard_outbox_call_seconds").record(started.elapsed().as_secs_f64());
}
