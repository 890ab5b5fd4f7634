//! The email channel over TLS: implicit TLS and STARTTLS for IMAP (Dovecot) and SMTP (aiosmtpd),
//! with certificates from a private CA given by `tls_ca_file`; an untrusted certificate is refused.

use std::sync::Arc;

use crate::common::dovecot::{Dovecot, TestCerts};
use crate::common::email::{customer_mail, mailbox_config};
use crate::common::smtp::{SmtpMode, SmtpServer, header};
use crate::common::*;
use switchboard::api::pb;
use switchboard::channels::email::config::{MailboxConfig, Security};
use switchboard::channels::email::{EmailChannel, EmailConfig, inbound};
use switchboard_engine::{Engine, EngineOptions};
use tokio_util::sync::CancellationToken;

async fn round_trip(imap: Security, smtp_mode: SmtpMode) {
    init_tracing();
    let certs = TestCerts::generate();
    let redis = RedisServer::start();
    let dovecot = Dovecot::start_tls(&certs);
    let smtp = SmtpServer::start_with(smtp_mode, Some((&certs.cert, &certs.key)));
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let mut m = mailbox_config(&dovecot, smtp.port, "INBOX", "support");
    m.imap.security = imap;
    if imap == Security::Tls {
        m.imap.port = dovecot.tls_port;
    }
    m.smtp.security = match smtp_mode {
        SmtpMode::Plain => Security::Plain,
        SmtpMode::Starttls => Security::Starttls,
        SmtpMode::Tls => Security::Tls,
    };
    m.tls_ca_file = Some(certs.ca.clone());
    let email = EmailChannel::new(EmailConfig { mailboxes: vec![m], ..Default::default() }, engine).unwrap();
    let sb = TestServer::start_with_adapters(test_config(&redis.url), vec![email.clone() as Arc<_>]).await;
    let mut admin = sb.admin().await;
    let mut q = queue("support", &[]);
    q.channels = vec![pb::Channel::Email as i32];
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: false }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: false }).await.unwrap();
    let cancel = CancellationToken::new();
    email.spawn("tls-instance", cancel.clone());
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;

    dovecot.append("INBOX", &customer_mail("tls@customer.test", "t1@customer.test", "Secure", "over TLS", "")).await;
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.messages[0].body, "over TLS");
    ann.accept(&offer.id).await.unwrap();
    ann.reply(&offer.id, "answered over TLS").await.unwrap();
    let out = smtp.received();
    assert_eq!(out.len(), 1, "{}", smtp.log());
    assert_eq!(header(&out[0], "In-Reply-To").as_deref(), Some("<t1@customer.test>"));
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_for_imap_and_smtp() {
    round_trip(Security::Tls, SmtpMode::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_for_imap_and_smtp() {
    round_trip(Security::Starttls, SmtpMode::Starttls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused() {
    let certs = TestCerts::generate();
    let dovecot = Dovecot::start_tls(&certs);
    let m = |security: Security, port: Option<u16>| -> MailboxConfig {
        let mut m = mailbox_config(&dovecot, 1, "INBOX", "support");
        m.imap.security = security;
        m.imap.port = port;
        // No tls_ca_file: the public web PKI roots, which did not sign this certificate.
        m
    };
    for (security, port) in [(Security::Tls, dovecot.tls_port), (Security::Starttls, Some(dovecot.port))] {
        let err = inbound::connect(&m(security, port)).await.expect_err("an untrusted certificate was accepted");
        assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    }
    // With the CA it connects.
    let mut ok = m(Security::Tls, dovecot.tls_port);
    ok.tls_ca_file = Some(certs.ca.clone());
    inbound::connect(&ok).await.expect("trusted connection");
}
