//! One received message → routing: a new interaction, a message in an open one, a follow-up of a
//! recently closed one, a bounce shown on the conversation it concerns, or nothing (auto-reply,
//! duplicate, unreadable). Independent of IMAP, so it is tested against Redis alone.
//!
//! Every step is idempotent, so processing the same message again (after a crash, a reconnect or
//! a UIDVALIDITY change) changes nothing: creation is idempotent by the message's dedupe key,
//! appends are guarded by a pending marker, and the bookkeeping writes are plain overwrites.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::auth_results::{self, Verdict};
use super::config::{EmailConfig, MailboxConfig, Unauthenticated};
use super::outbound::Outbound;
use super::parse::{self, Kind, ParsedEmail};
use super::threading::{self, Candidate, CandidateState, Decision};
use crate::model::{Channel, InteractionState, NewInteraction};
use switchboard_engine::email::{Conversation, EmailState};
use switchboard_engine::{Engine, EngineError};

/// Parsing runs on a blocking thread; a message that takes longer is set aside.
const PARSE_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created(String),
    Appended(String),
    FollowUp {
        interaction_id: String,
        previous: String,
    },
    /// Processed before (same dedupe key).
    Duplicate(String),
    AutoReply(String),
    /// A delivery failure report; the conversation it was attached to, if found.
    Bounce(Option<String>),
    /// Not routable; the reason is logged and the message flagged for a person to look at.
    SetAside(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Created(_) => "created",
            Outcome::Appended(_) => "appended",
            Outcome::FollowUp { .. } => "follow_up",
            Outcome::Duplicate(_) => "duplicate",
            Outcome::AutoReply(_) => "auto_reply",
            Outcome::Bounce(_) => "bounce",
            Outcome::SetAside(_) => "set_aside",
        }
    }
}

/// What kind of mail it is, for the log (a bounce's reason and an auto-reply's header stay out).
fn kind_label(k: &Kind) -> &'static str {
    match k {
        Kind::Customer => "customer",
        Kind::AutoReply(_) => "auto_reply",
        Kind::Bounce { .. } => "bounce",
    }
}

/// The status code of a bounce (`5.1.1`), for the log: the rest of its reason is the remote
/// server's diagnostic, which usually names the customer's address, or the bounce's subject,
/// which quotes ours (and so the customer's). The agent sees the whole reason on the thread.
fn bounce_status(reason: &str) -> &str {
    let code = |w: &&str| {
        let mut parts = w.split('.');
        matches!(parts.next(), Some("2" | "4" | "5"))
            && parts.clone().count() == 2
            && parts.all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    reason
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | ':' | ',' | '(' | ')'))
        .find(code)
        .unwrap_or("unknown")
}

/// Who a customer's message is from, as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The interaction's customer and the owner of its conversation: threading, contacts and
    /// screen-pops go by it. Marked (`threading::UNVERIFIED_SUFFIX`) when the mailbox verifies
    /// senders and this one is not verified.
    pub identity: String,
    pub name: String,
    /// None when the mailbox does not verify senders.
    pub verdict: Option<Verdict>,
}

/// The sender of a customer message, or why the message cannot be routed.
///
/// Without `trusted_authserv_ids`, Reply-To (else From) is taken at its word, as it always was.
/// With them, the identity is the From address, the only one DMARC authenticates: a Reply-To
/// would let any verified domain claim another's customer. An unverified From is marked, so it
/// neither joins the verified customer's conversations nor shows their history.
pub fn identify(m: &MailboxConfig, e: &ParsedEmail) -> Result<Sender, String> {
    let Some(policy) = m.unauthenticated_policy() else {
        let identity = e.from.clone().ok_or("no usable sender address")?;
        return Ok(Sender { identity, name: e.from_name.clone(), verdict: None });
    };
    let author = e.author.clone().ok_or("no usable From address")?;
    let single = (e.author_count == 1).then_some(author.as_str());
    let verdict = auth_results::verify(&e.auth_results, single, &m.trusted_authserv_ids, m.accept_aligned_dkim);
    let identity = match (verdict.verified, policy) {
        (true, _) => author,
        (false, Unauthenticated::Reject) => return Err(format!("sender not authenticated ({})", verdict.reason)),
        (false, Unauthenticated::Flag) => threading::unverified_identity(&author),
    };
    if identity.len() > crate::model::MAX_ADDRESS_LEN {
        return Err("sender address too long".into());
    }
    Ok(Sender { identity, name: e.author_name.clone(), verdict: Some(verdict) })
}

/// Worth retrying later: nothing was lost, the message stays unprocessed.
#[derive(Debug, thiserror::Error)]
#[error("storing an email failed: {0}")]
pub struct IngestError(#[from] pub EngineError);

#[derive(Clone)]
pub struct Ingest {
    engine: Engine,
    state: EmailState,
    window_ms: u64,
    sticky_wait_secs: u32,
    /// Sends the after-hours answers (None: stored in the thread, not sent — tests of ingest alone).
    outbound: Option<Arc<Outbound>>,
}

impl Ingest {
    pub fn new(engine: Engine, cfg: &EmailConfig) -> Self {
        Ingest {
            state: EmailState::new(&engine),
            engine,
            window_ms: cfg.reopen_window().as_millis() as u64,
            sticky_wait_secs: cfg.sticky_wait_secs,
            outbound: None,
        }
    }

    /// Answers after hours through `outbound` (the channel's reply path).
    pub fn answering_with(mut self, outbound: Arc<Outbound>) -> Self {
        self.outbound = Some(outbound);
        self
    }

    /// After hours: a message that started (`new`) or joined a waiting interaction in a closed
    /// queue whose rule for email has a message is answered with it, once per interaction and
    /// closed period (the system message's key: of several instances only the one that stored it
    /// sends). The answer is in the thread and leaves as a threaded reply; a new interaction the
    /// rule refuses then ends (`end_reason` "closed"), otherwise it waits. Failures are logged;
    /// the customer's message is stored either way.
    async fn answer_if_closed(&self, outcome: &Outcome) {
        let (iid, new) = match outcome {
            Outcome::Created(iid) | Outcome::FollowUp { interaction_id: iid, .. } => (iid, true),
            Outcome::Appended(iid) => (iid, false),
            _ => return,
        };
        if let Err(error) = self.try_answer_closed(iid, new).await {
            warn!(message = "After-hours email answer not sent.", interaction = %iid, %error);
        }
    }

    async fn try_answer_closed(&self, iid: &str, new: bool) -> Result<(), String> {
        let Some(outbound) = &self.outbound else { return Ok(()) };
        crate::channels::after_hours::answer_if_closed(
            &self.engine,
            Channel::Email,
            iid,
            new,
            |_, _| async { Ok(()) },
            |ix, msg| async move { outbound.deliver(&ix, &msg).await },
        )
        .await
    }

    pub async fn process(&self, mailbox: &MailboxConfig, raw: Vec<u8>) -> Result<Outcome, IngestError> {
        let max_body = mailbox.max_body_bytes as usize;
        let raw_len = raw.len();
        let parsed =
            tokio::time::timeout(PARSE_DEADLINE, tokio::task::spawn_blocking(move || parse::parse(&raw, max_body)))
                .await;
        let e = match parsed {
            Ok(Ok(Ok(e))) => e,
            Ok(Ok(Err(err))) => return Ok(Outcome::SetAside(err.to_string())),
            // A panic inside the parser is contained to this message.
            Ok(Err(join)) => return Ok(Outcome::SetAside(format!("parser failed: {join}"))),
            Err(_) => return Ok(Outcome::SetAside(format!("parsing took longer than {PARSE_DEADLINE:?}"))),
        };
        debug!(message = "Email parsed.", mailbox = %mailbox.name, bytes = raw_len, kind = kind_label(&e.kind));
        if let Some(done) = self.state.seen(&e.dedupe_key).await?
            && !done.starts_with('~')
        {
            return Ok(Outcome::Duplicate(done));
        }
        match e.kind.clone() {
            Kind::AutoReply(reason) => {
                // Not who sent it: a customer's address is personal data, and logs are kept and shared.
                info!(message = "Auto-reply ignored.", mailbox = %mailbox.name, %reason);
                self.state.mark_seen(&e.dedupe_key, "-").await?;
                Ok(Outcome::AutoReply(reason))
            }
            Kind::Bounce { original, reason } => self.bounce(mailbox, &e, &original, &reason).await,
            Kind::Customer => {
                let sender = match identify(mailbox, &e) {
                    Ok(s) => s,
                    Err(reason) => {
                        self.state.mark_seen(&e.dedupe_key, "-").await?;
                        return Ok(Outcome::SetAside(reason));
                    }
                };
                if let Some(v) = &sender.verdict
                    && !v.verified
                {
                    info!(message = "Email sender not verified.", mailbox = %mailbox.name, reason = %v.reason);
                }
                let outcome = self.customer(mailbox, &e, &sender).await?;
                self.answer_if_closed(&outcome).await;
                Ok(outcome)
            }
        }
    }

    async fn bounce(
        &self,
        mailbox: &MailboxConfig,
        e: &ParsedEmail,
        original: &[String],
        reason: &str,
    ) -> Result<Outcome, IngestError> {
        let mut target = None;
        for id in original {
            if let Some((iid, _)) = self.state.lookup_ref(id).await?
                && self.state.out_record(id).await?.is_some()
            {
                target = Some(iid);
                break;
            }
        }
        let Some(iid) = target else {
            warn!(message = "Bounce for no reply of ours.", mailbox = %mailbox.name, status = bounce_status(reason));
            self.state.mark_seen(&e.dedupe_key, "-").await?;
            return Ok(Outcome::Bounce(None));
        };
        let body = format!("[bounce] Our reply could not be delivered: {reason}");
        match self.append_once(&e.dedupe_key, &iid, &body, true).await {
            Ok(()) => {}
            Err(IngestError(EngineError::FailedPrecondition(m))) => {
                // The conversation has ended: the bounce stays in the log only.
                warn!(message = "Bounce for an ended conversation.", interaction = %iid, status = bounce_status(reason), detail = %m);
            }
            Err(err) => return Err(err),
        }
        self.state.mark_seen(&e.dedupe_key, &iid).await?;
        warn!(message = "Reply bounced.", mailbox = %mailbox.name, interaction = %iid, status = bounce_status(reason));
        Ok(Outcome::Bounce(Some(iid)))
    }

    /// Appends `body` to `iid` once per message (the store keys the append by the message's
    /// dedupe key, atomically), even if a crash interrupted a previous try. `note`: a system note
    /// for the agent (a bounce) rather than the customer's words.
    async fn append_once(&self, dedupe_key: &str, iid: &str, body: &str, note: bool) -> Result<(), IngestError> {
        let key = format!("email-append|{dedupe_key}");
        if note {
            self.engine.append_system_message_once(iid, body, &key).await?;
        } else {
            self.engine.append_customer_message_once(iid, body, &key).await?;
        }
        Ok(())
    }

    async fn candidates(&self, e: &ParsedEmail) -> Result<Vec<Candidate>, IngestError> {
        let mut found: Vec<(String, String)> = Vec::new();
        for id in e.parents.iter().take(parse::MAX_REFERENCES) {
            if let Some(hit) = self.state.lookup_ref(id).await?
                && !found.iter().any(|(i, _)| *i == hit.0)
            {
                found.push(hit);
            }
        }
        if let Some(token) = threading::extract_token(&e.subject)
            && let Some(iid) = self.state.lookup_token(&token).await?
            && !found.iter().any(|(i, _)| *i == iid)
            && let Some(conv) = self.state.conversation(&iid).await?
        {
            found.push((iid, conv.customer));
        }
        let ids: Vec<String> = found.iter().map(|(i, _)| i.clone()).collect();
        let ixs = self.engine.interactions(&ids, false).await?;
        Ok(found
            .into_iter()
            .zip(ixs)
            .map(|((iid, customer), ix)| {
                let (state, agent) = match ix {
                    None => (CandidateState::Gone, String::new()),
                    Some(ix) => {
                        let st = match ix.state {
                            InteractionState::Completed | InteractionState::Abandoned => {
                                let at = ix.timestamps.values().copied().max().unwrap_or(0);
                                CandidateState::Ended(at)
                            }
                            _ => CandidateState::Open,
                        };
                        (st, ix.agent_id)
                    }
                };
                Candidate { interaction_id: iid, customer, state, agent }
            })
            .collect())
    }

    /// Records which conversation a received Message-ID belongs to. Where senders are verified,
    /// a Message-ID already known keeps its conversation: a message may carry any Message-ID,
    /// and one copying ours would otherwise pull the customer's answers to it elsewhere.
    async fn remember_received(
        &self,
        mailbox: &MailboxConfig,
        mid: &str,
        iid: &str,
        customer: &str,
    ) -> Result<(), IngestError> {
        if mailbox.unauthenticated_policy().is_some()
            && let Some((known, _)) = self.state.lookup_ref(mid).await?
            && known != iid
        {
            warn!(message = "Message-ID already belongs to another conversation.", mailbox = %mailbox.name, interaction = %iid, other = %known);
            return Ok(());
        }
        self.state.remember_ref(mid, iid, customer).await?;
        Ok(())
    }

    async fn customer(
        &self,
        mailbox: &MailboxConfig,
        e: &ParsedEmail,
        sender: &Sender,
    ) -> Result<Outcome, IngestError> {
        let from = sender.identity.as_str();
        let cands = self.candidates(e).await?;
        let now = self.engine.now_ms().await?;
        let decision = threading::decide(from, &cands, now, self.window_ms);
        let outcome = match decision {
            Decision::Append(iid) => {
                match self.append_once(&e.dedupe_key, &iid, &e.body, false).await {
                    Ok(()) => {}
                    // Ended between the look-up and the append: start a follow-up instead.
                    Err(IngestError(EngineError::FailedPrecondition(_))) => {
                        let agent = cands.iter().find(|c| c.interaction_id == iid).map(|c| c.agent.clone());
                        return self.create(mailbox, e, sender, Some((iid, agent.unwrap_or_default()))).await;
                    }
                    Err(err) => return Err(err),
                }
                let mut conv = self.state.conversation(&iid).await?.unwrap_or_else(|| Conversation {
                    mailbox: mailbox.name.clone(),
                    customer: from.to_string(),
                    subject: e.subject.clone(),
                    token: threading::token_for(&iid),
                    ..Default::default()
                });
                if let Some(mid) = &e.message_id {
                    conv.last_in = mid.clone();
                    conv.refs = merge_refs(&conv.refs, &e.references, mid);
                    self.remember_received(mailbox, mid, &iid, &conv.customer).await?;
                }
                self.state.put_conversation(&iid, &conv).await?;
                self.state.mark_seen(&e.dedupe_key, &iid).await?;
                Outcome::Appended(iid)
            }
            Decision::FollowUp { previous, agent } => {
                return self.create(mailbox, e, sender, Some((previous, agent))).await;
            }
            Decision::New => return self.create(mailbox, e, sender, None).await,
        };
        Ok(outcome)
    }

    async fn create(
        &self,
        mailbox: &MailboxConfig,
        e: &ParsedEmail,
        sender: &Sender,
        follow_up: Option<(String, String)>,
    ) -> Result<Outcome, IngestError> {
        let from = sender.identity.as_str();
        let mut attributes = BTreeMap::new();
        attributes.insert("email.mailbox".to_string(), mailbox.name.clone());
        if let Some(mid) = &e.message_id {
            attributes.insert("email.message_id".to_string(), parse::one_line(mid, 1024));
        }
        if !sender.name.is_empty() {
            attributes.insert("email.from_name".to_string(), sender.name.clone());
        }
        if let Some(v) = &sender.verdict {
            attributes.insert("email.sender_verified".to_string(), v.verified.to_string());
            attributes.insert("email.sender_auth".to_string(), v.reason.clone());
            // Replies go to From; the agent sees where the sender asked for them instead.
            if let Some(rt) = &e.reply_to
                && Some(rt) != e.author.as_ref()
            {
                attributes.insert("email.reply_to".to_string(), rt.clone());
            }
        }
        if !e.attachments.is_empty() {
            let mut list = e.attachments.clone();
            // The attribute is capped; the body carries the full list as text.
            let json = loop {
                let j = serde_json::to_string(&list).expect("attachments serialize");
                if j.len() <= crate::model::MAX_ATTRIBUTE_LEN || list.is_empty() {
                    break j;
                }
                list.pop();
            };
            attributes.insert("email.attachments".to_string(), json);
        }
        if e.truncated {
            attributes.insert("email.truncated".to_string(), "true".to_string());
        }
        let (preferred, previous) = match &follow_up {
            Some((prev, agent)) => {
                attributes.insert("email.previous_interaction".to_string(), prev.clone());
                (agent.clone(), Some(prev.clone()))
            }
            None => (String::new(), None),
        };
        let new = NewInteraction {
            idempotency_key: e.dedupe_key.clone(),
            channel: Some(Channel::Email),
            customer_address: from.to_string(),
            subject: e.subject.clone(),
            attributes,
            queue: mailbox.queue.clone(),
            priority: mailbox.priority,
            body: e.body.clone(),
            preferred_agent_id: preferred.clone(),
            preferred_agent_wait_secs: if preferred.is_empty() { 0 } else { self.sticky_wait_secs },
            ..NewInteraction::default()
        };
        let (ix, created) = self.engine.create_interaction(&new).await?;
        let prev_conv = match &previous {
            Some(p) => self.state.conversation(p).await?,
            None => None,
        };
        let mut conv = Conversation {
            mailbox: mailbox.name.clone(),
            customer: from.to_string(),
            subject: e.subject.clone(),
            token: threading::token_for(&ix.id),
            last_in: String::new(),
            refs: prev_conv.map(|c| c.refs).unwrap_or_default(),
        };
        if let Some(mid) = &e.message_id {
            conv.last_in = mid.clone();
            conv.refs = merge_refs(&conv.refs, &e.references, mid);
            self.remember_received(mailbox, mid, &ix.id, from).await?;
        }
        self.state.put_conversation(&ix.id, &conv).await?;
        self.state.mark_seen(&e.dedupe_key, &ix.id).await?;
        if !created {
            debug!(message = "Email interaction existed already.", interaction = %ix.id);
        }
        Ok(match previous {
            Some(previous) => Outcome::FollowUp { interaction_id: ix.id, previous },
            None => Outcome::Created(ix.id),
        })
    }
}

/// References for the next reply: what we had, what the customer's message referenced, then the
/// customer's message itself; no repeats, capped.
fn merge_refs(ours: &[String], theirs: &[String], latest: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ours.iter().chain(theirs.iter()).map(String::as_str).chain(std::iter::once(latest)) {
        if !out.iter().any(|x| x == id) {
            out.push(id.to_string());
        }
    }
    parse::cap_references(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_status_is_the_code_alone() {
        let dsn = "Status: 5.1.1 Diagnostic-Code: smtp; 550 5.1.1 <carol@customer.test>: Recipient address rejected";
        assert_eq!(bounce_status(dsn), "5.1.1");
        assert_eq!(bounce_status("Diagnostic-Code: smtp; 452 4.2.2 mailbox full"), "4.2.2");
        assert_eq!(bounce_status("Undeliverable: Re: my order 1.2.3 [#SB-1]"), "unknown");
        assert_eq!(bounce_status("delivery failed"), "unknown");
    }

    fn mailbox(trusted: &[&str], policy: Option<Unauthenticated>) -> MailboxConfig {
        let toml = r#"
[[mailboxes]]
name = "support"
address = "support@acme.test"
queue = "support"
imap = { host = "imap.acme.test", security = "tls", username = "u", password = "p" }
smtp = { host = "smtp.acme.test", security = "tls" }
"#;
        let mut m = EmailConfig::from_toml_str(toml).unwrap().mailboxes.remove(0);
        m.trusted_authserv_ids = trusted.iter().map(std::string::ToString::to_string).collect();
        m.unauthenticated = policy;
        m
    }

    fn mail(headers: &str) -> ParsedEmail {
        parse::parse(format!("{headers}Subject: s\r\n\r\nhi").as_bytes(), 4096).unwrap()
    }

    const PASS: &str = "Authentication-Results: mx.acme.test; dmarc=pass header.from=customer.test\r\n";

    #[test]
    fn identities() {
        let spoof_reply_to = "From: Carol <carol@customer.test>\r\nReply-To: mallory@evil.test\r\n";
        // Not configured: as it always was, Reply-To wins and nothing is said about it.
        let s = identify(&mailbox(&[], None), &mail(spoof_reply_to)).unwrap();
        assert_eq!((s.identity.as_str(), s.verdict), ("mallory@evil.test", None));

        let m = mailbox(&["mx.acme.test"], None);
        let s = identify(&m, &mail(&format!("{PASS}{spoof_reply_to}"))).unwrap();
        assert_eq!(s.identity, "carol@customer.test", "From, never Reply-To");
        assert_eq!(s.name, "Carol");
        assert_eq!(s.verdict, Some(Verdict { verified: true, reason: "dmarc=pass".into() }));

        for (headers, reason) in [
            ("", "none"),
            ("Authentication-Results: evil.test; dmarc=pass header.from=customer.test\r\n", "none"),
            ("Authentication-Results: mx.acme.test; dmarc=fail header.from=customer.test\r\n", "dmarc=fail"),
        ] {
            let s = identify(&m, &mail(&format!("{headers}{spoof_reply_to}"))).unwrap();
            assert_eq!(s.identity, "carol@customer.test (unverified)", "{headers}");
            assert_eq!(s.verdict, Some(Verdict { verified: false, reason: reason.into() }), "{headers}");
            let rejected = identify(
                &mailbox(&["mx.acme.test"], Some(Unauthenticated::Reject)),
                &mail(&format!("{headers}{spoof_reply_to}")),
            );
            assert_eq!(rejected, Err(format!("sender not authenticated ({reason})")));
        }
        // Two authors: DMARC vouched for one of them at most.
        let s = identify(&m, &mail(&format!("{PASS}From: carol@customer.test, mallory@evil.test\r\n"))).unwrap();
        assert_eq!(s.identity, "carol@customer.test (unverified)");
        // No From at all: nothing to verify, nobody to answer.
        assert_eq!(identify(&m, &mail("Reply-To: carol@customer.test\r\n")), Err("no usable From address".into()));
        let long = format!("From: {}@customer.test\r\n", "a".repeat(300));
        assert_eq!(identify(&m, &mail(&long)), Err("sender address too long".into()));
    }

    #[test]
    fn refs_merge_in_order_without_repeats() {
        let v = |s: &[&str]| s.iter().map(std::string::ToString::to_string).collect::<Vec<_>>();
        assert_eq!(merge_refs(&v(&["a", "b"]), &v(&["a", "b", "c"]), "d"), v(&["a", "b", "c", "d"]));
        let long: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let m = merge_refs(&long, &[], "x");
        assert_eq!(m.len(), super::parse::MAX_REFERENCES);
        assert_eq!(m[0], "0");
        assert_eq!(m.last().unwrap(), "x");
    }
}
