//! The email channel end to end against a real Dovecot (IMAP with IDLE) and a real SMTP server
//! (aiosmtpd), with a Switchboard instance and an agent desktop over gRPC.

use std::sync::Arc;
use std::time::Duration;

use crate::common::dovecot::Dovecot;
use crate::common::email::{customer_mail, mailbox_config};
use crate::common::smtp::{SmtpServer, header};
use crate::common::*;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::channels::email::inbound::PROCESSED_KEYWORD;
use switchboard::channels::email::{EmailChannel, EmailConfig};
use switchboard_engine::{Engine, EngineOptions};
use tokio_util::sync::CancellationToken;

struct Rig {
    _redis: RedisServer,
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

async fn rig(adjust: impl FnOnce(&mut EmailConfig)) -> Rig {
    init_tracing();
    let redis = RedisServer::start();
    let dovecot = Dovecot::start();
    let smtp = SmtpServer::start();
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let mut cfg =
        EmailConfig { mailboxes: vec![mailbox_config(&dovecot, smtp.port, "INBOX", "support")], ..Default::default() };
    adjust(&mut cfg);
    let email = EmailChannel::new(cfg, engine.clone()).unwrap();
    let mut sb_cfg = test_config(&redis.url);
    // Tests move the routing clock (deferred SMTP retries); the instance must not look dead.
    sb_cfg.routing.presence_grace_secs = 3_600;
    let sb = TestServer::start_with_adapters(sb_cfg, vec![email.clone()]).await;
    let mut admin = sb.admin().await;
    let mut q = queue("support", &[]);
    q.channels = vec![pb::Channel::Email as i32];
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: false }).await.unwrap();
    for a in ["ann", "bob"] {
        admin.put_agent(pb::PutAgentRequest { agent: Some(agent(a, &[])), allow_update: false }).await.unwrap();
    }
    let cancel = CancellationToken::new();
    email.spawn("test-instance", cancel.clone());
    Rig { _redis: redis, dovecot, smtp, sb, engine, _email: email, cancel }
}

async fn wait_customer_message(d: &mut Desktop) -> (String, String) {
    let Ev::CustomerMessage(m) = d.wait_for("customer message", |e| matches!(e, Ev::CustomerMessage(_))).await else {
        unreachable!()
    };
    (m.interaction_id, m.message.unwrap().body)
}

async fn wait_received(smtp: &SmtpServer, n: usize) -> Vec<Vec<u8>> {
    eventually(&format!("{n} mails at the SMTP server"), Duration::from_secs(20), || async {
        let r = smtp.received();
        (r.len() >= n).then_some(r)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_reaches_an_agent_and_the_conversation_stays_threaded() {
    let r = rig(|_| {}).await;
    let mut ann = r.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;

    // New mail becomes an offer within seconds (IDLE).
    r.dovecot
        .append(
            "INBOX",
            &customer_mail("carol@customer.test", "c1@customer.test", "Invoice wrong", "My invoice is wrong.", ""),
        )
        .await;
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.channel, pb::Channel::Email as i32);
    assert_eq!(offer.customer_address, "carol@customer.test");
    assert_eq!(offer.subject, "Invoice wrong");
    assert_eq!(offer.messages[0].body, "My invoice is wrong.");
    assert_eq!(offer.attributes["email.mailbox"], "support");
    assert_eq!(offer.attributes["email.message_id"], "c1@customer.test");
    let iid = offer.id.clone();
    ann.accept(&iid).await.unwrap();
    assert_eventually!(async { r.dovecot.uids_with("INBOX", PROCESSED_KEYWORD).await.len() == 1 });

    // The agent's reply reaches the customer, threaded.
    let ack = ann.reply(&iid, "Sorry about that, fixed.").await.unwrap();
    let seq = ack.message.unwrap().seq;
    let out = wait_received(&r.smtp, 1).await;
    let m = &out[0];
    let our_id = format!("sb.{iid}.{seq}@acme.test");
    assert_eq!(header(m, "Message-ID").as_deref(), Some(format!("<{our_id}>").as_str()));
    assert_eq!(header(m, "In-Reply-To").as_deref(), Some("<c1@customer.test>"));
    assert_eq!(header(m, "References").as_deref(), Some("<c1@customer.test>"));
    assert!(header(m, "From").unwrap().contains("support@acme.test"));
    assert_eq!(header(m, "To").as_deref(), Some("carol@customer.test"));
    let subject = header(m, "Subject").unwrap();
    assert!(subject.starts_with("Re: Invoice wrong [#SB-"), "{subject}");
    assert!(String::from_utf8_lossy(m).contains("Sorry about that, fixed."));

    // The customer's answer joins the same interaction and reaches the same agent.
    r.dovecot
        .append(
            "INBOX",
            &customer_mail(
                "carol@customer.test",
                "c2@customer.test",
                &format!("Re: {}", subject.trim_start_matches("Re: ")),
                "Thanks! One more thing.",
                &format!("In-Reply-To: <{our_id}>\r\nReferences: <c1@customer.test> <{our_id}>\r\n"),
            ),
        )
        .await;
    assert_eq!(wait_customer_message(&mut ann).await, (iid.clone(), "Thanks! One more thing.".to_string()));

    // A client that drops In-Reply-To/References (and rewrites the subject) still finds it by
    // the subject token.
    let token = subject.rsplit_once("[#").unwrap().1.trim_end_matches(']').to_string();
    r.dovecot
        .append(
            "INBOX",
            &customer_mail(
                "Carol@Customer.test",
                "c3@customer.test",
                &format!("other words [#{token}]"),
                "Hello again",
                "",
            ),
        )
        .await;
    assert_eq!(wait_customer_message(&mut ann).await, (iid.clone(), "Hello again".to_string()));

    // The second reply references the whole thread and answers the latest message.
    let ack = ann.reply(&iid, "Anything else?").await.unwrap();
    let out = wait_received(&r.smtp, 2).await;
    let m2 = &out[1];
    assert_eq!(header(m2, "In-Reply-To").as_deref(), Some("<c3@customer.test>"));
    let refs = header(m2, "References").unwrap();
    for id in ["c1@customer.test", our_id.as_str(), "c2@customer.test", "c3@customer.test"] {
        assert!(refs.contains(&format!("<{id}>")), "{refs} lacks {id}");
    }
    assert_eq!(header(m2, "Subject"), header(m, "Subject"));
    assert_eq!(header(m2, "Message-ID").unwrap(), format!("<sb.{iid}.{}@acme.test>", ack.message.unwrap().seq));

    // Someone else answering the same thread (a forwarded mail, a newsletter) never joins it.
    r.dovecot
        .append(
            "INBOX",
            &customer_mail(
                "dave@other.test",
                "d1@other.test",
                &subject,
                "I got this too?",
                &format!("In-Reply-To: <{our_id}>\r\n"),
            ),
        )
        .await;
    let other = ann.wait_offer().await.interaction.unwrap();
    assert_ne!(other.id, iid);
    assert_eq!(other.customer_address, "dave@other.test");
    ann.reject(&other.id).await.unwrap();

    // After completion, a reply within the window is a follow-up that waits for the same agent.
    ann.complete(&iid, "resolved").await.unwrap();
    let mut bob = r.sb.desktop("bob", "tok-bob").await;
    bob.ready().await;
    r.dovecot
        .append(
            "INBOX",
            &customer_mail(
                "carol@customer.test",
                "c4@customer.test",
                &subject,
                "It broke again.",
                &format!("In-Reply-To: <{our_id}>\r\n"),
            ),
        )
        .await;
    let follow = ann.wait_offer().await.interaction.unwrap();
    assert_ne!(follow.id, iid);
    assert_eq!(follow.attributes["email.previous_interaction"], iid);
    assert_eq!(follow.messages[0].body, "It broke again.");
    ann.accept(&follow.id).await.unwrap();
    ann.reply(&follow.id, "Looking again.").await.unwrap();
    let out = wait_received(&r.smtp, 3).await;
    let refs = header(&out[2], "References").unwrap();
    assert!(refs.contains("<c1@customer.test>") && refs.contains("<c4@customer.test>"), "{refs}");
    assert_eq!(header(&out[2], "In-Reply-To").as_deref(), Some("<c4@customer.test>"));
    assert!(bob.pending.iter().all(|e| !matches!(e.kind, Some(Ev::Offer(_)))), "bob got an offer: {:?}", bob.pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_replies_are_ignored_and_bounces_reach_the_agent() {
    let r = rig(|_| {}).await;
    let mut ann = r.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    r.dovecot
        .append("INBOX", &customer_mail("erin@customer.test", "e1@customer.test", "Order", "Where is it?", ""))
        .await;
    let iid = ann.wait_offer().await.interaction.unwrap().id;
    ann.accept(&iid).await.unwrap();
    let seq = ann.reply(&iid, "On its way.").await.unwrap().message.unwrap().seq;
    wait_received(&r.smtp, 1).await;
    let our_id = format!("sb.{iid}.{seq}@acme.test");

    let answering = format!("In-Reply-To: <{our_id}>\r\nReferences: <{our_id}>\r\n");
    for (n, extra) in
        ["Auto-Submitted: auto-replied\r\n", "Precedence: bulk\r\n", "Precedence: junk\r\n", "X-Autoreply: yes\r\n"]
            .into_iter()
            .enumerate()
    {
        let mail = customer_mail(
            "erin@customer.test",
            &format!("auto{n}@customer.test"),
            "Out of office",
            "I am away.",
            &format!("{extra}{answering}"),
        );
        r.dovecot.append("INBOX", &mail).await;
    }
    // A newsletter-style auto-mail from a stranger: no interaction either.
    r.dovecot
        .append("INBOX", &customer_mail("news@shop.test", "n1@shop.test", "Deals", "Buy!", "Precedence: list\r\n"))
        .await;
    // A DSN bounce of our reply.
    let dsn = format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>\r\nTo: support@acme.test\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce1@mx.customer.test>\r\n\
         Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"RPT\"\r\n\r\n\
         --RPT\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
         --RPT\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.test\r\n\r\n\
         Final-Recipient: rfc822; erin@customer.test\r\nAction: failed\r\nStatus: 5.2.2\r\n\
         Diagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n\
         --RPT\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@acme.test\r\nTo: erin@customer.test\r\n\
         Message-ID: <{our_id}>\r\nSubject: Re: Order\r\n\r\n--RPT--\r\n"
    );
    r.dovecot.append("INBOX", dsn.as_bytes()).await;
    // The bounce is shown to the agent on the conversation; none of the auto-replies is.
    let (on, body) = wait_customer_message(&mut ann).await;
    assert_eq!(on, iid);
    assert!(body.starts_with("[bounce]") && body.contains("552 5.2.2 mailbox full"), "{body}");
    let note = r.engine.messages(&iid).await.unwrap().into_iter().find(|m| m.body.starts_with("[bounce]")).unwrap();
    assert_eq!(note.author, switchboard::model::Author::System, "a note for the agent, not the customer's words");
    // A person's answer after all of them arrives next: nothing in between reached the agent.
    r.dovecot
        .append("INBOX", &customer_mail("erin@customer.test", "e2@customer.test", "Re: Order", "Back now.", &answering))
        .await;
    assert_eq!(wait_customer_message(&mut ann).await, (iid.clone(), "Back now.".to_string()));
    let thread = r.engine.messages(&iid).await.unwrap();
    let bodies: Vec<&str> = thread.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    assert!(
        r.engine.list_waiting(Some("support"), 100).await.unwrap().is_empty(),
        "an auto-reply became an interaction"
    );
    assert!(ann.pending.iter().all(|e| !matches!(e.kind, Some(Ev::Offer(_)))), "{:?}", ann.pending);
    // Nothing was ever sent automatically.
    assert_eq!(r.smtp.received().len(), 1);
    assert_eq!(r.dovecot.uids_with("INBOX", PROCESSED_KEYWORD).await.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_failures_are_retried_or_reported() {
    let r = rig(|c| c.send_retry_secs = 2).await;
    let mut ann = r.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    r.dovecot.append("INBOX", &customer_mail("fay@customer.test", "f1@customer.test", "Help", "Hi", "")).await;
    let iid = ann.wait_offer().await.interaction.unwrap().id;
    ann.accept(&iid).await.unwrap();

    // 4xx twice, then accepted: one copy arrives and the agent gets an ack.
    r.smtp.plan(&["451 4.3.0 Try again later", "451 4.3.0 Try again later"]);
    ann.reply(&iid, "first").await.unwrap();
    assert_eq!(wait_received(&r.smtp, 1).await.len(), 1);
    assert_eq!(r.smtp.data_attempts(), 3);

    // Connection lost before an answer: retried, delivered once.
    r.smtp.plan(&["drop"]);
    ann.reply(&iid, "second").await.unwrap();
    assert_eq!(wait_received(&r.smtp, 2).await.len(), 2);

    // 5xx: reported on the agent's stream, nothing sent, no retry.
    r.smtp.plan(&["550 5.1.1 No such user"]);
    let attempts = r.smtp.data_attempts();
    let (code, message) = ann.reply(&iid, "third").await.unwrap_err();
    assert_eq!(code, tonic::Code::Unavailable);
    assert!(message.contains("permanent") && message.contains("550"), "{message}");
    assert_eq!(r.smtp.data_attempts(), attempts + 1);

    // 4xx beyond the in-line budget: the agent is told, and the reply goes out later by itself.
    r.smtp.plan(&["451 4.3.0 busy"; 40]);
    let (code, message) = ann.reply(&iid, "fourth").await.unwrap_err();
    assert_eq!(code, tonic::Code::Unavailable);
    assert!(message.contains("will be retried"), "{message}");
    r.smtp.plan(&[]);
    // The background retry is due about half a minute later on the routing clock.
    r.engine.advance_clock(Duration::from_secs(120)).await.unwrap();
    eventually("deferred reply sent", Duration::from_secs(20), || async {
        (r.smtp.received().len() == 3).then_some(())
    })
    .await;
    let out = r.smtp.received();
    assert!(String::from_utf8_lossy(&out[2]).contains("fourth"));
    let bodies: Vec<String> = out.iter().map(|m| String::from_utf8_lossy(m).to_string()).collect();
    assert!(!bodies.iter().any(|b| b.contains("third")));
    // Exactly one copy each.
    for word in ["first", "second", "fourth"] {
        assert_eq!(bodies.iter().filter(|b| b.contains(word)).count(), 1, "{word}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_without_idle_and_reconnect_after_a_server_restart() {
    let mut r = rig(|c| {
        c.mailboxes[0].imap.idle = false;
        c.mailboxes[0].imap.poll_secs = 1;
    })
    .await;
    let mut ann = r.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    r.dovecot.append("INBOX", &customer_mail("gus@customer.test", "g1@customer.test", "One", "first", "")).await;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().messages[0].body, "first");
    // The IMAP server goes away and comes back: the reader reconnects and carries on.
    tokio::task::block_in_place(|| r.dovecot.restart());
    r.dovecot.append("INBOX", &customer_mail("hal@customer.test", "h1@customer.test", "Two", "second", "")).await;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().messages[0].body, "second");
}
