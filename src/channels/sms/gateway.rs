//! What an SMS provider is to the channel: something that sends a text and says whether it took
//! it, and something that hands in the texts customers send and the status of ours. Twilio-shaped
//! HTTP, Kannel and SMPP each implement [`Gateway`] for sending and call [`Receiver`] from their
//! webhooks or their bind.

use switchboard_model::DeliveryState;

/// One text to send: an agent's reply, or the channel's own answer (HELP, an opt-out
/// confirmation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSms {
    /// The same on every attempt to send this text (`<interaction>|<seq>` for a reply): the
    /// gateway may pass it on where the provider deduplicates by it.
    pub key: String,
    /// Our number (or short code, or alphanumeric sender id).
    pub from: String,
    /// The customer's number, E.164.
    pub to: String,
    pub body: String,
}

/// The provider took the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's ids for it: one per part when it reports parts separately (SMPP), else one.
    /// Status reports name these.
    pub provider_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Not taken, and worth trying again later (no connection, throttled, a 5xx before it took
    /// the text).
    #[error("temporarily not sent: {0}")]
    Transient(String),
    /// Refused for good (an invalid number, a blocked sender, a body the provider rejects).
    #[error("refused (code {code}): {reason}")]
    Permanent { code: String, reason: String },
    /// The request left but no answer came: the provider may or may not have taken it. Never
    /// retried automatically, since a retry could send the text twice.
    #[error("outcome unknown: {0}")]
    Uncertain(String),
}

#[async_trait::async_trait]
pub trait Gateway: Send + Sync {
    /// The name in `[[sms.gateways]]`.
    fn name(&self) -> &str;
    async fn send(&self, sms: &OutSms) -> Result<Accepted, SendError>;
}

/// A text a customer sent, as a gateway received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// The gateway's name.
    pub gateway: String,
    /// The provider's id for the message: a retried delivery of it carries the same one.
    pub provider_id: String,
    /// The customer's number as the provider gives it.
    pub from: String,
    /// Our number it was sent to.
    pub to: String,
    /// The whole text (parts joined).
    pub body: String,
    /// Links to attached media (MMS), shown to the agent.
    pub media: Vec<String>,
}

/// A provider's report on a text we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub gateway: String,
    /// The id the provider gave the text (or the part) when it accepted it.
    pub provider_id: String,
    pub state: DeliveryState,
    /// The provider's error code, empty if none.
    pub code: String,
}

/// What became of an inbound text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Created(String),
    Appended(String),
    FollowUp {
        interaction_id: String,
        previous: String,
    },
    /// Stored before (same provider id).
    Duplicate(String),
    /// STOP and the like: the customer is opted out; `interaction` is where it was noted.
    OptedOut {
        interaction_id: Option<String>,
    },
    OptedIn {
        interaction_id: Option<String>,
    },
    /// HELP: answered by the configured text.
    Help,
    /// The callback keyword while waiting: the customer is called back instead (the new
    /// callback's id), keeping the conversation's place.
    Callback(String),
    /// To a number no queue owns, and no default queue: logged and dropped.
    Refused(String),
}

impl Received {
    pub fn label(&self) -> &'static str {
        match self {
            Received::Created(_) => "created",
            Received::Appended(_) => "appended",
            Received::FollowUp { .. } => "follow_up",
            Received::Duplicate(_) => "duplicate",
            Received::OptedOut { .. } => "opted_out",
            Received::OptedIn { .. } => "opted_in",
            Received::Help => "help",
            Received::Callback(_) => "callback",
            Received::Refused(_) => "refused",
        }
    }
}

/// Storing failed; nothing is lost as long as the provider is not told it was taken (it retries).
#[derive(Debug, thiserror::Error)]
#[error("storing an SMS failed: {0}")]
pub struct ReceiveError(#[from] pub switchboard_engine::EngineError);

/// Where gateways hand what they receive. `Ok` means stored durably: only then may the gateway
/// acknowledge the provider (HTTP 2xx, `deliver_sm_resp` OK).
#[async_trait::async_trait]
pub trait Receiver: Send + Sync {
    async fn receive(&self, sms: InboundSms) -> Result<Received, ReceiveError>;
    async fn status(&self, report: StatusReport) -> Result<(), ReceiveError>;
}

/// Which of a gateway's webhooks was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// A customer's text.
    Inbound,
    /// A report on one of ours (status callback, DLR).
    Status,
}

/// A webhook request as it arrived on the HTTP listener, body read (up to the configured limit).
#[derive(Debug)]
pub struct WebhookRequest {
    pub method: axum::http::Method,
    /// Path and query as the client sent them.
    pub uri: axum::http::Uri,
    pub headers: axum::http::HeaderMap,
    pub body: axum::body::Bytes,
    pub peer: std::net::SocketAddr,
}

/// A gateway providers call over HTTP (Twilio-shaped, Kannel). It authenticates the caller
/// itself (each provider has its own way), and answers 2xx only once what it received is stored.
#[async_trait::async_trait]
pub trait Webhooks: Send + Sync {
    async fn webhook(&self, hook: Hook, req: WebhookRequest, rx: &dyn Receiver) -> axum::response::Response;
}
