//! Kannel (bearerbox + smsbox): texts in by smsbox's get-url, out by the `sendsms` CGI, delivery
//! reports by `dlr-url`.
//!
//! - `mod.rs`: the gateway ([`Kannel`]): sending, and the webhooks' dispatch.
//! - `sendsms.rs`: one text as a `sendsms` request, and what smsbox's answer means.
//! - `webhook.rs`: what Kannel's calls say (an inbound text, a delivery report).
//! - `auth.rs`: HTTP Basic, the only authentication Kannel can give its calls.
//!
//! Kannel's side, as checked against Kannel 1.4.5 (Debian `kannel`):
//!
//! ```text
//! group = sms-service
//! keyword = default
//! catch-all = yes
//! max-messages = 0          # else our (empty) answer goes back to the phone as a text
//! get-url = "http://USER:PASSWORD@HOST:PORT/sms/<gateway>/inbound?from=%p&to=%P&text=%b&id=%I&coding=%c&charset=%C"
//!
//! group = smsbox
//! mo-recode = true          # UCS-2 texts arrive as UTF-8 (without it: UTF-16BE, coding=2; both work)
//! http-request-retry = 5    # else a text is dropped when the daemon answers 5xx or is down
//! http-queue-delay = 1
//!
//! group = sendsms-user      # username / password = this gateway's username / password
//! concatenation = true
//! max-messages = 10         # at least `sms.max_segments`, else long replies are cut
//! ```
//!
//! - Kannel sends the userinfo of the URL as `Authorization: Basic` (with every call, unasked),
//!   not percent-decoded. It retries a `401` like a `5xx`, up to `http-request-retry`.
//! - `%b` keeps the text as it came (`%a` folds whitespace, and would fold the 0x20 bytes of a
//!   UTF-16BE text): UTF-8 for GSM-7 texts; for UCS-2 texts UTF-8 with `mo-recode`, else the
//!   UTF-16BE bytes with `coding=2&charset=UTF-16BE`. `%t` is `YYYY-MM-DD HH:MM:SS` (UTC), `%T`
//!   the Unix time. `%I` is a UUID that a retried call repeats: the inbound dedup key.
//! - `post-url` sends the text as the body (`Content-Type: text/plain; charset="UTF-8"` or
//!   `"UTF-16BE"`) with `X-Kannel-From` (only with `send-sender = true`), `X-Kannel-To`,
//!   `X-Kannel-Coding`, but no id header: the post-url needs `?id=%I` (escapes work in it too).
//! - Concatenated texts are joined by Kannel before they reach us (`sms-combine-concatenated-mo`,
//!   default yes).
//! - `sendsms` answers `202 0: Accepted for delivery`, or `202 3: Queued for later delivery`
//!   while the SMSC is away; `403 Authorization failed for sendsms`; `400 ... rejected`;
//!   `503 Temporal failure, try again later.`. While bearerbox is down smsbox closes its port
//!   (connection refused).
//! - DLRs: Kannel calls the `dlr-url` of each text with `%d` = 8 (the SMSC took it), then 1
//!   (delivered) — in either order, and one pair for a text sent as several parts. `%d` in the
//!   dlr-url is Kannel's substitution; every other `%` we put there is doubled (`%%`), else
//!   `%C`, `%A` ... inside a percent-encoded key would be replaced.

pub mod auth;
pub mod sendsms;
pub mod webhook;

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::{debug, warn};

use super::SmsError;
use super::config::KannelConfig;
use super::gateway::{Accepted, Gateway, Hook, OutSms, Receiver, SendError, WebhookRequest, Webhooks};

pub struct Kannel {
    cfg: KannelConfig,
    http: reqwest::Client,
    timeout: Duration,
    /// The `dlr-url` up to the key, in Kannel's pattern syntax (see `sendsms.rs`).
    dlr_base: String,
    /// `sendsms_url` without userinfo or query, for errors and logs.
    redacted: String,
}

impl Kannel {
    pub fn new(cfg: KannelConfig) -> Result<Kannel, SmsError> {
        let gateway_error = |message: String| SmsError::Gateway { gateway: cfg.name.clone(), message };
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1).into());
        // Every sendsms on a connection of its own: one kept alive that smsbox has since dropped
        // (a restart, its idle timeout) fails without telling whether the text went out, and
        // the reply would be left "uncertain" for nothing. A connect next door costs less.
        let http = switchboard_auth::https_client_builder(None, timeout)
            .map_err(|e| gateway_error(e.to_string()))?
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| gateway_error(e.to_string()))?;
        match switchboard_auth::jwt::check_url(&cfg.sendsms_url) {
            Ok(_) => {}
            // Kannel often sits next to the daemon on a private network without TLS: allowed,
            // but said, since the sendsms password is in the URL.
            Err(switchboard_auth::HttpClientError::InsecureUrl { .. }) => warn!(
                message = "Kannel's sendsms_url is plain http to another host: its password crosses the network readable.",
                gateway = %cfg.name,
                url = %sendsms::redact(&cfg.sendsms_url)
            ),
            Err(e) => return Err(gateway_error(format!("sendsms_url: {e}"))),
        }
        let dlr_base = sendsms::dlr_base(&cfg).map_err(gateway_error)?;
        let redacted = sendsms::redact(&cfg.sendsms_url);
        Ok(Kannel { cfg, http, timeout, dlr_base, redacted })
    }

    fn refused(&self, hook: Hook, req: &WebhookRequest, reason: &'static str) {
        metrics::counter!("switchboard_sms_webhook_refused_total", "gateway" => self.cfg.name.clone(), "reason" => reason)
            .increment(1);
        // Never the body, the numbers or the credentials: which call, from where, and why.
        warn!(message = "Kannel webhook call refused.", gateway = %self.cfg.name, hook = ?hook, peer = %req.peer, reason);
    }
}

fn bad_request(what: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{what}\n")).into_response()
}

fn unavailable() -> Response {
    // Kannel retries a 5xx (`http-request-retry`); nothing was acknowledged.
    (StatusCode::SERVICE_UNAVAILABLE, "not stored, try again\n").into_response()
}

#[async_trait::async_trait]
impl Gateway for Kannel {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn send(&self, sms: &OutSms) -> Result<Accepted, SendError> {
        let url = sendsms::request_url(&self.cfg, &self.dlr_base, sms);
        let res = match self.http.get(url).timeout(self.timeout).send().await {
            Ok(r) => r,
            // Never connected (smsbox down, or bearerbox down and smsbox's port closed with it).
            Err(e) if e.is_connect() => {
                let e = e.without_url();
                return Err(SendError::Transient(format!(
                    "cannot reach Kannel at {}: {}",
                    self.redacted,
                    switchboard_auth::error_chain(&e)
                )));
            }
            // Sent, but no answer: smsbox may have queued the text.
            Err(e) => {
                let e = e.without_url();
                return Err(SendError::Uncertain(format!(
                    "no answer from Kannel at {}: {}",
                    self.redacted,
                    switchboard_auth::error_chain(&e)
                )));
            }
        };
        let status = res.status();
        // The status is what counts; the body only explains a refusal.
        let body = res.text().await.unwrap_or_default();
        metrics::counter!("switchboard_sms_kannel_sendsms_total", "gateway" => self.cfg.name.clone(), "status" => status.as_u16().to_string())
            .increment(1);
        sendsms::outcome(status, &body)?;
        debug!(message = "Kannel took a text.", gateway = %self.cfg.name, status = status.as_u16());
        // Kannel gives no id of its own: the key comes back in the dlr-url.
        Ok(Accepted { provider_ids: vec![sms.key.clone()] })
    }
}

#[async_trait::async_trait]
impl Webhooks for Kannel {
    async fn webhook(&self, hook: Hook, req: WebhookRequest, rx: &dyn Receiver) -> Response {
        if let Err(why) = auth::check(&req.headers, &self.cfg.webhook_user, self.cfg.webhook_password.expose()) {
            self.refused(
                hook,
                &req,
                if why == auth::Refusal::Missing { "no_credentials" } else { "wrong_credentials" },
            );
            return auth::unauthorized();
        }
        match hook {
            Hook::Inbound => {
                let sms = match webhook::inbound_from(&self.cfg.name, &req) {
                    Ok(s) => s,
                    Err(what) => {
                        self.refused(hook, &req, "malformed");
                        return bad_request(&what);
                    }
                };
                match rx.receive(sms).await {
                    Ok(received) => {
                        debug!(message = "Kannel text stored.", gateway = %self.cfg.name, outcome = received.label());
                        // Empty: smsbox would send a body back to the phone unless max-messages = 0.
                        StatusCode::OK.into_response()
                    }
                    Err(error) => {
                        warn!(message = "Kannel text not stored; Kannel will retry.", gateway = %self.cfg.name, %error);
                        unavailable()
                    }
                }
            }
            Hook::Status => {
                let report = match webhook::status_from(&self.cfg.name, &req) {
                    Ok(r) => r,
                    Err(what) => {
                        self.refused(hook, &req, "malformed");
                        return bad_request(&what);
                    }
                };
                match rx.status(report).await {
                    Ok(()) => StatusCode::OK.into_response(),
                    Err(error) => {
                        warn!(message = "Kannel delivery report not stored; Kannel will retry.", gateway = %self.cfg.name, %error);
                        unavailable()
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
