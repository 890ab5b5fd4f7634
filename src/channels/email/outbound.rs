//! Agent replies out by SMTP (lettre), threaded: From the mailbox's address, Message-ID of our
//! own, In-Reply-To the customer's latest message, References of the conversation, and a subject
//! that keeps the `[#SB-...]` token.
//!
//! Each reply has a record keyed by its Message-ID (`pending` → `sent` | `failed`). The
//! Message-ID is derived from the interaction and the message's sequence, so every attempt sends
//! the very same message; a reply recorded as sent is never sent again. (When a connection drops
//! after the server took the data but before it answered, SMTP cannot tell whether it arrived; the
//! retry then carries the same Message-ID, which receiving systems use to drop the copy.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Mail, Tokio1Executor};
use tracing::{info, warn};

use super::EmailError;
use super::config::{EmailConfig, MailboxConfig, Security};
use super::threading;
use crate::channels::DeliveryError;
use crate::model::{Interaction, InteractionState, Message};
use switchboard_engine::Engine;
use switchboard_engine::email::{Conversation, EmailState};

/// First in-line retry delay; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A background retry claimed by an instance that then died becomes due again after this.
const RETRY_LEASE: Duration = Duration::from_secs(300);

pub struct Outbound {
    cfg: Arc<EmailConfig>,
    transports: HashMap<String, AsyncSmtpTransport<Tokio1Executor>>,
    state: EmailState,
    engine: Engine,
}

enum Failure {
    Transient(String),
    Permanent(String),
}

struct Prepared {
    message_id: String,
    mail: Mail,
    mailbox: String,
    conv: Conversation,
}

fn transport(m: &MailboxConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, EmailError> {
    let host = m.smtp.host.clone();
    let params = || -> Result<TlsParameters, EmailError> {
        let mut b = TlsParameters::builder(host.clone());
        if let Some(f) = &m.tls_ca_file {
            let pem = std::fs::read(f).map_err(|e| EmailError::Tls(format!("{}: {e}", f.display())))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| EmailError::Tls(format!("{}: {e}", f.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| EmailError::Tls(e.to_string()))
    };
    let tls = match m.smtp.security {
        Security::Tls => Tls::Wrapper(params()?),
        Security::Starttls => Tls::Required(params()?),
        Security::Plain => Tls::None,
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(m.smtp.port())
        .tls(tls)
        .timeout(Some(Duration::from_secs(m.smtp.timeout_secs.into())));
    if !m.smtp.username.is_empty() {
        b = b.credentials(Credentials::new(m.smtp.username.clone(), m.smtp.password.clone()));
    }
    Ok(b.build())
}

impl Outbound {
    pub fn new(cfg: Arc<EmailConfig>, engine: Engine) -> Result<Self, EmailError> {
        let mut transports = HashMap::new();
        for m in &cfg.mailboxes {
            transports.insert(m.name.clone(), transport(m)?);
        }
        Ok(Outbound { state: EmailState::new(&engine), cfg, transports, engine })
    }

    fn mailbox(&self, name: &str) -> Option<&MailboxConfig> {
        self.cfg.mailboxes.iter().find(|m| m.name == name)
    }

    /// The conversation's thread, or one made up from the interaction for an email interaction
    /// that did not come in through this channel (created by the API).
    async fn conversation(&self, ix: &Interaction) -> Result<Conversation, DeliveryError> {
        let conv = self.state.conversation(&ix.id).await.map_err(|e| DeliveryError::Transient(e.to_string()))?;
        Ok(conv.unwrap_or_else(|| Conversation {
            mailbox: self
                .cfg
                .mailboxes
                .iter()
                .find(|m| m.queue == ix.queue)
                .or(self.cfg.mailboxes.first())
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            customer: ix.customer_address.clone(),
            subject: ix.subject.clone(),
            token: threading::token_for(&ix.id),
            last_in: String::new(),
            refs: Vec::new(),
        }))
    }

    async fn prepare(&self, ix: &Interaction, msg: &Message) -> Result<Prepared, DeliveryError> {
        let conv = self.conversation(ix).await?;
        let m = self
            .mailbox(&conv.mailbox)
            .ok_or_else(|| DeliveryError::Permanent(format!("mailbox {:?} is not configured", conv.mailbox)))?;
        let message_id = threading::our_message_id(&ix.id, msg.seq, m.domain());
        let from = Mailbox::new(
            (!m.display_name.is_empty()).then(|| m.display_name.clone()),
            m.address.parse().map_err(|e| DeliveryError::Permanent(format!("mailbox address {}: {e}", m.address)))?,
        );
        let to: Mailbox = threading::reply_address(&conv.customer)
            .parse()
            .map_err(|e| DeliveryError::Permanent(format!("customer address: {e}")))?;
        let mut b = Mail::builder()
            .from(from)
            .to(to)
            .subject(threading::reply_subject(&conv.subject, &conv.token))
            .message_id(Some(format!("<{message_id}>")))
            .header(ContentType::TEXT_PLAIN);
        if !conv.last_in.is_empty() {
            b = b.in_reply_to(format!("<{}>", conv.last_in));
        }
        if !conv.refs.is_empty() {
            let refs: Vec<String> = conv.refs.iter().map(|r| format!("<{r}>")).collect();
            b = b.references(refs.join(" "));
        }
        let mail = b.body(msg.body.clone()).map_err(|e| DeliveryError::Permanent(format!("building the mail: {e}")))?;
        Ok(Prepared { message_id, mail, mailbox: m.name.clone(), conv })
    }

    async fn attempt(&self, p: &Prepared) -> Result<(), Failure> {
        let t = self.transports.get(&p.mailbox).ok_or_else(|| Failure::Permanent("no SMTP transport".into()))?;
        let _ = self.state.count_attempt(&p.message_id).await;
        match t.send(p.mail.clone()).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() || e.is_client() => Err(Failure::Permanent(without_addresses(&e.to_string()))),
            Err(e) => Err(Failure::Transient(without_addresses(&e.to_string()))),
        }
    }

    async fn sent(&self, ix: &Interaction, p: &Prepared) {
        let _ = self.state.finish_out(&p.message_id, "sent", "").await;
        // The customer's answer will reference this id; our next reply references it too.
        let mut conv = p.conv.clone();
        conv.refs = super::parse::cap_references(
            conv.refs.iter().cloned().chain(std::iter::once(p.message_id.clone())).collect(),
        );
        if let Err(e) = self.state.put_conversation(&ix.id, &conv).await {
            warn!(message = "Recording a sent email failed.", error = %e, interaction = %ix.id);
        }
        metrics::counter!("switchboard_email_sent_total", "mailbox" => p.mailbox.clone()).increment(1);
        info!(message = "Email reply sent.", interaction = %ix.id, message_id = %p.message_id, mailbox = %p.mailbox);
    }

    pub async fn deliver(&self, ix: &Interaction, msg: &Message) -> Result<(), DeliveryError> {
        let p = self.prepare(ix, msg).await?;
        let transient = |e: switchboard_engine::EngineError| DeliveryError::Transient(e.to_string());
        let now = self.engine.now_ms().await.map_err(transient)?;
        let rec = self.state.open_out_record(&p.message_id, &ix.id, msg.seq, now).await.map_err(transient)?;
        match rec.state.as_str() {
            "sent" => return Ok(()),
            "failed" => return Err(DeliveryError::Permanent(rec.error)),
            _ => {}
        }
        // Known before it leaves, so a fast answer or a bounce finds its conversation.
        self.state.remember_ref(&p.message_id, &ix.id, &p.conv.customer).await.map_err(transient)?;
        let budget = Duration::from_secs(self.cfg.send_retry_secs.into());
        let started = std::time::Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.attempt(&p).await {
                Ok(()) => {
                    self.sent(ix, &p).await;
                    return Ok(());
                }
                Err(Failure::Permanent(e)) => {
                    let _ = self.state.finish_out(&p.message_id, "failed", &e).await;
                    metrics::counter!("switchboard_email_send_failed_total", "mailbox" => p.mailbox.clone(), "kind" => "permanent").increment(1);
                    warn!(message = "Email reply refused.", error = %e, interaction = %ix.id, mailbox = %p.mailbox);
                    return Err(DeliveryError::Permanent(e));
                }
                Err(Failure::Transient(e)) => {
                    metrics::counter!("switchboard_email_send_failed_total", "mailbox" => p.mailbox.clone(), "kind" => "transient").increment(1);
                    if started.elapsed() + backoff > budget {
                        let at = now + started.elapsed().as_millis() as u64 + MAX_BACKOFF.as_millis() as u64 / 2;
                        self.state.schedule_retry(&p.message_id, at).await.map_err(transient)?;
                        warn!(message = "Email reply deferred.", error = %e, interaction = %ix.id, mailbox = %p.mailbox);
                        return Err(DeliveryError::Transient(format!("{e}; it will be retried")));
                    }
                    warn!(message = "Email reply failed; retrying.", error = %e, interaction = %ix.id, ?backoff);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One pass over deferred replies that are due. Returns how many were attempted.
    pub async fn retry_due(&self) -> Result<usize, switchboard_engine::EngineError> {
        let now = self.engine.now_ms().await?;
        let due = self.state.claim_due_retries(now, RETRY_LEASE.as_millis() as u64, 20).await?;
        for mid in &due {
            let Some(rec) = self.state.out_record(mid).await? else {
                self.state.finish_out(mid, "failed", "record expired").await?;
                continue;
            };
            if rec.state != "pending" {
                self.state.finish_out(mid, &rec.state, &rec.error).await?;
                continue;
            }
            let ix = match self.engine.get_interaction(&rec.interaction_id, false).await {
                Ok(ix) => ix,
                Err(switchboard_engine::EngineError::NotFound(_)) => {
                    self.state.finish_out(mid, "failed", "interaction expired").await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let msg = self.engine.message(&ix.id, rec.seq).await?;
            let p = match self.prepare(&ix, &msg).await {
                Ok(p) => p,
                Err(e) => {
                    self.give_up(&ix, mid, rec.seq, &e.to_string()).await?;
                    continue;
                }
            };
            match self.attempt(&p).await {
                Ok(()) => self.sent(&ix, &p).await,
                Err(Failure::Permanent(e)) => self.give_up(&ix, mid, rec.seq, &e).await?,
                Err(Failure::Transient(e)) => {
                    let age = Duration::from_millis(now.saturating_sub(rec.created_ms));
                    if age > Duration::from_secs(self.cfg.send_give_up_secs.into()) {
                        self.give_up(&ix, mid, rec.seq, &format!("gave up after {age:?}: {e}")).await?;
                    } else {
                        let delay = FIRST_BACKOFF.saturating_mul(1 << rec.attempts.min(12)).min(MAX_BACKOFF);
                        self.state.schedule_retry(mid, now + delay.as_millis() as u64).await?;
                    }
                }
            }
        }
        Ok(due.len())
    }

    /// A deferred reply that will not go out: recorded, and shown on the conversation.
    async fn give_up(
        &self,
        ix: &Interaction,
        mid: &str,
        seq: u64,
        reason: &str,
    ) -> Result<(), switchboard_engine::EngineError> {
        self.state.finish_out(mid, "failed", reason).await?;
        warn!(message = "Email reply failed for good.", interaction = %ix.id, %reason);
        if !matches!(ix.state, InteractionState::Completed | InteractionState::Abandoned) {
            let note = format!("[delivery failed] Reply {seq} could not be sent: {reason}");
            let note: String = note.chars().take(2_000).collect();
            self.engine.append_system_message_once(&ix.id, &note, &format!("email-failed|{mid}")).await?;
        }
        Ok(())
    }
}

/// A remote server's answer with every word holding an address (`<carol@customer.test>:`) made
/// `<address>`: refusals usually name the recipient, our customer, and this text is logged (here
/// and by the caller) as well as recorded.
fn without_addresses(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').map(|w| if w.contains('@') { "<address>" } else { w }).collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_leave_a_servers_answer() {
        assert_eq!(
            super::without_addresses("permanent error (550): 5.1.1 <carol@customer.test>: Recipient address rejected"),
            "permanent error (550): 5.1.1 <address> Recipient address rejected"
        );
        assert_eq!(super::without_addresses("transient error (451): try later"), "transient error (451): try later");
    }
}
