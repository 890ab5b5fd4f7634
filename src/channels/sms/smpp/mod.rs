//! SMPP 3.4: an ESME bound as transceiver to an SMSC, the way operators connect straight to
//! carriers and aggregators.
//!
//! - `pdu.rs`: the wire format (the PDUs a transceiver meets), framing, command_status names.
//! - `session.rs`: one bind: connect, bind_transceiver, requests matched to responses, the
//!   SMSC's requests answered, enquire_link when idle, unbind.
//! - `submit.rs`: a text as submit_sm parts (concatenation UDH), and what a refusal means.
//! - `inbound.rs`: deliver_sm → receipt or customer text, answered once stored.
//! - `receipt.rs`: reading delivery receipts (TLVs, else the Appendix B text).
//! - this file: [`SmppGateway`], the bind kept up with backoff, and sending through it.
//!
//! **Why our own codec.** rusmpp 0.4 (the maintained Rust SMPP crate; builds on our toolchain,
//! no TLS stack) was checked and not taken: it models SMPP v5 with strict types (C-strings
//! must be ASCII and within the spec's maximum, so one SMSC quirk, e.g. a Latin-1 sender name,
//! makes a whole deliver_sm undecodable and its tokio codec ends the stream on it, leaving no
//! sequence number to answer), it has been rewritten between 0.x releases, and with its
//! `tracing` feature it logs whole PDUs — bodies and numbers. What a transceiver needs is eleven
//! PDUs, a few hundred lines that decode leniently and never panic (`pdu.rs`, tested on truncated and
//! random input). The `smpp34` crate is the same code as the SMSC simulator our tests run
//! against (PyPI `smpp34`), so using it would test a codec against itself.
//!
//! Every instance of the daemon keeps its own bind (SMSCs accept several per account): sends go
//! out on the local one, and receipts for a text may come in on any instance's.

mod inbound;
pub mod pdu;
mod receipt;
mod session;
mod submit;

#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use switchboard_engine::sms::SmsState;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::inbound::Inbound;
use self::pdu::Body;
use self::session::{End, Link, RequestError};
use super::config::SmppConfig;
use super::gateway::{Accepted, Gateway, OutSms, Receiver, SendError};

pub struct SmppGateway {
    cfg: SmppConfig,
    state: SmsState,
    /// The live bind, if any.
    link: Mutex<Option<Arc<Link>>>,
    /// Requests awaiting a response at once (the SMSC's window): a slot is held from sending a
    /// submit_sm until its response, or until it is given up. enquire_link and unbind take none:
    /// keeping the link alive must not wait behind a window full of slow submits.
    window: Semaphore,
    /// Concatenation references: 8 bits, so 256 long texts may be in flight before one repeats.
    next_ref: AtomicU8,
}

impl SmppGateway {
    pub fn new(cfg: SmppConfig, engine: switchboard_engine::Engine) -> Arc<SmppGateway> {
        let window = Semaphore::new(cfg.window.max(1) as usize);
        let first_ref = (random_u64() & 0xFF) as u8;
        Arc::new(SmppGateway {
            state: SmsState::new(&engine),
            cfg,
            link: Mutex::new(None),
            window,
            next_ref: AtomicU8::new(first_ref),
        })
    }

    /// Whether a bind is up right now.
    pub fn bound(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> Option<Arc<Link>> {
        self.link.lock().expect("smpp link").clone().filter(|l| !l.is_dead())
    }

    fn response_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.response_timeout_secs.max(1).into())
    }

    /// Keeps this instance's bind up until `cancel`: connect, bind_transceiver, enquire_link when
    /// idle, reconnect with exponential backoff (1 s doubling to cfg.max_backoff_secs, with
    /// jitter) after any failure; deliver_sm in → rx; unbind on cancel.
    pub async fn run(self: Arc<Self>, rx: Arc<dyn Receiver>, instance: String, cancel: CancellationToken) {
        let gateway = self.cfg.name.as_str();
        let inbound = Arc::new(Inbound { gateway: gateway.to_string(), state: self.state.clone(), rx });
        let max_backoff = Duration::from_secs(self.cfg.max_backoff_secs.max(1).into());
        let idle = Duration::from_secs(self.cfg.enquire_link_secs.max(1).into());
        let mut backoff = Duration::from_secs(1);
        while !cancel.is_cancelled() {
            match session::bind(&self.cfg).await {
                Ok((link, reader)) => {
                    info!(message = "SMPP bound.", gateway, %instance, host = %self.cfg.host, port = self.cfg.port);
                    metrics::counter!("switchboard_smpp_binds_total", "gateway" => gateway.to_string(), "outcome" => "bound")
                        .increment(1);
                    metrics::gauge!("switchboard_smpp_bound", "gateway" => gateway.to_string()).set(1.0);
                    backoff = Duration::from_secs(1);
                    *self.link.lock().expect("smpp link") = Some(link.clone());
                    let (tx, queue) = mpsc::channel(session::INBOUND_QUEUE);
                    let worker = tokio::spawn(inbound.clone().work(link.clone(), queue));
                    let end = session::serve(gateway, link, reader, tx, idle, &cancel).await;
                    *self.link.lock().expect("smpp link") = None;
                    metrics::gauge!("switchboard_smpp_bound", "gateway" => gateway.to_string()).set(0.0);
                    // It finishes the text in hand (its answer is lost with the link; the SMSC
                    // delivers it again and the id makes that a duplicate) and skips the rest.
                    let _ = worker.await;
                    match end {
                        End::Cancelled => {
                            info!(message = "SMPP unbound on shutdown.", gateway, %instance);
                            return;
                        }
                        End::Unbound => warn!(message = "SMPP unbound by the SMSC; binding again.", gateway, %instance),
                        End::Failed(error) => {
                            warn!(message = "SMPP link lost; binding again.", gateway, %instance, %error);
                        }
                    }
                }
                Err(error) => {
                    metrics::counter!("switchboard_smpp_binds_total", "gateway" => gateway.to_string(), "outcome" => error.label())
                        .increment(1);
                    warn!(message = "SMPP bind failed.", gateway, %instance, %error, ?backoff);
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(jitter(backoff)) => {}
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    }

    /// One part: a window slot, the submit_sm, its response.
    async fn submit(&self, link: &Link, sm: pdu::ShortMessage) -> Result<String, SendError> {
        let within = self.response_timeout();
        let Ok(Ok(_slot)) = tokio::time::timeout(within, self.window.acquire()).await else {
            return Err(SendError::Transient(format!(
                "SMPP window of {} full for {within:?}: the SMSC is not answering fast enough",
                self.cfg.window
            )));
        };
        match link.request(Body::SubmitSm(sm)).await {
            Ok(resp) if resp.status == pdu::ESME_ROK => match resp.body {
                Body::SubmitSmResp { message_id } => Ok(message_id),
                other => Err(SendError::Uncertain(format!("submit_sm answered with {other:?}"))),
            },
            Ok(resp) => Err(submit::refusal(resp.status)),
            Err(RequestError::NotSent(e)) => Err(SendError::Transient(format!("SMPP gateway not bound ({e})"))),
            Err(e @ (RequestError::NoResponse(_) | RequestError::Lost)) => {
                Err(SendError::Uncertain(format!("submit_sm sent, {e}")))
            }
        }
    }
}

#[async_trait]
impl Gateway for SmppGateway {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn send(&self, sms: &OutSms) -> Result<Accepted, SendError> {
        let result = self.send_parts(sms).await;
        let outcome = match &result {
            Ok(_) => "accepted",
            Err(SendError::Transient(_)) => "transient",
            Err(SendError::Permanent { .. }) => "refused",
            Err(SendError::Uncertain(_)) => "uncertain",
        };
        metrics::counter!("switchboard_smpp_submits_total", "gateway" => self.cfg.name.clone(), "outcome" => outcome)
            .increment(1);
        result
    }
}

impl SmppGateway {
    async fn send_parts(&self, sms: &OutSms) -> Result<Accepted, SendError> {
        let Some(link) = self.current() else {
            return Err(SendError::Transient(format!("SMPP gateway {} is not bound to its SMSC", self.cfg.name)));
        };
        let parts = submit::build(&self.cfg, sms, || self.next_ref.fetch_add(1, Ordering::Relaxed))?;
        let total = parts.len();
        let mut provider_ids = Vec::with_capacity(total);
        for sm in parts {
            match self.submit(&link, sm).await {
                Ok(id) => provider_ids.push(id),
                // Nothing of it was taken yet: the error stands as it is.
                Err(e) if provider_ids.is_empty() => return Err(e),
                // The customer may have part of it, and a retry would repeat those parts.
                Err(e) => {
                    return Err(SendError::Uncertain(format!(
                        "{} of {total} parts accepted, then part {}: {e}",
                        provider_ids.len(),
                        provider_ids.len() + 1
                    )));
                }
            }
        }
        Ok(Accepted { provider_ids })
    }
}

/// Between half and all of `d`: binds of many instances that lost the SMSC together do not
/// come back in step.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + Duration::from_millis(random_u64() % (half.as_millis() as u64 + 1))
}

fn random_u64() -> u64 {
    // std's per-process random keys; no generator needed for this.
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}
