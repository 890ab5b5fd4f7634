//! The SMS gateways' parsers: Twilio's webhook parameters and `X-Twilio-Signature`, Kannel's
//! webhook queries, bodies, charsets and Basic credentials, and SMPP 3.4 PDUs off the wire.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use base64::Engine as _;
use proptest::prelude::*;
use switchboard::channels::sms::gateway::{SendError, WebhookRequest};
use switchboard::channels::sms::kannel::{auth, sendsms, webhook};
use switchboard::channels::sms::smpp::pdu::{self, Address, Bind, Body, Pdu, ShortMessage, Tlv};
use switchboard::channels::sms::twilio::{self, signature};

use super::{apply, check, edits, run, tricky_string};

fn form_value() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[A-Za-z0-9+ ]{0,20}", 2 => tricky_string(20), 1 => "\\PC{0,300}"]
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        6 => prop::sample::select(vec!["MessageSid", "SmsSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "MediaUrl1", "MediaUrl9", "MessageStatus", "ErrorCode", "AccountSid"]).prop_map(String::from),
        1 => tricky_string(10),
    ];
    let value = prop_oneof![
        form_value(),
        Just(String::new()),
        "[0-9]{1,25}",
        Just("-1".to_string()),
        Just("18446744073709551616".to_string())
    ];
    proptest::collection::vec((name, value), 0..12)
}

#[test]
fn fuzz_twilio_signature() {
    // The signature of any request verifies; any change to it, its URL, token or fields does not.
    let strategy = (
        form_value(),
        "https://[a-z.]{1,12}/sms/[a-z]{1,6}/inbound(\\?[a-z=&]{0,12})?",
        params(),
        0..5usize,
        tricky_string(4),
    );
    run("sms.twilio_signature", strategy, |(token, url, params, what, extra)| {
        let sig = signature::sign(&token, &url, &params);
        check(signature::verify(&token, &url, &params, &sig), || "own signature refused".into())?;
        let mut shuffled = params.clone();
        shuffled.reverse();
        check(signature::verify(&token, &url, &shuffled, &sig), || "field order matters".into())?;
        check(signature::verify(&token, &url, &params, &format!(" {sig}\t")), || "surrounding space".into())?;
        let changed = match what {
            0 => signature::verify(&format!("{token}{extra}x"), &url, &params, &sig),
            1 => signature::verify(&token, &format!("{url}x"), &params, &sig),
            2 => {
                let mut p = params.clone();
                p.push(("Extra".into(), extra.clone()));
                signature::verify(&token, &url, &p, &sig)
            }
            3 if !params.is_empty() => {
                let mut p = params.clone();
                p[0].1.push('x');
                signature::verify(&token, &url, &p, &sig)
            }
            _ => signature::verify(&token, &url, &params, &sig[..sig.len() - 1]),
        };
        check(!changed, || format!("change {what} still verifies"))?;
        // Anything as the header value: no panic, and no pass by accident.
        check(!signature::verify(&token, &url, &params, &extra) || extra.trim() == sig, || {
            "a forged signature passed".into()
        })
    });
}

#[test]
fn fuzz_twilio_inbound_params() {
    run("sms.twilio_inbound", params(), |params| {
        match twilio::inbound_from("tw", &params) {
            Ok(sms) => {
                check(!sms.provider_id.is_empty() && sms.provider_id.len() <= 64, || format!("{sms:?}"))?;
                check(!sms.from.is_empty() && !sms.to.is_empty(), || format!("{sms:?}"))?;
                check(!sms.body.is_empty() || !sms.media.is_empty(), || format!("{sms:?}"))?;
                check(sms.media.len() <= 10, || "media".into())?;
            }
            Err(e) => check(!e.is_empty(), || "an empty error".into())?,
        }
        for (_, v) in &params {
            let _ = twilio::delivery_state(v);
        }
        Ok(())
    });
}

fn query_part() -> impl Strategy<Value = String> {
    let name = prop_oneof![4 => prop::sample::select(vec!["from", "to", "text", "id", "coding", "charset", "key", "type", "smsc"]).prop_map(String::from), 1 => "[a-z%+]{0,6}"];
    let value = prop_oneof![
        3 => "[A-Za-z0-9+]{0,20}",
        3 => "(%[0-9A-Fa-f]{2}|[a-z+]){0,30}",
        1 => "(%[0-9A-Fa-f]?|%|[^&#]){0,20}",
        1 => prop::sample::select(vec!["0", "1", "2", "UTF-8", "UTF-16BE", "ISO-8859-1", "x-unknown", "16", "8", "4294967296", " 1 "]).prop_map(String::from),
    ];
    (name, value, any::<bool>()).prop_map(|(n, v, eq)| if eq { format!("{n}={v}") } else { n })
}

fn kannel_request() -> impl Strategy<Value = WebhookRequest> {
    let query = proptest::collection::vec(query_part(), 0..10).prop_map(|p| p.join("&"));
    let hdr = prop_oneof![
        Just(None),
        "[ -~]{0,20}".prop_map(Some),
        prop::sample::select(vec![
            "text/plain; charset=\"UTF-16BE\"",
            "text/plain; charset=UTF-8",
            "text/plain;charset",
            "; charset = \"\""
        ])
        .prop_map(|s| Some(s.to_string())),
    ];
    (query, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..60), hdr.clone(), hdr.clone(), hdr.clone(), hdr)
        .prop_map(|(q, post, body, ct, from, to, coding)| {
            let mut headers = HeaderMap::new();
            for (k, v) in
                [("content-type", ct), ("x-kannel-from", from), ("x-kannel-to", to), ("x-kannel-coding", coding)]
            {
                if let Some(v) = v.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    headers.insert(k, v);
                }
            }
            WebhookRequest {
                method: if post { Method::POST } else { Method::GET },
                uri: format!("/sms/k/inbound?{q}").parse().unwrap_or_else(|_| "/sms/k/inbound".parse().unwrap()),
                headers,
                body: body.into(),
                peer: "127.0.0.1:9".parse().unwrap(),
            }
        })
}

#[test]
fn fuzz_kannel_webhooks() {
    run("sms.kannel_webhook", kannel_request(), |req| {
        if let Ok(sms) = webhook::inbound_from("k", &req) {
            for f in [&sms.provider_id, &sms.from, &sms.to] {
                check(!f.is_empty() && f.len() <= 64 && f.trim() == f, || format!("{sms:?}"))?;
            }
        }
        if let Ok(r) = webhook::status_from("k", &req) {
            check(!r.provider_id.is_empty() && r.provider_id.len() <= 256, || format!("{r:?}"))?;
        }
        Ok(())
    });
}

#[test]
fn fuzz_kannel_query_and_charsets() {
    // Percent-decoding inverts percent-encoding (of any bytes), and text decodes in every
    // charset and coding without panicking, odd lengths and lone surrogates included.
    let charset = prop_oneof![
        prop::sample::select(vec![
            "UTF-8",
            "utf8",
            "UTF-16BE",
            "UCS-2",
            "ISO-8859-1",
            "windows-1252",
            "\"UTF-16\"",
            "",
            "x-unknown"
        ])
        .prop_map(String::from),
        "[ -~]{0,12}",
    ];
    let strategy = (proptest::collection::vec(any::<u8>(), 0..80), charset, "[ 0-9a-z]{0,3}");
    run("sms.kannel_decode", strategy, |(bytes, charset, coding)| {
        let encoded: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
        let q = webhook::Query::parse(&format!("x=1&text={encoded}&y"));
        check(q.get("text") == Some(bytes.as_slice()), || format!("{encoded} → {:?}", q.get("text")))?;
        let _ = webhook::Query::parse(&String::from_utf8_lossy(&bytes));
        if let Some(coding) = webhook::Coding::parse(&coding) {
            let text = webhook::decode_text(&bytes, coding, &charset);
            check(text.chars().count() <= bytes.len() + 1, || "more characters than bytes".into())?;
        }
        Ok(())
    });
}

#[test]
fn fuzz_kannel_basic_auth() {
    let header = prop_oneof![
        3 => (tricky_string(12), tricky_string(12)).prop_map(|(u, p)| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))),
        1 => proptest::collection::vec(any::<u8>(), 0..30).prop_map(|b| format!("basic  {} ", base64::engine::general_purpose::STANDARD.encode(b))),
        1 => "[ -~]{0,40}",
    ];
    run("sms.kannel_auth", (header, tricky_string(12), tricky_string(12)), |(value, user, password)| {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(header::AUTHORIZATION, v);
        }
        let r = auth::check(&h, &user, &password);
        // Right credentials always pass, as sent or percent-encoded.
        let mut right = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        right.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {token}")).unwrap());
        if !user.contains(':') {
            check(auth::check(&right, &user, &password).is_ok(), || "the right credentials refused".into())?;
        }
        if r.is_ok() && !value.to_ascii_lowercase().starts_with("basic") {
            return Err(TestCaseError::fail(format!("{value:?} passed")));
        }
        Ok(())
    });
}

#[test]
fn fuzz_kannel_sendsms_answers() {
    run("sms.kannel_sendsms", (100..600u16, tricky_string(400)), |(code, body)| {
        let Ok(status) = StatusCode::from_u16(code) else { return Ok(()) };
        match sendsms::outcome(status, &body) {
            Ok(()) => check(status.is_success(), || format!("{status} taken")),
            Err(SendError::Permanent { reason, .. } | SendError::Transient(reason) | SendError::Uncertain(reason)) => {
                check(!status.is_success() && reason.chars().count() <= 260, || format!("{status}: {reason:?}"))
            }
        }
    });
}

fn cstring(max: usize) -> impl Strategy<Value = String> {
    // What a C-string field can carry through: no NUL.
    proptest::collection::vec(tricky_char_no_nul(), 0..max).prop_map(|v| v.into_iter().collect())
}

fn tricky_char_no_nul() -> impl Strategy<Value = char> {
    super::tricky_char().prop_filter("no NUL", |c| *c != '\0')
}

fn short_message() -> impl Strategy<Value = ShortMessage> {
    let address = || (any::<u8>(), any::<u8>(), cstring(21)).prop_map(|(ton, npi, addr)| Address { ton, npi, addr });
    let tlv = (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(tag, value)| Tlv { tag, value });
    (
        (cstring(6), address(), address(), any::<[u8; 3]>(), cstring(17), cstring(17)),
        (any::<[u8; 4]>(), proptest::collection::vec(any::<u8>(), 0..=255), proptest::collection::vec(tlv, 0..4)),
    )
        .prop_map(|((service_type, source, dest, a, schedule, validity), (b, short_message, tlvs))| ShortMessage {
            service_type,
            source,
            dest,
            esm_class: a[0],
            protocol_id: a[1],
            priority_flag: a[2],
            schedule_delivery_time: schedule,
            validity_period: validity,
            registered_delivery: b[0],
            replace_if_present: b[1],
            data_coding: b[2],
            sm_default_msg_id: b[3],
            short_message,
            tlvs,
        })
}

fn pdu_value() -> impl Strategy<Value = Pdu> {
    let bind = (cstring(16), cstring(9), cstring(13), any::<[u8; 3]>(), cstring(41)).prop_map(
        |(system_id, password, system_type, b, address_range)| {
            Body::BindTransceiver(Bind {
                system_id,
                password,
                system_type,
                interface_version: b[0],
                addr_ton: b[1],
                addr_npi: b[2],
                address_range,
            })
        },
    );
    let body = prop_oneof![
        bind,
        cstring(16).prop_map(|system_id| Body::BindTransceiverResp { system_id }),
        short_message().prop_map(Body::SubmitSm),
        short_message().prop_map(Body::DeliverSm),
        cstring(65).prop_map(|message_id| Body::SubmitSmResp { message_id }),
        prop::sample::select(vec![
            Body::DeliverSmResp,
            Body::EnquireLink,
            Body::EnquireLinkResp,
            Body::Unbind,
            Body::UnbindResp,
            Body::GenericNack
        ]),
    ];
    (any::<u32>(), any::<u32>(), body).prop_map(|(status, sequence, body)| Pdu { status, sequence, body })
}

#[test]
fn fuzz_smpp_pdu_round_trip() {
    run("sms.smpp_round_trip", pdu_value(), |p| {
        let bytes = p.encode();
        let back = Pdu::decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        check(back == p, || format!("{p:?} came back as {back:?}"))?;
        let h = pdu::Header::parse(&bytes).unwrap();
        check(h.command_id == p.command_id() && h.sequence == p.sequence && h.status == p.status, || format!("{h:?}"))
    });
}

#[test]
fn fuzz_smpp_pdu_decode() {
    // Damaged PDUs (lengths fixed up or not), and byte soup: an error naming what is wrong, or a
    // PDU, never a panic; and read_frame never reads past a frame or takes a bad length.
    let damaged = (pdu_value(), edits(5), any::<bool>()).prop_map(|(p, e, fix)| {
        let mut b = apply(p.encode(), &e);
        if fix && b.len() >= 4 {
            let n = (b.len() as u32).to_be_bytes();
            b[..4].copy_from_slice(&n);
        }
        b
    });
    let soup = proptest::collection::vec(any::<u8>(), 0..80);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    run("sms.smpp_decode", prop_oneof![4 => damaged, 1 => soup], |bytes| {
        match Pdu::decode(&bytes) {
            Ok(p) => {
                check(bytes.len() >= pdu::HEADER_LEN, || "a PDU shorter than a header".into())?;
                if let Body::SubmitSm(sm) | Body::DeliverSm(sm) = &p.body {
                    let _ = sm.payload();
                }
            }
            Err(e) => check(!e.to_string().is_empty(), || "an empty error".into())?,
        }
        let mut stream: &[u8] = &bytes;
        let frame = rt.block_on(pdu::read_frame(&mut stream));
        if let Ok(Some(f)) = frame {
            check(f.len() >= pdu::HEADER_LEN && f.len() <= pdu::MAX_PDU_LEN && bytes.starts_with(&f), || {
                "frame".into()
            })?;
        }
        Ok(())
    });
}
