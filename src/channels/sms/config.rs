//! `[sms]` in the daemon's config file: our numbers and the queues they reach, the gateways that
//! carry texts (Twilio-compatible HTTP, Kannel, SMPP), and how conversations and keywords behave.
//! Secrets come from the environment: `SWITCHBOARD_SMS_SECRET_<GATEWAY>` (Twilio auth token,
//! Kannel sendsms password, SMPP password) and `SWITCHBOARD_SMS_WEBHOOK_SECRET_<GATEWAY>` (the
//! password Kannel calls our webhooks with).

use serde::Deserialize;

use crate::config::Secret;

/// Errors name the key under `sms.` that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sms.{key}: {message}")]
pub struct SmsConfigError {
    pub key: String,
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> SmsConfigError {
    SmsConfigError { key: key.into(), message: message.into() }
}

/// One of our numbers (a long number in E.164, a short code, or an alphanumeric sender id).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberConfig {
    pub number: String,
    /// The queue its texts go to.
    pub queue: String,
    /// The gateway replies from this number leave through.
    pub gateway: String,
    /// Priority of its interactions; unset: the queue's.
    #[serde(default)]
    pub priority: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    pub name: String,
    pub account_sid: String,
    /// Signs the webhooks (`X-Twilio-Signature`) and authenticates REST calls.
    #[serde(default)]
    pub auth_token: Secret,
    /// Where the REST API is (`https://api.twilio.com`, or a compatible provider's).
    #[serde(default = "twilio_base_url")]
    pub base_url: String,
    /// Send through a messaging service instead of from the number itself.
    #[serde(default)]
    pub messaging_service_sid: String,
    /// This daemon's address as the provider calls it (`https://sms.example.com`): signatures
    /// cover the full URL the provider used, which a proxy in front may have rewritten.
    pub public_url: String,
    /// Extra CA certificates for the REST API (a test provider); the system's roots otherwise.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KannelConfig {
    pub name: String,
    /// smsbox's `sendsms` CGI, e.g. `http://127.0.0.1:13013/cgi-bin/sendsms`.
    pub sendsms_url: String,
    /// A `sendsms-user` of smsbox.
    pub username: String,
    #[serde(default)]
    pub password: Secret,
    /// Kannel calls our webhooks (get-url, dlr-url) with these in HTTP Basic auth
    /// (`http://user:password@host/...` in its config).
    pub webhook_user: String,
    #[serde(default)]
    pub webhook_password: Secret,
    /// This daemon's address as Kannel reaches it, for the `dlr-url` of each text.
    pub public_url: String,
    /// Which delivery reports to ask for (Kannel's `dlr-mask`; 31 = all).
    #[serde(default = "default_dlr_mask")]
    pub dlr_mask: u8,
    /// Kannel's `smsc` to send through (empty: its routing decides).
    #[serde(default)]
    pub smsc: String,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppConfig {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub system_id: String,
    #[serde(default)]
    pub password: Secret,
    #[serde(default)]
    pub system_type: String,
    /// Requests awaiting a response at once (the SMSC's window).
    #[serde(default = "default_window")]
    pub window: u32,
    /// `enquire_link` after this long without traffic.
    #[serde(default = "default_enquire_link")]
    pub enquire_link_secs: u32,
    /// A response later than this counts as lost (and a bind as dead).
    #[serde(default = "default_timeout")]
    pub response_timeout_secs: u32,
    /// Longest pause between reconnection attempts (backoff doubles up to it).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u32,
    /// Source address TON/NPI for our numbers (1/1: international/E.164; 5/0: alphanumeric).
    #[serde(default = "one")]
    pub source_ton: u8,
    #[serde(default = "one")]
    pub source_npi: u8,
}

/// One way texts come in and go out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum GatewayConfig {
    Twilio(TwilioConfig),
    Kannel(KannelConfig),
    Smpp(SmppConfig),
}

impl GatewayConfig {
    pub fn name(&self) -> &str {
        match self {
            GatewayConfig::Twilio(c) => &c.name,
            GatewayConfig::Kannel(c) => &c.name,
            GatewayConfig::Smpp(c) => &c.name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub numbers: Vec<NumberConfig>,
    pub gateways: Vec<GatewayConfig>,
    /// Texts to a number no entry owns go here; empty: they are refused (logged, not stored).
    pub default_queue: String,
    /// A text after the conversation was completed starts a linked interaction that waits for
    /// the same agent first, if it comes within this many minutes ...
    pub reopen_window_mins: u32,
    /// ... for this long.
    pub sticky_wait_secs: u32,
    /// Longer replies are refused (a text of many parts costs as many messages).
    pub max_segments: u32,
    /// The answer to HELP (empty: none).
    pub help_text: String,
    /// Sent once when a customer opts out (carriers expect a confirmation; empty: none).
    pub opt_out_text: String,
    pub opt_in_text: String,
    /// Callbacks: a texter still waiting who sends this word alone ("CALL") is called back
    /// instead, keeping the conversation's place (needs `cti.callback_system`); empty: off.
    pub callback_keyword: String,
    /// Sent once when a new conversation starts waiting, offering it ("You're in line. Reply
    /// CALL to be called back instead."); empty: none.
    pub callback_prompt: String,
    /// The answer to the keyword; `{number}` is the number that will be called.
    pub callback_text: String,
    /// For customer numbers written without a country code (ISO 3166 region, e.g. "DE").
    pub default_region: String,
    /// Largest webhook request accepted.
    pub max_request_bytes: usize,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            numbers: Vec::new(),
            gateways: Vec::new(),
            default_queue: String::new(),
            reopen_window_mins: 60,
            sticky_wait_secs: 60,
            max_segments: 10,
            help_text: String::new(),
            opt_out_text: String::new(),
            opt_in_text: String::new(),
            callback_keyword: String::new(),
            callback_prompt: String::new(),
            callback_text: "We will call you back on {number}. You keep your place in line.".into(),
            default_region: String::new(),
            max_request_bytes: 64 * 1024,
        }
    }
}

fn twilio_base_url() -> String {
    "https://api.twilio.com".into()
}
fn default_timeout() -> u32 {
    10
}
fn default_dlr_mask() -> u8 {
    31
}
fn default_window() -> u32 {
    10
}
fn default_enquire_link() -> u32 {
    30
}
fn default_max_backoff() -> u32 {
    60
}
fn one() -> u8 {
    1
}

/// The environment variable suffix for a gateway's name: upper case, other than A-Z0-9 → `_`.
pub fn env_suffix(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

pub const ENV_SECRET_PREFIX: &str = "SWITCHBOARD_SMS_SECRET_";
pub const ENV_WEBHOOK_SECRET_PREFIX: &str = "SWITCHBOARD_SMS_WEBHOOK_SECRET_";

fn http_url(key: &str, url: &str) -> Result<(), SmsConfigError> {
    let u = url::Url::parse(url).map_err(|e| invalid(key, format!("{url:?} is not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(invalid(key, format!("{url:?}: an http(s) URL with a host is needed")));
    }
    Ok(())
}

impl SmsConfig {
    pub fn enabled(&self) -> bool {
        !self.gateways.is_empty()
    }

    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        for g in &mut self.gateways {
            let suffix = env_suffix(g.name());
            let secret = get(&format!("{ENV_SECRET_PREFIX}{suffix}")).map(Secret);
            match g {
                GatewayConfig::Twilio(c) => {
                    if let Some(s) = secret {
                        c.auth_token = s;
                    }
                }
                GatewayConfig::Kannel(c) => {
                    if let Some(s) = secret {
                        c.password = s;
                    }
                    if let Some(s) = get(&format!("{ENV_WEBHOOK_SECRET_PREFIX}{suffix}")) {
                        c.webhook_password = Secret(s);
                    }
                }
                GatewayConfig::Smpp(c) => {
                    if let Some(s) = secret {
                        c.password = s;
                    }
                }
            }
        }
    }

    /// The entry owning one of our numbers, compared without spaces, dashes and a leading `+`.
    pub fn number(&self, ours: &str) -> Option<&NumberConfig> {
        let bare = |s: &str| -> String { s.chars().filter(|c| !matches!(c, ' ' | '-' | '+' | '(' | ')')).collect() };
        let want = bare(ours);
        self.numbers.iter().find(|n| bare(&n.number) == want)
    }

    pub fn validate(&self) -> Result<(), SmsConfigError> {
        let k = &self.callback_keyword;
        if !k.is_empty() && (k.len() > 20 || !k.chars().all(char::is_alphanumeric)) {
            return Err(invalid("callback_keyword", "one word of letters and digits, at most 20"));
        }
        if !k.is_empty() && switchboard_model::sms::keyword(k).is_some() {
            return Err(invalid("callback_keyword", format!("{k:?} is already STOP, START or HELP")));
        }
        if k.is_empty() && !self.callback_prompt.is_empty() {
            return Err(invalid("callback_prompt", "offers a callback, but callback_keyword is not set"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, g) in self.gateways.iter().enumerate() {
            let key = |f: &str| format!("gateways[{i}].{f}");
            crate::model::validate_id(&key("name"), g.name()).map_err(|e| invalid(key("name"), e.message))?;
            if !names.insert(g.name()) {
                return Err(invalid(key("name"), format!("gateway {:?} is defined twice", g.name())));
            }
            match g {
                GatewayConfig::Twilio(c) => {
                    if c.account_sid.is_empty() {
                        return Err(invalid(key("account_sid"), "is required"));
                    }
                    if c.auth_token.is_empty() {
                        return Err(invalid(
                            key("auth_token"),
                            format!("is required (or {ENV_SECRET_PREFIX}{})", env_suffix(&c.name)),
                        ));
                    }
                    http_url(&key("base_url"), &c.base_url)?;
                    http_url(&key("public_url"), &c.public_url)?;
                }
                GatewayConfig::Kannel(c) => {
                    http_url(&key("sendsms_url"), &c.sendsms_url)?;
                    http_url(&key("public_url"), &c.public_url)?;
                    if c.username.is_empty() {
                        return Err(invalid(key("username"), "is required (a sendsms-user of smsbox)"));
                    }
                    if c.webhook_user.is_empty() || c.webhook_password.is_empty() {
                        return Err(invalid(
                            key("webhook_password"),
                            format!(
                                "webhook_user and webhook_password are required (or {ENV_WEBHOOK_SECRET_PREFIX}{}): nothing unauthenticated may write texts in",
                                env_suffix(&c.name)
                            ),
                        ));
                    }
                }
                GatewayConfig::Smpp(c) => {
                    if c.host.is_empty() || c.port == 0 {
                        return Err(invalid(key("host"), "host and port are required"));
                    }
                    if c.system_id.is_empty() || c.system_id.len() > 15 {
                        return Err(invalid(key("system_id"), "1 to 15 characters (SMPP 3.4)"));
                    }
                    if c.password.expose().len() > 8 {
                        return Err(invalid(key("password"), "at most 8 characters (SMPP 3.4)"));
                    }
                    if c.window == 0 || c.window > 1000 {
                        return Err(invalid(key("window"), "must be 1 to 1000"));
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, n) in self.numbers.iter().enumerate() {
            let key = |f: &str| format!("numbers[{i}].{f}");
            if n.number.trim().is_empty() {
                return Err(invalid(key("number"), "is required"));
            }
            if !seen.insert(n.number.chars().filter(char::is_ascii_alphanumeric).collect::<String>()) {
                return Err(invalid(key("number"), format!("{:?} is listed twice", n.number)));
            }
            if n.queue.is_empty() {
                return Err(invalid(key("queue"), "is required"));
            }
            if !names.contains(n.gateway.as_str()) {
                return Err(invalid(key("gateway"), format!("no gateway named {:?}", n.gateway)));
            }
        }
        if !self.numbers.is_empty() && self.gateways.is_empty() {
            return Err(invalid("gateways", "numbers are listed but no gateway carries them"));
        }
        if self.max_segments == 0 || self.max_segments > 255 {
            return Err(invalid("max_segments", "must be 1 to 255"));
        }
        if !self.default_region.is_empty()
            && (self.default_region.len() != 2 || !self.default_region.chars().all(|c| c.is_ascii_uppercase()))
        {
            return Err(invalid("default_region", "an ISO 3166 region code such as \"DE\""));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> SmsConfig {
        #[derive(Deserialize)]
        struct Wrap {
            sms: SmsConfig,
        }
        toml::from_str::<Wrap>(toml_text).unwrap().sms
    }

    const BASE: &str = r#"
[sms]
[[sms.gateways]]
kind = "twilio"
name = "tw"
account_sid = "AC1"
auth_token = "t"
public_url = "https://sms.example.com"
[[sms.gateways]]
kind = "kannel"
name = "kannel-1"
sendsms_url = "http://127.0.0.1:13013/cgi-bin/sendsms"
username = "sb"
webhook_user = "kannel"
webhook_password = "w"
public_url = "http://127.0.0.1:8080"
[[sms.gateways]]
kind = "smpp"
name = "carrier"
host = "127.0.0.1"
port = 2775
system_id = "acme"
[[sms.numbers]]
number = "+1 800 555 1212"
queue = "support"
gateway = "tw"
"#;

    #[test]
    fn a_full_config_parses_and_validates() {
        let c = parse(BASE);
        c.validate().unwrap();
        assert!(c.enabled());
        assert_eq!(c.gateways.iter().map(GatewayConfig::name).collect::<Vec<_>>(), ["tw", "kannel-1", "carrier"]);
        assert_eq!(c.number("+18005551212").map(|n| n.queue.as_str()), Some("support"));
        assert_eq!(c.number("18005551212").map(|n| n.queue.as_str()), Some("support"));
        assert!(c.number("+18005551213").is_none());
        let GatewayConfig::Smpp(s) = &c.gateways[2] else { panic!() };
        assert_eq!((s.window, s.enquire_link_secs, s.source_ton, s.source_npi), (10, 30, 1, 1));
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let mut c = parse(BASE);
        let env = [
            ("SWITCHBOARD_SMS_SECRET_TW", "S3CRET-tw"),
            ("SWITCHBOARD_SMS_SECRET_KANNEL_1", "pw"),
            ("SWITCHBOARD_SMS_WEBHOOK_SECRET_KANNEL_1", "hook"),
            ("SWITCHBOARD_SMS_SECRET_CARRIER", "smpp"),
        ];
        c.apply_env(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
        let GatewayConfig::Twilio(t) = &c.gateways[0] else { panic!() };
        assert_eq!(t.auth_token.expose(), "S3CRET-tw");
        assert!(!format!("{t:?}").contains("S3CRET"), "secrets stay out of Debug");
        let GatewayConfig::Kannel(k) = &c.gateways[1] else { panic!() };
        assert_eq!((k.password.expose(), k.webhook_password.expose()), ("pw", "hook"));
        let GatewayConfig::Smpp(s) = &c.gateways[2] else { panic!() };
        assert_eq!(s.password.expose(), "smpp");
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("auth_token = \"t\"", "auth_token = \"\"", "gateways[0].auth_token"),
            ("public_url = \"https://sms.example.com\"", "public_url = \"sms.example.com\"", "gateways[0].public_url"),
            ("webhook_password = \"w\"", "webhook_password = \"\"", "gateways[1].webhook_password"),
            ("system_id = \"acme\"", "system_id = \"a-system-id-too-long\"", "gateways[2].system_id"),
            ("name = \"carrier\"", "name = \"tw\"", "gateways[2].name"),
            ("gateway = \"tw\"", "gateway = \"nope\"", "numbers[0].gateway"),
            ("queue = \"support\"", "queue = \"\"", "numbers[0].queue"),
        ];
        for (from, to, key) in cases {
            let c = parse(&BASE.replacen(from, to, 1));
            let e = c.validate().unwrap_err();
            assert!(e.key == *key, "{from} → {to}: {e} (want {key})");
        }
        let mut c = parse(BASE);
        c.max_segments = 0;
        assert_eq!(c.validate().unwrap_err().key, "max_segments");
        let mut c = parse(BASE);
        c.default_region = "Germany".into();
        assert_eq!(c.validate().unwrap_err().key, "default_region");
        assert!(toml::from_str::<toml::Value>(BASE).is_ok());
        let unknown = BASE.replacen("kind = \"smpp\"", "kind = \"carrier-pigeon\"", 1);
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Wrap {
            sms: SmsConfig,
        }
        assert!(toml::from_str::<Wrap>(&unknown).is_err(), "an unknown kind of gateway is an error");
    }
}
