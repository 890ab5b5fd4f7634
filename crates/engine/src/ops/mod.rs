//! The engine's operations, an `impl Engine` block per area. Each function call's arguments are a
//! struct next to the call ([`argv`]); what an operation returns is defined beside it and
//! re-exported from the crate root.

pub(crate) mod access;
pub(crate) mod admin;
pub(crate) mod agent;
pub(crate) mod argv;
pub(crate) mod calendars;
pub(crate) mod callbacks;
pub(crate) mod erasure;
mod explain;
pub(crate) mod figures;
pub(crate) mod hours;
pub(crate) mod instances;
pub(crate) mod interactions;
mod limits;
mod outbox;
pub(crate) mod supervisor;
pub(crate) mod voice;

pub use agent::TransferTarget;
pub use erasure::CustomerOf;
pub use explain::{AgentExplanation, InteractionExplanation};
pub use figures::{AgentLoads, QueueFigures};
pub use hours::{ClosedAnswer, HoursCheck, HoursWatch, IfRefused};
pub use instances::{Lease, TimerSweep};
pub use outbox::{LoggedEvent, OUTBOX_GROUP};
pub use supervisor::AgentStatus;
pub use voice::{CallOrder, CallOutcome, call_key};
