//! Helpers that know Switchboard's email config: a mailbox on the test Dovecot and SMTP server,
//! and a customer's message.

use switchboard::channels::email::config::{AfterProcessing, ImapConfig, MailboxConfig, Security, SmtpConfig};

use super::dovecot::{Dovecot, IMAP_PASSWORD, IMAP_USER};
use super::smtp::{SMTP_PASSWORD, SMTP_USER};

/// A mailbox `name` at `support@acme.test` reading this server's `folder` (plain IMAP) and
/// sending through the SMTP server on `smtp_port` (plain, with AUTH), routed to `queue`.
pub fn mailbox_config(dovecot: &Dovecot, smtp_port: u16, folder: &str, queue: &str) -> MailboxConfig {
    MailboxConfig {
        name: "support".into(),
        address: "support@acme.test".into(),
        display_name: "ACME Support".into(),
        queue: queue.into(),
        priority: None,
        imap: ImapConfig {
            host: "127.0.0.1".into(),
            port: Some(dovecot.port),
            security: Security::Plain,
            username: IMAP_USER.into(),
            password: IMAP_PASSWORD.into(),
            folder: folder.into(),
            idle: true,
            poll_secs: 30,
        },
        smtp: SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(smtp_port),
            security: Security::Plain,
            username: SMTP_USER.into(),
            password: SMTP_PASSWORD.into(),
            timeout_secs: 10,
        },
        after_processing: AfterProcessing::Flag,
        move_to: "Processed".into(),
        max_body_bytes: 64 * 1024,
        max_message_bytes: 10 * 1024 * 1024,
        tls_ca_file: None,
        trusted_authserv_ids: Vec::new(),
        unauthenticated: None,
        accept_aligned_dkim: false,
    }
}

/// A simple customer message.
pub fn customer_mail(from: &str, message_id: &str, subject: &str, body: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "From: Customer <{from}>\r\nTo: support@acme.test\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Tue, 1 Jul 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         {extra_headers}\r\n{body}\r\n"
    )
    .into_bytes()
}
