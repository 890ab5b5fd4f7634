//! Switchboard: an omni-channel contact-center routing daemon.
//!
//! The daemon's library: what `switchboard serve` runs, also started in-process by the tests and
//! the benchmark. The parts it is made of are crates of their own (ARCHITECTURE.md):
//! `switchboard-model` (re-exported as [`model`], with [`routing`]), `switchboard-engine` (all of
//! Redis), `switchboard-proto`, `switchboard-crm`, `switchboard-cli`.
//!
//! # Layout
//! - [`server`]: wires an instance together; [`config`]: the TOML config.
//! - [`access`]: who may call (keys, JWT; the checks themselves are `switchboard-auth`).
//! - [`api`]: the `switchboard.v1` gRPC services; [`hub`]: this instance's desktop sessions.
//! - [`crm`]: the daemon as a CRM client (screen-pops, the event log's delivery);
//!   [`crm_export`]: `switchboard crm export` (arrivals read back from the CRM's log).
//! - [`channels`]: web chat, email, in-memory adapters behind one trait.
//! - [`timers`], [`http`], [`telemetry`] ([`sampler`]: figures sampled into metrics), [`tls`].
//! - [`recovery`]: healing a Redis that came back without its data.
//! - [`simulate`]: `switchboard simulate` (what-if runs of the routing, `switchboard-sim`).

pub use switchboard_model as model;
pub use switchboard_model::routing;

pub mod access;
pub mod api;
pub mod channels;
pub mod config;
pub mod crm;
pub mod crm_export;
pub mod http;
pub mod hub;
pub mod recovery;
pub mod sampler;
pub mod server;
pub mod simulate;
pub mod telemetry;
pub mod timers;
pub mod tls;
