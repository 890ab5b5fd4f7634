//! The web chat wire protocol: JSON text frames, one object per frame, tagged by `type`.
//! Documented for widget authors in docs/channels.md "Web chat" ("The protocol").

use serde::{Deserialize, Serialize};

/// What a visitor's page sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Opens a new chat. `start_id` (chosen by the page at random, at least 128 bits: 32 to 64
    /// letters, digits, '-' or '_') makes a retried start return the same chat with the same
    /// token; `visitor` is the page's long-lived visitor id (so the CRM recognises a returning
    /// visitor).
    Start {
        #[serde(default)]
        start_id: String,
        #[serde(default)]
        visitor: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        email: String,
        #[serde(default)]
        topic: String,
        #[serde(default)]
        message: String,
    },
    /// Reattaches to a chat; everything after `last_seq` is sent again.
    Resume {
        token: String,
        #[serde(default)]
        last_seq: u64,
    },
    /// `client_id` makes a resent message (after a reconnect) count once.
    Message {
        body: String,
        #[serde(default)]
        client_id: String,
    },
    Typing {
        on: bool,
    },
    End,
    Ping,
    /// A waiting visitor takes the callback offered (queue's `callback_offer`) instead of waiting
    /// on: a call to `number` keeping the chat's place in line, not before `not_before` (ms since
    /// the epoch; absent or 0: as soon as it is their turn). The chat then ends.
    Callback {
        number: String,
        #[serde(default)]
        not_before: Option<u64>,
    },
    /// The offline form of a closed topic (hello's `closed`): becomes an email interaction the
    /// agents answer when the queue opens.
    Offline {
        #[serde(default)]
        name: String,
        #[serde(default)]
        email: String,
        #[serde(default)]
        topic: String,
        #[serde(default)]
        message: String,
    },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        topics: Vec<TopicInfo>,
        max_message_chars: usize,
        resume_window_secs: u64,
        /// The default topic's queue is closed and refuses chats: show the offline form.
        #[serde(skip_serializing_if = "Option::is_none")]
        closed: Option<ClosedInfo>,
        /// Waiting visitors may be offered a callback instead (`webchat.offer_callback`); each
        /// `queue` frame says whether the offer stands now.
        #[serde(skip_serializing_if = "Option::is_none")]
        callback_offer: Option<CallbackOffer>,
    },
    /// The offline form was taken: the answer comes by email to `email`.
    OfflineReceived {
        email: String,
    },
    Started {
        token: String,
        interaction_id: String,
        visitor: String,
    },
    Resumed {
        interaction_id: String,
    },
    /// One message of the thread, in `seq` order; the visitor's own messages come back too.
    Message {
        seq: u64,
        author: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        body: String,
        at_ms: u64,
    },
    /// The visitor's message is stored as `seq`.
    Sent {
        client_id: String,
        seq: u64,
    },
    /// Waiting: place in line (None: waiting for one particular agent) and estimated seconds
    /// (None: no recent answers to estimate from).
    Queue {
        position: Option<u64>,
        eta_secs: Option<u64>,
        /// The visitor may take a callback instead (a `callback` frame): present, and true, only
        /// while the offer stands (the visitor has waited `after_secs`).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        callback_offer: bool,
    },
    /// The `callback` frame was taken: `number` (E.164) will be called, keeping the chat's place
    /// (`position` in the queue's line, None when not known). An `ended` frame (reason
    /// `callback`) follows.
    CallbackScheduled {
        number: String,
        position: Option<u64>,
    },
    AgentJoined {
        name: String,
    },
    /// The agent handed the chat on; the visitor waits again.
    AgentLeft {
        reason: String,
    },
    Typing {
        on: bool,
    },
    Ended {
        by: &'static str,
        reason: String,
    },
    Error {
        code: &'static str,
        message: String,
        /// The form field at fault (`name`, `email`, `message`, `topic`; `number`, `not_before`
        /// for a callback), when there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'static str>,
    },
    Pong,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicInfo {
    pub name: String,
    pub label: String,
    /// The topic's queue is closed and refuses chats: show the offline form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<ClosedInfo>,
}

/// The callback offer, as hello announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackOffer {
    /// Seconds a visitor waits before the offer is made (0: at once).
    pub after_secs: u32,
}

/// A closed queue, as the widget shows it: when it opens and what the queue's rule says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosedInfo {
    /// The next opening (ms since the epoch); None when the calendar has none ahead.
    pub opens_at_ms: Option<u64>,
    /// The same in the calendar's zone ("Tue 2026-12-08 09:00 UTC"); empty when unknown.
    pub opens: String,
    /// The rule's message with `{opens}` filled in; empty when the rule has none.
    pub message: String,
}

impl ServerFrame {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        ServerFrame::Error { code, message: message.into(), field: None }
    }

    /// An error about one form field.
    pub fn field_error(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        ServerFrame::Error { code, message: message.into(), field: Some(field) }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames serialize")
    }
}

/// Parses one text frame; the error is meant for the visitor's developer console.
pub fn parse(text: &str) -> Result<ClientFrame, String> {
    serde_json::from_str(text).map_err(|e| {
        let e = e.to_string();
        if e.contains("unknown variant") {
            format!("unknown frame type ({e})")
        } else {
            format!("not a valid frame: {e}")
        }
    })
}

/// Letters, digits, '-' and '_', 1..=64 characters: ids chosen by the page.
/// A start id a page drew at random: long enough that nobody else can know it, since with the
/// visitor id (which agents see) it gives the chat's token.
pub fn valid_start_id(v: &str) -> bool {
    v.len() >= 32 && valid_client_id(v)
}

pub fn valid_client_id(v: &str) -> bool {
    (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks text a visitor typed: not blank, at most `max_chars`, no control characters other than
/// line breaks and tabs.
pub fn check_text(field: &str, v: &str, max_chars: usize) -> Result<(), (&'static str, String)> {
    let n = v.chars().count();
    if n > max_chars {
        return Err(("too_large", format!("{field} is too long ({n} characters; the limit is {max_chars}).")));
    }
    if v.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(("bad_message", format!("{field} contains control characters.")));
    }
    Ok(())
}

/// A plausible email address (the CRM normalizes it further).
pub fn valid_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else { return false };
    v.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !v.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
        && !domain.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse() {
        assert_eq!(parse(r#"{"type":"ping"}"#).unwrap(), ClientFrame::Ping);
        assert_eq!(
            parse(r#"{"type":"message","body":"hi"}"#).unwrap(),
            ClientFrame::Message { body: "hi".into(), client_id: "".into() }
        );
        assert_eq!(
            parse(r#"{"type":"resume","token":"t","last_seq":3}"#).unwrap(),
            ClientFrame::Resume { token: "t".into(), last_seq: 3 }
        );
        assert!(parse(r#"{"type":"start"}"#).is_ok());
        assert_eq!(
            parse(r#"{"type":"offline","name":"Ann","email":"a@b.de","message":"hi"}"#).unwrap(),
            ClientFrame::Offline { name: "Ann".into(), email: "a@b.de".into(), topic: "".into(), message: "hi".into() }
        );
        assert_eq!(
            parse(r#"{"type":"callback","number":"+4915112345678"}"#).unwrap(),
            ClientFrame::Callback { number: "+4915112345678".into(), not_before: None }
        );
        assert_eq!(
            parse(r#"{"type":"callback","number":"0151 12345678","not_before":1800000000000}"#).unwrap(),
            ClientFrame::Callback { number: "0151 12345678".into(), not_before: Some(1_800_000_000_000) }
        );
        assert!(parse(r#"{"type":"callback"}"#).unwrap_err().contains("number"));
    }

    #[test]
    fn bad_frames_say_why() {
        assert!(parse("hello").unwrap_err().starts_with("not a valid frame"));
        assert!(parse(r#"{"type":"launch"}"#).unwrap_err().starts_with("unknown frame type"));
        assert!(parse(r#"{"type":"message"}"#).unwrap_err().contains("body"));
        assert!(parse(r#"{"type":"typing","on":"yes"}"#).is_err());
        assert!(parse(r#"{"body":"x"}"#).is_err());
    }

    #[test]
    fn server_frames_are_tagged() {
        assert_eq!(ServerFrame::Pong.to_json(), r#"{"type":"pong"}"#);
        assert_eq!(
            ServerFrame::Queue { position: Some(2), eta_secs: None, callback_offer: false }.to_json(),
            r#"{"type":"queue","position":2,"eta_secs":null}"#
        );
        assert_eq!(
            ServerFrame::Queue { position: Some(2), eta_secs: Some(30), callback_offer: true }.to_json(),
            r#"{"type":"queue","position":2,"eta_secs":30,"callback_offer":true}"#
        );
        assert_eq!(
            ServerFrame::CallbackScheduled { number: "+4915112345678".into(), position: Some(3) }.to_json(),
            r#"{"type":"callback_scheduled","number":"+4915112345678","position":3}"#
        );
        assert_eq!(
            ServerFrame::error("too_large", "x").to_json(),
            r#"{"type":"error","code":"too_large","message":"x"}"#
        );
        assert_eq!(
            ServerFrame::field_error("bad_email", "email", "x").to_json(),
            r#"{"type":"error","code":"bad_email","message":"x","field":"email"}"#
        );
    }

    #[test]
    fn text_checks() {
        assert!(check_text("message", "hello\nworld", 20).is_ok());
        assert_eq!(check_text("message", "ééé", 2).unwrap_err().0, "too_large");
        assert_eq!(check_text("message", "a\u{0}b", 20).unwrap_err().0, "bad_message");
        assert!(valid_email("a.b@example.com"));
        for bad in ["", "a", "a@b", "@b.com", "a b@c.com", "a@b.com>", "a@.com", "a@b@c.com"] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(valid_client_id("abc-DEF_123"));
        assert!(!valid_client_id(""));
        assert!(!valid_client_id("a/b"));
        assert!(!valid_client_id(&"x".repeat(65)));
    }
}
