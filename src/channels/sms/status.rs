//! A provider's report on a text we sent → the reply's delivery state on the agent's thread.
//! Parts of a long text report separately (SMPP); the reply shows their roll-up, and the thread
//! keeps only reports that rank higher than what it shows (a late "sent" never hides "failed").

use switchboard_engine::EngineError;
use switchboard_engine::sms::OutRecord;
use switchboard_model::DeliveryState;
use tracing::{debug, info};

use super::SmsChannel;
use super::gateway::{ReceiveError, StatusReport};

impl SmsChannel {
    pub(crate) async fn apply_status(&self, r: StatusReport) -> Result<(), ReceiveError> {
        let Some(reply_key) = self.state.reply_for(&r.gateway, &r.provider_id).await? else {
            // Not ours, or older than the records: acknowledged so the provider stops sending it.
            debug!(message = "Status report for an unknown text.", gateway = %r.gateway);
            metrics::counter!("switchboard_sms_status_total", "gateway" => r.gateway.clone(), "outcome" => "unknown")
                .increment(1);
            return Ok(());
        };
        let (parts, segments) = self.state.part_state(&reply_key, &r.provider_id, r.state).await?;
        let Some((iid, seq)) = OutRecord::interaction_and_seq(&reply_key) else {
            // The channel's own answers (HELP, opt-out confirmations) are on no thread.
            return Ok(());
        };
        let state = DeliveryState::roll_up(&parts).unwrap_or(r.state);
        let applied = match self.state.delivery(iid, seq, state, &r.code, segments).await {
            Ok(applied) => applied,
            // Expired or erased since: nothing left to show it on.
            Err(EngineError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        metrics::counter!("switchboard_sms_status_total", "gateway" => r.gateway.clone(), "outcome" => state.as_str())
            .increment(1);
        if applied {
            info!(message = "Reply delivery state.", gateway = %r.gateway, interaction = %iid, seq, state = %state, code = %r.code);
        }
        Ok(())
    }
}
