//! The email channel's configuration: mailboxes, each with its IMAP (in) and SMTP (out) account
//! and the queue its mail goes to.
//!
//! It deserializes from a TOML table (`[email]` once the daemon config carries it); passwords
//! may come from the environment (`SWITCHBOARD_EMAIL_PASSWORD_<MAILBOX>`), read through a lookup
//! closure so tests never touch the process environment. Errors name the offending key.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::model::{MAX_BODY_LEN, validate_id};

/// Followed by the mailbox name (upper-cased, other characters as `_`): IMAP and SMTP password.
pub const ENV_PASSWORD_PREFIX: &str = "SWITCHBOARD_EMAIL_PASSWORD_";
/// Followed by the mailbox name: SMTP password when it differs from the IMAP one.
pub const ENV_SMTP_PASSWORD_PREFIX: &str = "SWITCHBOARD_EMAIL_SMTP_PASSWORD_";

pub const MAX_MAILBOXES: usize = 100;
/// Mail larger than this is read only up to it (the rest is cut off before parsing).
pub const MAX_MESSAGE_BYTES: u32 = 50 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid email config: {key}: {message}")]
pub struct EmailConfigError {
    pub key: String,
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> EmailConfigError {
    EmailConfigError { key: key.into(), message: message.into() }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    pub mailboxes: Vec<MailboxConfig>,
    /// A reply to a completed conversation within this window starts a linked follow-up that
    /// waits for the previous agent; later replies start afresh. Interactions are kept 7 days.
    pub reopen_window_secs: u32,
    /// How long a follow-up waits for the agent who handled the conversation before any agent of
    /// the queue may take it.
    pub sticky_wait_secs: u32,
    /// Transient SMTP failures are retried in line for this long before the agent is told; the
    /// reply stays queued and is retried in the background until `send_give_up_secs`.
    pub send_retry_secs: u32,
    pub send_give_up_secs: u32,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            mailboxes: Vec::new(),
            reopen_window_secs: 3 * 86_400,
            sticky_wait_secs: 60,
            send_retry_secs: 10,
            send_give_up_secs: 3_600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain connection upgraded with STARTTLS before authenticating (IMAP 143, submission 587).
    Starttls,
    /// No TLS at all: only for a server on the same host or a test.
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterProcessing {
    /// Set `\Seen` and the `$Switchboard` keyword; the message stays in the folder.
    #[default]
    Flag,
    /// Move the message to `move_to` (created if missing).
    Move,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    pub host: String,
    pub port: Option<u16>,
    pub security: Security,
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default = "default_folder")]
    pub folder: String,
    /// Use IMAP IDLE when the server offers it (polling otherwise).
    #[serde(default = "yes")]
    pub idle: bool,
    /// Polling interval without IDLE; also how often an idle connection is refreshed.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: Option<u16>,
    pub security: Security,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// Short name: metrics, logs, Redis state and the password variable use it.
    pub name: String,
    /// The address customers write to; replies are sent from it.
    pub address: String,
    #[serde(default)]
    pub display_name: String,
    pub queue: String,
    #[serde(default)]
    pub priority: Option<i32>,
    pub imap: ImapConfig,
    pub smtp: SmtpConfig,
    #[serde(default)]
    pub after_processing: AfterProcessing,
    #[serde(default = "default_move_to")]
    pub move_to: String,
    /// Stored text of one message is cut to this many bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u32,
    /// Only this many bytes of a message are fetched and parsed.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: u32,
    /// PEM file with the CA that signed the IMAP/SMTP servers' certificates (private CA);
    /// the web PKI roots otherwise.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Authserv-ids of the operator's own MTA (e.g. `mx.example.com`): only its
    /// `Authentication-Results` headers say whether a sender is who From claims. Empty: senders
    /// are not verified at all (Reply-To or From is taken at its word).
    #[serde(default)]
    pub trusted_authserv_ids: Vec<String>,
    /// What becomes of mail whose From domain those headers do not vouch for; `flag` when
    /// `trusted_authserv_ids` is set.
    #[serde(default)]
    pub unauthenticated: Option<Unauthenticated>,
    /// Also count a verified DKIM signature of the From domain (or a parent of it) where the MTA
    /// reported no DMARC result or found no DMARC policy. Only safe when the MTA removes
    /// `Authentication-Results` headers with its id from incoming mail.
    #[serde(default)]
    pub accept_aligned_dkim: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unauthenticated {
    /// A conversation of its own under the address marked unverified: it never joins a verified
    /// conversation or shows that customer's history, and replies go to From, never Reply-To.
    Flag,
    /// Not routed: set aside in the mailbox (`$SwitchboardSetAside`) for a person to look at.
    Reject,
}

fn default_folder() -> String {
    "INBOX".into()
}
fn yes() -> bool {
    true
}
fn default_poll_secs() -> u32 {
    60
}
fn default_smtp_timeout() -> u32 {
    30
}
fn default_move_to() -> String {
    "Switchboard".into()
}
fn default_max_body() -> u32 {
    MAX_BODY_LEN as u32
}
fn default_max_message() -> u32 {
    10 * 1024 * 1024
}

impl ImapConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Tls => 993,
            Security::Starttls | Security::Plain => 143,
        })
    }
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Tls => 465,
            Security::Starttls => 587,
            Security::Plain => 25,
        })
    }
}

impl MailboxConfig {
    /// The domain of `address`: our Message-IDs end in it.
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map_or("localhost", |(_, d)| d)
    }

    /// None when senders are not verified.
    pub fn unauthenticated_policy(&self) -> Option<Unauthenticated> {
        (!self.trusted_authserv_ids.is_empty()).then(|| self.unauthenticated.unwrap_or(Unauthenticated::Flag))
    }
}

/// `SWITCHBOARD_EMAIL_PASSWORD_<NAME>` for mailbox `name`.
pub fn password_env_var(prefix: &str, mailbox: &str) -> String {
    let suffix: String =
        mailbox.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{prefix}{suffix}")
}

impl EmailConfig {
    pub fn from_toml_str(s: &str) -> Result<EmailConfig, EmailConfigError> {
        toml::from_str(s).map_err(|e| invalid("email", e.to_string()))
    }

    /// Passwords from the environment win over the file, so secrets can stay out of it.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        for m in &mut self.mailboxes {
            if let Some(p) = lookup(&password_env_var(ENV_PASSWORD_PREFIX, &m.name)) {
                m.imap.password = p.clone();
                m.smtp.password = p;
            }
            if let Some(p) = lookup(&password_env_var(ENV_SMTP_PASSWORD_PREFIX, &m.name)) {
                m.smtp.password = p;
            }
        }
    }

    pub fn validate(&self) -> Result<(), EmailConfigError> {
        if self.mailboxes.len() > MAX_MAILBOXES {
            return Err(invalid("email.mailboxes", format!("at most {MAX_MAILBOXES} mailboxes")));
        }
        if !(60..=7 * 86_400).contains(&self.reopen_window_secs) {
            return Err(invalid("email.reopen_window_secs", "must be 60..=604800 (interactions are kept 7 days)"));
        }
        if self.sticky_wait_secs > 86_400 {
            return Err(invalid("email.sticky_wait_secs", "must be at most 86400"));
        }
        if !(1..=300).contains(&self.send_retry_secs) {
            return Err(invalid("email.send_retry_secs", "must be 1..=300 (the agent waits for it)"));
        }
        if self.send_give_up_secs < self.send_retry_secs || self.send_give_up_secs > 7 * 86_400 {
            return Err(invalid("email.send_give_up_secs", "must be send_retry_secs..=604800"));
        }
        let mut names = std::collections::BTreeSet::new();
        let mut addresses = std::collections::BTreeSet::new();
        for (i, m) in self.mailboxes.iter().enumerate() {
            let k = format!("email.mailboxes[{i}]");
            validate_id(&format!("{k}.name"), &m.name).map_err(|e| invalid(e.field, e.message))?;
            if !names.insert(m.name.as_str()) {
                return Err(invalid(format!("{k}.name"), format!("mailbox {:?} is configured twice", m.name)));
            }
            if !is_plausible_address(&m.address) {
                return Err(invalid(format!("{k}.address"), format!("{:?} is not an email address", m.address)));
            }
            if !addresses.insert(m.address.to_ascii_lowercase()) {
                return Err(invalid(format!("{k}.address"), format!("{:?} is used by two mailboxes", m.address)));
            }
            if m.display_name.len() > 200 || m.display_name.contains(['\r', '\n']) {
                return Err(invalid(format!("{k}.display_name"), "must be one line of at most 200 bytes"));
            }
            validate_id(&format!("{k}.queue"), &m.queue).map_err(|e| invalid(e.field, e.message))?;
            if let Some(p) = m.priority {
                crate::model::validate_priority(&format!("{k}.priority"), p)
                    .map_err(|e| invalid(e.field, e.message))?;
            }
            validate_host(&format!("{k}.imap.host"), &m.imap.host)?;
            validate_host(&format!("{k}.smtp.host"), &m.smtp.host)?;
            if m.imap.port == Some(0) {
                return Err(invalid(format!("{k}.imap.port"), "must be 1..=65535"));
            }
            if m.smtp.port == Some(0) {
                return Err(invalid(format!("{k}.smtp.port"), "must be 1..=65535"));
            }
            if m.imap.username.is_empty() {
                return Err(invalid(format!("{k}.imap.username"), "is required"));
            }
            if m.imap.password.is_empty() {
                return Err(invalid(
                    format!("{k}.imap.password"),
                    format!("is required (or set {})", password_env_var(ENV_PASSWORD_PREFIX, &m.name)),
                ));
            }
            if !m.smtp.username.is_empty() && m.smtp.password.is_empty() {
                return Err(invalid(
                    format!("{k}.smtp.password"),
                    format!(
                        "is required with smtp.username (or set {})",
                        password_env_var(ENV_PASSWORD_PREFIX, &m.name)
                    ),
                ));
            }
            validate_mailbox_name(&format!("{k}.imap.folder"), &m.imap.folder)?;
            if m.after_processing == AfterProcessing::Move {
                validate_mailbox_name(&format!("{k}.move_to"), &m.move_to)?;
                if m.move_to == m.imap.folder {
                    return Err(invalid(format!("{k}.move_to"), "must differ from imap.folder"));
                }
            }
            if !(1..=3_600).contains(&m.imap.poll_secs) {
                return Err(invalid(format!("{k}.imap.poll_secs"), "must be 1..=3600"));
            }
            if !(1..=600).contains(&m.smtp.timeout_secs) {
                return Err(invalid(format!("{k}.smtp.timeout_secs"), "must be 1..=600"));
            }
            if m.max_body_bytes < 1024 || m.max_body_bytes as usize > MAX_BODY_LEN {
                return Err(invalid(format!("{k}.max_body_bytes"), format!("must be 1024..={MAX_BODY_LEN}")));
            }
            if m.max_message_bytes < 64 * 1024 || m.max_message_bytes > MAX_MESSAGE_BYTES {
                return Err(invalid(format!("{k}.max_message_bytes"), format!("must be 65536..={MAX_MESSAGE_BYTES}")));
            }
            if let Some(f) = &m.tls_ca_file
                && !f.is_file()
            {
                return Err(invalid(format!("{k}.tls_ca_file"), format!("{} is not a readable file", f.display())));
            }
            validate_sender_auth(&k, m)?;
        }
        Ok(())
    }
}

/// More trusted authserv-ids than any real MTA setup has.
pub const MAX_TRUSTED_AUTHSERV_IDS: usize = 20;

fn validate_sender_auth(k: &str, m: &MailboxConfig) -> Result<(), EmailConfigError> {
    let ids = &m.trusted_authserv_ids;
    if ids.len() > MAX_TRUSTED_AUTHSERV_IDS {
        return Err(invalid(format!("{k}.trusted_authserv_ids"), format!("at most {MAX_TRUSTED_AUTHSERV_IDS} ids")));
    }
    for (j, id) in ids.iter().enumerate() {
        // An authserv-id is compared as written in the header: usually the MTA's host name.
        if id.is_empty()
            || id.len() > 253
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(invalid(
                format!("{k}.trusted_authserv_ids[{j}]"),
                format!(
                    "{id:?} is not an authserv-id (the MTA's host name as its Authentication-Results header writes it)"
                ),
            ));
        }
        if ids[..j].iter().any(|o| o.eq_ignore_ascii_case(id)) {
            return Err(invalid(format!("{k}.trusted_authserv_ids[{j}]"), format!("{id:?} is listed twice")));
        }
    }
    if ids.is_empty() {
        if m.unauthenticated.is_some() {
            return Err(invalid(
                format!("{k}.unauthenticated"),
                "needs trusted_authserv_ids (without them no sender is authenticated)",
            ));
        }
        if m.accept_aligned_dkim {
            return Err(invalid(format!("{k}.accept_aligned_dkim"), "needs trusted_authserv_ids"));
        }
    }
    Ok(())
}

pub(crate) fn is_plausible_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else { return false };
    !local.is_empty()
        && !domain.is_empty()
        && a.len() <= crate::model::MAX_ADDRESS_LEN
        && !a.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | '"'))
}

fn validate_host(key: &str, h: &str) -> Result<(), EmailConfigError> {
    if h.is_empty() {
        return Err(invalid(key, "is required"));
    }
    if h.len() > 253 || !h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')) {
        return Err(invalid(key, format!("{h:?} is not a host name or IP address")));
    }
    Ok(())
}

fn validate_mailbox_name(key: &str, f: &str) -> Result<(), EmailConfigError> {
    // Names go into IMAP commands quoted; quotes, backslashes and line breaks would break out.
    if f.is_empty() || f.len() > 200 || f.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
        return Err(invalid(key, format!("{f:?} must be 1..=200 characters without quotes, backslashes or controls")));
    }
    Ok(())
}

impl EmailConfig {
    pub fn reopen_window(&self) -> Duration {
        Duration::from_secs(self.reopen_window_secs.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = r#"
reopen_window_secs = 259200
sticky_wait_secs = 60

[[mailboxes]]
name = "support"
address = "support@example.com"
display_name = "Example Support"
queue = "support"
after_processing = "move"
move_to = "Processed"

[mailboxes.imap]
host = "imap.example.com"
security = "tls"
username = "support@example.com"
password = "from-file"

[mailboxes.smtp]
host = "smtp.example.com"
security = "starttls"
username = "support@example.com"
"#;

    #[test]
    fn example_parses_and_env_overrides_passwords() {
        let mut c = EmailConfig::from_toml_str(EXAMPLE).unwrap();
        assert_eq!(c.mailboxes[0].imap.port(), 993);
        assert_eq!(c.mailboxes[0].smtp.port(), 587);
        assert_eq!(c.mailboxes[0].imap.folder, "INBOX");
        assert!(c.validate().is_err(), "smtp password is missing");
        c.apply_env(|k| (k == "SWITCHBOARD_EMAIL_PASSWORD_SUPPORT").then(|| "s3cret".to_string()));
        c.validate().unwrap();
        assert_eq!(c.mailboxes[0].imap.password, "s3cret");
        assert_eq!(c.mailboxes[0].smtp.password, "s3cret");
        c.apply_env(|k| (k == "SWITCHBOARD_EMAIL_SMTP_PASSWORD_SUPPORT").then(|| "other".to_string()));
        assert_eq!(c.mailboxes[0].smtp.password, "other");
        assert_eq!(c.mailboxes[0].imap.password, "s3cret");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = EmailConfig::from_toml_str(&EXAMPLE.replace("queue = \"support\"", "queue = \"support\"\nqueu = 1"))
            .unwrap_err();
        assert!(err.message.contains("queu"), "{err}");
    }

    #[test]
    fn errors_name_the_key() {
        let base = {
            let mut c = EmailConfig::from_toml_str(EXAMPLE).unwrap();
            c.apply_env(|_| Some("pw".into()));
            c
        };
        type Mutate = Box<dyn Fn(&mut EmailConfig)>;
        let cases: Vec<(Mutate, &str)> = vec![
            (Box::new(|c| c.mailboxes[0].name = "a b".into()), "email.mailboxes[0].name"),
            (Box::new(|c| c.mailboxes[0].address = "nobody".into()), "email.mailboxes[0].address"),
            (Box::new(|c| c.mailboxes[0].queue = String::new()), "email.mailboxes[0].queue"),
            (Box::new(|c| c.mailboxes[0].imap.host = "a b".into()), "email.mailboxes[0].imap.host"),
            (Box::new(|c| c.mailboxes[0].imap.password = String::new()), "email.mailboxes[0].imap.password"),
            (Box::new(|c| c.mailboxes[0].imap.folder = "a\"b".into()), "email.mailboxes[0].imap.folder"),
            (Box::new(|c| c.mailboxes[0].move_to = "INBOX".into()), "email.mailboxes[0].move_to"),
            (Box::new(|c| c.mailboxes[0].max_body_bytes = 10), "email.mailboxes[0].max_body_bytes"),
            (Box::new(|c| c.mailboxes[0].imap.poll_secs = 0), "email.mailboxes[0].imap.poll_secs"),
            (Box::new(|c| c.mailboxes.push(c.mailboxes[0].clone())), "email.mailboxes[1].name"),
            (Box::new(|c| c.reopen_window_secs = 30 * 86_400), "email.reopen_window_secs"),
            (Box::new(|c| c.send_retry_secs = 0), "email.send_retry_secs"),
            (
                Box::new(|c| c.mailboxes[0].trusted_authserv_ids = vec![String::new()]),
                "email.mailboxes[0].trusted_authserv_ids[0]",
            ),
            (
                Box::new(|c| c.mailboxes[0].trusted_authserv_ids = vec!["mx.example.com; dmarc=pass".into()]),
                "email.mailboxes[0].trusted_authserv_ids[0]",
            ),
            (
                Box::new(|c| {
                    c.mailboxes[0].trusted_authserv_ids = vec!["mx.example.com".into(), "MX.example.com".into()];
                }),
                "email.mailboxes[0].trusted_authserv_ids[1]",
            ),
            (
                Box::new(|c| c.mailboxes[0].trusted_authserv_ids = vec!["mx.example.com".into(); 21]),
                "email.mailboxes[0].trusted_authserv_ids",
            ),
            (
                Box::new(|c| c.mailboxes[0].unauthenticated = Some(Unauthenticated::Reject)),
                "email.mailboxes[0].unauthenticated",
            ),
            (Box::new(|c| c.mailboxes[0].accept_aligned_dkim = true), "email.mailboxes[0].accept_aligned_dkim"),
        ];
        for (mutate, key) in cases {
            let mut c = base.clone();
            mutate(&mut c);
            assert_eq!(c.validate().unwrap_err().key, key);
        }
    }

    #[test]
    fn sender_verification_keys() {
        let with = |extra: &str| {
            let toml = EXAMPLE.replace("move_to = \"Processed\"", &format!("move_to = \"Processed\"\n{extra}"));
            let mut c = EmailConfig::from_toml_str(&toml)?;
            c.apply_env(|_| Some("pw".into()));
            c.validate().map(|()| c.mailboxes[0].clone())
        };
        let m = with("").unwrap();
        assert_eq!(m.unauthenticated_policy(), None);
        let m = with("trusted_authserv_ids = [\"mx.example.com\"]").unwrap();
        assert_eq!(m.unauthenticated_policy(), Some(Unauthenticated::Flag));
        assert!(!m.accept_aligned_dkim);
        let m = with(
            "trusted_authserv_ids = [\"mx.example.com\"]\nunauthenticated = \"reject\"\naccept_aligned_dkim = true",
        )
        .unwrap();
        assert_eq!(m.unauthenticated_policy(), Some(Unauthenticated::Reject));
        assert!(m.accept_aligned_dkim);
        let err = with("trusted_authserv_ids = [\"mx.example.com\"]\nunauthenticated = \"drop\"").unwrap_err();
        assert!(err.message.contains("unknown variant `drop`") && err.message.contains("flag"), "{err}");
        let err = with("trusted_authserv_ids = \"mx.example.com\"").unwrap_err();
        assert!(err.message.contains("trusted_authserv_ids"), "{err}");
    }

    #[test]
    fn password_variable_names() {
        assert_eq!(password_env_var(ENV_PASSWORD_PREFIX, "eu-support.1"), "SWITCHBOARD_EMAIL_PASSWORD_EU_SUPPORT_1");
    }
}
