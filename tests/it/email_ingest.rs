//! Processing received mail against Redis alone, including the crash windows the IMAP tests can
//! only hit by chance: after an append but before it was recorded, after a creation but before it
//! was recorded.

use crate::common::email::customer_mail;
use crate::common::*;
use switchboard::channels::email::config::{EmailConfig, ImapConfig, MailboxConfig, Security, SmtpConfig};
use switchboard::channels::email::ingest::{Ingest, Outcome};
use switchboard::channels::email::parse;
use switchboard::model::{Channel, QueueSpec};
use switchboard_engine::email::EmailState;
use switchboard_engine::{Engine, EngineOptions};

fn mailbox() -> MailboxConfig {
    MailboxConfig {
        name: "support".into(),
        address: "support@acme.test".into(),
        display_name: String::new(),
        queue: "support".into(),
        priority: None,
        imap: ImapConfig {
            host: "127.0.0.1".into(),
            port: Some(1),
            security: Security::Plain,
            username: "u".into(),
            password: "p".into(),
            folder: "INBOX".into(),
            idle: true,
            poll_secs: 60,
        },
        smtp: SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(1),
            security: Security::Plain,
            username: String::new(),
            password: String::new(),
            timeout_secs: 10,
        },
        after_processing: Default::default(),
        move_to: "Processed".into(),
        max_body_bytes: 64 * 1024,
        max_message_bytes: 1024 * 1024,
        tls_ca_file: None,
        trusted_authserv_ids: Vec::new(),
        unauthenticated: None,
        accept_aligned_dkim: false,
    }
}

async fn setup(redis: &RedisServer) -> (Engine, Ingest, EmailState) {
    init_tracing();
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let mut q = QueueSpec::new("support");
    q.channels = vec![Channel::Email];
    engine.put_queue(&q, false).await.unwrap();
    let ingest = Ingest::new(engine.clone(), &EmailConfig::default());
    let state = EmailState::new(&engine);
    (engine, ingest, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_is_idempotent_across_crash_windows() {
    let redis = RedisServer::start();
    let (engine, ingest, state) = setup(&redis).await;
    let m = mailbox();
    let first = customer_mail("ann@customer.test", "a1@customer.test", "Hello", "first", "");
    let Outcome::Created(iid) = ingest.process(&m, first.clone()).await.unwrap() else { panic!() };
    assert_eq!(ingest.process(&m, first.clone()).await.unwrap(), Outcome::Duplicate(iid.clone()));

    // Crash after the answer was appended, before it was recorded as processed.
    let answer = customer_mail(
        "ann@customer.test",
        "a2@customer.test",
        "Re: Hello",
        "second",
        "In-Reply-To: <a1@customer.test>\r\n",
    );
    let key = parse::parse(&answer, 65536).unwrap().dedupe_key;
    state.mark_seen(&key, &format!("~{iid}")).await.unwrap();
    // (Appends are keyed by the message's dedupe key, so the retry's append is a no-op.)
    engine.append_customer_message_once(&iid, "second", &format!("email-append|{key}")).await.unwrap();
    assert_eq!(ingest.process(&m, answer.clone()).await.unwrap(), Outcome::Appended(iid.clone()));
    assert_eq!(engine.messages(&iid).await.unwrap().len(), 2, "appended twice");
    // Crash after the pending marker, before the append: the retry appends it.
    let third = customer_mail(
        "ann@customer.test",
        "a3@customer.test",
        "Re: Hello",
        "third",
        "In-Reply-To: <a2@customer.test>\r\n",
    );
    let key3 = parse::parse(&third, 65536).unwrap().dedupe_key;
    state.mark_seen(&key3, &format!("~{iid}")).await.unwrap();
    assert_eq!(ingest.process(&m, third.clone()).await.unwrap(), Outcome::Appended(iid.clone()));
    let bodies: Vec<String> = engine.messages(&iid).await.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["first", "second", "third"]);
    assert_eq!(ingest.process(&m, answer).await.unwrap(), Outcome::Duplicate(iid.clone()));

    // Crash after the interaction was created, before it was recorded: the same one comes back.
    let other = customer_mail("bob@customer.test", "b1@customer.test", "Other", "new", "");
    let Outcome::Created(b) = ingest.process(&m, other.clone()).await.unwrap() else { panic!() };
    let keyb = parse::parse(&other, 65536).unwrap().dedupe_key;
    let mut con = redis.client().await;
    let _: i64 = redis::cmd("DEL").arg(engine.keys().email_seen(&keyb)).query_async(&mut con).await.unwrap();
    assert_eq!(ingest.process(&m, other).await.unwrap(), Outcome::Created(b));
    assert_eq!(engine.list_waiting(Some("support"), 100).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_does_not_exist_keeps_the_mail_for_later() {
    let redis = RedisServer::start();
    let (_store, ingest, _state) = setup(&redis).await;
    let mut m = mailbox();
    m.queue = "nowhere".into();
    let mail = customer_mail("cy@customer.test", "c1@customer.test", "Hi", "hello", "");
    // An error, not an outcome: the reader leaves the message unprocessed and tries again.
    assert!(ingest.process(&m, mail).await.is_err());
}
