//! Right to erasure everywhere (`Admin.EraseContact`): the CRM store erases the contact and says
//! which interactions and identities it had; then every copy Redis holds of them goes. Redis is
//! searched as well as told the CRM's interaction ids, because the log reaches the CRM some time
//! after it is written: an interaction the CRM has not heard of yet is found by its customer.

use std::collections::{BTreeSet, HashSet};

use tonic::Status;

use super::{CrmClient, channel_from_pb, pb};
use crate::model::{Actor, Channel};
use switchboard_crm::db::identity_kind;
use switchboard_engine::Engine;

/// Why an interaction ended when its customer was erased.
pub const ERASED_REASON: &str = "erased";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub interactions: u32,
    pub messages_erased: u32,
    pub copies_erased: u32,
    pub ended: u32,
}

pub struct Eraser {
    pub client: CrmClient,
    pub engine: Engine,
    /// For phone numbers written without a country code, as the CRM store normalizes them.
    pub default_region: Option<String>,
}

impl Eraser {
    /// Erases `contact_id` on behalf of `by` (who is named in the CRM's audit record and on every
    /// change in Redis).
    pub async fn erase(&self, contact_id: &str, by: &Actor) -> Result<Erased, Status> {
        let req = pb::EraseContactRequest {
            contact_id: contact_id.to_string(),
            on_behalf_of: by.who.clone(),
            on_behalf_of_address: by.from.clone(),
        };
        let r = self.client.clone().erase_contact(req).await.map_err(crm_status)?.into_inner();
        let identities: HashSet<(&str, String)> = r
            .identities
            .iter()
            .filter_map(|i| Some((identity_kind(channel_from_pb(i.channel)?), i.address.clone())))
            .collect();
        let mut ids: BTreeSet<String> = r.interaction_ids.into_iter().collect();
        let mut customers = BTreeSet::new();
        let mut cursor = 0;
        loop {
            let (next, page) = self.engine.scan_customers(cursor).await.map_err(copies_failed)?;
            for c in page {
                let theirs = ids.contains(&c.interaction_id)
                    || c.channel.is_some_and(|ch| self.is_theirs(ch, &c.customer, &identities));
                if theirs {
                    if let Some(ch) = c.channel
                        && !c.customer.is_empty()
                    {
                        customers.insert((ch, c.customer));
                    }
                    ids.insert(c.interaction_id);
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let ids: Vec<String> = ids.into_iter().collect();
        let engine = self.engine.acting_as(by.clone());
        let (copies_erased, ended) = engine.erase_interactions(&ids, ERASED_REASON).await.map_err(copies_failed)?;
        let customers: Vec<(Channel, String)> = customers.into_iter().collect();
        engine.forget_erased(&ids.into_iter().collect(), &customers).await.map_err(copies_failed)?;
        Ok(Erased { interactions: r.interactions, messages_erased: r.messages_erased, copies_erased, ended })
    }

    /// Whether a customer address, as an interaction holds it, is one of the erased identities.
    fn is_theirs(&self, ch: Channel, address: &str, identities: &HashSet<(&str, String)>) -> bool {
        switchboard_crm::identity::normalize(ch, address, self.default_region.as_deref())
            .is_ok_and(|a| identities.contains(&(identity_kind(ch), a)))
    }
}

/// The CRM's answer as the admin should see it: what it said about the request passes through;
/// its refusing the daemon, or being unreachable, is the daemon's problem to report.
fn crm_status(s: Status) -> Status {
    match s.code() {
        tonic::Code::NotFound | tonic::Code::InvalidArgument => s,
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => Status::failed_precondition(
            "the CRM store refused the erasure from Switchboard: its key for the store needs the crm or admin role",
        ),
        _ => Status::unavailable("the CRM store is unavailable; nothing was erased"),
    }
}

fn copies_failed(e: switchboard_engine::EngineError) -> Status {
    tracing::error!(message = "Erasure of Switchboard's copies failed after the CRM erased the contact.", error = %e);
    Status::unavailable(
        "the CRM store erased the contact, but Switchboard's copies in Redis could not all be erased (Redis \
         unavailable); the CRM blanks their events as they arrive",
    )
}
