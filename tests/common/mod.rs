//! Shared helpers for integration tests; include with `mod common;`.
// Not every test binary uses every helper (or the re-export below).
#![allow(dead_code, unused_imports)]

pub mod browser;
pub mod dovecot;
pub mod harness;
pub mod postgres;
pub mod server;
pub mod smtp;
pub mod webchat;
pub use browser::*;
pub use harness::*;
pub use postgres::*;
pub use server::*;
pub use webchat::*;
