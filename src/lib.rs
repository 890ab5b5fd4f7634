//! Switchboard: an omni-channel contact-center routing daemon.
//!
//! # Layout
//! - [`model`]: domain types and input validation (no I/O).
//! - [`routing`]: the routing core — eligibility and ranking (no I/O).
//! - [`store`]: Redis, the single source of truth; every transition is one Lua script.

pub mod model;
pub mod routing;
pub mod store;
pub mod hub;
pub mod timers;
pub mod api;
pub mod channels;
pub mod config;
pub mod http;
pub mod server;
pub mod telemetry;
