//! Keys from the identity provider's JWKS URL, the way API gateways and JWT libraries keep them:
//!
//! - fetched at start; a provider that is down then does not stop the daemon, JWTs are refused
//!   until its keys arrive and the fetch is retried (1 s, doubling, up to the refresh period);
//! - fetched again every refresh period; a failed fetch keeps the keys held;
//! - a token naming a key we do not hold fetches at once (the provider rotated its keys), but at
//!   most once per cooldown, so tokens with made-up key ids cannot flood the provider;
//! - one fetch at a time (single flight): verifications that need fresh keys while a fetch is
//!   under way wait for it instead of starting their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use reqwest::Url;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::https::{check_url, error_chain, https_client};
use super::keys::{self, JwksError, Origin};
use super::{JwksUrl, JwtError};

pub(super) struct RemoteKeys {
    inner: Arc<Inner>,
    /// Ends the refresh task when the verifier goes.
    _stop: DropGuard,
}

struct Inner {
    url: Url,
    /// The URL as logs and errors show it (without a password, should it hold one).
    shown: String,
    opts: JwksUrl,
    client: reqwest::Client,
    keys: RwLock<Arc<JwkSet>>,
    /// Fetches finished, failed ones included: a verification that waited for the lock below
    /// learns from it whether someone fetched meanwhile, and then looks at the keys again
    /// rather than fetching once more.
    fetches: AtomicU64,
    /// Held for the whole of a fetch: the single flight.
    flight: Arc<Mutex<Flight>>,
}

struct Flight {
    /// When a token with an unknown key id last caused a fetch.
    last_on_demand: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
enum Trigger {
    Start,
    Scheduled,
    UnknownKid,
    Manual,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Scheduled => "scheduled",
            Trigger::UnknownKid => "unknown_kid",
            Trigger::Manual => "manual",
        }
    }
}

const REFRESH_TOTAL: &str = "switchboard_auth_jwks_refresh_total";

impl RemoteKeys {
    pub(super) fn start(opts: &JwksUrl) -> Result<RemoteKeys, JwtError> {
        let url = check_url(&opts.url).map_err(JwtError::Url)?;
        let client = https_client(opts.ca_file.as_deref(), opts.timeout).map_err(JwtError::CaFile)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| JwtError::NoRuntime)?;
        let mut shown = url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        let inner = Arc::new(Inner {
            url,
            shown: shown.to_string(),
            opts: opts.clone(),
            client,
            keys: RwLock::new(Arc::new(JwkSet { keys: Vec::new() })),
            fetches: AtomicU64::new(0),
            flight: Arc::new(Mutex::new(Flight { last_on_demand: None })),
        });
        // Taken here, before any token can arrive, and held until the first fetch is done:
        // tokens that come meanwhile wait for that fetch instead of starting another.
        let first = inner.flight.clone().try_lock_owned().expect("a new lock is free");
        let stop = CancellationToken::new();
        let task = stop.clone();
        runtime.spawn({
            let inner = inner.clone();
            async move { task.run_until_cancelled(refresh_loop(inner, first)).await }
        });
        Ok(RemoteKeys { inner, _stop: stop.drop_guard() })
    }

    pub(super) fn current(&self) -> Arc<JwkSet> {
        self.inner.current()
    }

    /// Read before looking at [`RemoteKeys::current`], handed to
    /// [`RemoteKeys::refresh_for_unknown_kid`].
    pub(super) fn fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::SeqCst)
    }

    /// Called when a token names a key not held (`seen` from [`RemoteKeys::fetches`], read
    /// before looking): true if the keys may have changed since, so they are worth another look.
    pub(super) async fn refresh_for_unknown_kid(&self, seen: u64) -> bool {
        let inner = &self.inner;
        let mut flight = inner.flight.lock().await;
        if inner.fetches.load(Ordering::SeqCst) != seen {
            return true;
        }
        if flight.last_on_demand.is_some_and(|t| t.elapsed() < inner.opts.unknown_kid_cooldown) {
            metrics::counter!(REFRESH_TOTAL, "outcome" => "skipped", "trigger" => Trigger::UnknownKid.label())
                .increment(1);
            return false;
        }
        flight.last_on_demand = Some(Instant::now());
        inner.fetch(&mut flight, Trigger::UnknownKid).await.is_ok()
    }

    /// A fetch now, after any under way.
    pub(super) async fn refresh_now(&self) -> Result<usize, JwksError> {
        let mut flight = self.inner.flight.lock().await;
        self.inner.fetch(&mut flight, Trigger::Manual).await
    }
}

async fn refresh_loop(inner: Arc<Inner>, mut first: OwnedMutexGuard<Flight>) {
    let mut ok = inner.fetch(&mut first, Trigger::Start).await.is_ok();
    drop(first);
    let mut failures = 0u32;
    loop {
        failures = if ok { 0 } else { failures.saturating_add(1) };
        let wait = if ok { inner.opts.refresh } else { retry_after(failures).min(inner.opts.refresh) };
        tokio::time::sleep(wait).await;
        let mut flight = inner.flight.lock().await;
        ok = inner.fetch(&mut flight, Trigger::Scheduled).await.is_ok();
    }
}

/// 1 s after the first failure, doubling.
fn retry_after(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.saturating_sub(1).min(12))
}

impl Inner {
    fn current(&self) -> Arc<JwkSet> {
        self.keys.read().expect("jwks").clone()
    }

    /// One fetch; the `Flight` borrow proves the caller holds the single-flight lock.
    async fn fetch(&self, _flight: &mut Flight, trigger: Trigger) -> Result<usize, JwksError> {
        let result = self.get().await;
        let outcome = match &result {
            Ok(set) => {
                let ids = |s: &JwkSet| s.keys.iter().map(|k| k.common.key_id.clone()).collect::<Vec<_>>();
                let previous = std::mem::replace(&mut *self.keys.write().expect("jwks"), Arc::new(set.clone()));
                if ids(&previous) != ids(set) {
                    let kids: Vec<String> = ids(set).into_iter().map(Option::unwrap_or_default).collect();
                    tracing::info!(
                        message = "Fetched the identity provider's signing keys.",
                        url = %self.shown,
                        kids = ?kids,
                        trigger = trigger.label(),
                    );
                }
                metrics::gauge!("switchboard_auth_jwks_keys").set(set.keys.len() as f64);
                "ok"
            }
            Err(error) if self.current().keys.is_empty() => {
                tracing::warn!(
                    message = "Could not fetch the identity provider's signing keys (JWKS); JWTs are refused until they are fetched. Retrying.",
                    %error,
                    trigger = trigger.label(),
                );
                "error"
            }
            Err(error) => {
                tracing::warn!(
                    message = "Could not refresh the identity provider's signing keys (JWKS); keeping the previous keys.",
                    %error,
                    trigger = trigger.label(),
                );
                "error"
            }
        };
        metrics::counter!(REFRESH_TOTAL, "outcome" => outcome, "trigger" => trigger.label()).increment(1);
        // After the keys are stored: whoever sees the new count sees the new keys.
        self.fetches.fetch_add(1, Ordering::SeqCst);
        result.map(|set| set.keys.len())
    }

    async fn get(&self) -> Result<JwkSet, JwksError> {
        let failed =
            |e: reqwest::Error| JwksError::Fetch { url: self.shown.clone(), message: error_chain(&e.without_url()) };
        let mut response = self
            .client
            .get(self.url.clone())
            .timeout(self.opts.timeout)
            .header(reqwest::header::ACCEPT, "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(failed)?;
        if !response.status().is_success() {
            return Err(JwksError::Status { url: self.shown.clone(), status: response.status().as_u16() });
        }
        let max = self.opts.max_bytes;
        let too_large = || JwksError::TooLarge { url: self.shown.clone(), max };
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        // Read in pieces, so a provider (or whatever answers in its place) that sends without end
        // costs at most `max_bytes` of memory.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        keys::parse(&body, &self.shown, Origin::Url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_one_second() {
        let secs: Vec<u64> = (1..=5).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16]);
        assert_eq!(retry_after(u32::MAX), Duration::from_secs(4096));
    }
}
