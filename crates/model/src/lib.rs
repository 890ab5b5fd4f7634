//! Switchboard's domain: channels, agents, queues, interactions, presence; their validation; the
//! pure routing core (eligibility, waiting order); the kinds of events and pushes.
//!
//! No I/O and no wire format but the kinds' names: the engine keeps these in Redis, the daemon's
//! API turns them into protobuf. Validation errors name the offending field, so the API and the
//! config loader can hand them to users unchanged.
//!
//! - [`validate`]: limits and field checks.
//! - [`channel`], [`agent`], [`queue`], [`interaction`], [`contact`]: the types.
//! - [`calendar`]: opening hours in a time zone, and when they are open.
//! - [`callback`]: calling a waiting caller back, keeping their place.
//! - [`routing`]: which pools an agent belongs to, in what order interactions wait.
//! - [`explain`]: routing decisions, and why an interaction waits or an agent gets nothing.
//! - [`wire`]: [`EventKind`] and [`PushKind`].
//! - [`access`]: roles, principals, API key records, secret hashes.

pub mod access;
pub mod agent;
pub mod calendar;
pub mod callback;
pub mod channel;
pub mod contact;
pub mod delivery;
pub mod explain;
pub mod interaction;
pub mod queue;
pub mod routing;
pub mod sms;
pub mod validate;
pub mod voice;
pub mod wire;

pub use access::{Actor, ApiKeyRecord, CredentialKind, Principal, Role};
pub use agent::*;
pub use calendar::{Calendar, CalendarSpec, ExceptionSpec, WeeklyHours};
pub use callback::{Callback, CallbackPlan};
pub use channel::*;
pub use contact::*;
pub use delivery::{Delivery, DeliveryState};
pub use interaction::*;
pub use queue::*;
pub use validate::*;
pub use wire::{EventKind, PushKind};

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
