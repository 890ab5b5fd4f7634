//! The integration tests: one binary, a module per area, each test against real servers that it
//! starts itself (see `common` and `switchboard-testkit`). One binary means one link after a
//! change, not one per area.

mod common;

mod after_hours;
mod browser_session;
mod calendars;
mod callbacks;
mod chaos;
mod concurrency;
mod crm_delivery;
mod crm_export;
mod crm_store;
mod cti;
mod ctl_output;
mod daemon_process;
mod deploy_manifests;
mod email_auth;
mod email_channel;
mod email_daemon;
mod email_ingest;
mod email_robustness;
mod email_tls;
mod erasure;
mod explain;
mod fuzz;
mod grpc_api;
mod grpc_desktop;
mod grpc_web;
mod kamailio;
mod observability;
mod opening_hours;
mod postgres_tls;
mod redis_cluster;
mod redis_faults;
mod redis_sentinel;
mod redis_tls;
mod routing_scenarios;
mod security;
mod simulate;
mod sms_kannel;
mod sms_smpp;
mod sms_twilio;
mod store_smoke;
mod tls;
mod web_pages;
mod webchat_browser;
mod webchat_protocol;
