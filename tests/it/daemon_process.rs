//! The real `switchboard` binary as an operator runs it: config file, env overrides, readiness,
//! SIGTERM, and config errors that name the key.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

/// Starts `serve` (what `spawn` makes of a gRPC and an HTTP port) until it is ready, on fresh ports
/// again when it exits first: a port found free can be taken by another test before the daemon
/// binds it. Returns the child and its (gRPC, HTTP) ports.
async fn serve_on_free_ports(
    mut spawn: impl FnMut(u16, u16) -> std::process::Child,
) -> (std::process::Child, u16, u16) {
    for _ in 0..5 {
        let (grpc, http) = (free_port(), free_port());
        let mut child = spawn(grpc, http);
        let ready = format!("http://127.0.0.1:{http}/readyz");
        let started = std::time::Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if http_get(&ready).await.is_ok_and(|(c, _)| c == 200) {
                return (child, grpc, http);
            }
            assert!(started.elapsed() < Duration::from_secs(30), "timed out after 30s waiting for: daemon ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("the daemon exited before it was ready five times (ports taken?)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_config_and_env_and_stops_cleanly_on_sigterm() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("switchboard.toml");
    std::fs::write(
        &cfg,
        r#"
[redis]
url = "redis://127.0.0.1:1"   # overridden by SWITCHBOARD_REDIS_URL below
[routing]
timer_poll_ms = 20
[[queues]]
name = "support"
requirements = [{ skill = "english", min_level = 3 }]
[[agents]]
id = "ann"
name = "Ann"
skills = { english = 5 }
"#,
    )
    .unwrap();
    let (child, grpc, _http) = serve_on_free_ports(|grpc, http| {
        Command::new(bin())
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY)
            .env("SWITCHBOARD_REDIS_URL", &redis.url)
            .env("SWITCHBOARD_GRPC_LISTEN", format!("127.0.0.1:{grpc}"))
            .env("SWITCHBOARD_HTTP_LISTEN", format!("127.0.0.1:{http}"))
            .env("SWITCHBOARD_AGENT_TOKEN_ANN", "from-env")
            .env("SWITCHBOARD_CRM_DATABASE", format!("sqlite://{}/crm.db?mode=rwc", dir.path().display()))
            .env("SWITCHBOARD_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    // The token came from the environment, the queue and agent from the file.
    let endpoint = format!("http://127.0.0.1:{grpc}");
    assert!(Desktop::login(&endpoint, "ann", "").await.is_err());
    let (mut ann, _) = Desktop::login(&endpoint, "ann", "from-env").await.unwrap();
    ann.ready().await;
    let mut ixs = pb::interactions_client::InteractionsClient::new(authed(&endpoint, ADMIN_KEY).await);
    ixs.create_interaction(new_chat("support", "visitor", "hello")).await.unwrap();
    ann.wait_offer().await;

    // SIGTERM to exactly this process: streams are closed with a reason, the process exits 0.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(ann.wait_closed().await.as_deref(), Some("shutdown"));
    let exit = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert!(exit.status.success(), "exit status {:?}", exit.status);
    let logs = String::from_utf8_lossy(&exit.stdout);
    assert!(logs.lines().any(|l| l.starts_with('{') && l.contains("\"message\":\"Switchboard stopping.\"")), "{logs}");
    // Message bodies are not logged at info level.
    assert!(!logs.contains("hello"), "{logs}");
}

/// A `switchboard serve` child process, killed (SIGKILL, by PID) if the test did not stop it.
struct Daemon {
    child: std::process::Child,
    grpc: u16,
}

impl Daemon {
    /// Starts `serve` with `config` and this instance id (from the environment), and waits until
    /// it is ready.
    async fn start(config: &std::path::Path, redis_url: &str, instance: &str) -> Daemon {
        let (child, grpc, _) = serve_on_free_ports(|grpc, http| {
            Command::new(bin())
                .args(["serve", "--config"])
                .arg(config)
                .env("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY)
                .env("SWITCHBOARD_REDIS_URL", redis_url)
                .env("SWITCHBOARD_GRPC_LISTEN", format!("127.0.0.1:{grpc}"))
                .env("SWITCHBOARD_HTTP_LISTEN", format!("127.0.0.1:{http}"))
                .env("SWITCHBOARD_INSTANCE_ID", instance)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .await;
        Daemon { child, grpc }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    /// `kill -9`: nothing is cleaned up, as in a crash.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An instance killed and restarted at once under the same `instance_id` (as systemd or
/// Kubernetes would) keeps heartbeating under that id, so nothing else would notice the crash: the
/// restarted process must itself release every session the crashed one held. Otherwise the agent
/// stays "connected" and ready, keeps its offer and gets new work it can never see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_restarted_after_a_crash_releases_the_sessions_it_held() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("switchboard.toml");
    std::fs::write(
        &cfg,
        r#"
[crm]
enabled = false
[routing]
timer_poll_ms = 20
heartbeat_secs = 1
# Far longer than the test's patience: only the restart can release the session in time.
presence_grace_secs = 60
[[queues]]
name = "support"
offer_timeout_secs = 120
[[agents]]
id = "ann"
token = "tok-ann"
[[agents]]
id = "bob"
token = "tok-bob"
"#,
    )
    .unwrap();
    let na = Daemon::start(&cfg, &redis.url, "na").await;
    let nb = Daemon::start(&cfg, &redis.url, "nb").await;
    let (mut ann, _) = Desktop::login(&na.endpoint(), "ann", "tok-ann").await.unwrap();
    ann.ready().await;
    let mut ixs = pb::interactions_client::InteractionsClient::new(authed(&nb.endpoint(), ADMIN_KEY).await);
    let first = ixs.create_interaction(new_chat("support", "c1", "hello")).await.unwrap().into_inner();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, first.id);
    let (mut bob, _) = Desktop::login(&nb.endpoint(), "bob", "tok-bob").await.unwrap();
    bob.ready().await;

    na.kill();
    let na = Daemon::start(&cfg, &redis.url, "na").await;
    // Ann's desktop does not come back. Her offer goes on to Bob, and she is shown offline.
    assert_eq!(bob.wait_offer().await.interaction.unwrap().id, first.id);
    let mut sup = pb::supervisor_client::SupervisorClient::new(authed(&nb.endpoint(), ADMIN_KEY).await);
    let states = sup.list_agent_states(pb::ListAgentStatesRequest {}).await.unwrap().into_inner().agents;
    let a = states.iter().find(|a| a.agent_id == "ann").unwrap();
    assert_eq!((a.presence.clone().unwrap().state(), a.connected), (pb::PresenceState::Offline, false));
    // New work goes to Bob, never to the ghost.
    let second = ixs.create_interaction(new_chat("support", "c2", "hi again")).await.unwrap().into_inner();
    assert_eq!((second.state(), second.agent_id.as_str()), (pb::InteractionState::Offered, "bob"));
    // Ann logs in again through the restarted instance and works as before.
    bob.set_presence(pb::PresenceState::NotReady, "break").await;
    let (mut ann, snapshot) = Desktop::login(&na.endpoint(), "ann", "tok-ann").await.unwrap();
    assert!(snapshot.offers.is_empty(), "{snapshot:?}");
    ann.ready().await;
    let third = ixs.create_interaction(new_chat("support", "c3", "third")).await.unwrap().into_inner();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, third.id);
    drop((na, nb));
}

/// `check-config` says what is wrong in one line per problem: no repeated cause, no backtrace.
#[test]
fn check_config_prints_one_line_per_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[routing]\npresence_grace_secs = 0\n").unwrap();
    let out =
        Command::new(bin()).args(["check-config", "--config"]).arg(&path).env("RUST_BACKTRACE", "1").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains("routing.presence_grace_secs"), "{err}");
    let missing = Command::new(bin()).args(["check-config", "--config", "/nonexistent/sb.toml"]).output().unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/sb.toml"), "{err}");
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[routing]\npresence_grace_secs = 0\n", "routing.presence_grace_secs"),
        (
            "[[queues]]\nname = \"q\"\nrequirements = [{ skill = \"x\", min_level = 11 }]\n",
            "queues[0].requirements[0].min_level",
        ),
        ("[[agents]]\nid = \"a\"\nskills = { x = 0 }\n", "agents[0].skills.x"),
        ("[server]\ngrpc_listn = \"127.0.0.1:1\"\n", "grpc_listn"),
        ("[redis]\nurl = \"http://x\"\n", "redis.url"),
    ];
    for (text, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(bin()).args(["check-config", "--config"]).arg(&path).output().unwrap();
        assert!(!out.status.success(), "{text} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "error for {text:?} does not name {key}: {err}");
    }
    let good = dir.path().join("good.toml");
    std::fs::write(&good, include_str!("../../deploy/switchboard.toml")).unwrap();
    let out = Command::new(bin()).args(["check-config", "--config"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `switchboard crm` on its own, and `switchboard serve` pointed at it through the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_crm_serves_an_external_switchboard() {
    use switchboard::crm::pb as crm_pb;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let crm_port = free_port();
    let mut crm = Command::new(bin())
        .args(["crm", "--listen", &format!("127.0.0.1:{crm_port}"), "--database"])
        .arg(format!("sqlite://{}/crm.db?mode=rwc", dir.path().display()))
        .env("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let crm_url = format!("http://127.0.0.1:{crm_port}");
    let mut client = eventually("crm up", Duration::from_secs(30), || {
        let u = crm_url.clone();
        async move {
            let ch = tonic::transport::Endpoint::from_shared(u).unwrap().connect().await.ok()?;
            Some(crm_pb::crm_store_client::CrmStoreClient::with_interceptor(ch, bearer(ADMIN_KEY)))
        }
    })
    .await;
    let contact = client
        .upsert_contact(crm_pb::UpsertContactRequest {
            name: "Ada".into(),
            identities: vec![crm_pb::Identity {
                channel: crm_pb::Channel::Email as i32,
                address: "Ada@Example.com".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let (mut serve, grpc, _) = serve_on_free_ports(|grpc, http| {
        Command::new(bin())
            .arg("serve")
            .env("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY)
            .env("SWITCHBOARD_CRM_API_KEY", ADMIN_KEY)
            .env("SWITCHBOARD_REDIS_URL", &redis.url)
            .env("SWITCHBOARD_GRPC_LISTEN", format!("127.0.0.1:{grpc}"))
            .env("SWITCHBOARD_HTTP_LISTEN", format!("127.0.0.1:{http}"))
            .env("SWITCHBOARD_CRM_ENDPOINT", &crm_url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    let endpoint = format!("http://127.0.0.1:{grpc}");
    let mut admin = pb::admin_client::AdminClient::new(authed(&endpoint, ADMIN_KEY).await);
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("mail", &[])), allow_update: true }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("bo", &[])), allow_update: true }).await.unwrap();
    let (mut bo, _) = Desktop::login(&endpoint, "bo", "tok-bo").await.unwrap();
    bo.ready().await;
    let mut ixs = pb::interactions_client::InteractionsClient::new(authed(&endpoint, ADMIN_KEY).await);
    let req = pb::CreateInteractionRequest {
        channel: pb::Channel::Email as i32,
        customer_address: "ada@example.COM".into(),
        queue: "mail".into(),
        subject: "Order 17".into(),
        body: "Where is my order?".into(),
        ..Default::default()
    };
    ixs.create_interaction(req).await.unwrap();
    let offer = bo.wait_offer().await;
    let pop = offer.screen_pop.unwrap();
    assert_eq!(pop.status, pb::ScreenPopStatus::Available as i32);
    let c = pop.contact.expect("the external CRM's contact");
    assert_eq!(c.id, contact.id);
    assert_eq!(c.name, "Ada");
    for child in [&mut serve, &mut crm] {
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    }
    assert!(serve.wait().unwrap().success());
    assert!(crm.wait().unwrap().success());
}

/// A full run at the most verbose level, with every kind of secret and message body a daemon
/// handles — API keys, agent tokens, the mailbox's IMAP and SMTP passwords, web chat tokens; chat,
/// email and web chat bodies, email subjects, agents' replies — and customers' addresses: none of
/// them may appear in its logs, in plain text or in the encodings a wire-level log would use
/// (hex frame payloads, base64 SMTP AUTH).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_message_body_reaches_the_log_at_any_level() {
    use crate::common::dovecot::{Dovecot, IMAP_PASSWORD, IMAP_USER};
    use crate::common::email::customer_mail;
    use crate::common::smtp::{SMTP_PASSWORD, SMTP_USER, SmtpServer, header};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use serde_json::json;

    const AGENT_TOKEN: &str = "agent-token-S3CRET-7788";
    const WRONG_TOKEN: &str = "wrong-token-S3CRET-9911";
    const BODY: &str = "customer-body-S3CRET-4242";
    const REPLY: &str = "agent-reply-S3CRET-5353";
    // Email: a customer's message (unverified sender: the mailbox checks senders), an
    // out-of-office answer (ignored), the agent's answer going out by SMTP, another one the SMTP
    // server refuses and a bounce of the first, both naming the customer.
    const MAIL_FROM: &str = "carol.customer@customer.test";
    const MAIL_SUBJECT: &str = "mail-subject-S3CRET-6161";
    const MAIL_BODY: &str = "mail-body-S3CRET-6262";
    const MAIL_REPLY: &str = "mail-reply-S3CRET-6363";
    const MAIL_REFUSED: &str = "mail-refused-S3CRET-6666";
    const AUTO_FROM: &str = "ooo.autoresponder@customer.test";
    const AUTO_SUBJECT: &str = "auto-subject-S3CRET-6464";
    const AUTO_BODY: &str = "auto-body-S3CRET-6565";
    // Web chat: a visitor's first and later message, their name and address, the agent's answer.
    const CHAT_NAME: &str = "Vera Visitor-S3CRET";
    const CHAT_EMAIL: &str = "vera.visitor@customer.test";
    const CHAT_FIRST: &str = "chat-first-S3CRET-7171";
    const CHAT_LATER: &str = "chat-later-S3CRET-7272";
    const CHAT_REPLY: &str = "chat-reply-S3CRET-7373";
    // SMS through a Twilio-shaped provider: a text in, the agent's answer out and its status
    // callbacks, a STOP and a reply refused because of it.
    const SMS_FROM: &str = "+4915112345678";
    const SMS_IN: &str = "sms-in-S3CRET-8181";
    const SMS_REPLY: &str = "sms-reply-S3CRET-8282";
    const SMS_REFUSED: &str = "sms-refused-S3CRET-8383";
    let twilio = FakeTwilio::start().await;
    let redis = RedisServer::start();
    let dovecot = Dovecot::start();
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("switchboard.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[routing]
timer_poll_ms = 20
[webchat]
enabled = true
queue = "chat"
[[queues]]
name = "support"
[[queues]]
name = "mail"
channels = ["email"]
[[queues]]
name = "chat"
channels = ["chat"]
[[queues]]
name = "texts"
channels = ["sms"]
[[agents]]
id = "ann"
name = "Ann"
capacity = {{ chat = 5, email = 5, sms = 5 }}
[[sms.gateways]]
kind = "twilio"
name = "tw"
account_sid = "{TWILIO_SID}"
base_url = "{twilio_url}"
public_url = "{PUBLIC_URL}"
[[sms.numbers]]
number = "+18005551212"
queue = "texts"
gateway = "tw"
[[email.mailboxes]]
name = "support"
address = "support@acme.test"
queue = "mail"
# Senders are checked: an unverified one is flagged, and that is logged.
trusted_authserv_ids = ["mx.acme.test"]
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
            twilio_url = twilio.base_url(),
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let (child, grpc, http) = serve_on_free_ports(|grpc, http| {
        Command::new(bin())
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY)
            .env("SWITCHBOARD_AGENT_TOKEN_ANN", AGENT_TOKEN)
            .env("SWITCHBOARD_EMAIL_PASSWORD_SUPPORT", IMAP_PASSWORD)
            .env("SWITCHBOARD_EMAIL_SMTP_PASSWORD_SUPPORT", SMTP_PASSWORD)
            .env("SWITCHBOARD_SMS_SECRET_TW", TWILIO_TOKEN)
            .env("SWITCHBOARD_REDIS_URL", &redis.url)
            .env("SWITCHBOARD_GRPC_LISTEN", format!("127.0.0.1:{grpc}"))
            .env("SWITCHBOARD_HTTP_LISTEN", format!("127.0.0.1:{http}"))
            .env("SWITCHBOARD_CRM_DATABASE", format!("sqlite://{}/crm.db?mode=rwc", dir.path().display()))
            .env("RUST_LOG", "trace")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    })
    .await;
    let mut child = KillOnDrop(child);
    let endpoint = format!("http://127.0.0.1:{grpc}");

    let mut admin = pb::admin_client::AdminClient::new(authed(&endpoint, ADMIN_KEY).await);
    let created = admin
        .create_api_key(pb::CreateApiKeyRequest { name: "shop".into(), role: "channel".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(Desktop::login(&endpoint, "ann", WRONG_TOKEN).await.is_err());
    let (mut ann, _) = Desktop::login(&endpoint, "ann", AGENT_TOKEN).await.unwrap();
    ann.ready().await;
    let mut ixs = pb::interactions_client::InteractionsClient::new(authed(&endpoint, &created.secret).await);
    let ix = ixs.create_interaction(new_chat("support", "visitor-1", BODY)).await.unwrap().into_inner();
    ann.wait_offer().await;
    ann.accept(&ix.id).await.unwrap();
    ann.reply(&ix.id, REPLY).await.unwrap();
    // A refused key, and the key's revocation.
    let mut bad = pb::admin_client::AdminClient::new(authed(&endpoint, "sbk_0123456789ab_S3CRET").await);
    assert!(bad.list_agents(pb::ListAgentsRequest {}).await.is_err());
    admin.revoke_api_key(pb::RevokeApiKeyRequest { id: created.key.unwrap().id }).await.unwrap();

    // Email: read through IMAP (the auto-reply first: mail is read in UID order), answered by SMTP.
    let auto =
        customer_mail(AUTO_FROM, "ooo-1@customer.test", AUTO_SUBJECT, AUTO_BODY, "Auto-Submitted: auto-replied\r\n");
    dovecot.append("INBOX", &auto).await;
    dovecot.append("INBOX", &customer_mail(MAIL_FROM, "m1@customer.test", MAIL_SUBJECT, MAIL_BODY, "")).await;
    let mail = ann.wait_offer().await.interaction.unwrap();
    assert_eq!((mail.channel, mail.messages[0].body.as_str()), (pb::Channel::Email as i32, MAIL_BODY));
    ann.accept(&mail.id).await.unwrap();
    ann.reply(&mail.id, MAIL_REPLY).await.unwrap();
    let sent = eventually("reply at the SMTP server", PATIENCE, || async { smtp.received().into_iter().next() }).await;
    assert_eq!(header(&sent, "To").as_deref(), Some(MAIL_FROM));
    assert!(String::from_utf8_lossy(&sent).contains(MAIL_REPLY));
    smtp.plan(&[&format!("550 5.1.1 <{MAIL_FROM}>: Recipient address rejected")]);
    let refused = ann.reply(&mail.id, MAIL_REFUSED).await.unwrap_err();
    assert!(refused.1.contains("5.1.1"), "{refused:?}");
    let (ours, subject) = (header(&sent, "Message-ID").unwrap(), header(&sent, "Subject").unwrap());
    dovecot.append("INBOX", &bounce_of(&ours, &subject, MAIL_FROM)).await;
    eventually("the three emails processed", PATIENCE, || async {
        (dovecot.uids_with("INBOX", "$Switchboard").await.len() == 3).then_some(())
    })
    .await;

    // Web chat: a visitor over the WebSocket, with the token a reconnect would use.
    let http_addr: std::net::SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let mut vera = Visitor::connect(http_addr).await;
    vera.send(json!({"type": "start", "name": CHAT_NAME, "email": CHAT_EMAIL, "message": CHAT_FIRST})).await;
    let started = vera.wait_type("started").await;
    let chat_token = started["token"].as_str().unwrap().to_string();
    let chat_id = started["interaction_id"].as_str().unwrap().to_string();
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!((offer.id.as_str(), offer.messages[0].body.as_str()), (chat_id.as_str(), CHAT_FIRST));
    ann.accept(&chat_id).await.unwrap();
    ann.reply(&chat_id, CHAT_REPLY).await.unwrap();
    vera.wait_message(CHAT_REPLY).await;
    vera.say(CHAT_LATER, "c1").await;
    vera.close().await;
    // Back with the token (as after a reload): the whole thread again.
    let mut again = Visitor::connect(http_addr).await;
    again.resume(&chat_token, 0).await;
    again.wait_type("resumed").await;
    again.wait_message(CHAT_LATER).await;
    // A token that is not a chat's.
    let mut stranger = Visitor::connect(http_addr).await;
    stranger.resume("f00d-S3CRET-chat-token", 0).await;
    stranger.wait_type("error").await;
    again.close().await;
    stranger.close().await;

    // SMS: in, answered, reported delivered; then STOP, and a reply refused for it.
    assert_eq!(twilio.text_in(http_addr, "SM0900", SMS_FROM, "+18005551212", SMS_IN).await.0, 200);
    let text = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(text.messages[0].body, SMS_IN);
    ann.accept(&text.id).await.unwrap();
    ann.reply(&text.id, SMS_REPLY).await.unwrap();
    let out = twilio.sent().into_iter().find(|s| s.body == SMS_REPLY).expect("the reply at the provider");
    assert_eq!(twilio.status(http_addr, &out, "delivered", "").await.0, 204);
    assert_eq!(twilio.text_in(http_addr, "SM0901", SMS_FROM, "+18005551212", "STOP").await.0, 200);
    ann.wait_for("the STOP", |e| matches!(e, Ev::CustomerMessage(m) if m.interaction_id == text.id)).await;
    assert!(ann.reply(&text.id, SMS_REFUSED).await.is_err());

    let status = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.0.wait().unwrap()).await.unwrap();
    assert!(exit.success(), "{exit:?}");
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.lines().count() > 100, "a trace-level run logs plenty: {} lines", logs.lines().count());
    // The run went where it should: the emails were read and answered, the web chat served.
    for what in [
        "Auto-reply ignored.",
        "Email sender not verified.",
        "Email reply sent.",
        "Email reply refused.",
        "Reply bounced.",
        "Web chat started.",
        "Text received.",
        "SMS reply accepted.",
        "Reply delivery state.",
    ] {
        assert!(logs.contains(what), "{what:?} is not in the log");
    }

    let secrets = [
        ADMIN_KEY,
        AGENT_TOKEN,
        WRONG_TOKEN,
        created.secret.as_str(),
        IMAP_PASSWORD,
        SMTP_PASSWORD,
        chat_token.as_str(),
        TWILIO_TOKEN,
    ];
    let bodies = [
        BODY,
        REPLY,
        MAIL_SUBJECT,
        MAIL_BODY,
        MAIL_REPLY,
        MAIL_REFUSED,
        AUTO_SUBJECT,
        AUTO_BODY,
        CHAT_FIRST,
        CHAT_LATER,
        CHAT_REPLY,
        SMS_IN,
        SMS_REPLY,
        SMS_REFUSED,
    ];
    let people = [CHAT_NAME, MAIL_FROM, AUTO_FROM, CHAT_EMAIL, SMS_FROM, "15112345678"];
    // IMAP_PASSWORD is the test Dovecot's, a plain word ("secret"): a line holding it is worth a look.
    let mut needles: Vec<String> = secrets.iter().chain(&bodies).chain(&people).map(ToString::to_string).collect();
    needles.push("S3CRET".into());
    // As a wire-level log would show them: hex payloads (WebSocket frames) and SMTP AUTH.
    needles.extend(
        secrets.iter().chain(&bodies).chain(&people).map(|s| s.bytes().map(|b| format!("{b:02x}")).collect::<String>()),
    );
    needles.push(B64.encode(format!("\0{SMTP_USER}\0{SMTP_PASSWORD}")));
    needles.push(B64.encode(SMTP_PASSWORD));
    needles.push(B64.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}")));
    needles.push(B64.encode(format!("\0{IMAP_USER}\0{IMAP_PASSWORD}")));
    let found: Vec<String> = needles
        .iter()
        .filter_map(|n| logs.lines().find(|l| l.contains(n.as_str())).map(|l| format!("{n:?} in: {l}")))
        .collect();
    assert!(found.is_empty(), "in the log:\n{}", found.join("\n"));
}

/// A delivery status notification for our message `message_id` (with its `subject`) to
/// `recipient`, as Postfix writes one: the diagnostic names the recipient, the subject quotes ours.
fn bounce_of(message_id: &str, subject: &str, recipient: &str) -> Vec<u8> {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>\r\nTo: support@acme.test\r\n\
         Subject: Undelivered Mail Returned to Sender: {subject}\r\nMessage-ID: <dsn-1@mx.customer.test>\r\n\
         Date: Tue, 1 Jul 2025 10:05:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n\
         --R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered to <{recipient}>.\r\n\
         --R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.test\r\n\r\n\
         Final-Recipient: rfc822; {recipient}\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected\r\n\
         --R\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@acme.test\r\nMessage-ID: {message_id}\r\n\
         Subject: {subject}\r\n--R--\r\n"
    )
    .into_bytes()
}

/// Kills (SIGKILL, by PID) the child if the test ends before it stopped it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
