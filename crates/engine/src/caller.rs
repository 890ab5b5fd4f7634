//! The desktop session a request comes from, and the pushes for it that come back with a reply.
//!
//! A routing function pushes to an agent's desktop through its instance's inbox, which the hub
//! reads. When the agent's own request causes the push (the next offer after a completion, an
//! offer after going ready), the push would go to Redis and straight back to the process that
//! is already waiting for the reply. Instead, the function returns it with the reply, and the
//! session shows it after the acknowledgement: one inbox write and one hub read fewer, on the
//! latency path of every "agent freed → next offer".
//!
//! Order is kept with the inbox id each reply's pushes follow: the session shows them once the
//! hub has handed over every push up to that id (see `api::agent`).

use std::cell::{Cell, RefCell};
use std::future::Future;

/// Pushes for the calling session, as the inbox would hold them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SessionPushes {
    /// The inbox's last entry id when the first of them was made: they follow it.
    pub after: String,
    /// (kind, data) in the order made.
    pub pushes: Vec<(String, String)>,
}

impl SessionPushes {
    pub fn is_empty(&self) -> bool {
        self.pushes.is_empty()
    }
}

struct Caller {
    agent: String,
    session: String,
    taken: Cell<bool>,
    pushes: RefCell<SessionPushes>,
}

tokio::task_local! {
    static CALLER: Caller;
}

/// Runs `f` as a request of `agent`'s desktop `session`. Its first routing function call makes
/// no inbox push for that session: the pushes are returned here, to be shown by the session.
/// Later calls in `f` push as usual (their pushes follow the first call's in the inbox).
pub async fn in_session<F: Future>(agent: &str, session: &str, f: F) -> (F::Output, SessionPushes) {
    let caller = Caller {
        agent: agent.to_string(),
        session: session.to_string(),
        taken: Cell::new(false),
        pushes: RefCell::new(SessionPushes::default()),
    };
    CALLER
        .scope(caller, async {
            let out = f.await;
            (out, CALLER.with(|c| c.pushes.take()))
        })
        .await
}

/// (agent, session) for the next function call: the scope's caller the first time, else none.
pub(super) fn take() -> (String, String) {
    CALLER
        .try_with(|c| if c.taken.replace(true) { None } else { Some((c.agent.clone(), c.session.clone())) })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps the pushes a reply returned for the scope's session.
pub(super) fn keep(pushes: SessionPushes) {
    if pushes.is_empty() {
        return;
    }
    let kept = CALLER.try_with(|c| c.pushes.replace(pushes));
    // Only a call given the caller returns pushes; this would be a bug, not a lost push to hide.
    debug_assert!(kept.is_ok(), "pushes for a session returned outside its scope");
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
        v.iter().map(std::string::ToString::to_string).collect()
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

    #[tokio::test]
    async fn only_the_first_call_in_a_scope_gets_the_caller() {
        assert_eq!(take(), (String::new(), String::new()));
        let ((first, second), _) = in_session("ann", "s1", async { (take(), take()) }).await;
        assert_eq!(first, ("ann".to_string(), "s1".to_string()));
        assert_eq!(second, (String::new(), String::new()));
    }
}
