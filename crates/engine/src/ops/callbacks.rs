//! Callbacks: a waiting call becomes one (`callback.lua`); an IVR's is created as one
//! ([`Engine::create_interaction`] with [`NewInteraction::callback`]). Dialling, its attempts and
//! their retries happen in `accept.lua`, `call_event.lua` and the timers.
//!
//! [`NewInteraction::callback`]: switchboard_model::NewInteraction::callback

use switchboard_model::{CallbackPlan, Interaction};

use super::argv::argv;
use crate::decode::interaction_from_reply;
use crate::{Engine, EngineError, Result};

argv! {
    struct CallbackArgs<'a> {
        iid: &'a str,
        number: &'a str,
        not_before: u64,
        max_attempts: u32,
        retry_ms: u64,
        dial_timeout_ms: u64,
        sl_at: &'static str,
    }
}

impl Engine {
    /// Turns waiting call `iid` into a callback keeping its place; returns it and whether this
    /// call did (false: it was one already, unchanged).
    pub async fn request_callback(&self, iid: &str, plan: &CallbackPlan) -> Result<(Interaction, bool)> {
        let now = self.now_ms().await?;
        plan.validate(now).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let args = CallbackArgs {
            iid,
            number: &plan.number,
            not_before: plan.not_before_ms,
            max_attempts: plan.max_attempts,
            retry_ms: plan.retry_ms,
            dial_timeout_ms: plan.dial_timeout_ms,
            sl_at: plan.service_level_at.as_str(),
        };
        let r = self.run(args).await?;
        let applied = r.first().is_some_and(|s| s == "applied");
        Ok((interaction_from_reply(iid, r.get(1..).unwrap_or_default(), false)?, applied))
    }
}
