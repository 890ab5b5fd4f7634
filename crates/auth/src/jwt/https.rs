//! The HTTPS client Switchboard uses to call other services (the identity provider's JWKS today;
//! meant for any REST API): rustls on ring like every other TLS connection of the daemon, the
//! web's roots or the operator's CA, timeouts, and no way down to plain http.

use std::path::Path;
use std::time::Duration;

use reqwest::Url;

use crate::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("{url}: plain http is allowed only to a loopback address (127.0.0.1, ::1, localhost); use https://")]
    InsecureUrl { url: String },
    #[error("{url}: {message}")]
    BadUrl { url: String, message: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("HTTP client: {0}")]
    Build(String),
}

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// A client that trusts `ca_file` (PEM) or, without one, the web's roots (webpki-roots, the same
/// everywhere, not whatever the host happens to have), and gives up on a connection after
/// `connect_timeout`. Set each request's total time with `RequestBuilder::timeout`.
pub fn https_client(ca_file: Option<&Path>, connect_timeout: Duration) -> Result<reqwest::Client, HttpClientError> {
    https_client_builder(ca_file, connect_timeout)?.build().map_err(|e| HttpClientError::Build(error_chain(&e)))
}

/// [`https_client`]'s settings, for a caller that adds its own (e.g. no kept-alive connections).
pub fn https_client_builder(
    ca_file: Option<&Path>,
    connect_timeout: Duration,
) -> Result<reqwest::ClientBuilder, HttpClientError> {
    // reqwest is built without a crypto provider of its own (its default is aws-lc); handing it
    // a ready rustls config keeps ring the only one and needs no process-wide default provider.
    let tls = crate::tls::client_config(ca_file, None, &[b"http/1.1"])?;
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(connect_timeout)
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if let Err(e) = check_url(attempt.url().as_str()) {
                // A redirect must not undo the https the operator asked for.
                attempt.error(e)
            } else {
                attempt.follow()
            }
        })))
}

/// `https://…`, or plain `http://` to a loopback address (tests, an identity provider on the same
/// host): anything else could be read or changed on the way.
pub fn check_url(url: &str) -> Result<Url, HttpClientError> {
    let bad = |message: &str| HttpClientError::BadUrl { url: url.to_string(), message: message.to_string() };
    let parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("has no host"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
            if host.eq_ignore_ascii_case("localhost") || ip.is_ok_and(|ip| ip.is_loopback()) {
                Ok(parsed)
            } else {
                Err(HttpClientError::InsecureUrl { url: url.to_string() })
            }
        }
        _ => Err(bad("must be an https:// URL")),
    }
}

/// An error with its causes: reqwest's own message says only that a request failed, the reason
/// (refused connection, unknown certificate issuer, timeout) is further down.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_plain_http_only_on_loopback() {
        for ok in ["https://idp.example.com/jwks", "http://127.0.0.1:8080/jwks", "http://[::1]/k", "http://localhost/k"]
        {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for insecure in ["http://idp.example.com/jwks", "http://10.0.0.1/jwks", "http://localhost.example.com/"] {
            assert!(matches!(check_url(insecure), Err(HttpClientError::InsecureUrl { .. })), "{insecure}");
        }
        for bad in ["ftp://idp.example.com/jwks", "idp.example.com/jwks", "file:///etc/jwks.json"] {
            assert!(matches!(check_url(bad), Err(HttpClientError::BadUrl { .. })), "{bad}");
        }
    }
}
