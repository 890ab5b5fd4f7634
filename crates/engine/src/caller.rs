//! The desktop session a request comes from, and the pushes for it that come back with a reply.
//!
//! A routing function pushes to an agent's desktop through its instance's inbox, which the hub
//! reads. When the agent's own request causes the push (the next offer after a completion, an
//! offer after going ready, the assignment after an accept), the push would go to Redis and
//! straight back to the process that is already waiting for the reply. Instead, every operation
//! made through a [`Caller`] ([`Engine::calls`]) returns the pushes for that session with its
//! reply, decoded like the inbox's, and the session shows them after the acknowledgement: one
//! inbox write and one hub read fewer, on the latency path of every "agent freed → next offer".
//! That is the one rule; no operation is special.
//!
//! Order is kept with the inbox id each reply's pushes follow: the session shows them once the
//! hub has handed over every push up to that id (see the daemon's `api::agent`).
//!
//! A request that does not come on the session's stream ([`Caller::remote`]: a browser's `Act`,
//! which any instance may take) has no one waiting to show what its reply would return, so its
//! calls keep nothing: every push goes through the inbox of the instance holding the stream.

use std::sync::Mutex;

use switchboard_model::{Interaction, Message, Presence};

use crate::push::{InboxEntry, InboxId, Push};
use crate::{Engine, Result, TransferTarget};

/// Pushes for the calling session as one reply returned them (kind, data), and the inbox's last
/// entry id when the first of them was made: they follow it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SessionPushes {
    pub after: String,
    pub pushes: Vec<(String, String)>,
}

impl SessionPushes {
    pub fn is_empty(&self) -> bool {
        self.pushes.is_empty()
    }
}

/// What one call returned for its session, decoded: shown after every inbox push up to `after`.
#[derive(Debug, Clone, PartialEq)]
pub struct Returned {
    pub after: InboxId,
    pub pushes: Vec<Push>,
}

/// A desktop session making requests. Operations made through [`Engine::calls`] return the pushes
/// for this session with their replies; they are kept here, a batch per call, in call order.
#[derive(Debug)]
pub struct Caller {
    agent: String,
    /// Empty for a [`Caller::remote`]: no session gets pushes back with the replies.
    session: String,
    /// The instance holding the session (whose inbox takes what cannot be shown from a reply).
    instance: String,
    returned: Mutex<Vec<Returned>>,
}

impl Caller {
    pub fn new(agent: &str, session: &str, instance: &str) -> Caller {
        Caller {
            agent: agent.to_string(),
            session: session.to_string(),
            instance: instance.to_string(),
            returned: Mutex::new(Vec::new()),
        }
    }

    /// The agent's requests that do not come on its session's stream (see the module doc): their
    /// calls return no pushes, so [`Caller::take_returned`] stays empty.
    pub fn remote(agent: &str) -> Caller {
        Caller::new(agent, "", "")
    }

    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Who the calls are made by, for `run_by`: no one, for a remote caller.
    fn by(&self) -> Option<&Caller> {
        (!self.session.is_empty()).then_some(self)
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// The batches returned since the last take, in the order the calls were made.
    pub fn take_returned(&self) -> Vec<Returned> {
        std::mem::take(&mut *self.returned.lock().expect("caller lock"))
    }

    pub(crate) fn keep(&self, r: Returned) {
        if !r.pushes.is_empty() {
            self.returned.lock().expect("caller lock").push(r);
        }
    }
}

/// The agent operations, made as `caller`'s requests (see the module doc).
pub struct Calls<'a> {
    engine: &'a Engine,
    caller: &'a Caller,
}

impl Engine {
    /// The agent operations as requests of `caller`'s desktop session.
    pub fn calls<'a>(&'a self, caller: &'a Caller) -> Calls<'a> {
        Calls { engine: self, caller }
    }

    /// Decodes the pushes a reply returned for `caller` and keeps them there. If what they refer
    /// to cannot be read, they go to the inbox after all, so none is lost.
    pub(crate) async fn keep_returned(&self, caller: &Caller, pushes: SessionPushes) {
        if pushes.is_empty() {
            return;
        }
        let entries: Vec<InboxEntry> = pushes
            .pushes
            .iter()
            .map(|(kind, data)| InboxEntry {
                id: String::new(),
                agent: caller.agent.clone(),
                session: caller.session.clone(),
                kind: kind.clone(),
                data: data.clone(),
            })
            .collect();
        let after = InboxId::parse(&pushes.after).unwrap_or_default();
        match self.resolve_pushes(&entries).await {
            Ok(resolved) => {
                let mut kept = Vec::new();
                for (e, push) in entries.iter().zip(resolved) {
                    match push {
                        Ok(Some(push)) => {
                            metrics::counter!("switchboard_pushes_total", "kind" => e.kind.clone()).increment(1);
                            kept.push(push);
                        }
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(message = "Could not resolve a push.", %error, kind = %e.kind, agent = %e.agent);
                        }
                    }
                }
                caller.keep(Returned { after, pushes: kept });
            }
            Err(error) => {
                tracing::warn!(message = "Could not read what a reply's pushes refer to; sending them through the inbox.", %error);
                for e in &entries {
                    if self.push(&caller.instance, &e.agent, &e.session, &e.kind, &e.data).await.is_err() {
                        tracing::warn!(message = "A push for a session was lost.", kind = %e.kind, agent = %e.agent);
                    }
                }
            }
        }
    }
}

impl Calls<'_> {
    pub async fn set_presence(&self, presence: &Presence, cause: &str) -> Result<()> {
        self.engine.set_presence_by(self.caller.by(), &self.caller.agent, presence, cause).await
    }

    pub async fn accept(&self, iid: &str) -> Result<Interaction> {
        self.engine.accept_by(self.caller.by(), &self.caller.agent, iid).await
    }

    pub async fn reject(&self, iid: &str, reason: &str) -> Result<()> {
        self.engine.reject_by(self.caller.by(), &self.caller.agent, iid, reason).await
    }

    pub async fn reply(&self, iid: &str, body: &str) -> Result<Message> {
        self.engine.reply_by(self.caller.by(), &self.caller.agent, iid, body).await
    }

    pub async fn complete(&self, iid: &str, disposition: &str, notes: &str) -> Result<Interaction> {
        self.engine.complete_by(self.caller.by(), &self.caller.agent, iid, disposition, notes).await
    }

    pub async fn end_wrap_up(&self, iid: &str, disposition: &str, notes: &str) -> Result<Interaction> {
        self.engine.end_wrap_up_by(self.caller.by(), &self.caller.agent, iid, disposition, notes).await
    }

    pub async fn transfer(&self, iid: &str, target: &TransferTarget, priority_boost: i32) -> Result<Interaction> {
        self.engine.transfer_by(self.caller.by(), &self.caller.agent, iid, target, priority_boost).await
    }

    pub async fn agent_typing(&self, iid: &str, on: bool) -> Result<()> {
        self.engine.agent_typing_by(self.caller.by(), &self.caller.agent, iid, on).await
    }
}

/// Splits a successful reply's trailer off: its values, and the pushes for the calling session
/// (see `end_call` in lib.lua: kind, data pairs, the inbox id they follow, their count).
pub(super) fn split_reply(values: &[String]) -> Option<(&[String], SessionPushes)> {
    let (count, rest) = values.split_last()?;
    let n: usize = count.parse().ok()?;
    if n == 0 {
        return Some((rest, SessionPushes::default()));
    }
    let (after, rest) = rest.split_last()?;
    let start = rest.len().checked_sub(2 * n)?;
    let pushes = rest[start..].chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    Some((&rest[..start], SessionPushes { after: after.clone(), pushes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn a_remote_caller_has_its_calls_made_by_no_session() {
        assert!(Caller::remote("a").by().is_none());
        let c = Caller::new("a", "s", "i");
        assert!(c.by().is_some_and(|by| by.session() == "s"));
    }

    #[test]
    fn a_reply_without_pushes_keeps_its_values() {
        let v = strings(&["a", "b", "0"]);
        let (values, pushes) = split_reply(&v).unwrap();
        assert_eq!(values, &strings(&["a", "b"])[..]);
        assert!(pushes.is_empty());
    }

    #[test]
    fn pushes_come_off_the_end_in_order() {
        let v = strings(&["a", "offer", "{}", "presence", "{\"state\":\"ready\"}", "17-0", "2"]);
        let (values, pushes) = split_reply(&v).unwrap();
        assert_eq!(values, &strings(&["a"])[..]);
        assert_eq!(pushes.after, "17-0");
        assert_eq!(
            pushes.pushes,
            vec![("offer".into(), "{}".into()), ("presence".into(), "{\"state\":\"ready\"}".into())]
        );
    }

    #[test]
    fn a_malformed_trailer_is_refused() {
        assert!(split_reply(&[]).is_none());
        assert!(split_reply(&strings(&["x"])).is_none());
        assert!(split_reply(&strings(&["offer", "1-0", "2"])).is_none());
    }
}
