//! `switchboard ctl` and `switchboard desktop`: a small gRPC client for trying Switchboard by
//! hand and for scripts. Like `api/`, it speaks protobuf, as a client of the public API.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use tokio::io::AsyncBufReadExt;
use tokio_stream::StreamExt;

use pb::agent_event::Kind as Ev;
use pb::agent_request::Kind as Rq;
use switchboard_auth::Credential;
use switchboard_proto::v1 as pb;

#[derive(Subcommand, Debug)]
pub enum Ctl {
    /// Create or update an agent.
    PutAgent {
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "")]
        name: String,
        /// skill=level, repeatable.
        #[arg(long = "skill")]
        skills: Vec<String>,
        #[arg(long, default_value = "")]
        token: String,
    },
    /// Create or update a queue.
    PutQueue {
        #[arg(long)]
        name: String,
        /// skill=min_level, repeatable.
        #[arg(long = "skill")]
        skills: Vec<String>,
        #[arg(long, default_value_t = 0)]
        priority: i32,
        #[arg(long, default_value_t = 0)]
        wrap_up_secs: u32,
    },
    /// Enqueue an interaction, as a channel adapter would.
    Create {
        #[arg(long)]
        queue: String,
        /// voice | chat | sms | email
        #[arg(long, default_value = "chat")]
        channel: String,
        #[arg(long)]
        customer: String,
        #[arg(long, default_value = "")]
        subject: String,
        #[arg(long, default_value = "")]
        body: String,
    },
    /// Send a customer message into an interaction.
    Say {
        #[arg(long)]
        interaction: String,
        body: String,
    },
    /// Show one interaction with its thread.
    Show { interaction: String },
    /// Waiting interactions, best first.
    Waiting {
        #[arg(long, default_value = "")]
        queue: String,
    },
    /// Move a waiting interaction to another queue (supervisor), keeping its age.
    Move {
        interaction: String,
        /// The queue to move it to; without it, it stays where it is (with --clear-exclusions).
        #[arg(long, default_value = "")]
        queue: String,
        /// Let the agents who rejected or missed it (and the one who transferred it) be offered it again.
        #[arg(long)]
        clear_exclusions: bool,
    },
    /// Agents and their presence.
    Agents,
    /// Queue figures, then live updates (Ctrl-C to stop).
    Watch {
        #[arg(long = "queue")]
        queues: Vec<String>,
    },
    /// API keys: create (the secret is shown once), list, revoke.
    #[command(subcommand)]
    Keys(Keys),
    /// Right to erasure: the contact in the CRM store and every copy Switchboard keeps of it
    /// (open interactions of the contact end). Cannot be undone.
    Erase {
        /// The contact's id in the CRM store.
        contact: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum Keys {
    /// Create a key on the daemon and print its secret (only now; the daemon keeps a hash).
    Create {
        #[arg(long)]
        name: String,
        /// agent | supervisor | admin | channel | telephony | crm
        #[arg(long)]
        role: String,
        /// Supervisor keys: a queue it is limited to (repeatable; none = all queues).
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// Agent keys: the agent it acts as.
        #[arg(long, default_value = "")]
        agent: String,
    },
    /// The daemon's runtime keys (never their secrets).
    List,
    /// Stop a key on every instance (within auth.cache_secs).
    Revoke { id: String },
    /// Print a fresh random key for the config file or SWITCHBOARD_ADMIN_KEY (nothing is sent).
    Generate,
}

/// Where `ctl` finds its key without `--key`: the file `scripts/run.sh` writes for the local operator.
pub fn default_key_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("switchboard").join("admin.key"))
}

/// The key to send: `--key` / SWITCHBOARD_API_KEY, else the key file if there is one.
pub fn resolve_key(key: Option<String>, key_file: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    if let Some(k) = key.filter(|k| !k.trim().is_empty()) {
        return Ok(Some(k.trim().to_string()));
    }
    let explicit = key_file.is_some();
    let Some(path) = key_file.or_else(default_key_file) else { return Ok(None) };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|k| !k.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading the key file {}", path.display())),
    }
}

/// A random key of the runtime keys' strength, for config files and the environment.
pub fn generate_key() -> String {
    format!("sbc_{}", switchboard_auth::key::random_hex(32))
}

/// Turns the daemon's refusals into a hint at what to do.
fn explain(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unauthenticated => anyhow::anyhow!(
            "{} — pass a key with --key, SWITCHBOARD_API_KEY or --key-file (scripts/run.sh writes one to {})",
            status.message(),
            default_key_file().map_or_else(|| "~/.config/switchboard/admin.key".into(), |p| p.display().to_string())
        ),
        tonic::Code::PermissionDenied => anyhow::anyhow!("not allowed: {}", status.message()),
        _ => anyhow::anyhow!("{} ({:?})", status.message(), status.code()),
    }
}

fn pairs(field: &str, v: &[String]) -> anyhow::Result<HashMap<String, u32>> {
    v.iter()
        .map(|s| {
            let (k, l) = s.split_once('=').with_context(|| format!("--{field} {s:?}: expected name=level"))?;
            Ok((k.to_string(), l.parse().with_context(|| format!("--{field} {s:?}: level is not a number"))?))
        })
        .collect()
}

fn channel(s: &str) -> anyhow::Result<pb::Channel> {
    Ok(match s {
        "voice" => pb::Channel::Voice,
        "chat" => pb::Channel::Chat,
        "sms" => pb::Channel::Sms,
        "email" => pb::Channel::Email,
        other => bail!("--channel {other:?}: expected voice, chat, sms or email"),
    })
}

pub async fn ctl(server: &str, key: Option<String>, cmd: Ctl) -> anyhow::Result<()> {
    if let Ctl::Keys(Keys::Generate) = cmd {
        println!("{}", generate_key());
        return Ok(());
    }
    let ch = tonic::transport::Endpoint::from_shared(server.to_string())?
        .connect()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    let cred = match &key {
        Some(k) => Credential::bearer(k).map_err(|e| anyhow::anyhow!("the key: {e}"))?,
        None => Credential::none(),
    };
    let mut admin = pb::admin_client::AdminClient::with_interceptor(ch.clone(), cred.clone());
    let mut ixs = pb::interactions_client::InteractionsClient::with_interceptor(ch.clone(), cred.clone());
    let mut sup = pb::supervisor_client::SupervisorClient::with_interceptor(ch, cred);
    run_ctl(&mut admin, &mut ixs, &mut sup, cmd).await.map_err(|e| match e.downcast::<tonic::Status>() {
        Ok(s) => explain(s),
        Err(e) => e,
    })
}

type Authed = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Credential>;

async fn run_ctl(
    admin: &mut pb::admin_client::AdminClient<Authed>,
    ixs: &mut pb::interactions_client::InteractionsClient<Authed>,
    sup: &mut pb::supervisor_client::SupervisorClient<Authed>,
    cmd: Ctl,
) -> anyhow::Result<()> {
    match cmd {
        Ctl::Keys(Keys::Generate) => println!("{}", generate_key()),
        Ctl::Keys(Keys::Create { name, role, queues, agent }) => {
            let r = pb::CreateApiKeyRequest { name, role, queues, agent_id: agent };
            let k = admin.create_api_key(r).await?.into_inner();
            let info = k.key.unwrap_or_default();
            eprintln!("created key {} ({} {}); the secret is shown only now:", info.id, info.role, info.name);
            println!("{}", k.secret);
        }
        Ctl::Keys(Keys::List) => {
            let keys = admin.list_api_keys(pb::ListApiKeysRequest {}).await?.into_inner().keys;
            if keys.is_empty() {
                println!("no runtime keys (keys from the config file are not listed)");
            }
            for k in keys {
                let mut line = format!("{}  {:<10} {}", k.id, k.role, k.name);
                if !k.queues.is_empty() {
                    line.push_str(&format!("  queues: {}", k.queues.join(", ")));
                }
                if !k.agent_id.is_empty() {
                    line.push_str(&format!("  agent: {}", k.agent_id));
                }
                if !k.created_by.is_empty() {
                    line.push_str(&format!("  created by {}", k.created_by));
                }
                println!("{line}");
            }
        }
        Ctl::Erase { contact } => {
            let r = admin.erase_contact(pb::EraseContactRequest { contact_id: contact.clone() }).await?.into_inner();
            println!(
                "erased contact {contact}: {} interactions and {} messages in the CRM store; {} interactions' copies in \
                 Switchboard ({} were still open and ended)",
                r.interactions, r.messages_erased, r.copies_erased, r.ended
            );
        }
        Ctl::Keys(Keys::Revoke { id }) => {
            let k = admin.revoke_api_key(pb::RevokeApiKeyRequest { id }).await?.into_inner();
            println!("revoked {} ({} {})", k.id, k.role, k.name);
        }
        Ctl::PutAgent { id, name, skills, token } => {
            let agent = pb::Agent { id, name, skills: pairs("skill", &skills)?, token, ..Default::default() };
            let a = admin.put_agent(pb::PutAgentRequest { agent: Some(agent), allow_update: true }).await?;
            println!("{:#?}", a.into_inner());
        }
        Ctl::PutQueue { name, skills, priority, wrap_up_secs } => {
            let requirements = pairs("skill", &skills)?
                .into_iter()
                .map(|(skill, min_level)| pb::SkillRequirement { skill, min_level })
                .collect();
            let queue = pb::Queue { name, requirements, priority, wrap_up_secs, ..Default::default() };
            let q = admin.put_queue(pb::PutQueueRequest { queue: Some(queue), allow_update: true }).await?;
            println!("{:#?}", q.into_inner());
        }
        Ctl::Create { queue, channel: c, customer, subject, body } => {
            let r = pb::CreateInteractionRequest {
                channel: channel(&c)? as i32,
                customer_address: customer,
                subject,
                queue,
                body,
                ..Default::default()
            };
            let ix = ixs.create_interaction(r).await?.into_inner();
            println!("created {} ({:?})", ix.id, ix.state());
        }
        Ctl::Say { interaction, body } => {
            let m = ixs
                .append_message(pb::AppendMessageRequest { interaction_id: interaction, body, ..Default::default() })
                .await?;
            println!("message {}", m.into_inner().seq);
        }
        Ctl::Show { interaction } => {
            let r = pb::GetInteractionRequest { interaction_id: interaction, include_messages: true };
            println!("{:#?}", ixs.get_interaction(r).await?.into_inner());
        }
        Ctl::Waiting { queue } => {
            let w = sup.list_waiting(pb::ListWaitingRequest { queue, limit: 100 }).await?.into_inner();
            for ix in w.interactions {
                let mut line =
                    format!("{}  queue={} priority={} channel={:?}", ix.id, ix.queue, ix.priority, ix.channel());
                if !ix.excluded_agent_ids.is_empty() {
                    line.push_str(&format!("  not for: {}", ix.excluded_agent_ids.join(", ")));
                }
                if !ix.transferred_by.is_empty() {
                    line.push_str(&format!("  transferred by {} (tried last)", ix.transferred_by));
                }
                println!("{line}");
            }
        }
        Ctl::Move { interaction, queue, clear_exclusions } => {
            let r = pb::MoveInteractionRequest { interaction_id: interaction, queue, clear_exclusions };
            let ix = sup.move_interaction(r).await?.into_inner();
            println!("{}  {:?} in queue {}", ix.id, ix.state(), ix.queue);
        }
        Ctl::Agents => {
            for a in sup.list_agent_states(pb::ListAgentStatesRequest {}).await?.into_inner().agents {
                let p = a.presence.unwrap_or_default();
                println!("{}  {:?} {}  connected={} load={:?}", a.agent_id, p.state(), p.reason, a.connected, a.load);
            }
        }
        Ctl::Watch { queues } => {
            let mut s = sup.watch(pb::WatchRequest { queues, include_agents: true }).await?.into_inner();
            while let Some(ev) = s.next().await {
                match ev?.kind {
                    Some(pb::supervisor_event::Kind::Queue(q)) => println!(
                        "queue {}: waiting={} longest={}ms offered={} accepted={} rejected={} missed={} abandoned={} sl={:?}%",
                        q.queue,
                        q.waiting,
                        q.longest_wait_ms,
                        q.offered,
                        q.accepted,
                        q.rejected,
                        q.missed,
                        q.abandoned,
                        q.service_level_percent
                    ),
                    Some(pb::supervisor_event::Kind::Agent(a)) => {
                        let p = a.presence.unwrap_or_default();
                        println!("agent {}: {:?} {} load={:?}", a.agent_id, p.state(), p.reason, a.load);
                    }
                    None => {}
                }
            }
        }
    }
    Ok(())
}

const DESKTOP_HELP: &str = "commands: ready | not-ready [reason] | offline | accept ID | reject ID | reply ID TEXT | \
complete ID [DISPOSITION] | end-wrap ID | transfer ID queue:NAME|agent:ID | typing ID [on|off] | \
count TEXT (SMS segments) | quit";

/// How a text would go out as SMS: what an agent checks before sending a long reply.
fn segments_line(text: &str) -> String {
    let s = switchboard_model::sms::segments(text);
    let unit = match s.encoding {
        switchboard_model::sms::Encoding::Gsm7 => "GSM-7 characters",
        switchboard_model::sms::Encoding::Ucs2 => "UCS-2 units (a character outside GSM-7 makes the whole text UCS-2)",
    };
    format!(
        "{} {unit}: {} SMS segment(s) of up to {}; {} left in the last",
        s.units, s.count, s.per_segment, s.remaining
    )
}

/// An interactive agent desktop on stdin/stdout.
pub async fn desktop(server: &str, agent: &str, token: &str) -> anyhow::Result<()> {
    let mut client = pb::agent_desktop_client::AgentDesktopClient::connect(server.to_string())
        .await
        .with_context(|| format!("connecting to {server}"))?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(pb::AgentRequest {
        request_id: "login".into(),
        kind: Some(Rq::Login(pb::Login { agent_id: agent.into(), token: token.into() })),
    })
    .await?;
    let mut events = client.session(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    println!("{DESKTOP_HELP}");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut n = 0u64;
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(e)) => print_event(e),
                Some(Err(s)) => bail!("session ended: {} ({:?})", s.message(), s.code()),
                None => return Ok(()),
            },
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                let line = line.trim();
                if line.is_empty() { continue }
                if line == "quit" { return Ok(()) }
                if let Some(text) = line.strip_prefix("count ") {
                    println!("{}", segments_line(text));
                    continue;
                }
                match parse_command(line) {
                    Ok(kind) => {
                        n += 1;
                        tx.send(pb::AgentRequest { request_id: n.to_string(), kind: Some(kind) }).await?;
                    }
                    Err(e) => println!("? {e}\n{DESKTOP_HELP}"),
                }
            }
        }
    }
}

fn parse_command(line: &str) -> anyhow::Result<Rq> {
    let mut parts = line.splitn(3, ' ');
    let cmd = parts.next().unwrap_or_default();
    let a = parts.next().unwrap_or_default().to_string();
    let rest = parts.next().unwrap_or_default().to_string();
    let presence = |state: pb::PresenceState, reason: String| {
        Rq::SetPresence(pb::SetPresence { presence: Some(pb::Presence { state: state as i32, reason }) })
    };
    Ok(match cmd {
        "ready" => presence(pb::PresenceState::Ready, String::new()),
        "not-ready" => presence(pb::PresenceState::NotReady, [a, rest].join(" ").trim().to_string()),
        "offline" => presence(pb::PresenceState::Offline, String::new()),
        "accept" => Rq::Accept(pb::AcceptOffer { interaction_id: a }),
        "reject" => Rq::Reject(pb::RejectOffer { interaction_id: a, reason: rest }),
        "reply" => Rq::SendReply(pb::SendReply { interaction_id: a, body: rest }),
        "complete" => {
            Rq::Complete(pb::CompleteInteraction { interaction_id: a, disposition: rest, notes: String::new() })
        }
        "typing" => Rq::SetTyping(pb::SetTyping { interaction_id: a, typing: rest.trim() != "off" }),
        "end-wrap" => Rq::EndWrapUp(pb::EndWrapUp { interaction_id: a, ..Default::default() }),
        "transfer" => {
            let target = match rest.split_once(':') {
                Some(("queue", q)) => pb::transfer_interaction::Target::Queue(q.into()),
                Some(("agent", id)) => pb::transfer_interaction::Target::AgentId(id.into()),
                _ => bail!("transfer ID queue:NAME or transfer ID agent:ID"),
            };
            Rq::Transfer(pb::TransferInteraction { interaction_id: a, target: Some(target), ..Default::default() })
        }
        other => bail!("unknown command {other:?}"),
    })
}

fn print_event(e: pb::AgentEvent) {
    match e.kind {
        Some(Ev::LoggedIn(l)) => {
            let a = l.agent.unwrap_or_default();
            println!(
                "logged in as {} ({:?}); {} offer(s), {} interaction(s)",
                a.agent_id,
                a.presence.unwrap_or_default().state(),
                l.offers.len(),
                l.interactions.len()
            );
            for o in l.offers {
                print_offer(&o);
            }
        }
        Some(Ev::Ack(a)) => println!("ok [{}]", a.request_id),
        Some(Ev::Error(er)) => println!("error [{}]: {} (code {})", er.request_id, er.message, er.code),
        Some(Ev::PresenceChanged(p)) => {
            let pr = p.presence.unwrap_or_default();
            println!("presence: {:?} {} ({})", pr.state(), pr.reason, p.cause);
        }
        Some(Ev::Offer(o)) => print_offer(&o),
        Some(Ev::OfferRevoked(r)) => println!("offer {} revoked: {}", r.interaction_id, r.reason),
        Some(Ev::CallState(c)) => {
            let hold = if c.hold_ms > 0 { format!(" (on hold {} s so far)", c.hold_ms / 1000) } else { String::new() };
            println!("call {}: {}{hold}", c.interaction_id, c.state);
        }
        Some(Ev::Assigned(a)) => println!("assigned {}", a.interaction.map(|i| i.id).unwrap_or_default()),
        Some(Ev::CustomerMessage(m)) => {
            println!("customer [{}]: {}", m.interaction_id, m.message.map(|m| m.body).unwrap_or_default());
        }
        Some(Ev::Delivery(d)) => {
            let dl = d.delivery.unwrap_or_default();
            let code = if dl.code.is_empty() { String::new() } else { format!(" (code {})", dl.code) };
            println!("reply {} of {}: {}{code}", d.seq, d.interaction_id, dl.state);
        }
        Some(Ev::InteractionEnded(x)) => println!("interaction {} ended: {}", x.interaction_id, x.reason),
        Some(Ev::SessionClosed(c)) => println!("session closed: {}", c.reason),
        Some(Ev::CustomerTyping(t)) if t.typing => println!("customer [{}] is typing...", t.interaction_id),
        Some(Ev::CustomerTyping(_)) | None => {}
    }
}

fn print_offer(o: &pb::Offer) {
    if let Some(ix) = &o.interaction {
        println!("OFFER {}  {:?} from {} in {}: {}", ix.id, ix.channel(), ix.customer_address, ix.queue, ix.subject);
        for m in &ix.messages {
            println!("   {:?}: {}", m.author(), m.body);
        }
    }
}
