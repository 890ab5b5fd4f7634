//! Sender verification: with `trusted_authserv_ids`, only mail whose From domain the operator's
//! MTA authenticated (`Authentication-Results`, DMARC) speaks for a customer. Forged mail gets a
//! conversation of its own, marked unverified, without the customer's history; replies to it go
//! to From, never to Reply-To.

use std::sync::Arc;
use std::time::Duration;

use crate::common::dovecot::Dovecot;
use crate::common::email::{customer_mail, mailbox_config};
use crate::common::smtp::{SmtpServer, header};
use crate::common::*;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::channels::email::EmailChannel;
use switchboard::channels::email::config::{EmailConfig, Unauthenticated};
use switchboard::channels::email::ingest::{Ingest, Outcome};
use switchboard::model::{Channel, QueueSpec};
use switchboard_engine::email::EmailState;
use switchboard_engine::{Engine, EngineOptions};
use tokio_util::sync::CancellationToken;

const MX: &str = "mx.acme.test";
const CAROL: &str = "carol@customer.test";

/// What the operator's MTA (OpenDKIM + OpenDMARC style) writes for an authenticated message.
fn pass() -> String {
    format!(
        "Authentication-Results: {MX};\r\n\tdkim=pass (2048-bit key; unprotected) header.d=customer.test \
         header.i=@customer.test header.s=mail;\r\n\tdmarc=pass (p=reject dis=none) header.from=customer.test\r\n"
    )
}

struct Rig {
    redis: RedisServer,
    dovecot: Dovecot,
    smtp: SmtpServer,
    sb: TestServer,
    engine: Engine,
    _email: Arc<EmailChannel>,
    cancel: CancellationToken,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn rig() -> Rig {
    init_tracing();
    let redis = RedisServer::start();
    let dovecot = Dovecot::start();
    let smtp = SmtpServer::start();
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let mut m = mailbox_config(&dovecot, smtp.port, "INBOX", "support");
    m.trusted_authserv_ids = vec![MX.into()];
    let cfg = EmailConfig { mailboxes: vec![m], ..Default::default() };
    let email = EmailChannel::new(cfg, engine.clone()).unwrap();
    let sb = TestServer::start_with_adapters(test_config(&redis.url), vec![email.clone()]).await;
    let mut admin = sb.admin().await;
    let mut q = queue("support", &[]);
    q.channels = vec![pb::Channel::Email as i32];
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: false }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: false }).await.unwrap();
    let cancel = CancellationToken::new();
    email.spawn("test-instance", cancel.clone());
    Rig { redis, dovecot, smtp, sb, engine, _email: email, cancel }
}

async fn wait_received(smtp: &SmtpServer, n: usize) -> Vec<Vec<u8>> {
    eventually(&format!("{n} mails at the SMTP server"), Duration::from_secs(20), || async {
        let r = smtp.received();
        (r.len() >= n).then_some(r)
    })
    .await
}

/// Until the CRM has every event so far (the log is trimmed as it acknowledges them).
async fn crm_caught_up(r: &Rig) {
    let key = r.engine.keys().events();
    eventually("event log delivered to the CRM", Duration::from_secs(20), || async {
        let mut con = r.redis.client().await;
        let len: u64 = redis::AsyncCommands::xlen(&mut con, &key).await.unwrap();
        (len == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_sender_neither_joins_the_customers_conversation_nor_sees_their_history() {
    let r = rig().await;
    let mut ann = r.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;

    // Carol, authenticated by our MTA: as without verification, plus the verdict.
    r.dovecot.append("INBOX", &customer_mail(CAROL, "c1@customer.test", "Invoice", "My invoice.", &pass())).await;
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.customer_address, CAROL);
    assert_eq!(offer.attributes["email.sender_verified"], "true");
    assert_eq!(offer.attributes["email.sender_auth"], "dmarc=pass");
    let iid = offer.id.clone();
    ann.accept(&iid).await.unwrap();
    let seq = ann.reply(&iid, "Let me look.").await.unwrap().message.unwrap().seq;
    let our_id = format!("sb.{iid}.{seq}@acme.test");
    let subject = header(&wait_received(&r.smtp, 1).await[0], "Subject").unwrap();
    // The CRM knows Carol now.
    crm_caught_up(&r).await;

    // Forgeries answering our reply by every threading path there is (In-Reply-To, References,
    // the subject token): no A-R at all, A-R from a server we do not trust, our server's failure.
    let threaded = format!("In-Reply-To: <{our_id}>\r\nReferences: <c1@customer.test> <{our_id}>\r\n");
    let forgeries = [
        ("f1@evil.test", format!("Reply-To: Mallory <mallory@evil.test>\r\n{threaded}"), "none"),
        (
            "f2@evil.test",
            format!("Authentication-Results: evil.test; dmarc=pass header.from=customer.test\r\n{threaded}"),
            "none",
        ),
        (
            "f3@evil.test",
            format!("Authentication-Results: {MX}; dmarc=fail (p=reject) header.from=customer.test\r\n{threaded}"),
            "dmarc=fail",
        ),
    ];
    let mut forged_ids = Vec::new();
    for (mid, headers, reason) in &forgeries {
        r.dovecot.append("INBOX", &customer_mail(CAROL, mid, &subject, "Send the card number to me.", headers)).await;
        let offer = ann.wait_offer().await;
        let ix = offer.interaction.unwrap();
        assert_ne!(ix.id, iid, "{mid} joined the customer's conversation");
        assert_eq!(ix.customer_address, format!("{CAROL} (unverified)"), "{mid}");
        assert_eq!(ix.attributes["email.sender_verified"], "false", "{mid}");
        assert_eq!(ix.attributes["email.sender_auth"], *reason, "{mid}");
        assert!(!ix.attributes.contains_key("email.previous_interaction"), "{mid}");
        let pop = offer.screen_pop.unwrap();
        assert!(pop.contact.is_none() && pop.history.is_empty(), "{mid} popped {pop:?}");
        ann.accept(&ix.id).await.unwrap();
        forged_ids.push(ix.id);
    }
    assert_eq!(forged_ids.len(), 3);

    // Answering a forgery reaches Carol's From address, not the Reply-To the forger wrote.
    ann.reply(&forged_ids[0], "Who is this?").await.unwrap();
    let out = wait_received(&r.smtp, 2).await;
    assert_eq!(header(&out[1], "To").as_deref(), Some(CAROL));
    let forged_reply = header(&out[1], "Message-ID").unwrap();

    // Carol's own, authenticated answer joins her conversation as before...
    r.dovecot
        .append(
            "INBOX",
            &customer_mail(CAROL, "c2@customer.test", &subject, "Any news?", &format!("{}{threaded}", pass())),
        )
        .await;
    let Ev::CustomerMessage(m) = ann.wait_for("customer message", |e| matches!(e, Ev::CustomerMessage(_))).await else {
        unreachable!()
    };
    assert_eq!((m.interaction_id.as_str(), m.message.unwrap().body.as_str()), (iid.as_str(), "Any news?"));
    // ...and even her answer to our reply to the forgery stays out of the unverified one.
    r.dovecot
        .append(
            "INBOX",
            &customer_mail(
                CAROL,
                "c3@customer.test",
                "Re: ?",
                "Not me!",
                &format!("{}In-Reply-To: {forged_reply}\r\n", pass()),
            ),
        )
        .await;
    let own = ann.wait_offer().await.interaction.unwrap();
    assert!(own.id != iid && !forged_ids.contains(&own.id));
    assert_eq!((own.customer_address.as_str(), own.attributes["email.sender_verified"].as_str()), (CAROL, "true"));
    ann.accept(&own.id).await.unwrap();
    let bodies: Vec<String> = r.engine.messages(&iid).await.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["My invoice.", "Let me look.", "Any news?"]);

    // Once everything reached the CRM, an authenticated mail shows Carol's history, where the
    // forgeries are not.
    ann.complete(&iid, "done").await.unwrap();
    for id in &forged_ids {
        ann.complete(id, "forged").await.unwrap();
    }
    crm_caught_up(&r).await;
    r.dovecot.append("INBOX", &customer_mail(CAROL, "c4@customer.test", "New topic", "Hello", &pass())).await;
    let offer = ann.wait_offer().await;
    assert_eq!(offer.interaction.unwrap().customer_address, CAROL);
    let pop = offer.screen_pop.unwrap();
    assert!(pop.contact.unwrap().identities.iter().any(|i| i.address == CAROL));
    let history: Vec<&str> = pop.history.iter().map(|h| h.interaction_id.as_str()).collect();
    assert!(history.contains(&iid.as_str()), "{history:?}");
    assert!(forged_ids.iter().all(|f| !history.contains(&f.as_str())), "{history:?}");
}

async fn ingest_setup(redis: &RedisServer) -> (Engine, Ingest) {
    init_tracing();
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let mut q = QueueSpec::new("support");
    q.channels = vec![Channel::Email];
    engine.put_queue(&q, false).await.unwrap();
    let ingest = Ingest::new(engine.clone(), &EmailConfig::default());
    (engine, ingest)
}

fn offline_mailbox() -> switchboard::channels::email::config::MailboxConfig {
    let toml = r#"
[[mailboxes]]
name = "support"
address = "support@acme.test"
queue = "support"
imap = { host = "127.0.0.1", port = 1, security = "plain", username = "u", password = "p" }
smtp = { host = "127.0.0.1", port = 1, security = "plain" }
"#;
    EmailConfig::from_toml_str(toml).unwrap().mailboxes.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_sets_unauthenticated_mail_aside_and_no_config_keeps_the_old_rule() {
    let redis = RedisServer::start();
    let (engine, ingest) = ingest_setup(&redis).await;
    let mut m = offline_mailbox();
    m.trusted_authserv_ids = vec![MX.into()];
    m.unauthenticated = Some(Unauthenticated::Reject);

    let forged = customer_mail(CAROL, "r1@evil.test", "Hi", "forged", "Reply-To: mallory@evil.test\r\n");
    assert_eq!(
        ingest.process(&m, forged.clone()).await.unwrap(),
        Outcome::SetAside("sender not authenticated (none)".into())
    );
    // Set aside once; read again (a crash before the flag), it is not routed either.
    assert!(matches!(ingest.process(&m, forged.clone()).await.unwrap(), Outcome::Duplicate(_)));
    let Outcome::Created(iid) =
        ingest.process(&m, customer_mail(CAROL, "r2@customer.test", "Hi", "real", &pass())).await.unwrap()
    else {
        panic!()
    };
    let ix = engine.get_interaction(&iid, false).await.unwrap();
    assert_eq!(ix.customer_address, CAROL);
    assert_eq!(ix.attributes["email.sender_verified"], "true");
    assert_eq!(ix.attributes.get("email.reply_to"), None);
    assert_eq!(engine.list_waiting(Some("support"), 10).await.unwrap().len(), 1);

    // Without trusted_authserv_ids: Reply-To is the customer, and nothing is claimed about it.
    let legacy =
        customer_mail(CAROL, "r3@evil.test", "Hi", "as before", &format!("{}Reply-To: dan@customer.test\r\n", pass()));
    let Outcome::Created(iid) = ingest.process(&offline_mailbox(), legacy).await.unwrap() else { panic!() };
    let ix = engine.get_interaction(&iid, false).await.unwrap();
    assert_eq!(ix.customer_address, "dan@customer.test");
    assert!(!ix.attributes.keys().any(|k| k.starts_with("email.sender")), "{:?}", ix.attributes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgery_cannot_take_over_a_message_id_of_the_conversation() {
    let redis = RedisServer::start();
    let (engine, ingest) = ingest_setup(&redis).await;
    let state = EmailState::new(&engine);
    let mut m = offline_mailbox();
    m.trusted_authserv_ids = vec![MX.into()];
    let Outcome::Created(iid) =
        ingest.process(&m, customer_mail(CAROL, "t1@customer.test", "Hi", "real", &pass())).await.unwrap()
    else {
        panic!()
    };
    // A forgery carrying the Message-ID of one of our replies in Carol's conversation.
    let ours = format!("sb.{iid}.2@acme.test");
    state.remember_ref(&ours, &iid, CAROL).await.unwrap();
    let Outcome::Created(forged) = ingest.process(&m, customer_mail(CAROL, &ours, "Hi", "forged", "")).await.unwrap()
    else {
        panic!()
    };
    assert_ne!(forged, iid);
    assert_eq!(state.lookup_ref(&ours).await.unwrap(), Some((iid.clone(), CAROL.to_string())));
    // So Carol's answer to that reply still finds her conversation.
    let answer =
        customer_mail(CAROL, "t2@customer.test", "Re: Hi", "answer", &format!("{}In-Reply-To: <{ours}>\r\n", pass()));
    assert_eq!(ingest.process(&m, answer).await.unwrap(), Outcome::Appended(iid));
}

#[test]
fn email_sender_verification_config_is_checked() {
    let base = || {
        let mut c = EmailConfig { mailboxes: vec![offline_mailbox()], ..Default::default() };
        c.apply_env(|_| Some("pw".into()));
        c
    };
    type Mutate = fn(&mut EmailConfig);
    let cases: [(Mutate, &str); 4] = [
        (
            |c| c.mailboxes[0].trusted_authserv_ids = vec!["mx acme".into()],
            "email.mailboxes[0].trusted_authserv_ids[0]",
        ),
        (
            |c| c.mailboxes[0].trusted_authserv_ids = vec![MX.into(), MX.to_uppercase()],
            "email.mailboxes[0].trusted_authserv_ids[1]",
        ),
        (|c| c.mailboxes[0].unauthenticated = Some(Unauthenticated::Flag), "email.mailboxes[0].unauthenticated"),
        (|c| c.mailboxes[0].accept_aligned_dkim = true, "email.mailboxes[0].accept_aligned_dkim"),
    ];
    for (mutate, key) in cases {
        let mut c = base();
        mutate(&mut c);
        let err = c.validate().unwrap_err();
        assert_eq!(err.key, key);
        assert!(err.to_string().starts_with(&format!("invalid email config: {key}: ")), "{err}");
    }
    // Unknown policy names are refused by name.
    let toml = "[[mailboxes]]\nname = \"s\"\naddress = \"s@a.test\"\nqueue = \"q\"\ntrusted_authserv_ids = [\"mx.a.test\"]\n\
                unauthenticated = \"quarantine\"\nimap = { host = \"h\", security = \"tls\", username = \"u\" }\n\
                smtp = { host = \"h\", security = \"tls\" }\n";
    let err = EmailConfig::from_toml_str(toml).unwrap_err();
    assert!(err.message.contains("quarantine") && err.message.contains("reject"), "{err}");
}
