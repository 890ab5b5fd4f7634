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
        if let Some(reply_key) = self.state.reply_for(&r.gateway, &r.provider_id).await? {
            return self.apply_known(&reply_key, &r).await;
        }
        // A provider may report before its answer to our request is recorded (a fast SMSC, a DLR
        // right after Kannel's 202): parked for the reply to pick up. Parked first, then looked
        // up again, so one of the two sides always sees the other.
        self.state.park_early(&r.gateway, &r.provider_id, r.state, &r.code).await?;
        let Some(reply_key) = self.state.reply_for(&r.gateway, &r.provider_id).await? else {
            // Not ours, or older than the records: acknowledged so the provider stops sending
            // it; dropped with the parked entry's TTL.
            debug!(message = "Status report for a text not (yet) known.", gateway = %r.gateway);
            metrics::counter!("switchboard_sms_status_total", "gateway" => r.gateway.clone(), "outcome" => "unknown")
                .increment(1);
            return Ok(());
        };
        for (state, code) in self.state.take_early(&r.gateway, &r.provider_id).await? {
            self.apply_known(&reply_key, &StatusReport { state, code, ..r.clone() }).await?;
        }
        Ok(())
    }

    /// Reports parked for a reply's provider ids before its record named them.
    pub(crate) async fn apply_early(
        &self,
        gateway: &str,
        reply_key: &str,
        provider_ids: &[String],
    ) -> Result<(), ReceiveError> {
        for id in provider_ids {
            for (state, code) in self.state.take_early(gateway, id).await? {
                let r = StatusReport { gateway: gateway.to_string(), provider_id: id.clone(), state, code };
                self.apply_known(reply_key, &r).await?;
            }
        }
        Ok(())
    }

    async fn apply_known(&self, reply_key: &str, r: &StatusReport) -> Result<(), ReceiveError> {
        let reply_key = reply_key.to_string();
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
