//! Streams outlive the check that let them in: a supervisor's watch, a telephony system's event
//! stream or a desktop session may stay open for days. The layer hands each call the credential
//! it came with ([`Lapse`]); a stream's handler ends the stream when that credential stops being
//! valid — a revoked key, an expired JWT, a changed agent token — as a new call with it would be
//! refused. Config keys only lapse with a restart.

use std::sync::Arc;
use std::time::Duration;

use crate::authenticator::{AuthError, Authenticator};

/// How often an open stream's credential is checked again. The check is cached like any other
/// (`auth.cache_secs`), so a revoked credential ends its streams within this plus that.
pub const RECHECK: Duration = Duration::from_secs(5);

/// The credential a call was let in with.
#[derive(Clone)]
pub struct Lapse {
    auth: Arc<Authenticator>,
    /// The `authorization` value: kept in memory with the stream, never logged.
    value: Arc<str>,
    every: Duration,
}

impl std::fmt::Debug for Lapse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lapse").field("every", &self.every).finish_non_exhaustive()
    }
}

impl Lapse {
    pub(crate) fn new(auth: Arc<Authenticator>, value: &str, every: Duration) -> Lapse {
        Lapse { auth, value: value.into(), every }
    }

    /// Resolves once the credential is no longer valid. A check that cannot be made (Redis
    /// unavailable) keeps the stream: the outage is not the caller's doing.
    pub async fn lapsed(&self) {
        loop {
            tokio::time::sleep(self.every).await;
            match self.auth.authenticate_value(&self.value).await {
                Err(AuthError::Invalid | AuthError::Missing) => return,
                Err(AuthError::Unavailable) | Ok(_) => {}
            }
        }
    }
}

/// Resolves when the request's credential lapses; never for a call that brought none (anonymous,
/// or a desktop that logs in with its first message).
pub fn lapsed<T>(req: &tonic::Request<T>) -> LapseFuture {
    LapseFuture(req.extensions().get::<Lapse>().cloned())
}

/// What [`lapsed`] waits on, detached from the request so a handler can keep it after taking the
/// request apart.
#[derive(Debug, Clone, Default)]
pub struct LapseFuture(Option<Lapse>);

impl LapseFuture {
    pub async fn wait(self) {
        match self.0 {
            Some(l) => l.lapsed().await,
            None => std::future::pending().await,
        }
    }
}
