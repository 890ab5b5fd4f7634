//! What Kannel's calls to our webhooks say: a customer's text (smsbox's `get-url`, or `post-url`
//! with the text as the body) and delivery reports (the `dlr-url` of each text we sent).
//!
//! Values are read as bytes and decoded by what Kannel says they are, because a UCS-2 text
//! passed on without `mo-recode` is UTF-16BE, not UTF-8 (`coding=2`, `charset=UTF-16BE`).

use std::borrow::Cow;

use switchboard_model::DeliveryState;

use crate::channels::sms::gateway::{InboundSms, StatusReport, WebhookRequest};

/// Longest message id, sender or recipient taken (Kannel's ids are 36-character UUIDs).
const MAX_FIELD: usize = 64;

/// A request's query parameters, names decoded, values left as the bytes they stand for.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, Vec<u8>)>);

impl Query {
    /// `a=1&b=x+y%20z`: `+` is a space, `%XX` a byte; a `%` not followed by two hex digits
    /// stands for itself.
    pub fn parse(query: &str) -> Query {
        let pairs = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (String::from_utf8_lossy(&unescape(k)).into_owned(), unescape(v))
            })
            .collect();
        Query(pairs)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }

    /// The first value of `name` as text (None if absent or not UTF-8).
    fn text(&self, name: &str) -> Option<Result<&str, String>> {
        self.get(name).map(|v| std::str::from_utf8(v).map_err(|_| format!("{name}: not UTF-8")))
    }
}

/// Percent-decoding as in `application/x-www-form-urlencoded`.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Kannel's `%c`: the data coding of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// GSM-7, handed to us in `charset` (UTF-8 unless configured otherwise).
    Text,
    /// 8-bit data.
    Binary,
    /// UCS-2: UTF-16BE bytes unless smsbox recoded them (`mo-recode = true`: UTF-8, coding 0).
    Ucs2,
}

impl Coding {
    pub fn parse(s: &str) -> Option<Coding> {
        match s.trim() {
            "" | "0" => Some(Coding::Text),
            "1" => Some(Coding::Binary),
            "2" => Some(Coding::Ucs2),
            _ => None,
        }
    }
}

/// A text's bytes as a string, by its charset (`%C`, or the body's `Content-Type`) and coding.
/// Never fails: a customer's text with a broken character still reaches the agent (with U+FFFD
/// in its place) rather than being refused and, after Kannel's retries, lost.
pub fn decode_text(bytes: &[u8], coding: Coding, charset: &str) -> String {
    let charset = charset.trim().trim_matches('"').to_ascii_uppercase();
    match charset.as_str() {
        "UTF-8" | "UTF8" => return String::from_utf8_lossy(bytes).into_owned(),
        "UTF-16BE" | "UTF-16" | "UCS-2" | "UCS2" | "UCS-2BE" => return utf16be(bytes),
        "ISO-8859-1" | "LATIN1" | "ISO_8859-1" | "WINDOWS-1252" | "CP1252" => {
            return bytes.iter().map(|&b| b as char).collect();
        }
        _ => {}
    }
    match coding {
        Coding::Ucs2 => utf16be(bytes),
        Coding::Text | Coding::Binary => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn utf16be(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    let mut s = String::from_utf16_lossy(&units);
    if bytes.len() % 2 == 1 {
        s.push(char::REPLACEMENT_CHARACTER);
    }
    s
}

/// The `charset` parameter of a `Content-Type` (`text/plain; charset="UTF-16BE"`).
fn content_charset(req: &WebhookRequest) -> Option<String> {
    let ct = req.headers.get(axum::http::header::CONTENT_TYPE)?.to_str().ok()?;
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches('"').to_string())
    })
}

fn header<'a>(req: &'a WebhookRequest, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A required short field, from the query or else (post-url) Kannel's `X-Kannel-*` header.
fn short_field<'a>(
    q: &'a Query,
    req: &'a WebhookRequest,
    name: &str,
    header_name: Option<&str>,
) -> Result<&'a str, String> {
    let v = match q.text(name) {
        Some(v) => v?,
        None => header_name.and_then(|h| header(req, h)).unwrap_or_default(),
    };
    let v = v.trim();
    if v.is_empty() {
        return Err(format!("{name} is required"));
    }
    if v.len() > MAX_FIELD {
        return Err(format!("{name} is longer than {MAX_FIELD} characters"));
    }
    Ok(v)
}

/// The customer's text a call of smsbox's `get-url` (`?from=%p&to=%P&text=%b&id=%I&coding=%c&
/// charset=%C`) or `post-url` (text as the body, `X-Kannel-From`/`-To`/`-Coding` headers, and
/// `?id=%I` in the URL, since Kannel sends no id header) describes, or what is wrong with it.
pub fn inbound_from(gateway: &str, req: &WebhookRequest) -> Result<InboundSms, String> {
    let q = Query::parse(req.uri.query().unwrap_or_default());
    // Kannel has no id header: a post-url carries `?id=%I` too.
    let id = short_field(&q, req, "id", None)
        .map_err(|e| format!("{e} (put id=%I in Kannel's get-url/post-url: it deduplicates retries)"))?;
    let from = short_field(&q, req, "from", Some("x-kannel-from"))?;
    let to = short_field(&q, req, "to", Some("x-kannel-to"))?;
    let coding = match q.text("coding") {
        Some(v) => v?,
        None => header(req, "x-kannel-coding").unwrap_or_default(),
    };
    let coding = Coding::parse(coding).ok_or_else(|| format!("coding: {coding:?} is not 0, 1 or 2"))?;
    let (bytes, charset): (Cow<[u8]>, String) = match q.get("text") {
        Some(t) => {
            let cs = match q.text("charset") {
                Some(v) => v?.to_string(),
                None => String::new(),
            };
            (Cow::Borrowed(t), cs)
        }
        None if !req.body.is_empty() => (Cow::Borrowed(&req.body[..]), content_charset(req).unwrap_or_default()),
        None => (Cow::Borrowed(&[][..]), String::new()),
    };
    Ok(InboundSms {
        gateway: gateway.to_string(),
        provider_id: id.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        body: decode_text(&bytes, coding, &charset),
        media: Vec::new(),
    })
}

/// Kannel's DLR types (`%d`) as delivery states.
pub fn dlr_state(dlr_type: u32) -> Option<DeliveryState> {
    Some(match dlr_type {
        1 => DeliveryState::Delivered,
        2 => DeliveryState::Undelivered,
        // 4: buffered at the SMSC (retrying); 8: the SMSC took it.
        4 | 8 => DeliveryState::Sent,
        16 => DeliveryState::Failed,
        _ => return None,
    })
}

/// The report a call of the `dlr-url` we gave with a text (`?key=<our key>&type=%d`) makes.
pub fn status_from(gateway: &str, req: &WebhookRequest) -> Result<StatusReport, String> {
    let q = Query::parse(req.uri.query().unwrap_or_default());
    let key = q.text("key").transpose()?.filter(|k| !k.is_empty()).ok_or("key is required")?;
    if key.len() > 256 {
        return Err("key is longer than 256 characters".into());
    }
    let t = q.text("type").transpose()?.ok_or("type is required")?;
    let n: u32 = t.trim().parse().map_err(|_| format!("type: {t:?} is not a number"))?;
    let state = dlr_state(n).ok_or_else(|| format!("type: {n} is not a DLR type Kannel sends (1, 2, 4, 8, 16)"))?;
    let code =
        if matches!(state, DeliveryState::Undelivered | DeliveryState::Failed) { n.to_string() } else { String::new() };
    Ok(StatusReport { gateway: gateway.to_string(), provider_id: key.to_string(), state, code })
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, Method};

    use super::*;

    fn get(uri: &str) -> WebhookRequest {
        WebhookRequest {
            method: Method::GET,
            uri: uri.parse().unwrap(),
            headers: HeaderMap::new(),
            body: Default::default(),
            peer: "127.0.0.1:9".parse().unwrap(),
        }
    }

    fn post(uri: &str, headers: &[(&'static str, &str)], body: &[u8]) -> WebhookRequest {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        WebhookRequest {
            method: Method::POST,
            uri: uri.parse().unwrap(),
            headers: h,
            body: body.to_vec().into(),
            peer: "127.0.0.1:9".parse().unwrap(),
        }
    }

    #[test]
    fn get_url_as_kannel_sends_it() {
        // Exactly what smsbox 1.4.5 called for `%p %P %b %I %i %c %C %t` with a GSM text.
        let req =
            get("/sms/k/inbound?from=%2B4915112345678&to=4900000&text=Gr%C3%BC%C3%9Fe++%E2%82%AC+%5Bx%5D+%7By%7D\
             &id=939389a4-9eb6-4781-9137-fb6fb9751eb8&smsc=fake1&coding=0&charset=UTF-8&time=2026-12-07+08:27:57");
        let sms = inbound_from("k", &req).unwrap();
        assert_eq!(sms.provider_id, "939389a4-9eb6-4781-9137-fb6fb9751eb8");
        assert_eq!(sms.from, "+4915112345678");
        assert_eq!(sms.to, "4900000");
        assert_eq!(sms.body, "Grüße  € [x] {y}");
        assert_eq!(sms.gateway, "k");
        assert!(sms.media.is_empty());
    }

    #[test]
    fn ucs2_text_without_mo_recode_is_utf16be() {
        // "Привет 😀 ok" as smsbox passes a UCS-2 text on without `mo-recode`.
        let req = get(
            "/sms/k/inbound?from=%2B4915112345678&to=4900000&text=%04%1F%04%40%048%042%045%04B%00+%D8%3D%DE%00%00+%00o%00k\
             &id=30e0148c&coding=2&charset=UTF-16BE",
        );
        assert_eq!(inbound_from("k", &req).unwrap().body, "Привет 😀 ok");
        // Without a charset the coding decides.
        let req = get("/sms/k/inbound?from=1&to=2&id=x&coding=2&text=%04%1F%00k");
        assert_eq!(inbound_from("k", &req).unwrap().body, "Пk");
        // With mo-recode smsbox gives UTF-8 and coding 0.
        let req = get("/sms/k/inbound?from=1&to=2&id=x&coding=0&charset=UTF-8&text=%D0%9F%F0%9F%98%80");
        assert_eq!(inbound_from("k", &req).unwrap().body, "П😀");
    }

    #[test]
    fn post_url_body_with_kannel_headers() {
        let req = post(
            "/sms/k/inbound?id=fea2b1a9-b930-43f4-b0b6-4d10987d04d8",
            &[
                ("content-type", "text/plain; charset=\"UTF-16BE\""),
                ("x-kannel-from", "+4915112345678"),
                ("x-kannel-to", "4900000"),
                ("x-kannel-coding", "2"),
            ],
            &[0x04, 0x1f, 0x00, 0x20, 0xd8, 0x3d, 0xde, 0x00],
        );
        let sms = inbound_from("k", &req).unwrap();
        assert_eq!((sms.from.as_str(), sms.to.as_str(), sms.body.as_str()), ("+4915112345678", "4900000", "П 😀"));
        let req = post(
            "/sms/k/inbound?id=1",
            &[("content-type", "text/plain; charset=\"UTF-8\""), ("x-kannel-from", "1"), ("x-kannel-to", "2")],
            "hello  there\nsecond line".as_bytes(),
        );
        assert_eq!(inbound_from("k", &req).unwrap().body, "hello  there\nsecond line");
    }

    #[test]
    fn malformed_calls_name_what_is_wrong() {
        let cases = [
            ("/i?to=2&text=x&id=1", "from is required"),
            ("/i?from=1&text=x&id=1", "to is required"),
            ("/i?from=1&to=2&text=x", "id is required"),
            ("/i?from=1&to=2&text=x&id=", "id is required"),
            ("/i?from=1&to=2&text=x&id=1&coding=7", "coding"),
            ("/i?from=1&to=2&text=x&id=1&coding=abc", "coding"),
            ("/i?from=%FF&to=2&text=x&id=1", "from: not UTF-8"),
        ];
        for (uri, want) in cases {
            let e = inbound_from("k", &get(uri)).unwrap_err();
            assert!(e.contains(want), "{uri}: {e}");
        }
        let long = format!("/i?from=1&to=2&id={}", "a".repeat(65));
        assert!(inbound_from("k", &get(&long)).unwrap_err().contains("longer"));
    }

    #[test]
    fn broken_characters_reach_the_agent_replaced() {
        let req = get("/i?from=1&to=2&id=1&coding=2&charset=UTF-16BE&text=%D8%3D%00a%00");
        assert_eq!(inbound_from("k", &req).unwrap().body, "\u{FFFD}a\u{FFFD}");
        let req = get("/i?from=1&to=2&id=1&text=a%FFb%");
        assert_eq!(inbound_from("k", &req).unwrap().body, "a\u{FFFD}b%");
        assert_eq!(decode_text(&[0xe9], Coding::Text, "ISO-8859-1"), "é");
    }

    #[test]
    fn dlr_types_map_to_delivery_states() {
        let cases = [
            (1, Some(DeliveryState::Delivered)),
            (2, Some(DeliveryState::Undelivered)),
            (4, Some(DeliveryState::Sent)),
            (8, Some(DeliveryState::Sent)),
            (16, Some(DeliveryState::Failed)),
            (0, None),
            (3, None),
            (32, None),
        ];
        for (t, want) in cases {
            assert_eq!(dlr_state(t), want, "type {t}");
        }
        let r = status_from("k", &get("/s?key=int-1%7C3&type=1")).unwrap();
        assert_eq!((r.provider_id.as_str(), r.state, r.code.as_str()), ("int-1|3", DeliveryState::Delivered, ""));
        let r = status_from("k", &get("/s?key=a+b&type=16")).unwrap();
        assert_eq!((r.provider_id.as_str(), r.state, r.code.as_str()), ("a b", DeliveryState::Failed, "16"));
        for (uri, want) in [
            ("/s?type=1", "key is required"),
            ("/s?key=a", "type is required"),
            ("/s?key=a&type=x", "not a number"),
            ("/s?key=a&type=64", "not a DLR type"),
            ("/s?key=%FF&type=1", "not UTF-8"),
        ] {
            let e = status_from("k", &get(uri)).unwrap_err();
            assert!(e.contains(want), "{uri}: {e}");
        }
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse("a=1&b=x+y%20z&c&d=%zz%4&a=2&=e");
        assert_eq!(q.get("a"), Some(&b"1"[..]));
        assert_eq!(q.get("b"), Some(&b"x y z"[..]));
        assert_eq!(q.get("c"), Some(&b""[..]));
        assert_eq!(q.get("d"), Some(&b"%zz%4"[..]));
        assert_eq!(q.get("x"), None);
    }
}
