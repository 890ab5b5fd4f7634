//! `[tls]`: TLS on the gRPC and HTTP listeners (certificates reloaded when their files change),
//! client certificates that stand for a role, and the warning for plain text off loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use switchboard_auth::{Authenticator, ServerTls, TlsError, TlsOptions};

use crate::model::Role;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key_file`, both listeners speak TLS only.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// PEM CA whose client certificates are accepted (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate (only with `client_ca_file`).
    pub require_client_cert: bool,
    /// How often the files are checked for a renewed certificate.
    pub reload_secs: u64,
    /// Client certificates whose subject CN stands for a role (when a call carries no key).
    pub client_roles: Vec<ClientRole>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            require_client_cert: false,
            reload_secs: 10,
            client_roles: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRole {
    pub common_name: String,
    pub role: Role,
    #[serde(default)]
    pub queues: Vec<String>,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }

    pub fn validate(&self) -> Result<(), (String, String)> {
        let e = |k: &str, m: &str| Err((format!("tls.{k}"), m.to_string()));
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => return e("key_file", "is required with cert_file"),
            (None, Some(_)) => return e("cert_file", "is required with key_file"),
            _ => {}
        }
        if self.client_ca_file.is_some() && !self.enabled() {
            return e("client_ca_file", "client certificates need TLS: set cert_file and key_file");
        }
        if self.require_client_cert && self.client_ca_file.is_none() {
            return e("require_client_cert", "needs client_ca_file");
        }
        if !self.client_roles.is_empty() && self.client_ca_file.is_none() {
            return e("client_roles", "needs client_ca_file");
        }
        if !(1..=3600).contains(&self.reload_secs) {
            return e("reload_secs", "must be 1..=3600");
        }
        for (i, r) in self.client_roles.iter().enumerate() {
            if r.common_name.is_empty() {
                return Err((format!("tls.client_roles[{i}].common_name"), "is required".into()));
            }
            crate::model::access::validate_key_spec("name", r.role, &r.queues, "")
                .map_err(|e| (format!("tls.client_roles[{i}].{}", e.field), e.message))?;
        }
        Ok(())
    }

    /// The listener's TLS, or `None` for plain text.
    pub fn server(&self, alpn: &[&[u8]]) -> Result<Option<Arc<ServerTls>>, TlsError> {
        let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) else { return Ok(None) };
        let opts = TlsOptions {
            cert_file: cert.clone(),
            key_file: key.clone(),
            client_ca_file: self.client_ca_file.clone(),
            require_client_cert: self.require_client_cert,
        };
        ServerTls::load(opts, alpn).map(Some)
    }

    /// The HTTP listener's TLS: the same certificate, but no client certificates asked for — its
    /// callers are visitors' browsers and probes, and no HTTP route takes a role from one.
    pub fn server_http(&self) -> Result<Option<Arc<ServerTls>>, TlsError> {
        TlsConfig { client_ca_file: None, require_client_cert: false, ..self.clone() }.server(&[b"http/1.1"])
    }

    pub fn reload_every(&self) -> Duration {
        Duration::from_secs(self.reload_secs)
    }

    pub fn map_client_roles(&self, mut auth: Authenticator) -> Authenticator {
        for r in &self.client_roles {
            auth = auth.with_client_cert(&r.common_name, r.role, r.queues.clone());
        }
        auth
    }
}

/// Plain text is for loopback and tests: anywhere else, say so at start.
pub fn warn_if_plain(what: &str, addr: SocketAddr, tls: bool) {
    if !tls && !addr.ip().is_loopback() {
        tracing::warn!(
            message = "Listening in plain text on a non-loopback address: credentials and conversations cross the network unencrypted. Set [tls] cert_file and key_file.",
            listener = what,
            %addr
        );
    }
}
