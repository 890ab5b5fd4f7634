//! The kinds of events in the interaction log and of pushes to agent desktops, with their wire
//! names: one enum each. The engine writes these names into its Lua library (a misspelt kind is
//! an error when the function runs, not a silent new kind), and every reader parses them here, so
//! renaming one is a compile error in every reader.

use std::fmt;

macro_rules! wire_kinds {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name on the wire (in Redis, in the CRM's log).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($wire => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_kinds! {
    /// What an entry of the interaction log (the `events` stream, and the CRM's log) records.
    EventKind {
        Created = "created",
        Queued = "queued",
        Offered = "offered",
        Accepted = "accepted",
        Rejected = "rejected",
        Missed = "missed",
        Revoked = "revoked",
        Transferred = "transferred",
        Overflowed = "overflowed",
        Escalated = "escalated",
        /// An overflow step whose target queue is gone or does not take the channel.
        EscalationFailed = "escalation_failed",
        Moved = "moved",
        ExclusionsCleared = "exclusions_cleared",
        Reprioritized = "reprioritized",
        MessageIn = "message_in",
        MessageOut = "message_out",
        /// A channel's note about the conversation (e.g. a bounce).
        MessageSystem = "message_system",
        WrapUp = "wrap_up",
        Disposition = "disposition",
        Completed = "completed",
        EndedByCustomer = "ended_by_customer",
        Abandoned = "abandoned",
        Presence = "presence",
        Login = "login",
        Disconnected = "disconnected",
        InstanceLost = "instance_lost",
        InstanceRestarted = "instance_restarted",
        /// No instance could heartbeat for a whole grace period (Redis was out of reach): for
        /// one grace period after, leases and offers that come due are not held against anyone.
        Outage = "outage",
        AgentCreated = "agent_created",
        AgentUpdated = "agent_updated",
        AgentDeleted = "agent_deleted",
        QueueCreated = "queue_created",
        QueueUpdated = "queue_updated",
        QueueDeleted = "queue_deleted",
        /// A calendar (opening hours) was created, changed or deleted.
        CalendarCreated = "calendar_created",
        CalendarUpdated = "calendar_updated",
        CalendarDeleted = "calendar_deleted",
        /// A queue closed (its calendar says so): nothing waiting in it is offered until it opens;
        /// its closed rules applied to what was waiting (each move an `overflowed` event).
        QueueClosed = "queue_closed",
        /// A closed queue opened: what waits in it is offered again.
        QueueOpened = "queue_opened",
        /// A runtime API key was created (its id, name, role and scope; never the secret).
        ApiKeyCreated = "api_key_created",
        ApiKeyRevoked = "api_key_revoked",
        /// A desktop session was ended by a supervisor.
        Logout = "logout",
        /// Switchboard erased its copy of the interaction (right to erasure): the CRM blanks what
        /// it holds of it and whatever of it arrives later.
        Erased = "erased",
        /// Voice: the call rings at the agent's phone.
        Ringing = "ringing",
        /// Voice: the caller was put on hold, and taken back.
        Held = "held",
        Retrieved = "retrieved",
        /// Voice: the call was hung up (cause, who, talk and hold time).
        Released = "released",
        /// Voice: a third party joined the call, or an attended transfer was completed on the phone.
        Conferenced = "conferenced",
        /// A waiting caller asked to be called back (or an IVR created a callback): it keeps its
        /// place and priority.
        CallbackRequested = "callback_requested",
        /// An agent accepted a callback: the telephony system is asked to dial the customer
        /// from the agent's phone (number, call id, attempt).
        Dialing = "dialing",
        /// The customer picked up a callback's call.
        CallbackConnected = "callback_connected",
        /// A callback's attempt reached nobody (no answer, busy, failed, never reported): tried
        /// again after the retry delay, or, the last attempt, completed as `callback_failed`.
        CallbackAttemptFailed = "callback_attempt_failed",
        /// An agent's phone changed state (registered, unregistered, dnd, busy).
        Phone = "phone",
        /// A reply's delivery state changed (SMS: accepted, sent, delivered, undelivered, failed).
        Delivery = "delivery",
        /// A customer opted out of texts from one of our numbers (STOP), or back in (START).
        OptOut = "opt_out",
    }
}

impl EventKind {
    /// Events after which a customer's contact history (the screen-pop) reads differently.
    pub fn changes_history(self) -> bool {
        matches!(self, EventKind::Created | EventKind::Completed | EventKind::Abandoned)
    }
}

wire_kinds! {
    /// What the routing engine tells an agent's desktop session.
    PushKind {
        Offer = "offer",
        Revoked = "revoked",
        Assigned = "assigned",
        /// A customer message joined a conversation the agent holds.
        Message = "message",
        Typing = "typing",
        Ended = "ended",
        Presence = "presence",
        /// The session is over (replaced, logged out, stale).
        Closed = "closed",
        /// Voice: the call the agent holds changed (ringing, talking, held) or their phone did.
        Call = "call",
        /// A reply's delivery state changed (SMS).
        Delivery = "delivery",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_from_its_wire_name_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert!(seen.insert(k.as_str()), "{k} twice");
        }
        for &k in PushKind::ALL {
            assert_eq!(PushKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("offerd"), None);
        assert_eq!(PushKind::parse(""), None);
    }
}
