//! Switchboard: an omni-channel contact-center routing daemon.
//!
//! # Layout
//! - [`model`]: domain types and input validation (no I/O).
//! - [`routing`]: the routing core — eligibility and ranking (no I/O).
//! - [`store`]: Redis, the single source of truth; every transition is one Lua script.

pub use switchboard_model as model;
pub use switchboard_model::routing;

pub mod api;
pub mod channels;
pub mod config;
pub mod crm;
pub mod http;
pub mod hub;
pub mod server;
pub mod telemetry;
pub mod timers;
