//! The gRPC trust boundary: one tower layer in front of every service. It authenticates the
//! caller, checks the RPC's rule in the service's table, and hands the [`Principal`] to the
//! handler in the request's extensions; a refused call never reaches a handler, so it changes
//! nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use switchboard_model::access::{Principal, Role};
use tonic::Status;
use tower::{Layer, Service};

use crate::authenticator::{AuthError, Authenticator};
use crate::throttle::Throttle;

/// Who may call one RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Anyone (gRPC health: load balancers and probes).
    Anonymous,
    /// The listed roles.
    Roles(&'static [Role]),
    /// An agent, whose credential may also come inside the stream (the desktop's login
    /// message); a credential in the metadata must still be valid and an agent's.
    AgentLogin,
}

/// The table of one server: every RPC path (`/package.Service/Method`) with its rule. A path
/// not in the table needs a valid credential of any role (the server then answers for it,
/// usually `UNIMPLEMENTED`).
#[derive(Debug, Default, Clone)]
pub struct Policy {
    rules: HashMap<String, Rule>,
    /// Rules for whole services (`/package.Service/`), e.g. reflection.
    prefixes: Vec<(String, Rule)>,
}

impl Policy {
    pub fn rule(mut self, path: &str, rule: Rule) -> Self {
        self.rules.insert(path.to_string(), rule);
        self
    }

    pub fn service(mut self, prefix: &str, rule: Rule) -> Self {
        self.prefixes.push((prefix.to_string(), rule));
        self
    }

    pub fn lookup(&self, path: &str) -> Option<&Rule> {
        self.rules.get(path).or_else(|| self.prefixes.iter().find(|(p, _)| path.starts_with(p)).map(|(_, r)| r))
    }

    /// Every path with a rule, for tests that walk the table.
    pub fn paths(&self) -> impl Iterator<Item = (&str, &Rule)> {
        self.rules.iter().map(|(p, r)| (p.as_str(), r))
    }

    /// Whether `role` may call `path`.
    pub fn allows(&self, path: &str, role: Role) -> bool {
        match self.lookup(path) {
            Some(Rule::Anonymous) | None => true,
            Some(Rule::Roles(roles)) => roles.contains(&role),
            Some(Rule::AgentLogin) => role == Role::Agent,
        }
    }
}

#[derive(Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

type Limiter = governor::DefaultKeyedRateLimiter<String>;

struct Shared {
    auth: Arc<Authenticator>,
    policy: Policy,
    throttle: Arc<Throttle>,
    /// Requests per caller (by `role:name`), so one key cannot flood the rest.
    rate: Option<Limiter>,
    /// How often open streams check their credential again.
    recheck: std::time::Duration,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>, policy: Policy) -> AuthLayer {
        AuthLayer {
            shared: Arc::new(Shared {
                auth,
                policy,
                throttle: Arc::default(),
                rate: None,
                recheck: crate::lapse::RECHECK,
            }),
        }
    }

    /// How often open streams check their credential again (tests shorten it).
    pub fn with_stream_recheck(self, every: std::time::Duration) -> AuthLayer {
        let shared = Arc::into_inner(self.shared).expect("configured before use");
        AuthLayer { shared: Arc::new(Shared { recheck: every, ..shared }) }
    }

    /// Failed attempts from one address allowed a minute before each further one is slowed down.
    pub fn with_failures_before_backoff(self, free: u32) -> AuthLayer {
        let shared = Arc::into_inner(self.shared).expect("configured before use");
        AuthLayer { shared: Arc::new(Shared { throttle: Arc::new(Throttle::with_free(free)), ..shared }) }
    }

    /// At most `per_second` calls a second per caller, `burst` at once; 0 means no limit.
    pub fn with_rate(self, per_second: u32, burst: u32) -> AuthLayer {
        let shared = Arc::into_inner(self.shared).expect("configured before use");
        let rate = std::num::NonZeroU32::new(per_second).map(|r| {
            let burst = std::num::NonZeroU32::new(burst).unwrap_or(r);
            governor::RateLimiter::keyed(governor::Quota::per_second(r).allow_burst(burst))
        });
        AuthLayer { shared: Arc::new(Shared { rate, ..shared }) }
    }

    /// Failed attempts per address: handlers that check credentials themselves (the desktop's
    /// login message) count theirs here too.
    pub fn throttle(&self) -> Arc<Throttle> {
        self.shared.throttle.clone()
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner, shared: self.shared.clone() }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call; the fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        // Only the head is looked at (and held across the check); the body stays untouched.
        let (mut parts, body) = req.into_parts();
        Box::pin(async move {
            match shared.check(&parts).await {
                Ok(Some(p)) => {
                    // Streams end when this credential does (lapse.rs).
                    if let Some(v) = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
                        let v = v.trim();
                        if !v.is_empty() {
                            parts.extensions.insert(crate::lapse::Lapse::new(shared.auth.clone(), v, shared.recheck));
                        }
                    }
                    parts.extensions.insert(p);
                    inner.call(http::Request::from_parts(parts, body)).await
                }
                Ok(None) => inner.call(http::Request::from_parts(parts, body)).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

impl Shared {
    async fn check(&self, req: &http::request::Parts) -> Result<Option<Principal>, Status> {
        let path = req.uri.path();
        let rule = self.policy.lookup(path);
        if rule == Some(&Rule::Anonymous) {
            return Ok(None);
        }
        let peer = peer_ip(&req.extensions).map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        let peer = format!("ip:{peer}");
        // A backing-off address still gets in with a valid credential: many agents may share one
        // address (NAT), and one of them guessing must not lock the others out.
        let principal = match self.auth.authenticate(&req.headers).await {
            Ok(p) => p,
            Err(AuthError::Unavailable) => return Err(Status::unavailable("credential check unavailable; retry")),
            Err(e) => {
                let blocked = self.throttle.blocked(&peer);
                let block = self.throttle.failure(&peer);
                tracing::warn!(message = "Refused a call with an invalid credential.", rpc = %path, peer = %peer.trim_start_matches("ip:"), backoff_secs = block.map(|b| b.as_secs()));
                if let Some(wait) = blocked {
                    metrics::counter!("switchboard_auth_failures_total", "reason" => "throttled").increment(1);
                    return Err(Status::resource_exhausted(format!(
                        "too many failed authentication attempts from this address; retry in {} s",
                        wait.as_secs().max(1)
                    )));
                }
                metrics::counter!("switchboard_auth_failures_total", "reason" => "invalid").increment(1);
                return Err(Status::unauthenticated(e.to_string()));
            }
        };
        let principal = principal.or_else(|| client_cert(&req.extensions).and_then(|c| self.auth.certificate(&c)));
        let Some(p) = principal else {
            if rule == Some(&Rule::AgentLogin) {
                return Ok(None);
            }
            metrics::counter!("switchboard_auth_failures_total", "reason" => "missing").increment(1);
            return Err(Status::unauthenticated(AuthError::Missing.to_string()));
        };
        if let Some(rate) = &self.rate
            && rate.check_key(&p.actor()).is_err()
        {
            metrics::counter!("switchboard_limit_refusals_total", "limit" => "rate_per_caller").increment(1);
            return Err(Status::resource_exhausted("too many requests from this caller; slow down"));
        }
        if !self.policy.allows(path, p.role) {
            metrics::counter!("switchboard_auth_failures_total", "reason" => "denied").increment(1);
            tracing::info!(message = "Refused a call the caller's role does not allow.", rpc = %path, caller = %p.actor());
            return Err(Status::permission_denied(format!(
                "role {} may not call {}",
                p.role,
                path.trim_start_matches('/')
            )));
        }
        Ok(Some(p))
    }
}

/// The caller's address, over plain TCP or TLS.
pub fn peer_ip(ext: &http::Extensions) -> Option<IpAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    ext.get::<TcpConnectInfo>()
        .or_else(|| ext.get::<TlsConnectInfo<TcpConnectInfo>>().map(TlsConnectInfo::get_ref))
        .and_then(TcpConnectInfo::remote_addr)
        .map(|a| a.ip())
}

/// The client's certificate (already verified against the client CA by the TLS handshake).
fn client_cert(ext: &http::Extensions) -> Option<rustls::pki_types::CertificateDer<'static>> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    ext.get::<TlsConnectInfo<TcpConnectInfo>>()?.peer_certs()?.first().cloned()
}

/// The principal the layer put on a request.
pub fn principal<T>(req: &tonic::Request<T>) -> Result<&Principal, Status> {
    req.extensions().get::<Principal>().ok_or_else(|| Status::unauthenticated(AuthError::Missing.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_allow_exactly_their_roles() {
        let p = Policy::default()
            .rule("/s.A/Put", Rule::Roles(&[Role::Admin]))
            .rule("/s.A/Login", Rule::AgentLogin)
            .service("/grpc.health.v1.Health/", Rule::Anonymous);
        assert!(p.allows("/s.A/Put", Role::Admin));
        assert!(!p.allows("/s.A/Put", Role::Supervisor));
        assert!(p.allows("/s.A/Login", Role::Agent));
        assert!(!p.allows("/s.A/Login", Role::Admin));
        assert_eq!(p.lookup("/grpc.health.v1.Health/Check"), Some(&Rule::Anonymous));
        assert_eq!(p.lookup("/s.A/Other"), None);
    }
}
