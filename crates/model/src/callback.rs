//! Callbacks ("keep my place in line"): a voice interaction that calls the customer back instead
//! of keeping them on the line. It keeps the place (enqueue time) and priority it had as a call,
//! is offered to agents like any voice interaction, and once an agent accepts it the telephony
//! system dials the customer from the agent's phone; an attempt nobody answers is tried again
//! after a delay, up to a number of attempts.

use crate::validate::ValidationError;

/// How far ahead a callback may be asked for ("not before"): a callback is a place in today's
/// line, not an appointment book.
pub const MAX_NOT_BEFORE_MS: u64 = 7 * 24 * 3600 * 1000;
/// How long ago an IVR may say its caller started waiting: older is a mistake, not a place.
pub const MAX_WAITED_MS: u64 = 24 * 3600 * 1000;
pub const MAX_ATTEMPTS: u32 = 10;

/// Where a callback's service level is measured to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceLevelAt {
    /// When the customer picks up: what they lived as "answered".
    #[default]
    Connected,
    /// When an agent accepts it (like any interaction).
    Accepted,
}

impl ServiceLevelAt {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceLevelAt::Connected => "connected",
            ServiceLevelAt::Accepted => "accepted",
        }
    }
}

/// What a new callback needs: the number to call and how to try it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPlan {
    /// E.164.
    pub number: String,
    /// Not offered before this (ms since the epoch; 0: at once).
    pub not_before_ms: u64,
    pub max_attempts: u32,
    /// After an attempt nobody answered, the next one waits this long.
    pub retry_ms: u64,
    /// An attempt the telephony system never reports on fails after this long.
    pub dial_timeout_ms: u64,
    pub service_level_at: ServiceLevelAt,
}

impl CallbackPlan {
    /// `now_ms`: the routing clock.
    pub fn validate(&self, now_ms: u64) -> Result<(), ValidationError> {
        if self.number.is_empty() {
            return Err(ValidationError::new("number", "is required"));
        }
        if !self.number.starts_with('+')
            || !(2..=16).contains(&self.number.len())
            || !self.number[1..].bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ValidationError::new("number", format!("{:?} is not an E.164 number", self.number)));
        }
        if self.not_before_ms > now_ms + MAX_NOT_BEFORE_MS {
            return Err(ValidationError::new("not_before", "is more than 7 days ahead"));
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(ValidationError::new("callback_attempts", format!("must be 1..={MAX_ATTEMPTS}")));
        }
        Ok(())
    }
}

/// A callback as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Callback {
    pub number: String,
    /// Not offered before this (0: no such wait now). After a failed attempt: the retry's time.
    pub not_before_ms: u64,
    /// Attempts dialled so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// When the customer picked up (0: not yet).
    pub connected_ms: u64,
    /// The call id of the attempt being dialled ("" between attempts).
    pub call_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> CallbackPlan {
        CallbackPlan {
            number: "+4915112345678".into(),
            not_before_ms: 0,
            max_attempts: 3,
            retry_ms: 60_000,
            dial_timeout_ms: 90_000,
            service_level_at: ServiceLevelAt::Connected,
        }
    }

    #[test]
    fn a_plan_needs_an_e164_number_a_near_window_and_a_sane_number_of_attempts() {
        assert_eq!(plan().validate(1_000), Ok(()));
        for (bad, field) in [
            (CallbackPlan { number: String::new(), ..plan() }, "number"),
            (CallbackPlan { number: "0151 1234".into(), ..plan() }, "number"),
            (CallbackPlan { number: "+49x".into(), ..plan() }, "number"),
            (CallbackPlan { not_before_ms: 1_000 + MAX_NOT_BEFORE_MS + 1, ..plan() }, "not_before"),
            (CallbackPlan { max_attempts: 0, ..plan() }, "callback_attempts"),
            (CallbackPlan { max_attempts: 11, ..plan() }, "callback_attempts"),
        ] {
            let e = bad.validate(1_000).unwrap_err();
            assert_eq!(e.field, field, "{bad:?}: {e}");
        }
    }
}
