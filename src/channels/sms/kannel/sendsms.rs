//! One text as a request to smsbox's `sendsms` CGI, and what smsbox's answer means.
//!
//! `GET <sendsms_url>?username&password&from&to&text&charset=UTF-8[&coding=2][&smsc]
//! [&dlr-mask&dlr-url]`. Kannel gives a text no id of its own, so the `dlr-url` carries our key
//! back: `<public_url>/sms/<gateway>/status?key=<key>&type=%d`, with our webhook credentials in
//! its userinfo (Kannel sends them as Basic auth, as it does for `get-url`).

use axum::http::StatusCode;
use switchboard_model::sms::{Encoding, encoding_of};

use crate::channels::sms::config::KannelConfig;
use crate::channels::sms::gateway::{OutSms, SendError};

/// Longest piece of Kannel's answer kept in an error.
const MAX_REASON: usize = 200;

/// `s` as a literal in a Kannel URL pattern: Kannel replaces `%<letter>` in a `dlr-url` (`%C`,
/// `%A`, `%d` ...), which would eat the `%C3` of a percent-encoded `ü`; `%%` stands for `%`.
fn kannel_literal(s: &str) -> String {
    s.replace('%', "%%")
}

/// The `dlr-url` for texts of this gateway, up to the key: `http://user:pw@host/sms/<name>/status?key=`
/// already in Kannel's pattern syntax (see [`kannel_literal`]).
pub fn dlr_base(cfg: &KannelConfig) -> Result<String, String> {
    let mut u = url::Url::parse(&cfg.public_url).map_err(|e| format!("public_url: {e}"))?;
    u.set_username(&cfg.webhook_user).map_err(|()| "public_url: cannot carry credentials".to_string())?;
    u.set_password(Some(cfg.webhook_password.expose()))
        .map_err(|()| "public_url: cannot carry credentials".to_string())?;
    u.set_query(None);
    u.set_fragment(None);
    let base = u.as_str().trim_end_matches('/');
    Ok(kannel_literal(&format!("{base}/sms/{}/status?key=", cfg.name)))
}

/// The whole `sendsms` URL for `sms` (it holds the sendsms password: never log it, see [`redact`]).
pub fn request_url(cfg: &KannelConfig, dlr_base: &str, sms: &OutSms) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("username", &cfg.username)
        .append_pair("password", cfg.password.expose())
        .append_pair("from", &sms.from)
        .append_pair("to", &sms.to)
        .append_pair("text", &sms.body)
        .append_pair("charset", "UTF-8");
    if encoding_of(&sms.body) == Encoding::Ucs2 {
        // Without it Kannel sends GSM-7 and every character outside it becomes `?`.
        q.append_pair("coding", "2");
    }
    if !cfg.smsc.is_empty() {
        q.append_pair("smsc", &cfg.smsc);
    }
    if cfg.dlr_mask != 0 {
        let key: String = form_urlencoded::byte_serialize(sms.key.as_bytes()).collect();
        let dlr_url = format!("{dlr_base}{}&type=%d", kannel_literal(&key));
        q.append_pair("dlr-mask", &cfg.dlr_mask.to_string()).append_pair("dlr-url", &dlr_url);
    }
    let sep = if cfg.sendsms_url.contains('?') { '&' } else { '?' };
    format!("{}{sep}{}", cfg.sendsms_url, q.finish())
}

/// A URL fit for a log line or an error: no userinfo, no query.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<sendsms url>".to_string(),
    }
}

/// What smsbox's answer means. `202` (`0: Accepted for delivery`, or `3: Queued for later
/// delivery` while the SMSC is away) and any other 2xx: taken. `5xx` (`503 Temporal failure, try
/// again later.`), `408`, `429`: not taken, try again. Other answers (`403 Authorization failed
/// for sendsms`, `400 Empty receiver number not allowed, rejected`): refused for good.
pub fn outcome(status: StatusCode, body: &str) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let mut reason: String = body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default().to_string();
    if reason.is_empty() {
        reason = status.canonical_reason().unwrap_or("no reason given").to_string();
    }
    if reason.chars().count() > MAX_REASON {
        reason = reason.chars().take(MAX_REASON).collect::<String>() + "…";
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
        return Err(SendError::Transient(format!("Kannel answered {}: {reason}", status.as_u16())));
    }
    Err(SendError::Permanent { code: status.as_u16().to_string(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    pub(crate) fn cfg() -> KannelConfig {
        KannelConfig {
            name: "kannel".into(),
            sendsms_url: "http://127.0.0.1:13013/cgi-bin/sendsms".into(),
            username: "sb".into(),
            password: Secret("s3cret&x".into()),
            webhook_user: "hook".into(),
            webhook_password: Secret("hook pw".into()),
            public_url: "http://127.0.0.1:8080/".into(),
            dlr_mask: 31,
            smsc: String::new(),
            timeout_secs: 10,
        }
    }

    fn sms(body: &str) -> OutSms {
        OutSms { key: "int-1|3".into(), from: "4900000".into(), to: "+4915112345678".into(), body: body.into() }
    }

    fn params(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').unwrap().1;
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    fn param<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
        p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn gsm_text_goes_without_coding() {
        let c = cfg();
        let url = request_url(&c, &dlr_base(&c).unwrap(), &sms("Hello [ok] {x} €"));
        assert!(url.starts_with("http://127.0.0.1:13013/cgi-bin/sendsms?username=sb&password=s3cret%26x&"), "{url}");
        let p = params(&url);
        assert_eq!(param(&p, "from"), Some("4900000"));
        assert_eq!(param(&p, "to"), Some("+4915112345678"));
        assert_eq!(param(&p, "text"), Some("Hello [ok] {x} €"));
        assert_eq!(param(&p, "charset"), Some("UTF-8"));
        assert_eq!(param(&p, "coding"), None);
        assert_eq!(param(&p, "smsc"), None);
        assert_eq!(param(&p, "dlr-mask"), Some("31"));
        // The webhook credentials ride in the userinfo; `%` doubled for Kannel's pattern syntax.
        assert_eq!(
            param(&p, "dlr-url"),
            Some("http://hook:hook%%20pw@127.0.0.1:8080/sms/kannel/status?key=int-1%%7C3&type=%d")
        );
    }

    #[test]
    fn other_texts_go_as_ucs2_through_the_configured_smsc() {
        let mut c = cfg();
        c.smsc = "operator1".into();
        c.dlr_mask = 0;
        c.sendsms_url = "http://127.0.0.1:13013/cgi-bin/sendsms?account=x".into();
        let url = request_url(&c, &dlr_base(&c).unwrap(), &sms("Привет 😀"));
        assert!(url.starts_with("http://127.0.0.1:13013/cgi-bin/sendsms?account=x&username="), "{url}");
        let p = params(&url);
        assert_eq!(param(&p, "coding"), Some("2"));
        assert_eq!(param(&p, "text"), Some("Привет 😀"));
        assert_eq!(param(&p, "smsc"), Some("operator1"));
        assert_eq!(param(&p, "dlr-mask"), None);
        assert_eq!(param(&p, "dlr-url"), None);
    }

    #[test]
    fn dlr_url_under_a_path_prefix() {
        let mut c = cfg();
        c.public_url = "https://sms.example.com/switchboard".into();
        assert_eq!(dlr_base(&c).unwrap(), "https://hook:hook%%20pw@sms.example.com/switchboard/sms/kannel/status?key=");
    }

    #[test]
    fn redacted_urls_keep_no_secret() {
        let c = cfg();
        let url = request_url(&c, &dlr_base(&c).unwrap(), &sms("x"));
        let r = redact(&url);
        assert_eq!(r, "http://127.0.0.1:13013/cgi-bin/sendsms");
        assert_eq!(redact("http://u:p@h/x?password=1"), "http://h/x");
    }

    #[test]
    fn answers_map_to_outcomes() {
        assert_eq!(outcome(StatusCode::ACCEPTED, "0: Accepted for delivery"), Ok(()));
        assert_eq!(outcome(StatusCode::ACCEPTED, "3: Queued for later delivery"), Ok(()));
        assert_eq!(outcome(StatusCode::OK, "Sent."), Ok(()));
        assert_eq!(
            outcome(StatusCode::FORBIDDEN, "Authorization failed for sendsms"),
            Err(SendError::Permanent { code: "403".into(), reason: "Authorization failed for sendsms".into() })
        );
        assert_eq!(
            outcome(StatusCode::BAD_REQUEST, "\nEmpty receiver number not allowed, rejected\nmore"),
            Err(SendError::Permanent {
                code: "400".into(),
                reason: "Empty receiver number not allowed, rejected".into()
            })
        );
        assert_eq!(
            outcome(StatusCode::NOT_FOUND, ""),
            Err(SendError::Permanent { code: "404".into(), reason: "Not Found".into() })
        );
        assert!(matches!(outcome(StatusCode::SERVICE_UNAVAILABLE, "Temporal failure, try again later."),
            Err(SendError::Transient(m)) if m.contains("503") && m.contains("Temporal failure")));
        assert!(matches!(outcome(StatusCode::TOO_MANY_REQUESTS, ""), Err(SendError::Transient(_))));
        let long = "x".repeat(500);
        let Err(SendError::Permanent { reason, .. }) = outcome(StatusCode::BAD_REQUEST, &long) else { panic!() };
        assert_eq!(reason.chars().count(), MAX_REASON + 1);
    }
}
