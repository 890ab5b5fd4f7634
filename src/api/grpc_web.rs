//! gRPC-Web on the gRPC listener: browsers call the same services as any gRPC client, over
//! HTTP/1.1 or HTTP/2, behind the same [`AuthLayer`](switchboard_auth::AuthLayer) and the same
//! policy table.
//!
//! Three layers stand in front of the auth layer, outermost first (see `server.rs`):
//! 1. [`OriginGateLayer`]: a request whose `Origin` is not one of `server.grpc_web_origins` is
//!    refused with HTTP 403 (a gRPC client reads it as `PERMISSION_DENIED`) — a page of another
//!    origin gets nothing, not even an answer to its preflight.
//! 2. [`cors`]: preflights (`OPTIONS`) are answered here, with no credential and without reaching
//!    the auth layer or any service; the answers to a listed origin carry the CORS headers.
//! 3. `tonic_web::GrpcWebLayer`: a gRPC-Web call becomes a gRPC call (path, metadata and messages
//!    unchanged) and its answer gRPC-Web again, so the auth layer sees exactly what it sees of a
//!    native call and refuses it the same way.
//!
//! Native gRPC clients send no `Origin`: the gate lets them through and CORS adds nothing that
//! matters to them.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{Either, Ready, ready};
use http::header::ORIGIN;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::debug;

/// Request headers a page may send: the credential, gRPC-Web's own, the deadline.
const ALLOW_HEADERS: [&str; 5] = ["authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"];
/// Response headers a page may read: a trailers-only answer (an error) carries the status here.
const EXPOSE_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];
/// How long a browser may reuse a preflight's answer. The gate still checks every request, so an
/// origin taken off the list is refused at once whatever a browser has cached.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The origins as header values, in the form browsers send (the config has normalized them).
pub fn origins(configured: &[String]) -> Arc<[HeaderValue]> {
    configured.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect()
}

/// CORS for the listed origins: preflights answered with the method (POST), the headers above and
/// their lifetime; answers to calls show the gRPC status headers. No `allow-credentials`: the
/// page sends its credential in `authorization` itself, never as a cookie.
pub fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::POST])
        .allow_headers(ALLOW_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSE_HEADERS.map(HeaderName::from_static))
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Refuses (HTTP 403) every request that carries an `Origin` not in the list.
#[derive(Debug, Clone)]
pub struct OriginGateLayer {
    allowed: Arc<[HeaderValue]>,
}

impl OriginGateLayer {
    pub fn new(allowed: Arc<[HeaderValue]>) -> Self {
        OriginGateLayer { allowed }
    }
}

impl<S> Layer<S> for OriginGateLayer {
    type Service = OriginGate<S>;

    fn layer(&self, inner: S) -> OriginGate<S> {
        OriginGate { inner, allowed: self.allowed.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct OriginGate<S> {
    inner: S,
    allowed: Arc<[HeaderValue]>,
}

impl<S, B, ResBody> Service<Request<B>> for OriginGate<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<ResBody>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Every Origin the request carries must be listed (browsers send one; a forged second
        // must not hide behind a listed first).
        let refused = req.headers().get_all(ORIGIN).iter().find(|o| !self.allowed.contains(o));
        if let Some(origin) = refused {
            debug!(
                message = "Refused a request from an origin not in server.grpc_web_origins.",
                origin = %String::from_utf8_lossy(origin.as_bytes()),
                method = %req.method(),
                path = req.uri().path(),
            );
            let mut res = Response::new(ResBody::default());
            *res.status_mut() = StatusCode::FORBIDDEN;
            return Either::Left(ready(Ok(res)));
        }
        Either::Right(self.inner.call(req))
    }
}
