//! Logging and metrics set-up.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Targets that log what crosses the wire (secrets and message bodies) and are never shown.
const WIRE_LOGGERS: [&str; 4] = ["async_imap", "imap_proto", "tungstenite", "tokio_tungstenite"];

/// Installs the global tracing subscriber (call once, from `main`).
pub fn init_logging(format: LogFormat, directive: &str) {
    let mut filter = EnvFilter::try_new(directive).unwrap_or_else(|_| EnvFilter::new("info"));
    // Libraries that log raw traffic at debug and trace: an IMAP LOGIN with its password, whole
    // emails, every web chat frame with its token. Off whatever RUST_LOG says (a directive for the
    // same target replaces RUST_LOG's); they log nothing useful above debug.
    for target in WIRE_LOGGERS {
        filter = filter.add_directive(format!("{target}=off").parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder; installed on first use so several in-process servers
/// (tests) share it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
            // How late events reach the CRM: seconds while it keeps up, up to an hour while it is down.
            let lag = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];
            let builder = PrometheusBuilder::new()
                .set_buckets(&latency)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("switchboard_outbox_delivery_lag_seconds".into()), &lag)
                })
                .expect("bucket lists are not empty");
            match builder.install_recorder() {
                Ok(h) => h,
                // Another recorder is already global (embedding application): render ours unattached.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
