//! Whether an agent's reply reached the customer, as the channel's provider reports it (SMS today).
//!
//! States only ever get worse or more final: a late "sent" never overwrites "failed", and the
//! parts of a long text roll up to the worst of them. So the order of [`DeliveryState::rank`] is
//! the whole merge rule, and reports arriving out of order or twice change nothing.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryState {
    /// The provider took it (Twilio `queued`/`accepted`, Kannel `202`, SMPP `submit_sm_resp`).
    Accepted,
    /// Handed on to the carrier.
    Sent,
    /// The handset has it.
    Delivered,
    /// The carrier gave up (expired, rejected by the handset's network).
    Undelivered,
    /// The provider refused or lost it.
    Failed,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 5] = [
        DeliveryState::Accepted,
        DeliveryState::Sent,
        DeliveryState::Delivered,
        DeliveryState::Undelivered,
        DeliveryState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Accepted => "accepted",
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Undelivered => "undelivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// A report applies only if it ranks higher than what is recorded.
    pub fn rank(self) -> u8 {
        self as u8 + 1
    }

    pub fn is_final(self) -> bool {
        matches!(self, DeliveryState::Delivered | DeliveryState::Undelivered | DeliveryState::Failed)
    }

    /// The state of a message sent as several parts: the worst final state once any part failed,
    /// `delivered` only when every part is, otherwise how far the least advanced part got.
    pub fn roll_up(parts: &[Option<DeliveryState>]) -> Option<DeliveryState> {
        if parts.is_empty() {
            return None;
        }
        let worst_final = parts.iter().flatten().copied().filter(|s| *s > DeliveryState::Delivered).max();
        if worst_final.is_some() {
            return worst_final;
        }
        parts.iter().copied().min().flatten().or(Some(DeliveryState::Accepted))
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The delivery of one reply, as the thread shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub state: DeliveryState,
    /// The provider's error code (Twilio `ErrorCode`, SMPP `err:`), empty when none.
    pub code: String,
    /// Segments the text was sent as (SMS), 0 when not known.
    pub segments: u32,
}

#[cfg(test)]
mod tests {
    use super::DeliveryState::{self, *};

    #[test]
    fn names_round_trip_and_ranks_order_by_finality() {
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(s));
        }
        assert!(Accepted.rank() < Sent.rank() && Sent.rank() < Delivered.rank());
        assert!(Delivered.rank() < Undelivered.rank() && Undelivered.rank() < Failed.rank());
        assert!(!Sent.is_final() && Delivered.is_final() && Failed.is_final());
    }

    #[test]
    fn parts_roll_up_to_the_worst_final_state_or_the_least_advanced() {
        let cases: &[(&[Option<DeliveryState>], Option<DeliveryState>)] = &[
            (&[], None),
            (&[Some(Delivered)], Some(Delivered)),
            (&[Some(Delivered), Some(Delivered)], Some(Delivered)),
            (&[Some(Delivered), Some(Sent)], Some(Sent)),
            (&[Some(Delivered), None], Some(Accepted)),
            (&[None, None], Some(Accepted)),
            (&[Some(Delivered), Some(Failed)], Some(Failed)),
            (&[Some(Sent), Some(Undelivered)], Some(Undelivered)),
            (&[Some(Undelivered), Some(Failed), Some(Delivered)], Some(Failed)),
        ];
        for (parts, want) in cases {
            assert_eq!(DeliveryState::roll_up(parts), *want, "{parts:?}");
        }
    }
}
