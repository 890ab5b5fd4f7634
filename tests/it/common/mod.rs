//! What the tests share: the real peers of `switchboard-testkit`, and the helpers that start and
//! drive Switchboard itself (in-process instances, desktops, web chat visitors, email config).

pub mod crm;
pub mod email;
pub mod server;
pub mod sms;
pub mod webchat;

pub use crm::AuthedCrm;
pub use server::*;
pub use sms::*;
pub use switchboard_testkit::*;
pub use webchat::*;
