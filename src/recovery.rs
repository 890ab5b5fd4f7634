//! Redis that answers without Switchboard's data — restarted without persistence, flushed, a new
//! empty primary — is noticed within a heartbeat and healed: the config's calendars, queues and
//! agents are loaded again, the CRM consumer group is made again, and this instance's desktops are
//! told to sign in again (their sessions went with the rest). Interactions that were only in the
//! lost data are gone; what was acknowledged before depends on Redis's persistence (README,
//! "Reliability").

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::hub::Hub;
use switchboard_engine::Engine;

pub async fn run(engine: Engine, cfg: Arc<Config>, hub: Arc<Hub>, every: Duration, cancel: CancellationToken) {
    let system = engine.acting_as(crate::model::Actor::new(&crate::access::system_principal(), None));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        // Redis down: the other loops say so; there is nothing to heal until it answers.
        if engine.is_loaded().await.unwrap_or(true) {
            continue;
        }
        warn!(
            message = "Redis has lost Switchboard's data (restarted without persistence, flushed, or a new empty \
                       primary); loading the config's agents and queues again. Desktops on this instance sign in again."
        );
        if let Err(error) = crate::server::bootstrap(&system, &cfg).await {
            warn!(message = "Loading the config into Redis again failed; retrying.", %error);
            continue;
        }
        if cfg.crm.enabled
            && let Err(error) = engine.outbox_init().await
        {
            warn!(message = "Could not create the event-log consumer group again.", %error);
        }
        hub.close_all("stale");
        metrics::counter!("switchboard_redis_data_reloads_total").increment(1);
        info!(message = "Loaded the config into Redis again.", agents = cfg.agents.len(), queues = cfg.queues.len());
    }
}
