//! The built-in CRM store (proto package `switchboard.crm.v1`): contacts with their identities,
//! the interaction log Switchboard delivers, and the history a screen-pop shows. Run in-process by
//! `switchboard serve` or on its own as `switchboard crm`; either way Switchboard reaches it only
//! through its gRPC service, so a company's own CRM implementing the service can replace it.
//!
//! - [`identity`]: identity normalization (one *phone* identity in E.164 for voice and SMS,
//!   lower-cased email, chat visitor ids as given).
//! - [`db`]: the store on sqlx (one portable schema in `migrations/crm/`: SQLite by default, or
//!   PostgreSQL).
//! - [`service`]: the gRPC service over it.

pub mod db;
pub mod identity;
pub mod service;

pub use db::{AuditQuery, CrmDb, CrmError, CrmOptions, LogEvent};
pub use service::serve;
