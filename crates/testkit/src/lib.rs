//! Real peers for Switchboard's tests and benchmark, each started on a free 127.0.0.1 port in a
//! temp dir and stopped by the PID it was started with, never by name.
//!
//! - [`wait`]: `eventually` / [`assert_eventually!`], free ports, test tracing.
//! - [`redis_server`]: a `redis-server`; [`sentinel`] and [`cluster`]: Sentinel and Cluster setups of them.
//! - [`postgres`]: `initdb` + `postgres` (plain or TLS).
//! - [`dovecot`]: an IMAP server with IDLE (plain or TLS), and test certificates.
//! - [`smtp`]: aiosmtpd, recording what it receives and answering as planned.
//! - [`browser`]: a headless Chromium driven over WebDriver.
//! - [`sip`]: Kamailio and SIPp (callers, agents' phones).
//! - [`kannel`]: Kannel (bearerbox + smsbox) with fakesmsc as the phone network.
//! - [`smsc`]: an SMPP 3.4 SMSC (PyPI smpp34 behind a proxy that can break the link).
//!
//! Nothing here knows Switchboard's own types: the harness that starts Switchboard itself lives
//! with the tests (`tests/it/common`) and the benchmark.

pub mod browser;
pub mod cluster;
pub mod dovecot;
pub mod kannel;
pub mod postgres;
pub mod redis_server;
pub mod sentinel;
pub mod sip;
pub mod smsc;
pub mod smtp;
pub mod wait;

pub use browser::Browser;
pub use cluster::ClusterSetup;
pub use dovecot::{Dovecot, TestCerts};
pub use kannel::{Kannel, KannelOptions, Mt};
pub use postgres::{PgServer, PgTlsFiles};
pub use redis_server::RedisServer;
pub use sentinel::SentinelSetup;
pub use sip::{Kamailio, KamailioOptions, Sipp, free_udp_port};
pub use smsc::{Mo, Smsc, Submit};
pub use smtp::{SmtpMode, SmtpServer};
pub use wait::{PATIENCE, POLL_INTERVAL, eventually, free_port, init_tracing};

#[cfg(test)]
mod selftest;
