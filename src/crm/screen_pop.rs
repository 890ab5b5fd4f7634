//! Screen-pops: the contact and its recent history for an offer, from whichever CRM store is
//! configured, within a deadline. A slow or absent CRM never delays an offer: past the deadline
//! the offer goes out marked "unavailable", and the agent can ask again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{CrmClient, channel_from_pb, channel_to_pb, ms, pb};
use crate::model::{Channel, Contact, HistoryEntry};
use switchboard_engine::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopStatus {
    NotConfigured,
    Available,
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenPopData {
    pub status: PopStatus,
    /// None for a customer the CRM does not know (yet).
    pub contact: Option<Contact>,
    pub history: Vec<HistoryEntry>,
}

impl ScreenPopData {
    pub fn not_configured() -> Self {
        ScreenPopData { status: PopStatus::NotConfigured, contact: None, history: Vec::new() }
    }
    /// A customer no contact may be shown for (e.g. an email sender whose domain did not
    /// authenticate the mail): as if the CRM knew nobody by that address.
    pub fn unknown_customer() -> Self {
        ScreenPopData { status: PopStatus::Available, contact: None, history: Vec::new() }
    }
    fn unavailable() -> Self {
        ScreenPopData { status: PopStatus::Unavailable, contact: None, history: Vec::new() }
    }
}

struct Cached {
    at: Instant,
    version: u64,
    data: ScreenPopData,
}

pub struct ScreenPopper {
    client: CrmClient,
    engine: Engine,
    deadline: Duration,
    history_limit: u32,
    ttl: Duration,
    cache: Mutex<HashMap<(Channel, String), Cached>>,
}

/// Cached entries kept at most; the oldest are dropped first.
const CACHE_MAX: usize = 50_000;

impl ScreenPopper {
    pub fn new(client: CrmClient, engine: Engine, deadline: Duration, history_limit: u32, ttl: Duration) -> Self {
        ScreenPopper { client, engine, deadline, history_limit, ttl, cache: Mutex::new(HashMap::new()) }
    }

    /// The screen-pop for a customer, within the deadline, without the interaction being offered
    /// (`current`). `fresh` skips the cache.
    pub async fn lookup(&self, channel: Channel, address: &str, current: &str, fresh: bool) -> ScreenPopData {
        let mut data = self.lookup_customer(channel, address, fresh).await;
        data.history.retain(|h| h.interaction_id != current);
        data.history.truncate(self.history_limit as usize);
        data
    }

    async fn lookup_customer(&self, channel: Channel, address: &str, fresh: bool) -> ScreenPopData {
        let started = Instant::now();
        let key = (channel, address.to_string());
        let r = tokio::time::timeout(self.deadline, async {
            // The version moves when the CRM acknowledged new events for this customer.
            let version = self.engine.customer_version(channel, address).await.unwrap_or(u64::MAX);
            if !fresh
                && let Some(c) = self.cache.lock().expect("cache lock").get(&key)
                && c.version == version
                && c.at.elapsed() < self.ttl
            {
                metrics::counter!("switchboard_screen_pop_total", "outcome" => "cached").increment(1);
                return Ok(c.data.clone());
            }
            let data = self.fetch(channel, address).await?;
            self.remember(key.clone(), version, data.clone());
            Ok::<_, tonic::Status>(data)
        })
        .await;
        metrics::histogram!("switchboard_screen_pop_seconds").record(started.elapsed().as_secs_f64());
        match r {
            Ok(Ok(d)) => {
                metrics::counter!("switchboard_screen_pop_total", "outcome" => "fetched").increment(1);
                d
            }
            Ok(Err(status)) => {
                metrics::counter!("switchboard_screen_pop_total", "outcome" => "error").increment(1);
                tracing::warn!(message = "Screen-pop look-up failed.", code = ?status.code(), error = %status.message());
                ScreenPopData::unavailable()
            }
            Err(_) => {
                metrics::counter!("switchboard_screen_pop_total", "outcome" => "timeout").increment(1);
                tracing::warn!(message = "Screen-pop look-up missed its deadline.", deadline = ?self.deadline);
                ScreenPopData::unavailable()
            }
        }
    }

    fn remember(&self, key: (Channel, String), version: u64, data: ScreenPopData) {
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_MAX {
            let ttl = self.ttl;
            cache.retain(|_, c| c.at.elapsed() < ttl);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, Cached { at: Instant::now(), version, data });
    }

    async fn fetch(&self, channel: Channel, address: &str) -> Result<ScreenPopData, tonic::Status> {
        let mut client = self.client.clone();
        let identity = pb::Identity { channel: channel_to_pb(channel) as i32, address: address.into() };
        let contact = match client.find_contact(pb::FindContactRequest { identity: Some(identity) }).await {
            Ok(c) => contact_from_pb(c.into_inner()),
            // An unknown customer, or one whose address is not a valid identity: nothing to show.
            Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => {
                return Ok(ScreenPopData { status: PopStatus::Available, contact: None, history: Vec::new() });
            }
            Err(s) => return Err(s),
        };
        let history = if self.history_limit == 0 {
            Vec::new()
        } else {
            client
                .get_contact_history(pb::GetContactHistoryRequest {
                    contact_id: contact.id.clone(),
                    // One more: the interaction being offered may already be in the history.
                    limit: self.history_limit + 1,
                    cursor: String::new(),
                })
                .await?
                .into_inner()
                .entries
                .into_iter()
                .map(history_from_pb)
                .collect()
        };
        Ok(ScreenPopData { status: PopStatus::Available, contact: Some(contact), history })
    }
}

pub fn contact_from_pb(c: pb::Contact) -> Contact {
    Contact {
        id: c.id,
        name: c.name,
        identities: c.identities.into_iter().filter_map(|i| Some((channel_from_pb(i.channel)?, i.address))).collect(),
        fields: c.fields.into_iter().collect(),
        created_ms: ms(c.created_at.as_ref()),
        updated_ms: ms(c.updated_at.as_ref()),
    }
}

pub fn history_from_pb(h: pb::HistoryEntry) -> HistoryEntry {
    HistoryEntry {
        interaction_id: h.interaction_id,
        channel: channel_from_pb(h.channel),
        queue: h.queue,
        agent_id: h.agent_id,
        started_ms: ms(h.started_at.as_ref()),
        ended_ms: ms(h.ended_at.as_ref()),
        outcome: h.outcome,
        disposition: h.disposition,
        notes: h.notes,
        summary: h.summary,
    }
}
