//! The email reader under stress, against a real Dovecot: a crash in the middle of a burst, a
//! UIDVALIDITY change, and a corpus of malformed and hostile messages.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::dovecot::{Dovecot, append_at};
use crate::common::email::{customer_mail, mailbox_config};
use crate::common::*;
use switchboard::channels::email::inbound::{PROCESSED_KEYWORD, SET_ASIDE_KEYWORD};
use switchboard::channels::email::{EmailChannel, EmailConfig};
use switchboard::model::{Channel, QueueSpec};
use switchboard_engine::email::EmailState;
use switchboard_engine::{Engine, EngineOptions};
use tokio_util::sync::CancellationToken;

/// An email adapter in its own thread and runtime, so a test can kill it abruptly (every task
/// dropped mid-flight, every connection closed) like a crashed process.
struct Adapter {
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Adapter {
    fn start(redis_url: &str, cfg: EmailConfig) -> Adapter {
        Self::start_as(redis_url, cfg, "instance-1")
    }

    fn start_as(redis_url: &str, cfg: EmailConfig, instance: &str) -> Adapter {
        let url = redis_url.to_string();
        let instance = instance.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.spawn(async move {
                let engine = Engine::connect(&url, EngineOptions::default()).await.unwrap();
                let email = EmailChannel::new(cfg, engine).unwrap();
                // The same instance name after a restart: the mailbox lease is ours at once
                // (another name waits for the old lease to run out, up to 30 s).
                email.spawn(&instance, CancellationToken::new());
                std::future::pending::<()>().await;
            });
            let _ = rx.recv();
            rt.shutdown_background();
        });
        Adapter { kill: Some(tx), thread: Some(thread) }
    }

    fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn setup(redis: &RedisServer) -> Engine {
    init_tracing();
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let mut q = QueueSpec::new("support");
    q.channels = vec![Channel::Email];
    engine.put_queue(&q, false).await.unwrap();
    engine
}

/// Waiting interactions per customer (no agents: everything stays queued).
async fn per_customer(engine: &Engine) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for ix in engine.list_waiting(Some("support"), 100_000).await.unwrap() {
        *m.entry(ix.customer_address).or_insert(0) += 1;
    }
    m
}

async fn wait_customers(engine: &Engine, n: usize) -> BTreeMap<String, usize> {
    eventually(&format!("{n} customers' interactions"), Duration::from_secs(60), || async {
        let m = per_customer(engine).await;
        (m.len() >= n).then_some(m)
    })
    .await
}

fn mail(i: usize) -> Vec<u8> {
    customer_mail(
        &format!("c{i}@burst.test"),
        &format!("m{i}@burst.test"),
        &format!("Burst {i}"),
        &format!("message {i}"),
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_in_the_middle_of_a_burst_loses_nothing_and_duplicates_nothing() {
    let redis = RedisServer::start();
    let dovecot = Dovecot::start();
    let engine = setup(&redis).await;
    let cfg = EmailConfig { mailboxes: vec![mailbox_config(&dovecot, 1, "INBOX", "support")], ..Default::default() };

    let first = Adapter::start(&redis.url, cfg.clone());
    let port = dovecot.port;
    let burst = tokio::spawn(async move {
        for i in 0..40 {
            append_at(port, "INBOX", &mail(i)).await;
        }
    });
    // Killed while the burst is still arriving and being worked through.
    eventually("some of the burst processed", Duration::from_secs(60), || async {
        (per_customer(&engine).await.len() >= 10).then_some(())
    })
    .await;
    tokio::task::block_in_place(|| first.kill());
    let at_crash = per_customer(&engine).await.len();
    burst.await.unwrap();
    for i in 40..50 {
        dovecot.append("INBOX", &mail(i)).await;
    }
    let _second = Adapter::start(&redis.url, cfg);
    let got = wait_customers(&engine, 50).await;
    assert_eq!(got.len(), 50, "at crash: {at_crash}");
    assert!(got.values().all(|n| *n == 1), "duplicates: {got:?}");
    assert_eventually!(async { dovecot.uids_with("INBOX", PROCESSED_KEYWORD).await.len() == 50 });
    // Still exactly one each once everything is flagged.
    assert!(per_customer(&engine).await.values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_uidvalidity_rereads_the_folder_without_duplicates() {
    let redis = RedisServer::start();
    let dovecot = Dovecot::start();
    let engine = setup(&redis).await;
    let mut cfg =
        EmailConfig { mailboxes: vec![mailbox_config(&dovecot, 1, "Support", "support")], ..Default::default() };
    // Polling: the folder is deleted under the reader below.
    cfg.mailboxes[0].imap.idle = false;
    cfg.mailboxes[0].imap.poll_secs = 1;
    for i in 0..3 {
        dovecot.append("Support", &mail(i)).await;
    }
    let first = Adapter::start(&redis.url, cfg.clone());
    wait_customers(&engine, 3).await;
    let state = EmailState::new(&engine);
    // The position moves after the flag, a moment after the interaction exists.
    let before = eventually("position at the last UID", Duration::from_secs(15), || async {
        let (validity, last) = state.cursor("support").await.unwrap();
        (last == 3).then_some(validity)
    })
    .await;
    tokio::task::block_in_place(|| first.kill());

    // The server renumbers the folder (restored from a backup, migrated, ...): the same three
    // messages come back under new UIDs, with two new ones.
    let after = dovecot.recreate("Support").await;
    assert_ne!(before, Some(after));
    for i in [0, 1, 2, 3, 4] {
        dovecot.append("Support", &mail(i)).await;
    }
    let _second = Adapter::start(&redis.url, cfg);
    let got = wait_customers(&engine, 5).await;
    assert_eventually!(async { dovecot.uids_with("Support", PROCESSED_KEYWORD).await.len() == 5 });
    assert_eq!(got.len(), 5);
    assert!(per_customer(&engine).await.values().all(|n| *n == 1), "{got:?}");
    assert_eventually!(async { state.cursor("support").await.unwrap() == (Some(after), 5) });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_mail_never_stops_the_reader() {
    let redis = RedisServer::start();
    let dovecot = Dovecot::start();
    let engine = setup(&redis).await;
    let mut cfg =
        EmailConfig { mailboxes: vec![mailbox_config(&dovecot, 1, "INBOX", "support")], ..Default::default() };
    cfg.mailboxes[0].max_body_bytes = 8 * 1024;
    cfg.mailboxes[0].max_message_bytes = 1024 * 1024;

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/email");
    let mut corpus: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    corpus.sort();
    assert!(corpus.len() >= 8, "fixtures missing in {}", dir.display());
    let head = |who: &str, id: &str, subject: &str| {
        format!(
            "From: {who}@hostile.test\r\nTo: support@acme.test\r\nMessage-ID: <{id}@hostile.test>\r\nSubject: {subject}\r\n"
        )
    };
    let mut nested =
        head("nested", "nested", "deep") + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n";
    for i in 1..3000 {
        nested.push_str(&format!("--b{}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n", i - 1));
    }
    nested.push_str("--b2999\r\nContent-Type: text/plain\r\n\r\ndeep down\r\n");
    corpus.push(("deeply-nested".into(), nested.into_bytes()));
    let mut huge_headers = head("headers", "headers", &"S".repeat(200_000));
    for i in 0..5_000 {
        huge_headers.push_str(&format!("X-Filler-{i}: {}\r\n", "v".repeat(100)));
    }
    huge_headers.push_str("\r\nbody after huge headers\r\n");
    corpus.push(("huge-headers".into(), huge_headers.into_bytes()));
    let big_body = head("big", "big", "big body") + "\r\n" + &"All work and no play. ".repeat(150_000);
    corpus.push(("big-body-over-fetch-limit".into(), big_body.into_bytes()));
    let mut many = head("many", "many", "many parts")
        + "Content-Type: multipart/mixed; boundary=P\r\n\r\n--P\r\n\r\nsee attached\r\n";
    for i in 0..2_000 {
        many.push_str(&format!(
            "--P\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"f{i}.bin\"\r\n\r\nxx\r\n"
        ));
    }
    many.push_str("--P--\r\n");
    corpus.push(("many-attachments".into(), many.into_bytes()));
    let long_id = format!(
        "From: longid@hostile.test\r\nMessage-ID: <{}@x>\r\nIn-Reply-To: <{}>\r\nReferences: {}\r\n\r\nids\r\n",
        "i".repeat(5_000),
        "r".repeat(5_000),
        "<a@b> ".repeat(5_000)
    );
    corpus.push(("long-ids".into(), long_id.into_bytes()));

    let _adapter = Adapter::start(&redis.url, cfg);
    for (_, raw) in &corpus {
        dovecot.append("INBOX", raw).await;
    }
    // A normal message after the corpus is processed: nothing before it stalled the reader.
    dovecot.append("INBOX", &mail(1)).await;
    eventually("the message after the corpus", Duration::from_secs(60), || async {
        per_customer(&engine).await.contains_key("c1@burst.test").then_some(())
    })
    .await;
    let n = corpus.len() + 1;
    assert_eventually!(async { dovecot.uids_with("INBOX", PROCESSED_KEYWORD).await.len() == n });
    let set_aside = dovecot.uids_with("INBOX", SET_ASIDE_KEYWORD).await;
    // no-from.eml and bad-address.eml have no usable sender.
    assert_eq!(set_aside.len(), 2, "{set_aside:?}");

    let waiting = engine.list_waiting(Some("support"), 1000).await.unwrap();
    let by_customer: BTreeMap<String, switchboard::model::Interaction> =
        waiting.into_iter().map(|ix| (ix.customer_address.clone(), ix)).collect();
    let mut first_body = BTreeMap::new();
    for (c, ix) in &by_customer {
        first_body.insert(c.clone(), engine.messages(&ix.id).await.unwrap()[0].body.clone());
    }
    let body = |c: &str| first_body[c].clone();
    assert!(body("broken@corpus.test").starts_with("first part"));
    let latin = body("charset@corpus.test");
    assert!(latin.starts_with("Latin-1 bytes in a UTF-8 part: caf"), "{latin}");
    let html = body("html@corpus.test");
    assert!(html.contains("Dear support") && html.contains("never arrived") && !html.contains("<p>"), "{html}");
    assert!(!html.contains("document.write"), "{html}");
    let big = body("big@hostile.test");
    assert!(big.len() <= 8 * 1024 && big.ends_with("truncated]"), "{}", big.len());
    assert_eq!(by_customer["big@hostile.test"].attributes["email.truncated"], "true");
    let many = &by_customer["many@hostile.test"];
    assert!(many.attributes["email.attachments"].len() <= 1024);
    assert!(body("many@hostile.test").starts_with("see attached"));
    assert!(by_customer["headers@hostile.test"].subject.len() <= 1000);
    assert!(by_customer.contains_key("nested@hostile.test"));
    assert!(by_customer.contains_key("longid@hostile.test"));
    assert!(by_customer.contains_key("klingon@corpus.test"));
    assert!(by_customer.contains_key("garbage@corpus.test"));
    assert!(by_customer.contains_key("loop@corpus.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processed_mail_is_moved_and_set_aside_mail_stays() {
    let redis = RedisServer::start();
    let dovecot = Dovecot::start();
    let engine = setup(&redis).await;
    let mut cfg =
        EmailConfig { mailboxes: vec![mailbox_config(&dovecot, 1, "INBOX", "support")], ..Default::default() };
    cfg.mailboxes[0].after_processing = switchboard::channels::email::config::AfterProcessing::Move;
    cfg.mailboxes[0].move_to = "Processed".into();
    let _adapter = Adapter::start(&redis.url, cfg);
    for i in 0..3 {
        dovecot.append("INBOX", &mail(i)).await;
    }
    dovecot.append("INBOX", b"To: support@acme.test\r\nSubject: nobody\r\n\r\nno sender\r\n").await;
    wait_customers(&engine, 3).await;
    assert_eventually!(async { dovecot.uids("Processed").await.len() == 3 });
    assert_eventually!(async { dovecot.uids_with("INBOX", SET_ASIDE_KEYWORD).await.len() == 1 });
    assert_eq!(dovecot.uids("INBOX").await.len(), 1);
    assert_eq!(dovecot.uids_with("Processed", PROCESSED_KEYWORD).await.len(), 3);
}

/// Two instances configured with the same mailbox: one reads it; when that one dies, the other
/// takes over once the dead one's lease runs out (30 s), and nothing is read twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_reads_a_mailbox_and_another_takes_over() {
    let redis = RedisServer::start();
    let dovecot = Dovecot::start();
    let engine = setup(&redis).await;
    let cfg = EmailConfig { mailboxes: vec![mailbox_config(&dovecot, 1, "INBOX", "support")], ..Default::default() };
    let a = Adapter::start_as(&redis.url, cfg.clone(), "instance-a");
    let b = Adapter::start_as(&redis.url, cfg, "instance-b");
    for i in 0..20 {
        dovecot.append("INBOX", &mail(i)).await;
    }
    let got = wait_customers(&engine, 20).await;
    assert!(got.values().all(|n| *n == 1), "{got:?}");
    let holder: Option<String> = {
        let mut con = redis.client().await;
        redis::cmd("GET").arg(engine.keys().email_lease("support")).query_async(&mut con).await.unwrap()
    };
    // The reader dies abruptly; its lease is left to run out.
    let _survivor = match holder.as_deref() {
        Some("instance-a") => {
            tokio::task::block_in_place(|| a.kill());
            b
        }
        Some("instance-b") => {
            tokio::task::block_in_place(|| b.kill());
            a
        }
        other => panic!("lease holder {other:?}"),
    };
    for i in 20..25 {
        dovecot.append("INBOX", &mail(i)).await;
    }
    let got = eventually("mail after the reader died", Duration::from_secs(60), || async {
        let m = per_customer(&engine).await;
        (m.len() >= 25).then_some(m)
    })
    .await;
    assert_eq!(got.len(), 25);
    assert!(got.values().all(|n| *n == 1), "{got:?}");
}

/// A server that offers neither IDLE nor MOVE: the reader polls and moves with COPY + EXPUNGE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_idle_or_move_is_polled_and_mail_still_moved() {
    let redis = RedisServer::start();
    let dovecot = Dovecot::start_with_config("imap_capability = IMAP4rev1 UIDPLUS LITERAL+");
    let engine = setup(&redis).await;
    let mut cfg =
        EmailConfig { mailboxes: vec![mailbox_config(&dovecot, 1, "INBOX", "support")], ..Default::default() };
    cfg.mailboxes[0].after_processing = switchboard::channels::email::config::AfterProcessing::Move;
    cfg.mailboxes[0].move_to = "Processed".into();
    cfg.mailboxes[0].imap.poll_secs = 1;
    let mut probe = dovecot.client().await;
    let caps = probe.capabilities().await.unwrap();
    assert!(!caps.has_str("IDLE") && !caps.has_str("MOVE"), "the server still offers IDLE or MOVE");
    let _ = probe.logout().await;
    let _adapter = Adapter::start(&redis.url, cfg);
    for i in 0..3 {
        dovecot.append("INBOX", &mail(i)).await;
    }
    wait_customers(&engine, 3).await;
    assert_eventually!(async { dovecot.uids("Processed").await.len() == 3 && dovecot.uids("INBOX").await.is_empty() });
    assert_eq!(per_customer(&engine).await.len(), 3);
}
