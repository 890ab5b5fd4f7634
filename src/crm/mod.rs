//! The CRM store (proto package `switchboard.crm.v1`): where screen-pops come from and where the
//! interaction log goes. Switchboard reaches a CRM only through the gRPC service, so the built-in
//! store here and a company's own CRM are interchangeable.
//!
//! - [`identity`]: identity normalization (E.164, lower-cased email).
//! - [`db`]: the built-in store on sqlx (SQLite by default, PostgreSQL).
//! - [`service`]: the gRPC service over the built-in store, and `switchboard crm`.
//! - [`client`]: screen-pops from whichever CRM store is configured (deadline, cache).

pub mod client;
pub mod db;
pub mod identity;
pub mod service;

pub use switchboard_proto::crm as pb;

pub use db::{Contact, CrmDb, CrmError, CrmOptions, HistoryEntry, LogEvent};
