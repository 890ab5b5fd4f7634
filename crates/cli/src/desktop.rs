//! `switchboard desktop`: an agent desktop on stdin/stdout, over the `AgentDesktop.Session` stream.

use anyhow::{Context, bail};
use tokio::io::AsyncBufReadExt;
use tokio_stream::StreamExt;

use pb::agent_event::Kind as Ev;
use pb::agent_request::Kind as Rq;
use switchboard_proto::v1 as pb;

use crate::human;

const DESKTOP_HELP: &str = "commands: ready | not-ready [reason] | offline | accept ID | reject ID | reply ID TEXT | \
complete ID [DISPOSITION] | end-wrap ID | transfer ID queue:NAME|agent:ID | typing ID [on|off] | \
callback ID [NUMBER] (call the customer back) | count TEXT (SMS segments) | quit";

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
        "callback" => Rq::ScheduleCallback(pb::ScheduleCallback {
            interaction_id: a,
            number: rest.trim().to_string(),
            not_before: None,
        }),
        other => bail!("unknown command {other:?}"),
    })
}

fn print_event(e: pb::AgentEvent) {
    match e.kind {
        Some(Ev::LoggedIn(l)) => {
            let a = l.agent.unwrap_or_default();
            println!(
                "logged in as {} ({}); {} offer(s), {} interaction(s)",
                a.agent_id,
                human::presence(a.presence.unwrap_or_default().state()),
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
            let reason = if pr.reason.is_empty() { String::new() } else { format!(" {}", pr.reason) };
            println!("presence: {}{reason} ({})", human::presence(pr.state()), p.cause);
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
        println!(
            "OFFER {}  {} from {} in {}: {}",
            ix.id,
            human::channel(ix.channel()),
            human::or_dash(&ix.customer_address),
            ix.queue,
            human::or_dash(&ix.subject)
        );
        if let Some(cb) = &ix.callback {
            let tries = if cb.attempts > 0 {
                format!(" (attempt {} of {})", cb.attempts + 1, cb.max_attempts)
            } else {
                String::new()
            };
            println!("   callback to {}{tries}: accept, and your phone calls the customer", cb.number);
        }
        for m in &ix.messages {
            println!("   {}: {}", human::author(m.author()), m.body);
        }
    }
}
