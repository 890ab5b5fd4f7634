//! After-hours answers on the channels: a text to a closed queue whose rule for SMS has a message
//! gets it back once (through the provider, in the thread as a system message), then waits
//! (HOLD) or ends (REFUSE, `end_reason` "closed"). The routing clock is set before the instance
//! starts, so the calendar's hours are plain hours on a known date; the SMS provider is the fake
//! Twilio of `sms_twilio.rs`, Redis and the daemon are real.

use crate::common::*;

use chrono::{DateTime, Utc};
use switchboard::api::pb;
use switchboard_engine::Engine;
use switchboard_engine::sms::{SmsState, conversation_key};

const OUR_NUMBER: &str = "+18005551212";
const CUSTOMER: &str = "+4915112345678";
/// Monday evening: the office (09:00-17:00 UTC every day) is closed until Tuesday 09:00.
const EVENING: &str = "2026-12-07T20:00:00Z";
const MESSAGE: &str = "We are closed; we answer from {opens}.";

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Sets the routing clock of every instance on this Redis to `at`.
async fn set_clock(redis_url: &str, engine: &Engine, at: DateTime<Utc>) {
    let client = redis::Client::open(redis_url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut con).await.unwrap();
    let offset = at.timestamp_millis() - (secs * 1000 + micros / 1000);
    let _: () = redis::AsyncCommands::set(&mut con, engine.keys().clock(), offset).await.unwrap();
}

fn office_hours() -> pb::Calendar {
    let d = vec!["09:00-17:00".to_string()];
    pb::Calendar {
        name: "office".into(),
        time_zone: "UTC".into(),
        weekly: Some(pb::WeeklyHours {
            mon: d.clone(),
            tue: d.clone(),
            wed: d.clone(),
            thu: d.clone(),
            fri: d.clone(),
            sat: d.clone(),
            sun: d,
        }),
        exceptions: vec![],
    }
}

/// Redis, the clock on Monday evening, an instance with the SMS channel, and `support` closed by
/// its calendar with `rule` for SMS.
async fn start_sms_closed(provider: &FakeTwilio, action: pb::ClosedAction) -> (RedisServer, TestServer, Engine) {
    let redis = RedisServer::start();
    let engine = Engine::connect(&redis.url, Default::default()).await.unwrap();
    set_clock(&redis.url, &engine, utc(EVENING)).await;
    let mut cfg = test_config(&redis.url);
    cfg.crm.enabled = false;
    cfg.routing.presence_grace_secs = 3600;
    cfg.sms = twilio_sms_config(provider, &[(OUR_NUMBER, "support")]);
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    admin.put_calendar(pb::PutCalendarRequest { calendar: Some(office_hours()), allow_update: true }).await.unwrap();
    let rule = pb::ClosedRule {
        channel: pb::Channel::Sms as i32,
        action: action as i32,
        overflow_queue: String::new(),
        message: MESSAGE.into(),
    };
    let q = pb::Queue { calendar: "office".into(), closed: vec![rule], ..queue("support", &[]) };
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
    assert!(engine.queue_is_closed("support").await.unwrap(), "closed on Monday evening");
    (redis, sb, engine)
}

/// The customer's SMS conversation's latest interaction.
async fn conversation(engine: &Engine) -> String {
    SmsState::new(engine).conversation(&conversation_key(OUR_NUMBER, CUSTOMER)).await.unwrap().unwrap()
}

fn system_messages(ix: &pb::Interaction) -> Vec<String> {
    ix.messages.iter().filter(|m| m.author() == pb::Author::System).map(|m| m.body.clone()).collect()
}

#[tokio::test]
async fn after_hours_sms_hold_answers_once_and_the_text_waits() {
    let provider = FakeTwilio::start().await;
    let (_redis, sb, engine) = start_sms_closed(&provider, pb::ClosedAction::Hold).await;

    let (code, body) = provider.text_in(sb.http_addr, "SM1001", CUSTOMER, OUR_NUMBER, "Is anyone there?").await;
    assert_eq!(code, 200, "{body}");
    let expected = "We are closed; we answer from Tue 2026-12-08 09:00 UTC.";
    let sent = provider.sent();
    assert_eq!(sent.len(), 1, "one answer: {sent:?}");
    assert_eq!((sent[0].to.as_str(), sent[0].from.as_str(), sent[0].body.as_str()), (CUSTOMER, OUR_NUMBER, expected));

    // A second text of the same closed period joins the conversation: no second answer.
    assert_eq!(provider.text_in(sb.http_addr, "SM1002", CUSTOMER, OUR_NUMBER, "Hello?").await.0, 200);
    assert_eq!(provider.sent().len(), 1, "answered once per conversation");
    assert_eq!(waiting(&sb).await, 1, "one interaction, waiting for the opening");

    let ix = interaction(&sb, &conversation(&engine).await).await;
    assert_eq!(ix.state(), pb::InteractionState::Queued);
    assert_eq!(system_messages(&ix), vec![expected.to_string()], "the agents see what the customer was told");
    let bodies: Vec<&str> = ix.messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, vec!["Is anyone there?", expected, "Hello?"]);
}

#[tokio::test]
async fn after_hours_sms_refuse_answers_and_ends_the_interaction_as_closed() {
    let provider = FakeTwilio::start().await;
    let (_redis, sb, engine) = start_sms_closed(&provider, pb::ClosedAction::Refuse).await;

    assert_eq!(provider.text_in(sb.http_addr, "SM2001", CUSTOMER, OUR_NUMBER, "Can I return it?").await.0, 200);
    let expected = "We are closed; we answer from Tue 2026-12-08 09:00 UTC.";
    let sent = provider.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].body, expected);
    assert_eq!(waiting(&sb).await, 0, "refused: nothing waits");
    let ix = interaction(&sb, &conversation(&engine).await).await;
    assert_eq!(ix.state(), pb::InteractionState::Abandoned);
    assert_eq!(ix.end_reason, "closed");
    let bodies: Vec<&str> = ix.messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, vec!["Can I return it?", expected], "the text and the answer are kept in the thread");
}

#[tokio::test]
async fn after_hours_sms_overflow_takes_the_target_queue_s_rule_and_message() {
    let provider = FakeTwilio::start().await;
    let (_redis, sb, engine) = start_sms_closed(&provider, pb::ClosedAction::Hold).await;
    // `night` is closed too (same calendar) and holds texts with its own message; `support`
    // now sends its texts there.
    let mut admin = sb.admin().await;
    let night_rule = pb::ClosedRule {
        channel: pb::Channel::Sms as i32,
        action: pb::ClosedAction::Hold as i32,
        overflow_queue: String::new(),
        message: "Night desk: we answer from {opens}.".into(),
    };
    let night = pb::Queue { calendar: "office".into(), closed: vec![night_rule], ..queue("night", &[]) };
    admin.put_queue(pb::PutQueueRequest { queue: Some(night), allow_update: true }).await.unwrap();
    let to_night = pb::ClosedRule {
        channel: pb::Channel::Sms as i32,
        action: pb::ClosedAction::Overflow as i32,
        overflow_queue: "night".into(),
        message: MESSAGE.into(),
    };
    let support = pb::Queue { calendar: "office".into(), closed: vec![to_night], ..queue("support", &[]) };
    admin.put_queue(pb::PutQueueRequest { queue: Some(support), allow_update: true }).await.unwrap();

    assert_eq!(provider.text_in(sb.http_addr, "SM3001", CUSTOMER, OUR_NUMBER, "Still open?").await.0, 200);
    let sent = provider.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].body, "Night desk: we answer from Tue 2026-12-08 09:00 UTC.", "the target's own rule speaks");
    let ix = interaction(&sb, &conversation(&engine).await).await;
    assert_eq!(ix.queue, "night");
    assert_eq!(ix.attributes["closed.from"], "support");
    assert_eq!(ix.state(), pb::InteractionState::Queued);
}

mod email {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::common::dovecot::Dovecot;
    use crate::common::email::{customer_mail, mailbox_config};
    use crate::common::smtp::{SmtpServer, header};
    use switchboard::channels::email::{EmailChannel, EmailConfig};
    use tokio_util::sync::CancellationToken;

    struct Rig {
        _redis: RedisServer,
        dovecot: Dovecot,
        smtp: SmtpServer,
        sb: TestServer,
        _email: Arc<EmailChannel>,
        cancel: CancellationToken,
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            self.cancel.cancel();
        }
    }

    /// Real Dovecot and SMTP, the clock on Monday evening, `support` (email) closed with `action`.
    async fn rig(action: pb::ClosedAction) -> Rig {
        init_tracing();
        let redis = RedisServer::start();
        let dovecot = Dovecot::start();
        let smtp = SmtpServer::start();
        let engine = Engine::connect(&redis.url, Default::default()).await.unwrap();
        set_clock(&redis.url, &engine, utc(EVENING)).await;
        let cfg = EmailConfig {
            mailboxes: vec![mailbox_config(&dovecot, smtp.port, "INBOX", "support")],
            ..Default::default()
        };
        let email = EmailChannel::new(cfg, engine.clone()).unwrap();
        let mut sb_cfg = test_config(&redis.url);
        sb_cfg.routing.presence_grace_secs = 3_600;
        let sb = TestServer::start_with_adapters(sb_cfg, vec![email.clone()]).await;
        let mut admin = sb.admin().await;
        admin
            .put_calendar(pb::PutCalendarRequest { calendar: Some(office_hours()), allow_update: true })
            .await
            .unwrap();
        let rule = pb::ClosedRule {
            channel: pb::Channel::Email as i32,
            action: action as i32,
            overflow_queue: String::new(),
            message: MESSAGE.into(),
        };
        let q = pb::Queue {
            calendar: "office".into(),
            channels: vec![pb::Channel::Email as i32],
            closed: vec![rule],
            ..queue("support", &[])
        };
        admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
        let cancel = CancellationToken::new();
        email.spawn("test-instance", cancel.clone());
        Rig { _redis: redis, dovecot, smtp, sb, _email: email, cancel }
    }

    async fn wait_received(smtp: &SmtpServer, n: usize) -> Vec<Vec<u8>> {
        eventually(&format!("{n} mails at the SMTP server"), Duration::from_secs(20), || async {
            let r = smtp.received();
            (r.len() >= n).then_some(r)
        })
        .await
    }

    /// The interaction an answer of ours belongs to (`<sb.IID.SEQ@acme.test>`).
    fn interaction_of(mail: &[u8]) -> String {
        let id = header(mail, "Message-ID").unwrap();
        id.trim_matches(['<', '>'])
            .strip_prefix("sb.")
            .unwrap()
            .rsplit_once('.')
            .unwrap()
            .0
            .rsplit_once('.')
            .unwrap()
            .0
            .to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_hours_email_hold_answers_once_threaded_and_the_mail_waits() {
        let r = rig(pb::ClosedAction::Hold).await;
        r.dovecot
            .append(
                "INBOX",
                &customer_mail("carol@customer.test", "c1@customer.test", "Invoice wrong", "My invoice is wrong.", ""),
            )
            .await;
        let out = wait_received(&r.smtp, 1).await;
        let m = &out[0];
        assert_eq!(header(m, "In-Reply-To").as_deref(), Some("<c1@customer.test>"), "threaded");
        assert_eq!(header(m, "To").as_deref(), Some("carol@customer.test"));
        assert!(header(m, "Subject").unwrap().contains("Invoice wrong"));
        let text = String::from_utf8_lossy(m);
        assert!(text.contains("We are closed; we answer from Tue 2026-12-08 09:00 UTC."), "{text}");
        let iid = interaction_of(m);

        // More mail in the same closed period joins the conversation: no second answer.
        let refs = "In-Reply-To: <c1@customer.test>\r\nReferences: <c1@customer.test>\r\n";
        r.dovecot
            .append(
                "INBOX",
                &customer_mail("carol@customer.test", "c2@customer.test", "Re: Invoice wrong", "Hello?", refs),
            )
            .await;
        assert_eventually!(async { interaction(&r.sb, &iid).await.messages.len() == 3 });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(r.smtp.received().len(), 1, "answered once");
        let ix = interaction(&r.sb, &iid).await;
        assert_eq!(ix.state(), pb::InteractionState::Queued, "it waits for the opening");
        assert_eq!(system_messages(&ix), vec!["We are closed; we answer from Tue 2026-12-08 09:00 UTC.".to_string()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_hours_email_refuse_answers_and_ends_the_interaction_as_closed() {
        let r = rig(pb::ClosedAction::Refuse).await;
        r.dovecot
            .append(
                "INBOX",
                &customer_mail("dave@customer.test", "d1@customer.test", "Refund", "Where is my refund?", ""),
            )
            .await;
        let out = wait_received(&r.smtp, 1).await;
        let iid = interaction_of(&out[0]);
        assert_eventually!(async { interaction(&r.sb, &iid).await.state() == pb::InteractionState::Abandoned });
        let ix = interaction(&r.sb, &iid).await;
        assert_eq!(ix.end_reason, "closed");
        let bodies: Vec<&str> = ix.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, vec!["Where is my refund?", "We are closed; we answer from Tue 2026-12-08 09:00 UTC."]);
    }
}

mod webchat {
    use super::*;
    use serde_json::json;
    use switchboard::channels::webchat::config::Topic;

    /// The clock on Monday evening; `support` (chat and email) closed, refusing chats with a
    /// message; `sales` (topic "sales") closed but holding chats.
    async fn start_chat_closed() -> (RedisServer, TestServer) {
        let redis = RedisServer::start();
        let engine = Engine::connect(&redis.url, Default::default()).await.unwrap();
        set_clock(&redis.url, &engine, utc(EVENING)).await;
        let mut cfg = test_config(&redis.url);
        cfg.crm.enabled = false;
        cfg.routing.presence_grace_secs = 3600;
        cfg.webchat.enabled = true;
        cfg.webchat.queue = "support".into();
        cfg.webchat.topics = vec![
            Topic { name: "support".into(), label: "Support".into(), queue: "support".into() },
            Topic { name: "sales".into(), label: "Sales".into(), queue: "sales".into() },
        ];
        let sb = TestServer::start_with(cfg).await;
        let mut admin = sb.admin().await;
        admin
            .put_calendar(pb::PutCalendarRequest { calendar: Some(office_hours()), allow_update: true })
            .await
            .unwrap();
        for (name, action) in [("support", pb::ClosedAction::Refuse), ("sales", pb::ClosedAction::Hold)] {
            let rule = pb::ClosedRule {
                channel: pb::Channel::Chat as i32,
                action: action as i32,
                overflow_queue: String::new(),
                message: MESSAGE.into(),
            };
            let q = pb::Queue {
                calendar: "office".into(),
                channels: vec![pb::Channel::Chat as i32, pb::Channel::Email as i32],
                closed: vec![rule],
                ..queue(name, &[])
            };
            admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
        }
        (redis, sb)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_hours_webchat_hello_says_closed_and_the_offline_form_becomes_an_email() {
        let (_redis, sb) = start_chat_closed().await;
        let mut v = Visitor::connect(sb.http_addr).await;
        let hello = v.hello.clone();
        let expected = "We are closed; we answer from Tue 2026-12-08 09:00 UTC.";
        assert_eq!(hello["closed"]["message"], expected, "{hello}");
        assert_eq!(hello["closed"]["opens"], "Tue 2026-12-08 09:00 UTC");
        assert_eq!(hello["closed"]["opens_at_ms"], utc("2026-12-08T09:00:00Z").timestamp_millis());
        let topics = hello["topics"].as_array().unwrap();
        assert_eq!(topics[0]["closed"]["message"], expected, "support refuses chats: {hello}");
        assert!(topics[1].get("closed").is_none(), "sales holds chats: they start as usual: {hello}");

        v.send(json!({"type": "offline", "name": "Vera", "email": "vera@example.com", "topic": "support",
            "message": "Please call me back about my order."}))
            .await;
        let ok = v.wait_type("offline_received").await;
        assert_eq!(ok["email"], "vera@example.com");

        let mut s = sb.supervisor().await;
        let waiting = s
            .list_waiting(pb::ListWaitingRequest { queue: "support".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .interactions;
        assert_eq!(waiting.len(), 1, "it waits for the opening");
        let ix = interaction(&sb, &waiting[0].id).await;
        assert_eq!(ix.channel(), pb::Channel::Email);
        assert_eq!(ix.customer_address, "vera@example.com");
        assert_eq!(ix.subject, "Web chat message from Vera");
        assert_eq!(ix.attributes["webchat.offline"], "true");
        assert_eq!(ix.messages[0].body, "Please call me back about my order.");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_hours_webchat_offline_form_bad_input_names_the_field() {
        let (_redis, sb) = start_chat_closed().await;
        let mut v = Visitor::connect(sb.http_addr).await;
        let long = "x".repeat(5_000);
        for (frame, code, field) in [
            (json!({"type": "offline", "name": "", "email": "v@example.com", "message": "hi"}), "bad_name", "name"),
            (json!({"type": "offline", "name": "Vera", "email": "", "message": "hi"}), "bad_email", "email"),
            (json!({"type": "offline", "name": "Vera", "email": "vera@", "message": "hi"}), "bad_email", "email"),
            (
                json!({"type": "offline", "name": "Vera", "email": "v@example.com", "message": " "}),
                "bad_message",
                "message",
            ),
            (
                json!({"type": "offline", "name": "Vera", "email": "v@example.com", "message": long}),
                "too_large",
                "message",
            ),
            (
                json!({"type": "offline", "name": "x".repeat(81), "email": "v@example.com", "message": "hi"}),
                "too_large",
                "name",
            ),
            (
                json!({"type": "offline", "name": "Vera", "email": "v@example.com", "message": "hi", "topic": "nope"}),
                "bad_topic",
                "topic",
            ),
        ] {
            v.send(frame.clone()).await;
            let e = v.wait_error(code).await;
            assert_eq!(e["field"], field, "{frame} → {e}");
        }
        assert_eq!(waiting(&sb).await, 0, "nothing created");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_hours_webchat_widget_shows_the_offline_form_in_chromium() {
        let redis = RedisServer::start();
        let engine = Engine::connect(&redis.url, Default::default()).await.unwrap();
        set_clock(&redis.url, &engine, utc(EVENING)).await;
        let mut cfg = test_config(&redis.url);
        cfg.crm.enabled = false;
        cfg.routing.presence_grace_secs = 3600;
        cfg.webchat.enabled = true;
        cfg.webchat.queue = "support".into();
        let sb = TestServer::start_with(cfg).await;
        let mut admin = sb.admin().await;
        admin
            .put_calendar(pb::PutCalendarRequest { calendar: Some(office_hours()), allow_update: true })
            .await
            .unwrap();
        let rule = pb::ClosedRule {
            channel: pb::Channel::Chat as i32,
            action: pb::ClosedAction::Refuse as i32,
            overflow_queue: String::new(),
            message: MESSAGE.into(),
        };
        let q = pb::Queue {
            calendar: "office".into(),
            channels: vec![pb::Channel::Chat as i32, pb::Channel::Email as i32],
            closed: vec![rule],
            ..queue("support", &[])
        };
        admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();

        let b = Browser::start().await;
        b.goto(&format!("http://{}/chat/demo", sb.http_addr)).await;
        b.wait_js(
            "offline form instead of the chat",
            "return !document.querySelector('.sbw-offline').hidden && document.querySelector('.sbw-form').hidden;",
        )
        .await;
        let info = b.js("return document.querySelector('.sbw-offline-info').textContent;").await;
        assert_eq!(info, "We are closed; we answer from Tue 2026-12-08 09:00 UTC.");
        let labelled = b
            .js("return ['sbw-off-name','sbw-off-email','sbw-off-message'].every(id => document.querySelector('label[for=' + id + ']') && document.getElementById(id).tabIndex >= 0);")
            .await;
        assert_eq!(labelled, json!(true), "every field has its label and takes the keyboard");

        // Errors are shown at their field, which gets the focus.
        b.click(".sbw-offline-send").await;
        b.wait_js("name error", "return document.getElementById('sbw-off-name-error').textContent.includes('name') && document.activeElement.id === 'sbw-off-name' && document.activeElement.getAttribute('aria-invalid') === 'true';").await;
        b.type_into("#sbw-off-name", "Vera").await;
        b.type_into("#sbw-off-email", "vera@").await;
        b.click(".sbw-offline-send").await;
        b.wait_js("email error", "return document.getElementById('sbw-off-email-error').textContent.includes('email address') && document.activeElement.id === 'sbw-off-email';").await;
        b.type_into("#sbw-off-email", "example.com").await;
        b.type_into("#sbw-off-message", "Please send me the invoice again.").await;
        b.click(".sbw-offline-send").await;
        b.wait_js(
            "confirmation",
            "return document.querySelector('.sbw-log').textContent.includes('answer by email at vera@example.com') && document.querySelector('.sbw-offline').hidden;",
        )
        .await;

        let mut s = sb.supervisor().await;
        let waiting = s
            .list_waiting(pb::ListWaitingRequest { queue: "support".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .interactions;
        assert_eq!(waiting.len(), 1);
        let ix = interaction(&sb, &waiting[0].id).await;
        assert_eq!((ix.channel(), ix.customer_address.as_str()), (pb::Channel::Email, "vera@example.com"));
        assert_eq!(ix.subject, "Web chat message from Vera");
        assert_eq!(ix.messages[0].body, "Please send me the invoice again.");
        b.stop().await;
        sb.stop().await;
    }
}
