//! From raw RFC 5322 bytes to what routing needs: who wrote, about what, which conversation it
//! answers, readable text, attachment metadata, and whether it is a person at all (auto-replies
//! and bounces are not). Pure: no I/O, never panics on input (`mail-parser` is lenient; what it
//! cannot read is reported, not thrown).

use mail_parser::{HeaderName, HeaderValue, MessageParser, MimeHeaders, PartType};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::auth_results::{self, AuthResults, MAX_HEADERS as MAX_AUTH_HEADERS};
use super::threading::normalize_message_id;
use crate::model::MAX_SUBJECT_LEN;

/// Message-IDs kept from References (the first and the most recent ones).
pub const MAX_REFERENCES: usize = 20;
const MAX_ATTACHMENTS_LISTED: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub name: String,
    #[serde(rename = "type")]
    pub content_type: String,
    pub size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Written by a person: becomes or joins a conversation.
    Customer,
    /// RFC 3834 auto-response, bulk or list mail, vacation notice: never an interaction, never
    /// answered.
    AutoReply(String),
    /// A delivery status notification; `original` are the Message-IDs it reports on.
    Bounce { original: Vec<String>, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEmail {
    /// Without angle brackets.
    pub message_id: Option<String>,
    /// In-Reply-To, then References newest first, deduplicated: where to look for the conversation.
    pub parents: Vec<String>,
    /// References as received plus In-Reply-To (oldest first), capped.
    pub references: Vec<String>,
    /// Lower-cased sender address (Reply-To wins over From, as a human reply would).
    pub from: Option<String>,
    pub from_name: String,
    /// The From header's address, lower-cased: the author, whom DMARC can vouch for (Reply-To
    /// it cannot). With several, the first.
    pub author: Option<String>,
    pub author_name: String,
    /// Addresses in From, over every From header: DMARC vouches for exactly one.
    pub author_count: usize,
    /// Reply-To's first address when valid, lower-cased.
    pub reply_to: Option<String>,
    /// Every `Authentication-Results` header that names its server, topmost first (capped).
    pub auth_results: Vec<AuthResults>,
    pub subject: String,
    pub date: Option<String>,
    /// Readable text, capped at the configured size.
    pub body: String,
    pub truncated: bool,
    pub attachments: Vec<Attachment>,
    pub kind: Kind,
    /// Stable across refetches: the dedupe key's input hashed.
    pub dedupe_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a parseable message")]
    Unparseable,
}

pub fn parse(raw: &[u8], max_body: usize) -> Result<ParsedEmail, ParseError> {
    // mail-parser 0.11 checks its own bookkeeping with `debug_assert!`, which some broken nestings
    // trip (a message/rfc822 inside another, ended by the outer boundary): a panic in a debug
    // build, where a release build parses on. Unparseable here rather than a panic in either.
    let msg = std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .ok()
        .flatten()
        .ok_or(ParseError::Unparseable)?;
    let message_id = msg.message_id().and_then(normalize_message_id);
    let in_reply_to = ids(msg.in_reply_to());
    let references = ids(msg.references());
    let mut parents: Vec<String> = Vec::new();
    for id in in_reply_to.iter().chain(references.iter().rev()) {
        if !parents.contains(id) {
            parents.push(id.clone());
        }
    }
    let mut refs = references.clone();
    for id in &in_reply_to {
        if !refs.contains(id) {
            refs.push(id.clone());
        }
    }
    let refs = cap_references(refs);

    let reply_to_addr = msg.reply_to().and_then(|a| a.first()).filter(|a| a.address().is_some_and(plausible));
    let sender = reply_to_addr.or_else(|| msg.from().and_then(|a| a.first()));
    let from = sender.and_then(|a| a.address()).map(|a| a.trim().to_ascii_lowercase()).filter(|a| plausible(a));
    let from_name = sender.and_then(|a| a.name()).map(|n| one_line(n, 200)).unwrap_or_default();
    let reply_to = reply_to_addr.and_then(|a| a.address()).map(|a| a.trim().to_ascii_lowercase());
    let author_addr = msg.from().and_then(|a| a.first());
    let author = author_addr.and_then(|a| a.address()).map(|a| a.trim().to_ascii_lowercase()).filter(|a| plausible(a));
    let author_name = author_addr.and_then(|a| a.name()).map(|n| one_line(n, 200)).unwrap_or_default();
    let author_count = msg
        .headers()
        .iter()
        .filter(|h| h.name == HeaderName::From)
        .map(|h| h.value.as_address().map_or(1, |a| a.iter().count().max(1)))
        .sum();
    let auth_results = msg
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Authentication-Results"))
        .take(MAX_AUTH_HEADERS)
        .filter_map(|(_, value)| auth_results::parse_header(value))
        .collect();
    let subject = msg.subject().map(|s| one_line(s, MAX_SUBJECT_LEN)).unwrap_or_default();
    let date = msg.date().map(mail_parser::DateTime::to_rfc3339);

    let mut text = String::new();
    for i in 0..msg.text_body_count() {
        if let Some(t) = msg.body_text(i) {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&t);
            if text.len() > max_body * 2 {
                break;
            }
        }
    }
    let mut attachments = Vec::new();
    for part in msg.attachments().take(MAX_ATTACHMENTS_LISTED) {
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(st) => format!("{}/{}", ct.ctype(), st),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        let name = part.attachment_name().map(|n| one_line(n, 200)).unwrap_or_else(|| "(unnamed)".into());
        let size = match &part.body {
            PartType::Text(t) | PartType::Html(t) => t.len(),
            PartType::Binary(b) | PartType::InlineBinary(b) => b.len(),
            PartType::Message(m) => m.raw_message().len(),
            PartType::Multipart(_) => 0,
        };
        attachments.push(Attachment { name, content_type: one_line(&content_type, 100), size });
    }

    let kind = classify(&msg, from.as_deref());
    let (body, truncated) = clean_body(&text, &attachments, max_body);
    let dedupe_key = dedupe_key(message_id.as_deref(), from.as_deref(), date.as_deref(), &subject, &body);
    Ok(ParsedEmail {
        message_id,
        parents,
        references: refs,
        from,
        from_name,
        author,
        author_name,
        author_count,
        reply_to,
        auth_results,
        subject,
        date,
        body,
        truncated,
        attachments,
        kind,
        dedupe_key,
    })
}

fn plausible(a: &str) -> bool {
    super::config::is_plausible_address(a.trim())
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    let raw: Vec<&str> = match v {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(l) => l.iter().map(std::convert::AsRef::as_ref).collect(),
        _ => Vec::new(),
    };
    raw.into_iter().filter_map(normalize_message_id).take(200).collect()
}

/// RFC 5322 §3.6.4: keep the first (the thread's root) and the most recent ones.
pub fn cap_references(mut refs: Vec<String>) -> Vec<String> {
    if refs.len() > MAX_REFERENCES {
        let tail = refs.split_off(refs.len() - (MAX_REFERENCES - 1));
        refs.truncate(1);
        refs.extend(tail);
    }
    refs
}

/// One line, no control characters, at most `max` bytes (on a character boundary).
pub fn one_line(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out.trim().to_string()
}

fn truncate_at(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

fn clean_body(text: &str, attachments: &[Attachment], max: usize) -> (String, bool) {
    let mut body = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        match c {
            '\r' => {}
            '\n' | '\t' => body.push(c),
            c if c.is_control() => {}
            c => body.push(c),
        }
        if body.len() > max * 2 {
            break;
        }
    }
    let mut body = body.trim().to_string();
    let mut note = String::new();
    if !attachments.is_empty() {
        let list: Vec<String> =
            attachments.iter().map(|a| format!("{} ({}, {} bytes)", a.name, a.content_type, a.size)).collect();
        note = format!("\n\n[attachments: {}]", list.join("; "));
        truncate_at(&mut note, max / 4);
    }
    let marker = "\n[… message truncated]";
    let room = max.saturating_sub(note.len());
    let truncated = body.len() > room;
    if truncated {
        truncate_at(&mut body, room.saturating_sub(marker.len()));
        body.push_str(marker);
    }
    body.push_str(&note);
    if body.trim().is_empty() {
        body = "(no text)".into();
    }
    (body, truncated)
}

pub fn dedupe_key(
    message_id: Option<&str>,
    from: Option<&str>,
    date: Option<&str>,
    subject: &str,
    body: &str,
) -> String {
    let mut h = Sha256::new();
    match message_id {
        Some(id) => {
            h.update(b"mid\0");
            h.update(id.as_bytes());
        }
        None => {
            // Without a Message-ID, the same message fetched twice still has the same sender,
            // date, subject and text.
            h.update(b"fallback\0");
            for part in [from.unwrap_or(""), date.unwrap_or(""), subject] {
                h.update(part.as_bytes());
                h.update(b"\0");
            }
            let mut end = body.len().min(4096);
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            h.update(&body.as_bytes()[..end]);
        }
    }
    format!("email:{}", hex32(&h.finalize()))
}

pub fn hex32(digest: &[u8]) -> String {
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// One line: the value ends up in the log (a folded value keeps its CR LF).
fn header_text(msg: &mail_parser::Message<'_>, name: &str) -> Option<String> {
    msg.header_raw(name).map(|v| one_line(v, 200).to_ascii_lowercase())
}

fn classify(msg: &mail_parser::Message<'_>, from: Option<&str>) -> Kind {
    if let Some(b) = bounce(msg, from) {
        return b;
    }
    if let Some(v) = header_text(msg, "Auto-Submitted") {
        let v = v.split(';').next().unwrap_or("").trim().to_string();
        if v != "no" {
            return Kind::AutoReply(format!("Auto-Submitted: {v}"));
        }
    }
    if let Some(v) = header_text(msg, "Precedence")
        && matches!(v.as_str(), "bulk" | "junk" | "list")
    {
        return Kind::AutoReply(format!("Precedence: {v}"));
    }
    for h in ["X-Autoreply", "X-Autorespond", "X-Autoresponder"] {
        if let Some(v) = header_text(msg, h)
            && v != "no"
        {
            return Kind::AutoReply(format!("{h}: {v}"));
        }
    }
    // RFC 3834 responders send from the null reverse path.
    if msg.header_raw("Return-Path").is_some_and(|v| v.trim() == "<>") {
        return Kind::AutoReply("Return-Path: <>".into());
    }
    Kind::Customer
}

fn bounce(msg: &mail_parser::Message<'_>, from: Option<&str>) -> Option<Kind> {
    let is_report = msg.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct.attribute("report-type").is_some_and(|r| r.eq_ignore_ascii_case("delivery-status"))
    });
    let daemon = from.is_some_and(|f| {
        let local = f.split('@').next().unwrap_or("");
        local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
    });
    if !is_report && !daemon {
        return None;
    }
    let mut original = Vec::new();
    let mut reason = String::new();
    for part in &msg.parts {
        let ct = part.content_type();
        let sub = ct.and_then(|c| c.subtype()).unwrap_or("").to_ascii_lowercase();
        match &part.body {
            PartType::Message(m) => {
                if let Some(id) = m.message_id().and_then(normalize_message_id) {
                    original.push(id);
                }
            }
            _ if sub == "rfc822-headers" || sub == "delivery-status" || sub == "global-delivery-status" => {
                let text = String::from_utf8_lossy(part.contents());
                for line in text.lines() {
                    let (name, value) = line.split_once(':').unwrap_or(("", ""));
                    let name = name.trim().to_ascii_lowercase();
                    if name == "message-id" {
                        original.extend(normalize_message_id(value));
                    } else if (name == "diagnostic-code" || name == "status") && reason.len() < 300 {
                        reason.push_str(&one_line(line, 300));
                        reason.push(' ');
                    }
                }
            }
            _ => {}
        }
    }
    if original.is_empty() {
        // Some MTAs quote the original headers in the text.
        if let Some(t) = msg.body_text(0) {
            for line in t.lines().take(500) {
                if let Some((name, value)) = line.split_once(':')
                    && name.trim().eq_ignore_ascii_case("message-id")
                {
                    original.extend(normalize_message_id(value));
                }
            }
        }
        original.extend(ids(msg.in_reply_to()));
        original.extend(ids(msg.references()));
    }
    original.dedup();
    if reason.is_empty() {
        reason = msg.subject().map(|s| one_line(s, 300)).unwrap_or_else(|| "delivery failed".into());
    }
    Some(Kind::Bounce { original, reason: reason.trim().to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str) -> ParsedEmail {
        parse(raw.as_bytes(), 4096).unwrap()
    }

    #[test]
    fn plain_message() {
        let e = p("From: Ann Example <Ann@Example.com>\r\nTo: support@acme.test\r\nSubject: Invoice\r\n\
                   Message-ID: <abc@example.com>\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\n\r\nHello\r\nthere\r\n");
        assert_eq!(e.message_id.as_deref(), Some("abc@example.com"));
        assert_eq!(e.from.as_deref(), Some("ann@example.com"));
        assert_eq!(e.from_name, "Ann Example");
        assert_eq!(e.subject, "Invoice");
        assert_eq!(e.body, "Hello\nthere");
        assert_eq!(e.kind, Kind::Customer);
        assert!(e.dedupe_key.starts_with("email:"));
    }

    #[test]
    fn prefers_text_over_html_and_converts_html() {
        let alt = "From: a@b.test\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=B\r\n\r\n\
                   --B\r\nContent-Type: text/plain\r\n\r\nplain version\r\n--B\r\nContent-Type: text/html\r\n\r\n<p>html <b>version</b></p>\r\n--B--\r\n";
        assert_eq!(p(alt).body, "plain version");
        let html = "From: a@b.test\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Hello <b>World</b></p><script>x</script></body></html>";
        let b = p(html).body;
        assert!(b.contains("Hello") && b.contains("World") && !b.contains("<b>"), "{b}");
    }

    #[test]
    fn decodes_charsets_and_encoded_headers() {
        let raw = b"From: =?ISO-8859-1?Q?J=F6rg?= <j@x.test>\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n\
                    Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n";
        let e = parse(raw, 4096).unwrap();
        assert_eq!(e.from_name, "Jörg");
        assert_eq!(e.subject, "Grüße");
        assert_eq!(e.body, "Grüße");
        let sjis = b"From: k@x.test\r\nContent-Type: text/plain; charset=shift_jis\r\n\r\n\x82\xb1\x82\xf1\x82\xc9\x82\xbf\x82\xcd";
        assert_eq!(parse(sjis, 4096).unwrap().body, "こんにちは");
    }

    #[test]
    fn attachments_are_listed_not_stored() {
        let raw = "From: a@b.test\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee file\r\n\
                   --B\r\nContent-Type: application/pdf; name=\"inv.pdf\"\r\nContent-Disposition: attachment; filename=\"inv.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8gV29ybGQ=\r\n--B--\r\n";
        let e = p(raw);
        assert_eq!(
            e.attachments,
            vec![Attachment { name: "inv.pdf".into(), content_type: "application/pdf".into(), size: 11 }]
        );
        assert!(e.body.starts_with("see file"));
        assert!(e.body.contains("[attachments: inv.pdf (application/pdf, 11 bytes)]"));
    }

    #[test]
    fn body_is_capped_on_a_char_boundary() {
        let raw = format!("From: a@b.test\r\n\r\n{}", "é".repeat(5000));
        let e = parse(raw.as_bytes(), 1024).unwrap();
        assert!(e.truncated);
        assert!(e.body.len() <= 1024);
        assert!(e.body.ends_with("truncated]"));
    }

    #[test]
    fn threading_headers() {
        let e = p("From: a@b.test\r\nMessage-ID: <3@c>\r\nIn-Reply-To: <2@c>\r\nReferences: <1@c> <2@c>\r\n\r\nhi");
        assert_eq!(e.parents, vec!["2@c", "1@c"]);
        assert_eq!(e.references, vec!["1@c", "2@c"]);
    }

    #[test]
    fn reply_to_wins_when_valid() {
        let e = p("From: noreply@shop.test\r\nReply-To: Bob <bob@x.test>\r\n\r\nhi");
        assert_eq!(e.from.as_deref(), Some("bob@x.test"));
        let e = p("From: bob@x.test\r\nReply-To: garbage\r\n\r\nhi");
        assert_eq!(e.from.as_deref(), Some("bob@x.test"));
    }

    #[test]
    fn author_reply_to_and_authentication_results() {
        let raw = "Return-Path: <carol@customer.test>\r\n\
                   Authentication-Results: mx.acme.test;\r\n\tdmarc=pass (p=none dis=none)\r\n\theader.from=customer.test\r\n\
                   Received: from mail.customer.test by mx.acme.test\r\n\
                   Authentication-Results: evil.test; dmarc=pass header.from=other.test\r\n\
                   Authentication-Results: spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=customer.test\r\n\
                   From: Carol <Carol@Customer.test>\r\nReply-To: Mallory <mallory@evil.test>\r\nSubject: x\r\n\r\nhi";
        let e = p(raw);
        assert_eq!(e.from.as_deref(), Some("mallory@evil.test"), "unchanged: Reply-To wins");
        assert_eq!(e.author.as_deref(), Some("carol@customer.test"));
        assert_eq!(e.author_name, "Carol");
        assert_eq!(e.author_count, 1);
        assert_eq!(e.reply_to.as_deref(), Some("mallory@evil.test"));
        // Topmost first; the one naming no server is dropped.
        let ids: Vec<&str> = e.auth_results.iter().map(|a| a.authserv_id.as_str()).collect();
        assert_eq!(ids, ["mx.acme.test", "evil.test"]);
        assert_eq!(e.auth_results[0].results[0].props, [("header.from".to_string(), "customer.test".to_string())]);

        let two = p("From: a@x.test, b@y.test\r\n\r\nhi");
        assert_eq!((two.author.as_deref(), two.author_count), (Some("a@x.test"), 2));
        let repeated = p("From: a@x.test\r\nFrom: b@y.test\r\n\r\nhi");
        assert_eq!(repeated.author_count, 2);
        let none = p("Reply-To: a@x.test\r\n\r\nhi");
        assert_eq!((none.author, none.author_count, none.from.as_deref()), (None, 0, Some("a@x.test")));
        assert!(p("From: a@x.test\r\n\r\nhi").reply_to.is_none());
    }

    #[test]
    fn auto_replies() {
        let cases = [
            ("Auto-Submitted: auto-replied", Some("Auto-Submitted: auto-replied")),
            ("Auto-Submitted: no", None),
            ("Precedence: bulk", Some("Precedence: bulk")),
            ("Precedence: list", Some("Precedence: list")),
            ("Precedence: first-class", None),
            ("X-Autoreply: yes", Some("X-Autoreply: yes")),
            ("Return-Path: <>", Some("Return-Path: <>")),
        ];
        for (h, want) in cases {
            let e = p(&format!("From: a@b.test\r\n{h}\r\nSubject: Out of office\r\n\r\nbye"));
            match want {
                Some(r) => assert_eq!(e.kind, Kind::AutoReply(r.into()), "{h}"),
                None => assert_eq!(e.kind, Kind::Customer, "{h}"),
            }
        }
    }

    #[test]
    fn dsn_bounce_reports_the_original() {
        let raw = "From: Mail Delivery System <MAILER-DAEMON@mx.test>\r\nSubject: Undelivered Mail Returned to Sender\r\n\
                   Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n\
                   --R\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n\
                   --R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\nFinal-Recipient: rfc822; gone@x.test\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\
                   --R\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@acme.test\r\nMessage-ID: <sb.1.2@acme.test>\r\nSubject: Re: x\r\n\
                   --R--\r\n";
        match p(raw).kind {
            Kind::Bounce { original, reason } => {
                assert_eq!(original, vec!["sb.1.2@acme.test"]);
                assert!(reason.contains("550 5.1.1"), "{reason}");
            }
            k => panic!("{k:?}"),
        }
        let embedded = "From: postmaster@mx.test\r\nSubject: failure\r\nContent-Type: multipart/mixed; boundary=R\r\n\r\n\
                        --R\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--R\r\nContent-Type: message/rfc822\r\n\r\nFrom: support@acme.test\r\nMessage-ID: <orig@acme.test>\r\n\r\nbody\r\n--R--\r\n";
        assert!(matches!(p(embedded).kind, Kind::Bounce { original, .. } if original == vec!["orig@acme.test"]));
    }

    #[test]
    fn dedupe_key_is_stable_without_message_id() {
        let raw = "From: a@b.test\r\nSubject: s\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\n\r\nhello";
        assert_eq!(p(raw).dedupe_key, p(raw).dedupe_key);
        assert_ne!(p(raw).dedupe_key, p(&raw.replace("hello", "bye")).dedupe_key);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let nested = {
            let mut s = String::from("From: a@b.test\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n");
            for i in 1..2000 {
                s.push_str(&format!("--b{}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n", i - 1));
            }
            s
        };
        let huge_header = format!("From: a@b.test\r\nSubject: {}\r\n\r\nx", "A".repeat(2_000_000));
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\r\n\r\n".to_vec(),
            b"From: \xff\xfe\r\nSubject: =?bogus?Q?=ZZ?=\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n\xff\x00\x01".to_vec(),
            b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n".to_vec(),
            b"Content-Transfer-Encoding: base64\r\n\r\n!!!!====".to_vec(),
            nested.into_bytes(),
            huge_header.into_bytes(),
            (0..=255u8).cycle().take(100_000).collect(),
        ];
        for raw in inputs {
            if let Ok(e) = parse(&raw, 2048) {
                assert!(e.body.len() <= 2048);
                assert!(e.subject.len() <= MAX_SUBJECT_LEN);
            }
        }
    }
}
