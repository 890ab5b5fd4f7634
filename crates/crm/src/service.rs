//! The `CrmStore` gRPC service over the built-in store.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::db::{AuditQuery, CrmDb, CrmError, LogEvent};
use switchboard_auth::{AuthLayer, Authenticator, Policy, Role, Rule, ServerTls};
use switchboard_model::{Actor, Channel, Principal};
use switchboard_model::{Contact, HistoryEntry};
use switchboard_proto::crm as pb;

/// The one place where CRM errors become gRPC statuses.
fn status(e: CrmError) -> Status {
    match e {
        CrmError::Invalid(m) => Status::invalid_argument(m),
        CrmError::NotFound(m) => Status::not_found(m),
        CrmError::Conflict(m) => Status::failed_precondition(m),
        CrmError::Db(e) => {
            tracing::warn!(message = "CRM database request failed.", error = %e);
            Status::unavailable(format!("crm database: {e}"))
        }
        CrmError::Migrate(e) => Status::internal(format!("crm database migration: {e}")),
    }
}

pub fn channel_from_pb(field: &str, v: i32) -> Result<Channel, Status> {
    match pb::Channel::try_from(v) {
        Ok(pb::Channel::Voice) => Ok(Channel::Voice),
        Ok(pb::Channel::Chat) => Ok(Channel::Chat),
        Ok(pb::Channel::Sms) => Ok(Channel::Sms),
        Ok(pb::Channel::Email) => Ok(Channel::Email),
        _ => Err(Status::invalid_argument(format!("{field}: a channel (voice, chat, sms, email) is required"))),
    }
}

pub fn channel_to_pb(c: Channel) -> pb::Channel {
    match c {
        Channel::Voice => pb::Channel::Voice,
        Channel::Chat => pb::Channel::Chat,
        Channel::Sms => pb::Channel::Sms,
        Channel::Email => pb::Channel::Email,
    }
}

pub fn ts(ms: i64) -> Option<prost_types::Timestamp> {
    (ms > 0).then(|| prost_types::Timestamp { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 })
}

pub(crate) fn ms(t: Option<&prost_types::Timestamp>) -> i64 {
    // Saturating: an event's timestamp beyond what milliseconds in an i64 hold must not overflow.
    t.map(|t| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000)).unwrap_or(0)
}

/// The last second a Timestamp may hold (9999-12-31T23:59:59Z); beyond it milliseconds overflow.
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// A filter's time in ms, refusing what is no valid Timestamp.
fn filter_ms(field: &str, t: Option<&prost_types::Timestamp>) -> Result<Option<i64>, Status> {
    match t {
        None => Ok(None),
        Some(t) if (0..=MAX_TIMESTAMP_SECONDS).contains(&t.seconds) && (0..1_000_000_000).contains(&t.nanos) => {
            Ok(Some(ms(Some(t))))
        }
        Some(t) => Err(Status::invalid_argument(format!(
            "{field}: not a valid timestamp (seconds {}, nanos {}) between 1970 and 9999",
            t.seconds, t.nanos
        ))),
    }
}

pub fn contact_to_pb(c: &Contact) -> pb::Contact {
    pb::Contact {
        id: c.id.clone(),
        name: c.name.clone(),
        identities: c
            .identities
            .iter()
            .map(|(ch, a)| pb::Identity { channel: channel_to_pb(*ch) as i32, address: a.clone() })
            .collect(),
        fields: c.fields.clone().into_iter().collect(),
        created_at: ts(c.created_ms),
        updated_at: ts(c.updated_ms),
    }
}

pub fn history_to_pb(h: &HistoryEntry) -> pb::HistoryEntry {
    pb::HistoryEntry {
        interaction_id: h.interaction_id.clone(),
        channel: h.channel.map(channel_to_pb).unwrap_or_default() as i32,
        queue: h.queue.clone(),
        agent_id: h.agent_id.clone(),
        started_at: ts(h.started_ms),
        ended_at: ts(h.ended_ms),
        outcome: h.outcome.clone(),
        disposition: h.disposition.clone(),
        notes: h.notes.clone(),
        summary: h.summary.clone(),
    }
}

pub fn event_from_pb(i: usize, e: pb::Event) -> Result<LogEvent, Status> {
    let details = if e.details_json.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(&e.details_json)
            .map_err(|x| Status::invalid_argument(format!("events[{i}].details_json: {x}")))?
    };
    let channel = match e.channel {
        0 => None,
        v => Some(channel_from_pb(&format!("events[{i}].channel"), v)?),
    };
    Ok(LogEvent {
        id: e.id,
        interaction_id: e.interaction_id,
        typ: e.r#type,
        at_ms: ms(e.at.as_ref()),
        agent_id: e.agent_id,
        queue: e.queue,
        channel,
        customer_address: e.customer_address,
        details,
        actor: e.actor,
        actor_address: e.actor_address,
    })
}

pub fn event_to_pb(e: &LogEvent) -> pb::Event {
    pb::Event {
        id: e.id.clone(),
        interaction_id: e.interaction_id.clone(),
        r#type: e.typ.clone(),
        at: ts(e.at_ms),
        agent_id: e.agent_id.clone(),
        queue: e.queue.clone(),
        channel: e.channel.map(channel_to_pb).unwrap_or_default() as i32,
        customer_address: e.customer_address.clone(),
        details_json: e.details.to_string(),
        actor: e.actor.clone(),
        actor_address: e.actor_address.clone(),
    }
}

#[derive(Clone)]
pub struct CrmService {
    pub db: CrmDb,
}

#[tonic::async_trait]
impl pb::crm_store_server::CrmStore for CrmService {
    async fn find_contact(&self, request: Request<pb::FindContactRequest>) -> Result<Response<pb::Contact>, Status> {
        let id = request.into_inner().identity.ok_or_else(|| Status::invalid_argument("identity: is required"))?;
        let ch = channel_from_pb("identity.channel", id.channel)?;
        let c = self.db.find_contact(ch, &id.address).await.map_err(status)?;
        Ok(Response::new(contact_to_pb(&c)))
    }

    async fn upsert_contact(
        &self,
        request: Request<pb::UpsertContactRequest>,
    ) -> Result<Response<pb::Contact>, Status> {
        let r = request.into_inner();
        let mut identities = Vec::new();
        for (i, id) in r.identities.into_iter().enumerate() {
            identities.push((channel_from_pb(&format!("identities[{i}].channel"), id.channel)?, id.address));
        }
        let fields: BTreeMap<String, String> = r.fields.into_iter().collect();
        let id = (!r.id.is_empty()).then_some(r.id.as_str());
        if id.is_none() && identities.is_empty() && r.name.is_empty() {
            return Err(Status::invalid_argument("identities: a new contact needs an identity or a name"));
        }
        let c = self.db.upsert_contact(id, &r.name, &identities, &fields).await.map_err(status)?;
        Ok(Response::new(contact_to_pb(&c)))
    }

    async fn get_contact_history(
        &self,
        request: Request<pb::GetContactHistoryRequest>,
    ) -> Result<Response<pb::GetContactHistoryResponse>, Status> {
        let r = request.into_inner();
        if r.contact_id.is_empty() {
            return Err(Status::invalid_argument("contact_id: is required"));
        }
        let (entries, next) = self.db.history(&r.contact_id, r.limit, Some(&r.cursor)).await.map_err(status)?;
        Ok(Response::new(pb::GetContactHistoryResponse {
            entries: entries.iter().map(history_to_pb).collect(),
            next_cursor: next.unwrap_or_default(),
        }))
    }

    async fn log_events(
        &self,
        request: Request<pb::LogEventsRequest>,
    ) -> Result<Response<pb::LogEventsResponse>, Status> {
        let events = request
            .into_inner()
            .events
            .into_iter()
            .enumerate()
            .map(|(i, e)| event_from_pb(i, e))
            .collect::<Result<Vec<_>, _>>()?;
        let (stored, duplicates) = self.db.log_events(&events).await.map_err(status)?;
        Ok(Response::new(pb::LogEventsResponse { stored, duplicates }))
    }

    async fn erase_contact(
        &self,
        request: Request<pb::EraseContactRequest>,
    ) -> Result<Response<pb::EraseContactResponse>, Status> {
        // No erasure without someone to name in its audit record.
        let caller = switchboard_auth::principal(&request)?.clone();
        let ip = switchboard_auth::peer_ip(request.extensions());
        let r = request.into_inner();
        if r.contact_id.is_empty() {
            return Err(Status::invalid_argument("contact_id: is required"));
        }
        let by = erased_by(&caller, ip, r.on_behalf_of, r.on_behalf_of_address)?;
        let e = self.db.erase_contact(&r.contact_id, &by).await.map_err(status)?;
        tracing::info!(
            message = "Contact erased.",
            contact = %r.contact_id,
            by = %by.who,
            interactions = e.interactions,
            messages_erased = e.messages_erased
        );
        Ok(Response::new(pb::EraseContactResponse {
            interactions: e.interactions,
            messages_erased: e.messages_erased,
            interaction_ids: e.interaction_ids,
            identities: e
                .identities
                .into_iter()
                .map(|(ch, address)| pb::Identity { channel: channel_to_pb(ch) as i32, address })
                .collect(),
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let r = request.into_inner();
        let q = AuditQuery {
            since_ms: filter_ms("since", r.since.as_ref())?,
            until_ms: filter_ms("until", r.until.as_ref())?,
            actor: r.actor,
            types: r.types,
            limit: r.limit,
            page_token: r.page_token,
        };
        let (events, next) = self.db.audit_events(&q).await.map_err(status)?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.iter().map(event_to_pb).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
}

/// Who an erasure is recorded as: the caller, or for the daemon (`crm`), the admin it erases for.
fn erased_by(
    caller: &Principal,
    ip: Option<std::net::IpAddr>,
    on_behalf_of: String,
    on_behalf_of_address: String,
) -> Result<Actor, Status> {
    if caller.role != Role::Crm {
        if !on_behalf_of.is_empty() || !on_behalf_of_address.is_empty() {
            return Err(Status::permission_denied("on_behalf_of: only the crm role erases for someone else"));
        }
        return Ok(Actor::new(caller, ip));
    }
    if on_behalf_of.is_empty() {
        return Err(Status::invalid_argument("on_behalf_of: is required from the crm role (who asked)"));
    }
    switchboard_model::validate_line("on_behalf_of", &on_behalf_of, 1024)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    switchboard_model::validate_line("on_behalf_of_address", &on_behalf_of_address, 128)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(Actor { who: on_behalf_of, from: on_behalf_of_address })
}

/// Who may call the CRM store: the daemon (`crm`) logs and reads, and erases for an admin it
/// names; the audit trail only `admin`, which may do everything else too. Health is anonymous.
pub fn policy() -> Policy {
    const CRM: &[Role] = &[Role::Crm, Role::Admin];
    const ADMIN: &[Role] = &[Role::Admin];
    let mut p = Policy::default().service("/grpc.health.v1.Health/", Rule::Anonymous);
    for m in ["FindContact", "UpsertContact", "GetContactHistory", "LogEvents"] {
        p = p.rule(&format!("/switchboard.crm.v1.CrmStore/{m}"), Rule::Roles(CRM));
    }
    // The daemon erases for its admins (Admin.EraseContact), naming them.
    p = p.rule("/switchboard.crm.v1.CrmStore/EraseContact", Rule::Roles(&[Role::Admin, Role::Crm]));
    p = p.rule("/switchboard.crm.v1.CrmStore/ListAuditEvents", Rule::Roles(ADMIN));
    p.service("/grpc.reflection.", Rule::Roles(&Role::ALL))
}

/// Serves the built-in CRM on `listener` until `shutdown` (the `switchboard crm` subcommand, and
/// the in-process default of `switchboard serve`) to the callers `auth` knows, as [`policy`] allows.
pub async fn serve(
    db: CrmDb,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    auth: Arc<Authenticator>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<pb::crm_store_server::CrmStoreServer<CrmService>>().await;
    // Both versions: many clients still ask v1alpha only.
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = builder().build_v1().expect("the CRM's own descriptor set is valid");
    let reflection_alpha = builder().build_v1alpha().expect("the CRM's own descriptor set is valid");
    let router = tonic::transport::Server::builder()
        .layer(AuthLayer::new(auth, policy()))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(pb::crm_store_server::CrmStoreServer::new(CrmService { db }));
    let stop = shutdown.clone();
    let stop = async move { stop.cancelled().await };
    match tls {
        Some(tls) => router.serve_with_incoming_shutdown(tls.incoming(listener, shutdown), stop).await,
        None => {
            router.serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), stop).await
        }
    }
}
