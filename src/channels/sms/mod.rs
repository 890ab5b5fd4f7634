//! The SMS channel: texts in and out through gateways — Twilio-compatible HTTP, Kannel, SMPP 3.4.
//!
//! - `config.rs`: `[sms]`: our numbers → queues and gateways; secrets from the environment.
//! - `gateway.rs`: what a gateway is ([`gateway::Gateway`] sends, [`gateway::Webhooks`] takes
//!   provider calls) and what it hands in ([`gateway::Receiver`]).
//! - `ingest.rs`: one received text → a new interaction, a message in the open one, a follow-up,
//!   an opt-out / opt-in / HELP, or a duplicate. `status.rs`: delivery reports → the reply's state.
//! - `outbound.rs`: agent replies: vetted (opt-out, segments), recorded, sent once, retried.
//! - `routes.rs`: the webhooks on the HTTP listener (`/sms/<gateway>/inbound`, `/status`).
//! - `twilio/`, `kannel/`, `smpp/`: one folder per kind of gateway.
//! - its bookkeeping in Redis is the engine's `sms` module.

pub mod config;
pub mod gateway;
pub mod ingest;
pub mod kannel;
pub mod outbound;
pub mod routes;
pub mod smpp;
pub mod status;
pub mod twilio;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::SmsConfig;
use gateway::{Gateway, Webhooks};
use switchboard_engine::Engine;
use switchboard_engine::sms::SmsState;

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error(transparent)]
    Config(#[from] config::SmsConfigError),
    #[error("sms gateway {gateway}: {message}")]
    Gateway { gateway: String, message: String },
}

/// One gateway of the channel, in the shapes it takes.
struct Entry {
    sender: Arc<dyn Gateway>,
    hooks: Option<Arc<dyn Webhooks>>,
}

pub struct SmsChannel {
    cfg: Arc<SmsConfig>,
    engine: Engine,
    state: SmsState,
    gateways: HashMap<String, Entry>,
    smpp: Vec<Arc<smpp::SmppGateway>>,
    /// Names this process in short locks (a conversation being processed, a reply being sent).
    instance: String,
    /// Callbacks a waiting texter takes instead (`callback_keyword`).
    voice: Arc<crate::channels::voice::Voice>,
}

impl SmsChannel {
    /// Validates the config and builds the gateways; nothing connects yet.
    pub fn new(
        cfg: SmsConfig,
        engine: Engine,
        instance: &str,
        voice: Arc<crate::channels::voice::Voice>,
    ) -> Result<Arc<SmsChannel>, SmsError> {
        cfg.validate()?;
        let mut gateways = HashMap::new();
        let mut binds = Vec::new();
        for g in &cfg.gateways {
            let entry = match g {
                config::GatewayConfig::Twilio(c) => {
                    let t = Arc::new(twilio::Twilio::new(c.clone())?);
                    Entry { sender: t.clone(), hooks: Some(t) }
                }
                config::GatewayConfig::Kannel(c) => {
                    let k = Arc::new(kannel::Kannel::new(c.clone())?);
                    Entry { sender: k.clone(), hooks: Some(k) }
                }
                config::GatewayConfig::Smpp(c) => {
                    let s = smpp::SmppGateway::new(c.clone(), engine.clone());
                    binds.push(s.clone());
                    Entry { sender: s, hooks: None }
                }
            };
            gateways.insert(g.name().to_string(), entry);
        }
        Ok(Arc::new(SmsChannel {
            state: SmsState::new(&engine),
            cfg: Arc::new(cfg),
            engine,
            gateways,
            smpp: binds,
            instance: instance.to_string(),
            voice,
        }))
    }

    pub fn config(&self) -> &SmsConfig {
        &self.cfg
    }

    fn sender(&self, name: &str) -> Option<&Arc<dyn Gateway>> {
        self.gateways.get(name).map(|e| &e.sender)
    }

    /// Starts the SMPP binds and the retry loop for deferred replies, all stopping on `cancel`.
    pub fn spawn(self: &Arc<Self>, cancel: CancellationToken) -> Vec<JoinHandle<()>> {
        let mut handles = Vec::new();
        for bind in &self.smpp {
            let rx: Arc<dyn gateway::Receiver> = self.clone();
            handles.push(tokio::spawn(bind.clone().run(rx, self.instance.clone(), cancel.clone())));
        }
        let me = self.clone();
        handles.push(tokio::spawn(async move { me.retry_loop(cancel).await }));
        handles
    }
}

#[async_trait::async_trait]
impl gateway::Receiver for SmsChannel {
    async fn receive(&self, sms: gateway::InboundSms) -> Result<gateway::Received, gateway::ReceiveError> {
        self.ingest(sms).await
    }

    async fn status(&self, report: gateway::StatusReport) -> Result<(), gateway::ReceiveError> {
        self.apply_status(report).await
    }
}

#[async_trait::async_trait]
impl super::OutboundChannel for SmsChannel {
    fn channel(&self) -> crate::model::Channel {
        crate::model::Channel::Sms
    }

    async fn vet(&self, interaction: &crate::model::Interaction, body: &str) -> Result<(), super::VetError> {
        self.vet_reply(interaction, body).await
    }

    async fn deliver(
        &self,
        interaction: &crate::model::Interaction,
        message: &crate::model::Message,
    ) -> Result<(), super::DeliveryError> {
        self.deliver_reply(interaction, message).await
    }
}
