//! `[webchat]` in the daemon's config file.

use std::time::Duration;

use serde::Deserialize;

/// Errors name the key under `webchat.` that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct WebChatConfigError {
    pub key: String,
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> WebChatConfigError {
    WebChatConfigError { key: key.into(), message: message.into() }
}

/// A choice offered on the pre-chat form; the topic picks the queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    /// What the widget sends (`data-topic="billing"`).
    pub name: String,
    /// What the visitor reads; defaults to the name.
    #[serde(default)]
    pub label: String,
    pub queue: String,
}

impl Topic {
    pub fn label(&self) -> &str {
        if self.label.is_empty() { &self.name } else { &self.label }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebChatConfig {
    /// Serves `/chat/ws`, `/widget.js`, `/widget.css` and `/chat/demo` on the HTTP listener.
    pub enabled: bool,
    /// Queue for chats started without a topic.
    pub queue: String,
    pub topics: Vec<Topic>,
    /// Origins (`https://www.example.com`) whose pages may open chats. The server's own origin
    /// (the demo page) is always allowed; `"*"` allows any origin.
    pub allowed_origins: Vec<String>,
    /// How long a visitor may be away (reload, network change) and still resume the same chat.
    /// A chat left longer is withdrawn: abandoned if still waiting, ended if with an agent.
    pub resume_window_secs: u64,
    /// Longest message a visitor may send, in characters.
    pub max_message_chars: usize,
    /// Messages (and chat starts) per minute on one connection.
    pub messages_per_minute: u32,
    /// Messages (and chat starts) per minute from one IP address, across its connections.
    pub ip_messages_per_minute: u32,
    /// New chat connections per minute from one IP address.
    pub ip_connections_per_minute: u32,
    /// Chat connections one IP address may hold open at once on one instance: the rate alone
    /// would let a patient client pile up idle sockets.
    pub ip_max_open_connections: u32,
    /// Behind a reverse proxy: the header carrying the visitor's address (`X-Forwarded-For`,
    /// `X-Real-IP`); its right-most address is used for the per-IP limits. Empty: the peer
    /// address. Set it only when a proxy you run always sets that header.
    pub client_ip_header: String,
    /// Visitors waiting in line are offered a callback instead: the callback keeps their place
    /// and the chat ends. Made only when `cti.callback_system` names the telephony system that
    /// dials callbacks and the chat's queue takes calls.
    pub offer_callback: bool,
    /// Seconds a visitor waits before the callback is offered (0: at once).
    pub offer_callback_after_secs: u32,
}

impl Default for WebChatConfig {
    fn default() -> Self {
        WebChatConfig {
            enabled: true,
            queue: "chat".into(),
            topics: Vec::new(),
            allowed_origins: Vec::new(),
            resume_window_secs: 120,
            max_message_chars: 2000,
            messages_per_minute: 30,
            ip_messages_per_minute: 120,
            ip_connections_per_minute: 30,
            ip_max_open_connections: 20,
            client_ip_header: String::new(),
            offer_callback: false,
            offer_callback_after_secs: 0,
        }
    }
}

/// Largest WebSocket frame accepted at all; bigger ones close the connection.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

impl WebChatConfig {
    pub fn resume_window(&self) -> Duration {
        Duration::from_secs(self.resume_window_secs)
    }

    /// The queue for a topic ("" = the default queue); None for an unknown topic.
    pub fn queue_for(&self, topic: &str) -> Option<&str> {
        if topic.is_empty() {
            return Some(&self.queue);
        }
        self.topics.iter().find(|t| t.name == topic).map(|t| t.queue.as_str())
    }

    pub fn validate(&self) -> Result<(), WebChatConfigError> {
        crate::model::validate_id("queue", &self.queue).map_err(|e| invalid(e.field, e.message))?;
        for (i, t) in self.topics.iter().enumerate() {
            crate::model::validate_id(&format!("topics[{i}].name"), &t.name)
                .map_err(|e| invalid(e.field, e.message))?;
            crate::model::validate_id(&format!("topics[{i}].queue"), &t.queue)
                .map_err(|e| invalid(e.field, e.message))?;
            if t.label.chars().count() > 80 || t.label.chars().any(char::is_control) {
                return Err(invalid(
                    format!("topics[{i}].label"),
                    "must be at most 80 characters, no control characters",
                ));
            }
            if let Some(j) = self.topics[..i].iter().position(|o| o.name == t.name) {
                return Err(invalid(
                    format!("topics[{i}].name"),
                    format!("duplicate topic {:?} (first at topics[{j}])", t.name),
                ));
            }
        }
        for (i, o) in self.allowed_origins.iter().enumerate() {
            if o != "*" {
                normalize_origin(o).map_err(|m| invalid(format!("allowed_origins[{i}]"), m))?;
            }
        }
        let range = |key: &str, v: u64, min: u64, max: u64| {
            if (min..=max).contains(&v) { Ok(()) } else { Err(invalid(key, format!("must be {min}..={max}, got {v}"))) }
        };
        range("resume_window_secs", self.resume_window_secs, 5, 86_400)?;
        range("max_message_chars", self.max_message_chars as u64, 1, 10_000)?;
        range("messages_per_minute", self.messages_per_minute.into(), 1, 10_000)?;
        range("ip_messages_per_minute", self.ip_messages_per_minute.into(), 1, 100_000)?;
        range("ip_connections_per_minute", self.ip_connections_per_minute.into(), 1, 100_000)?;
        range("ip_max_open_connections", self.ip_max_open_connections.into(), 1, 100_000)?;
        range("offer_callback_after_secs", self.offer_callback_after_secs.into(), 0, 86_400)?;
        if !self.client_ip_header.is_empty()
            && axum::http::HeaderName::from_bytes(self.client_ip_header.as_bytes()).is_err()
        {
            return Err(invalid("client_ip_header", format!("{:?} is not a valid header name", self.client_ip_header)));
        }
        Ok(())
    }
}

/// `scheme://host[:port]`, lower case, without a trailing slash — the form browsers send in the
/// `Origin` header.
pub fn normalize_origin(o: &str) -> Result<String, String> {
    let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
    let Some((scheme, rest)) = o.split_once("://") else {
        return Err(format!("{o:?} is not an origin like https://www.example.com"));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("{o:?}: the scheme must be http or https"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!("{o:?} must be scheme://host[:port] without a path"));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        WebChatConfig::default().validate().unwrap();
    }

    #[test]
    fn topics_pick_queues() {
        let mut c = WebChatConfig::default();
        c.topics.push(Topic { name: "billing".into(), label: "".into(), queue: "billing-q".into() });
        assert_eq!(c.queue_for(""), Some("chat"));
        assert_eq!(c.queue_for("billing"), Some("billing-q"));
        assert_eq!(c.queue_for("nope"), None);
        assert_eq!(c.topics[0].label(), "billing");
    }

    type Change = Box<dyn Fn(&mut WebChatConfig)>;

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|c| c.allowed_origins = vec!["example.com".into()]), "allowed_origins[0]"),
            (Box::new(|c| c.allowed_origins = vec!["https://a.com/path".into()]), "allowed_origins[0]"),
            (Box::new(|c| c.allowed_origins = vec!["ftp://a.com".into()]), "allowed_origins[0]"),
            (Box::new(|c| c.resume_window_secs = 1), "resume_window_secs"),
            (Box::new(|c| c.max_message_chars = 0), "max_message_chars"),
            (Box::new(|c| c.queue = "".into()), "queue"),
            (Box::new(|c| c.offer_callback_after_secs = 86_401), "offer_callback_after_secs"),
            (
                Box::new(|c| {
                    c.topics = vec![
                        Topic { name: "a".into(), label: "".into(), queue: "q".into() },
                        Topic { name: "a".into(), label: "".into(), queue: "q".into() },
                    ];
                }),
                "topics[1].name",
            ),
        ];
        for (change, key) in cases {
            let mut c = WebChatConfig::default();
            change(&mut c);
            assert_eq!(c.validate().unwrap_err().key, key);
        }
    }

    #[test]
    fn the_callback_offer_is_off_unless_asked_for() {
        let c = WebChatConfig::default();
        assert!(!c.offer_callback);
        assert_eq!(c.offer_callback_after_secs, 0);
        let c: WebChatConfig = toml::from_str("offer_callback = true\noffer_callback_after_secs = 60").unwrap();
        assert!(c.offer_callback);
        assert_eq!(c.offer_callback_after_secs, 60);
        c.validate().unwrap();
        assert!(toml::from_str::<WebChatConfig>("offer_callbacks = true").is_err(), "unknown keys are refused");
    }

    #[test]
    fn origins_normalize() {
        assert_eq!(normalize_origin("HTTPS://Www.Example.com/").unwrap(), "https://www.example.com");
        assert_eq!(normalize_origin("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
    }
}
