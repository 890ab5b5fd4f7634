//! The run on Redis behind Sentinel (a primary, a replica, three Sentinels), with every channel's
//! real peer: email through Dovecot and a real SMTP server, texts through Kannel, chats and calls
//! through the APIs. Faults: Dovecot, the SMTP server and Kannel restarted, a Sentinel failover
//! (the primary killed), the CRM down, then an instance killed while Dovecot and Kannel restart.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_testkit::dovecot::{Dovecot, IMAP_PASSWORD};
use switchboard_testkit::smtp::{SMTP_PASSWORD, SmtpServer, header};

use super::check::{Arrived, Run, finish};
use super::peers::{CrmProcess, Relay};
use super::traffic::{calls, chats, mails, texts};
use super::*;

fn channels_toml(imap: u16, smtp: u16, kannel: &Kannel, opts: &KannelOptions, relay: &Relay) -> String {
    format!(
        "[[email.mailboxes]]\nname = \"support\"\naddress = \"support@acme.test\"\nqueue = \"{QUEUE}\"\n\
         [email.mailboxes.imap]\nhost = \"127.0.0.1\"\nport = {imap}\nsecurity = \"plain\"\nusername = \"support\"\n\
         [email.mailboxes.smtp]\nhost = \"127.0.0.1\"\nport = {smtp}\nsecurity = \"plain\"\nusername = \"support\"\n\
         timeout_secs = 5\n\
         [[sms.gateways]]\nkind = \"kannel\"\nname = \"kannel\"\nsendsms_url = \"{}\"\nusername = \"{}\"\n\
         password = \"{}\"\nwebhook_user = \"{KANNEL_HOOK_USER}\"\nwebhook_password = \"{KANNEL_HOOK_PASSWORD}\"\n\
         public_url = \"{}\"\ntimeout_secs = 5\n\
         [[sms.numbers]]\nnumber = \"{OUR_NUMBER}\"\nqueue = \"{QUEUE}\"\ngateway = \"kannel\"\n",
        kannel.sendsms_url(),
        opts.sendsms_user,
        opts.sendsms_password,
        relay.url(),
    )
}

/// Replies at the SMTP server (distinct messages per customer: a resend of the same Message-ID
/// is one message to the receiving system) and at the phones.
fn arrived(smtp: &SmtpServer, kannel: &Mutex<Kannel>) -> Arrived {
    let mut out = Arrived::default();
    let mut ids: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for m in smtp.received() {
        let to = header(&m, "To").unwrap_or_default();
        let to = to.rsplit('<').next().unwrap_or(&to).trim_end_matches('>').trim().to_lowercase();
        ids.entry(to).or_default().insert(header(&m, "Message-ID").unwrap_or_default());
    }
    out.insert(Ch::Email, ids.into_iter().map(|(k, v)| (k, v.len())).collect());
    let mut sms: BTreeMap<String, usize> = BTreeMap::new();
    for m in kannel.lock().unwrap().phone_received() {
        if m.text.starts_with("Answer for") {
            *sms.entry(m.to).or_default() += 1;
        }
    }
    out.insert(Ch::Sms, sms);
    out
}

/// Whether the instance at `ep` reaches a primary (answers a look-up NOT_FOUND, not UNAVAILABLE).
async fn follows(ep: &str) -> Option<()> {
    let ch = tonic::transport::Endpoint::from_shared(ep.to_string()).ok()?.connect().await.ok()?;
    let mut c = switchboard::api::pb::interactions_client::InteractionsClient::with_interceptor(ch, bearer(ADMIN_KEY));
    let r = c
        .get_interaction(switchboard::api::pb::GetInteractionRequest {
            interaction_id: "00000000-0000-0000-0000-000000000000".into(),
            include_messages: false,
        })
        .await;
    r.is_err_and(|e| e.code() == tonic::Code::NotFound).then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_and_channel_peer_restarts_lose_nothing_double_nothing() {
    let knobs = Knobs::from_env(40);
    let mut setup = tokio::task::block_in_place(SentinelSetup::start);
    let crm = CrmProcess::start().await;
    let (crm_endpoint, crm_db) = (crm.endpoint(), crm.database_url());
    let crm = Arc::new(Mutex::new(crm));
    let mut dovecot = tokio::task::block_in_place(Dovecot::start);
    let smtp = Arc::new(Mutex::new(tokio::task::block_in_place(SmtpServer::start)));
    let relay = Relay::start();
    let opts = KannelOptions {
        mo_url: format!(
            "http://{KANNEL_HOOK_USER}:{KANNEL_HOOK_PASSWORD}@{}/sms/kannel/inbound?from=%p&to=%P&text=%b&id=%I&smsc=%i&coding=%c&charset=%C&time=%t",
            relay.addr
        ),
        ..KannelOptions::default()
    };
    let kannel = Arc::new(Mutex::new(tokio::task::block_in_place(|| Kannel::start(opts.clone()))));
    let dir = RunDir::new();
    let config = dir.path().join("switchboard.toml");
    let smtp_port = smtp.lock().unwrap().port;
    let channels = channels_toml(dovecot.port, smtp_port, &kannel.lock().unwrap(), &opts, &relay);
    std::fs::write(&config, config_toml(&Extra { crm_endpoint: crm_endpoint.clone(), channels })).unwrap();
    let env = [
        ("SWITCHBOARD_EMAIL_PASSWORD_SUPPORT".to_string(), IMAP_PASSWORD.to_string()),
        ("SWITCHBOARD_EMAIL_SMTP_PASSWORD_SUPPORT".to_string(), SMTP_PASSWORD.to_string()),
    ];
    let mut instances: Vec<Instance> =
        (0..3).map(|i| Instance::new(&format!("sent-{i}"), &config, &setup.url(), &env)).collect();
    relay.to(instances.iter().map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], i.http))).collect());
    start_instances(&mut instances).await;
    let endpoints: Vec<String> = instances.iter().map(Instance::endpoint).collect();

    let seen: Shared = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let (start, start_ms) = (Instant::now(), wall_ms());
    let end = start + Duration::from_secs(knobs.secs);
    let agents: Vec<_> = (0..AGENTS)
        .map(|i| tokio::spawn(agents::agent(i, endpoints.clone(), start, stop.clone(), seen.clone())))
        .collect();
    let traffic = [
        tokio::spawn(chats(endpoints.clone(), end, start, Duration::from_millis(400), seen.clone())),
        tokio::spawn(calls(endpoints.clone(), end, start, Duration::from_millis(1500), seen.clone())),
        tokio::spawn(mails(dovecot.port, end, start, Duration::from_millis(400), seen.clone())),
        tokio::spawn(texts(kannel.clone(), end, start, Duration::from_millis(400), seen.clone())),
    ];

    const STEPS: usize = 6;
    let mut plan = Schedule::new(start, &knobs, STEPS * knobs.rounds as usize);
    for round in 0..knobs.rounds as usize {
        let j = round * STEPS;

        plan.turn(j).await;
        let t = plan.now();
        tokio::task::block_in_place(|| dovecot.restart());
        plan.record("Dovecot (IMAP) restarted", t, false);

        plan.turn(j + 1).await;
        let t = plan.now();
        tokio::task::block_in_place(|| smtp.lock().unwrap().restart());
        plan.record("SMTP server kill -9, restarted", t, false);

        plan.turn(j + 2).await;
        let t = plan.now();
        tokio::task::block_in_place(|| kannel.lock().unwrap().restart());
        plan.record("Kannel (bearerbox, smsbox, the phone network) restarted", t, false);

        plan.turn(j + 3).await;
        let t = plan.now();
        let old = setup.primary_port().expect("a primary");
        tokio::task::block_in_place(|| setup.kill_primary());
        for ep in &endpoints {
            eventually("the instance follows the new primary", Duration::from_secs(30), || follows(ep)).await;
        }
        plan.record("Sentinel failover: kill -9 of the primary, until every instance uses the new one", t, true);
        // The old primary comes back (empty: no persistence) and the Sentinels make it a replica.
        // Only now: an instance still on its address would write into it until the Sentinels
        // demote it, and lose that (see the report).
        let s = setup.servers.iter_mut().find(|s| s.port == old).unwrap();
        tokio::task::block_in_place(|| s.restart());

        plan.turn(j + 4).await;
        plan.crm_down(&crm);

        plan.turn(j + 5).await;
        let t = plan.now();
        let victim = round % instances.len();
        instances[victim].kill();
        tokio::task::block_in_place(|| {
            dovecot.restart();
            kannel.lock().unwrap().restart();
        });
        instances[victim].spawn();
        plan.record(
            format!(
                "overlapping: kill -9 instance {} while Dovecot and Kannel restart, CRM down",
                instances[victim].id
            ),
            t,
            false,
        );
    }
    plan.finish(Duration::from_secs(knobs.secs)).await;
    for t in traffic {
        t.await.unwrap();
    }

    let run = Run {
        title: "Redis Sentinel with email, SMS, chat and calls: failover, peers restarted, CRM down".into(),
        knobs: &knobs,
        start_ms,
        seen: &seen,
        faults: &plan.faults,
        endpoint: endpoints[0].clone(),
        crm_db,
    };
    let setup = &setup;
    let primary = || async move {
        let port = setup.primary_port().expect("a primary");
        let url = setup.server_url(port);
        redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
    };
    let (smtp, kannel) = (&smtp, &kannel);
    finish(run, primary, || stop.cancel(), || async move { arrived(&smtp.lock().unwrap(), kannel) }).await;
    for a in agents {
        let _ = a.await;
    }
}
