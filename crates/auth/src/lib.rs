//! Switchboard's trust boundary, shared by the daemon and the standalone CRM store.
//!
//! - [`Authenticator`]: a request's `authorization` metadata → [`Principal`]: config keys, runtime
//!   API keys (`sbk_<id>_<secret>`, found through a [`CredentialStore`]), an agent's id and token
//!   (HTTP Basic), JWTs checked against the operator's JWKS (a file or the identity provider's URL).
//! - [`AuthLayer`] + [`Policy`]: one table per server, every RPC × role → allowed or
//!   `PERMISSION_DENIED`; refused calls never reach a handler.
//! - [`Throttle`]: backoff after repeated failures.
//! - [`Credential`]: the client side.
//!
//! Secrets are never logged, stored or compared in variable time.

pub mod authenticator;
pub mod client;
pub mod jwt;
pub mod key;
pub mod lapse;
pub mod layer;
pub mod throttle;
pub mod tls;

pub use authenticator::{AuthError, Authenticator, CredentialStore, StaticKey};
pub use client::Credential;
pub use jwt::{
    HttpClientError, JwksError, JwksSource, JwksUrl, JwtError, JwtOptions, JwtVerifier, error_chain, https_client,
    https_client_builder,
};
pub use lapse::{Lapse, LapseFuture, lapsed};
pub use layer::{AuthLayer, Policy, Rule, peer_ip, principal};
pub use switchboard_model::access::{ApiKeyRecord, CredentialKind, Principal, Role};
pub use throttle::Throttle;
pub use tls::{ServerTls, TlsError, TlsOptions};
