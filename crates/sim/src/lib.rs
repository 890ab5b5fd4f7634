//! `switchboard simulate`: what happens to service level if the routing changes. The real routing
//! functions (the same Redis Functions library the daemon loads) run on a private Redis the
//! simulation starts, on a virtual clock, against a day of arrivals and agent behaviour; the same
//! seed gives the same day, so two configurations compare side by side.
//!
//! - [`scenario`]: the arrivals and behaviour (`scenario.toml`), checked with errors naming the field.
//! - [`recorded`]: a recorded day (`switchboard crm export`) to replay.
//! - [`run`]: one simulated day against one configuration.
//! - [`figures`]: service level, ASA, abandon rate, occupancy, per queue and agent.
//! - [`erlang`]: the textbook it is validated against (Erlang C and Erlang A).
//! - [`report`]: Markdown, CSV and the chart of the day ([`chart`]: plain SVG).

pub mod chart;
pub mod erlang;
pub mod figures;
pub mod recorded;
mod redis;
pub mod report;
pub mod run;
pub mod scenario;
pub mod validation;

pub use figures::{Figures, QueueResult, figures};
pub use run::{Arrival, Center, Outcome, SimError, draw_arrivals, run, run_on_own_runtime};
pub use scenario::{Scenario, ScenarioError};
