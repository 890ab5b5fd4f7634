//! One received message → routing: a new interaction, a message in an open one, a follow-up of a
//! recently closed one, a bounce shown on the conversation it concerns, or nothing (auto-reply,
//! duplicate, unreadable). Independent of IMAP, so it is tested against Redis alone.
//!
//! Every step is idempotent, so processing the same message again (after a crash, a reconnect or
//! a UIDVALIDITY change) changes nothing: creation is idempotent by the message's dedupe key,
//! appends are guarded by a pending marker, and the bookkeeping writes are plain overwrites.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::config::{EmailConfig, MailboxConfig};
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
}

impl Ingest {
    pub fn new(engine: Engine, cfg: &EmailConfig) -> Self {
        Ingest {
            state: EmailState::new(&engine),
            engine,
            window_ms: cfg.reopen_window().as_millis() as u64,
            sticky_wait_secs: cfg.sticky_wait_secs,
        }
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
        debug!(message = "Email parsed.", mailbox = %mailbox.name, bytes = raw_len, kind = ?e.kind);
        if let Some(done) = self.state.seen(&e.dedupe_key).await?
            && !done.starts_with('~')
        {
            return Ok(Outcome::Duplicate(done));
        }
        match e.kind.clone() {
            Kind::AutoReply(reason) => {
                info!(message = "Auto-reply ignored.", mailbox = %mailbox.name, %reason, from = ?e.from);
                self.state.mark_seen(&e.dedupe_key, "-").await?;
                Ok(Outcome::AutoReply(reason))
            }
            Kind::Bounce { original, reason } => self.bounce(mailbox, &e, &original, &reason).await,
            Kind::Customer => {
                let Some(from) = e.from.clone() else {
                    self.state.mark_seen(&e.dedupe_key, "-").await?;
                    return Ok(Outcome::SetAside("no usable sender address".into()));
                };
                self.customer(mailbox, &e, &from).await
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
            warn!(message = "Bounce for no reply of ours.", mailbox = %mailbox.name, %reason);
            self.state.mark_seen(&e.dedupe_key, "-").await?;
            return Ok(Outcome::Bounce(None));
        };
        let body = format!("[bounce] Our reply could not be delivered: {reason}");
        match self.append_once(&e.dedupe_key, &iid, &body, true).await {
            Ok(()) => {}
            Err(IngestError(EngineError::FailedPrecondition(m))) => {
                // The conversation has ended: the bounce stays in the log only.
                warn!(message = "Bounce for an ended conversation.", interaction = %iid, %reason, detail = %m);
            }
            Err(err) => return Err(err),
        }
        self.state.mark_seen(&e.dedupe_key, &iid).await?;
        warn!(message = "Reply bounced.", mailbox = %mailbox.name, interaction = %iid, %reason);
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

    async fn customer(&self, mailbox: &MailboxConfig, e: &ParsedEmail, from: &str) -> Result<Outcome, IngestError> {
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
                        return self.create(mailbox, e, from, Some((iid, agent.unwrap_or_default()))).await;
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
                    self.state.remember_ref(mid, &iid, &conv.customer).await?;
                }
                self.state.put_conversation(&iid, &conv).await?;
                self.state.mark_seen(&e.dedupe_key, &iid).await?;
                Outcome::Appended(iid)
            }
            Decision::FollowUp { previous, agent } => {
                return self.create(mailbox, e, from, Some((previous, agent))).await;
            }
            Decision::New => return self.create(mailbox, e, from, None).await,
        };
        Ok(outcome)
    }

    async fn create(
        &self,
        mailbox: &MailboxConfig,
        e: &ParsedEmail,
        from: &str,
        follow_up: Option<(String, String)>,
    ) -> Result<Outcome, IngestError> {
        let mut attributes = BTreeMap::new();
        attributes.insert("email.mailbox".to_string(), mailbox.name.clone());
        if let Some(mid) = &e.message_id {
            attributes.insert("email.message_id".to_string(), parse::one_line(mid, 1024));
        }
        if !e.from_name.is_empty() {
            attributes.insert("email.from_name".to_string(), e.from_name.clone());
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
            self.state.remember_ref(mid, &ix.id, from).await?;
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
    use super::merge_refs;

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
