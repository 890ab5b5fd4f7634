//! The email channel as an operator runs it: `switchboard serve` with `[email]` in its config file
//! and the passwords from the environment, against a real Dovecot and a real SMTP server.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::dovecot::{Dovecot, IMAP_PASSWORD, IMAP_USER};
use crate::common::email::customer_mail;
use crate::common::smtp::{SMTP_PASSWORD, SMTP_USER, SmtpServer, header};
use crate::common::*;
use switchboard::api::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_mailboxes_from_its_config_and_answers_threaded() {
    let redis = RedisServer::start();
    let dovecot = Dovecot::start();
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("switchboard.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[[queues]]
name = "support"
channels = ["email"]

[[agents]]
id = "ann"
name = "Ann"
token = "tok-ann"

[[email.mailboxes]]
name = "support"
address = "support@acme.test"
queue = "support"

[email.mailboxes.imap]
host = "127.0.0.1"
port = {imap}
security = "plain"
username = "{IMAP_USER}"

[email.mailboxes.smtp]
host = "127.0.0.1"
port = {smtp}
security = "plain"
username = "{SMTP_USER}"
"#,
            imap = dovecot.port,
            smtp = smtp.port,
        ),
    )
    .unwrap();
    let (grpc, http) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("SWITCHBOARD_REDIS_URL", &redis.url)
        .env("SWITCHBOARD_GRPC_LISTEN", format!("127.0.0.1:{grpc}"))
        .env("SWITCHBOARD_HTTP_LISTEN", format!("127.0.0.1:{http}"))
        .env("SWITCHBOARD_CRM_DATABASE", format!("sqlite://{}/crm.db?mode=rwc", dir.path().display()))
        .env("SWITCHBOARD_EMAIL_PASSWORD_SUPPORT", IMAP_PASSWORD)
        .env("SWITCHBOARD_EMAIL_SMTP_PASSWORD_SUPPORT", SMTP_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = format!("http://127.0.0.1:{http}/readyz");
    eventually("daemon ready", Duration::from_secs(30), || {
        let u = ready.clone();
        async move { http_get(&u).await.ok().filter(|(c, _)| *c == 200) }
    })
    .await;

    let (mut ann, _) = Desktop::login(&format!("http://127.0.0.1:{grpc}"), "ann", "tok-ann").await.unwrap();
    ann.ready().await;
    dovecot
        .append("INBOX", &customer_mail("carol@customer.test", "c1@customer.test", "Hello", "Is anyone there?", ""))
        .await;
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.channel, pb::Channel::Email as i32);
    assert_eq!(offer.messages[0].body, "Is anyone there?");
    ann.accept(&offer.id).await.unwrap();
    ann.reply(&offer.id, "Yes, we are.").await.unwrap();
    let sent = eventually("reply at the SMTP server", Duration::from_secs(20), || async {
        smtp.received().into_iter().next()
    })
    .await;
    assert_eq!(header(&sent, "In-Reply-To").as_deref(), Some("<c1@customer.test>"));
    assert!(header(&sent, "Subject").unwrap().starts_with("Re: Hello [#SB-"));

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "{status:?}");
}
