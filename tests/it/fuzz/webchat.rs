//! Web chat frames as a visitor's page (or anyone with a WebSocket) sends them, and the checks
//! the socket applies to their fields (`channels::webchat::protocol`).

use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard::channels::webchat::protocol::{self, ClientFrame};
use switchboard::model::Channel;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::grpc::{PANICS, no_new_panics, world_with};
use super::{apply, check, edits, run, tricky_string};
use crate::common::Visitor;

/// A frame and the JSON a page would send for it (fields in any order, optional ones left out
/// or given, unknown ones added).
fn frame() -> impl Strategy<Value = (ClientFrame, Value)> {
    let text = || prop_oneof![3 => tricky_string(30), 1 => Just(String::new()), 1 => "\\PC{200,400}"];
    let start = (text(), text(), text(), text(), text(), text()).prop_map(|(start_id, visitor, name, email, topic, message)| {
        let v = json!({"type": "start", "start_id": start_id, "visitor": visitor, "name": name, "email": email, "topic": topic, "message": message});
        (ClientFrame::Start { start_id, visitor, name, email, topic, message }, v)
    });
    let resume = (text(), any::<u64>(), any::<bool>()).prop_map(|(token, last_seq, give)| {
        let v = if give {
            json!({"type": "resume", "token": token, "last_seq": last_seq})
        } else {
            json!({"type": "resume", "token": token})
        };
        (ClientFrame::Resume { token, last_seq: if give { last_seq } else { 0 } }, v)
    });
    let message = (text(), text()).prop_map(|(body, client_id)| {
        (
            ClientFrame::Message { body: body.clone(), client_id: client_id.clone() },
            json!({"type": "message", "body": body, "client_id": client_id}),
        )
    });
    let typing = any::<bool>().prop_map(|on| (ClientFrame::Typing { on }, json!({"type": "typing", "on": on})));
    let bare = prop::sample::select(vec!["end", "ping"])
        .prop_map(|t| (if t == "end" { ClientFrame::End } else { ClientFrame::Ping }, json!({ "type": t })));
    let callback = (text(), proptest::option::of(any::<u64>())).prop_map(|(number, not_before)| {
        let v = match not_before {
            Some(n) => json!({"type": "callback", "number": number, "not_before": n}),
            None => json!({"type": "callback", "number": number}),
        };
        (ClientFrame::Callback { number, not_before }, v)
    });
    let offline = (text(), text(), text(), text()).prop_map(|(name, email, topic, message)| {
        let v = json!({"type": "offline", "name": name, "email": email, "topic": topic, "message": message});
        (ClientFrame::Offline { name, email, topic, message }, v)
    });
    let any_frame = prop_oneof![start, resume, message, typing, bare, callback, offline];
    (any_frame, proptest::collection::btree_map("[a-z_]{1,8}", tricky_string(6), 0..3)).prop_map(
        |((f, mut v), extra)| {
            for (k, x) in extra {
                // Unknown fields are ignored; known ones keep the value given.
                v.as_object_mut().unwrap().entry(k).or_insert(Value::String(x));
            }
            (f, v)
        },
    )
}

#[test]
fn fuzz_webchat_frames_round_trip() {
    run("webchat.frame_round_trip", (frame(), any::<bool>()), |((want, json), pretty)| {
        let text = if pretty { serde_json::to_string_pretty(&json).unwrap() } else { json.to_string() };
        let got = protocol::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        check(got == want, || format!("{text} parsed as {got:?}, not {want:?}"))
    });
}

#[test]
fn fuzz_webchat_frames_damaged() {
    let damaged = (frame(), edits(6))
        .prop_map(|((_, json), e)| String::from_utf8_lossy(&apply(json.to_string().into_bytes(), &e)).into_owned());
    let deep =
        (1..5000usize, prop::sample::select(vec!["[", "{\"a\":", "{\"type\":"])).prop_map(|(n, open)| open.repeat(n));
    let numbers = prop_oneof![
        Just("18446744073709551616".to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("0.5".to_string()),
        "[0-9]{1,30}",
    ]
    .prop_map(|n| format!("{{\"type\":\"resume\",\"token\":\"t\",\"last_seq\":{n}}}"));
    let strategy = prop_oneof![4 => damaged, 1 => deep, 1 => numbers, 2 => tricky_string(80), 1 => "\\{\"type\":\"[a-z_]{0,10}\"\\}"];
    run("webchat.frame_damaged", strategy, |text| match protocol::parse(&text) {
        Ok(_) => Ok(()),
        Err(e) => check(
            (e.starts_with("not a valid frame: ") || e.starts_with("unknown frame type (")) && e.len() < 10_000,
            || format!("{text:?}: error {e:?}"),
        ),
    });
}

#[test]
fn fuzz_webchat_field_checks() {
    let strategy = (
        tricky_string(60),
        0..70usize,
        prop_oneof![tricky_string(20), "[A-Za-z0-9_-]{0,70}", "[a-z.+-]{0,10}@[a-z.-]{0,12}"],
    );
    run("webchat.field_checks", strategy, |(text, max, id)| {
        match protocol::check_text("Your message", &text, max) {
            Ok(()) => check(
                text.chars().count() <= max
                    && !text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')),
                || format!("{text:?} (max {max}) accepted"),
            )?,
            Err((code, m)) => {
                let want = if text.chars().count() > max { "too_large" } else { "bad_message" };
                check(code == want && m.starts_with("Your message"), || format!("{text:?}: {code} {m}"))?;
            }
        }
        let client =
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        check(protocol::valid_client_id(&id) == client, || format!("valid_client_id({id:?})"))?;
        check(protocol::valid_start_id(&id) == (client && id.len() >= 32), || format!("valid_start_id({id:?})"))?;
        // An address the form takes is one an email interaction and the CRM take too.
        for email in [&id, &text] {
            if protocol::valid_email(email) {
                let ix = switchboard::model::NewInteraction {
                    channel: Some(Channel::Email),
                    customer_address: email.clone(),
                    queue: "q".into(),
                    ..Default::default()
                };
                check(ix.validate().is_ok(), || format!("{email:?} accepted by the form, refused by the API"))?;
                let crm = switchboard_crm::identity::normalize(Channel::Email, email, None);
                check(crm.is_ok(), || format!("{email:?} accepted by the form, refused by the CRM: {crm:?}"))?;
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_webchat_socket() {
    // Frames of every kind, valid, damaged and binary, on a real daemon's socket: the connection
    // answers each burst (a ping after it gets its pong), every frame it sends is a JSON object
    // with a type, and nothing panics.
    super::with_big_stack(|| {
        let w = world_with(|cfg| {
            cfg.webchat.enabled = true;
            cfg.webchat.queue = "support".into();
            cfg.webchat.topics = vec![switchboard::channels::webchat::config::Topic {
                name: "billing".into(),
                label: "Billing".into(),
                queue: "support".into(),
            }];
            // One connection per case, a few frames each: far under these.
            cfg.webchat.messages_per_minute = 10_000;
            cfg.webchat.ip_messages_per_minute = 100_000;
            cfg.webchat.ip_connections_per_minute = 100_000;
            cfg.webchat.ip_max_open_connections = 1_000;
        });
        let http = w.sb.http_addr;
        let message = prop_oneof![
            4 => frame().prop_map(|(_, v)| WsMessage::Text(v.to_string().into())),
            2 => (frame(), edits(4)).prop_map(|((_, v), e)| {
                WsMessage::Text(String::from_utf8_lossy(&apply(v.to_string().into_bytes(), &e)).into_owned().into())
            }),
            1 => tricky_string(30).prop_map(|s| WsMessage::Text(s.into())),
            1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| WsMessage::Binary(b.into())),
        ];
        run("webchat.socket", proptest::collection::vec(message, 1..5), |frames| {
            let before = PANICS.load(std::sync::atomic::Ordering::Relaxed);
            let r: Result<(), String> = w.rt.block_on(async {
                let mut v = Visitor::connect(http).await;
                for f in frames {
                    if !v.send_raw(f).await {
                        return Err("the server closed the connection".into());
                    }
                }
                v.send(json!({"type": "ping"})).await;
                loop {
                    let Some(f) = v.recv().await else {
                        return Err(format!("closed (code {:?}) before the pong", v.close_code));
                    };
                    let Some(t) = f["type"].as_str() else { return Err(format!("a frame without a type: {f}")) };
                    if t == "error" && !(f["code"].is_string() && f["message"].is_string()) {
                        return Err(format!("an error without code or message: {f}"));
                    }
                    if t == "pong" {
                        break;
                    }
                }
                v.close().await;
                Ok(())
            });
            no_new_panics(before)?;
            r.map_err(TestCaseError::fail)
        });
    });
}
