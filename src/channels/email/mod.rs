//! The email channel: IMAP in (IDLE, polling as a fallback), SMTP out, conversations threaded by
//! Message-ID references and a subject token.
//!
//! - `config.rs`: mailboxes and their accounts, validated; passwords from the environment.
//! - `parse.rs`: MIME → text, attachments, threading headers, auto-reply/bounce classification.
//! - `auth_results.rs`: whether the operator's MTA authenticated the From domain
//!   (`Authentication-Results`, DMARC).
//! - `threading.rs`: subject tokens, reply subjects, which conversation a message joins.
//! - its bookkeeping in Redis (positions, dedupe, thread map, reply records) is the engine's
//!   `email` module.
//! - `ingest.rs`: one received message → an interaction, an appended message, or nothing.
//! - `inbound.rs`: the IMAP reader per mailbox. `outbound.rs`: replies by SMTP.
//!
//! Build with [`EmailChannel::new`], add it to the server's `Channels` (it is the
//! `OutboundChannel` for email), and start the readers with [`EmailChannel::spawn`].

pub mod auth_results;
pub mod config;
pub mod inbound;
pub mod ingest;
pub mod outbound;
pub mod parse;
pub mod threading;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

pub use config::EmailConfig;

use super::{DeliveryError, OutboundChannel};
use crate::model::{Channel, Interaction, Message};
use switchboard_engine::Engine;

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error(transparent)]
    Config(#[from] config::EmailConfigError),
    #[error("TLS set-up: {0}")]
    Tls(String),
}

/// How often deferred replies are looked at.
const RETRY_SWEEP: Duration = Duration::from_secs(2);

pub struct EmailChannel {
    cfg: Arc<EmailConfig>,
    engine: Engine,
    outbound: Arc<outbound::Outbound>,
}

impl EmailChannel {
    /// Validates the config and prepares the SMTP transports; nothing connects yet.
    pub fn new(cfg: EmailConfig, engine: Engine) -> Result<Arc<EmailChannel>, EmailError> {
        cfg.validate()?;
        let cfg = Arc::new(cfg);
        let outbound = Arc::new(outbound::Outbound::new(cfg.clone(), engine.clone())?);
        Ok(Arc::new(EmailChannel { cfg, engine, outbound }))
    }

    pub fn config(&self) -> &EmailConfig {
        &self.cfg
    }

    /// Starts one reader per mailbox and the retry loop for deferred replies, all stopping on
    /// `cancel`. `instance` names this process for the mailbox leases.
    pub fn spawn(self: &Arc<Self>, instance: &str, cancel: CancellationToken) -> Vec<JoinHandle<()>> {
        for m in self.cfg.mailboxes.iter().filter(|m| m.trusted_authserv_ids.is_empty()) {
            warn!(
                message = "Email senders are not verified: anyone can write as a customer and join their conversation (set trusted_authserv_ids).",
                mailbox = %m.name
            );
        }
        let ingest = ingest::Ingest::new(self.engine.clone(), &self.cfg).answering_with(self.outbound.clone());
        let state = switchboard_engine::email::EmailState::new(&self.engine);
        let mut handles: Vec<JoinHandle<()>> = self
            .cfg
            .mailboxes
            .iter()
            .map(|m| {
                tokio::spawn(inbound::run_mailbox(
                    m.clone(),
                    ingest.clone(),
                    state.clone(),
                    instance.to_string(),
                    cancel.clone(),
                ))
            })
            .collect();
        let me = self.clone();
        handles.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(RETRY_SWEEP) => {}
                }
                if let Err(error) = me.outbound.retry_due().await {
                    warn!(message = "Email retry sweep failed.", %error);
                }
            }
        }));
        handles
    }

    /// One pass over deferred replies (the background loop calls this; tests may too).
    pub async fn retry_due(&self) -> Result<usize, switchboard_engine::EngineError> {
        self.outbound.retry_due().await
    }
}

#[async_trait::async_trait]
impl OutboundChannel for EmailChannel {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn deliver(&self, interaction: &Interaction, message: &Message) -> Result<(), DeliveryError> {
        self.outbound.deliver(interaction, message).await
    }
}
