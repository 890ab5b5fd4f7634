//! The daemon as a client of a CRM store (proto package `switchboard.crm.v1`): screen-pops on
//! offers, and the interaction log delivered to it. Whichever CRM is configured — the built-in
//! `switchboard-crm` (in-process or `switchboard crm`) or a company's own — is reached only through
//! the gRPC service, so this side knows the proto and the domain types, never a store's rows.
//!
//! - [`screen_pop`]: the contact and recent history for an offer, within a deadline, cached.
//! - [`delivery`]: the event log to the CRM: lease, consumer group, retries, trimming.
//! - [`erasure`]: right to erasure in the CRM and of every copy in Redis.

pub mod delivery;
pub mod erasure;
pub mod screen_pop;

use crate::model::Channel;
pub use switchboard_proto::crm as pb;

/// Every call carries the daemon's credential for the store.
pub type CrmClient = pb::crm_store_client::CrmStoreClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, switchboard_auth::Credential>,
>;

fn channel_to_pb(c: Channel) -> pb::Channel {
    match c {
        Channel::Voice => pb::Channel::Voice,
        Channel::Chat => pb::Channel::Chat,
        Channel::Sms => pb::Channel::Sms,
        Channel::Email => pb::Channel::Email,
    }
}

fn channel_from_pb(v: i32) -> Option<Channel> {
    match pb::Channel::try_from(v) {
        Ok(pb::Channel::Voice) => Some(Channel::Voice),
        Ok(pb::Channel::Chat) => Some(Channel::Chat),
        Ok(pb::Channel::Sms) => Some(Channel::Sms),
        Ok(pb::Channel::Email) => Some(Channel::Email),
        _ => None,
    }
}

fn ms(t: Option<&prost_types::Timestamp>) -> i64 {
    // Saturating: a CRM's timestamp beyond what milliseconds in an i64 hold must not overflow.
    t.map_or(0, |t| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000))
}

fn ts(ms: i64) -> Option<prost_types::Timestamp> {
    (ms > 0).then(|| prost_types::Timestamp { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 })
}
