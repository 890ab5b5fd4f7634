//! Who may call: roles, the principal a credential stands for, API key records and the hashes
//! that keep secrets out of storage.
//!
//! Pure: the engine stores [`ApiKeyRecord`]s, `switchboard-auth` turns credentials into
//! [`Principal`]s, the API checks what a principal may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ValidationError;

/// What a caller is for. Each RPC allows a fixed set of roles (the API's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// One agent's desktop: its own session and its own interactions.
    Agent,
    /// Figures and interventions, optionally limited to some queues.
    Supervisor,
    /// Agents, queues and keys; everything a supervisor may do.
    Admin,
    /// Channel adapters and integrations: the `Interactions` API.
    Channel,
    /// The CTI hook of a telephony system.
    Telephony,
    /// The daemon as a client of a CRM store, and the CRM store's own callers.
    Crm,
}

impl Role {
    pub const ALL: [Role; 6] = [Role::Agent, Role::Supervisor, Role::Admin, Role::Channel, Role::Telephony, Role::Crm];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::Channel => "channel",
            Role::Telephony => "telephony",
            Role::Crm => "crm",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Role, ValidationError> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            ValidationError::new(
                "role",
                format!("{s:?} is not a role (agent, supervisor, admin, channel, telephony, crm)"),
            )
        })
    }
}

/// How a caller proved who it is; shown in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A key created at runtime (`Admin.CreateApiKey`), stored hashed in Redis.
    ApiKey,
    /// A key listed in the config file or environment.
    ConfigKey,
    /// A JWT from the operator's identity provider.
    Jwt,
    /// An agent's own id and token.
    AgentToken,
    /// A client certificate (mutual TLS).
    Certificate,
    /// The process itself (the daemon calling its built-in CRM).
    Internal,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Key name, JWT subject or agent id: who did it, for the audit trail and logs.
    pub name: String,
    pub role: Role,
    /// The queues a supervisor is limited to; empty means every queue.
    pub queues: Vec<String>,
    /// For the agent role: the agent it acts as.
    pub agent_id: String,
    pub credential: CredentialKind,
}

impl Principal {
    /// Whether this caller may see and change what is in `queue`.
    pub fn covers_queue(&self, queue: &str) -> bool {
        self.queues.is_empty() || self.queues.iter().any(|q| q == queue)
    }

    /// Whether the caller's view is limited to some queues.
    pub fn is_scoped(&self) -> bool {
        !self.queues.is_empty()
    }

    /// `role:name`, how logs and audit events name the caller.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role, self.name)
    }
}

/// Who made a change, as the audit trail records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `role:name` of the principal.
    pub who: String,
    /// The caller's address, when known.
    #[serde(default)]
    pub from: String,
}

impl Actor {
    pub fn new(p: &Principal, from: Option<std::net::IpAddr>) -> Actor {
        Actor { who: p.actor(), from: from.map(|ip| ip.to_string()).unwrap_or_default() }
    }
}

/// A runtime API key as stored: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public part of the key (`sbk_<id>_<secret>`), how it is found and revoked.
    pub id: String,
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default)]
    pub agent_id: String,
    /// [`secret_hash`] of the whole key.
    pub hash: String,
    pub created_ms: u64,
    #[serde(default)]
    pub created_by: String,
}

impl ApiKeyRecord {
    pub fn principal(&self) -> Principal {
        Principal {
            name: self.name.clone(),
            role: self.role,
            queues: self.queues.clone(),
            agent_id: self.agent_id.clone(),
            credential: CredentialKind::ApiKey,
        }
    }
}

/// Checks a key's name, role binding and scope as given by an operator.
pub fn validate_key_spec(name: &str, role: Role, queues: &[String], agent_id: &str) -> Result<(), ValidationError> {
    crate::validate_id("name", name)?;
    for (i, q) in queues.iter().enumerate() {
        crate::validate_id(&format!("queues[{i}]"), q)?;
    }
    if queues.len() > 100 {
        return Err(ValidationError::new("queues", "at most 100"));
    }
    match role {
        Role::Agent => crate::validate_id("agent_id", agent_id)?,
        _ if !agent_id.is_empty() => {
            return Err(ValidationError::new("agent_id", "only an agent key is bound to an agent"));
        }
        _ => {}
    }
    if !queues.is_empty() && role != Role::Supervisor {
        return Err(ValidationError::new("queues", "only a supervisor key is limited to queues"));
    }
    Ok(())
}

/// SHA-256 (hex) of a high-entropy secret: API keys are random, so a fast hash is enough for
/// storage and lookups never see the secret.
pub fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// How an agent's token is kept: hashed with the agent's id, so equal tokens of two agents
/// differ at rest and a copy of Redis (or its AOF file) does not hold usable tokens.
pub fn agent_token_hash(agent_id: &str, token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"switchboard-agent-token\0");
    h.update(agent_id.as_bytes());
    h.update(b"\0");
    h.update(token.as_bytes());
    hex(&h.finalize())
}

/// Equality that takes the same time wherever the first difference is.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        let e = "root".parse::<Role>().unwrap_err();
        assert!(e.to_string().contains("\"root\" is not a role"), "{e}");
    }

    #[test]
    fn agent_token_hashes_differ_per_agent_and_never_hold_the_token() {
        let a = agent_token_hash("ann", "secret-token");
        let b = agent_token_hash("bob", "secret-token");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(!a.contains("secret"));
        assert_eq!(a, agent_token_hash("ann", "secret-token"));
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }

    #[test]
    fn key_specs_bind_agents_and_queues_only_where_they_mean_something() {
        assert!(validate_key_spec("ops", Role::Admin, &[], "").is_ok());
        assert!(validate_key_spec("desk", Role::Agent, &[], "ann").is_ok());
        assert!(validate_key_spec("desk", Role::Agent, &[], "").unwrap_err().to_string().starts_with("agent_id"));
        let q = vec!["sales".to_string()];
        assert!(validate_key_spec("lead", Role::Supervisor, &q, "").is_ok());
        assert!(validate_key_spec("x", Role::Channel, &q, "").unwrap_err().to_string().starts_with("queues"));
        assert!(validate_key_spec("x", Role::Admin, &[], "ann").unwrap_err().to_string().starts_with("agent_id"));
    }

    #[test]
    fn a_supervisor_scope_covers_only_its_queues() {
        let p = Principal {
            name: "lead".into(),
            role: Role::Supervisor,
            queues: vec!["sales".into()],
            agent_id: String::new(),
            credential: CredentialKind::ConfigKey,
        };
        assert!(p.covers_queue("sales"));
        assert!(!p.covers_queue("support"));
        assert!(Principal { queues: vec![], ..p }.covers_queue("support"));
    }
}
