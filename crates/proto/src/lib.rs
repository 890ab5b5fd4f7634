//! The wire contracts, generated from `proto/`: `switchboard.v1` (the routing API: desktops,
//! supervisors, admin, channels), `switchboard.cti.v1` (the CTI hook for telephony systems) and
//! `switchboard.crm.v1` (the CRM store Switchboard logs to).
//!
//! Who may depend on this crate: the daemon's `api/` (the server of `switchboard.v1`) and its CRM
//! client, the CRM store (the server of `switchboard.crm.v1`), and clients (the CLI, the
//! benchmark, tests). The routing engine and the domain model never do: they speak domain types.

pub mod codec;

/// `switchboard.v1`: the routing API.
#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("switchboard.v1");
    /// For reflection on the routing API's listener.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("switchboard_descriptor");
}

/// `switchboard.crm.v1`: the CRM store.
#[allow(clippy::all, clippy::pedantic)]
pub mod crm {
    tonic::include_proto!("switchboard.crm.v1");
    /// For reflection on the CRM store's listener.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("crm_descriptor");
}

/// `switchboard.cti.v1`: the CTI hook telephony systems call.
#[allow(clippy::all, clippy::pedantic)]
pub mod cti {
    tonic::include_proto!("switchboard.cti.v1");
    /// For reflection on the routing API's listener, which serves the hook too.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cti_descriptor");
}
