//! Contacts: the customers a CRM knows, by their identities, and their history of interactions
//! (what a screen-pop shows).

use std::collections::BTreeMap;

use crate::channel::Channel;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: String,
    pub name: String,
    pub identities: Vec<(Channel, String)>,
    pub fields: BTreeMap<String, String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub interaction_id: String,
    pub channel: Option<Channel>,
    pub queue: String,
    pub agent_id: String,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub outcome: String,
    pub disposition: String,
    pub notes: String,
    pub summary: String,
}
