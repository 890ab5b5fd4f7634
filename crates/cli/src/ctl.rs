//! Each `ctl` command: the call to the daemon, then its reply as a table for people or, with
//! `--output json`, in the proto's JSON mapping.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::SystemTime;

use anyhow::{Context, bail};

use switchboard_auth::Credential;
use switchboard_proto::v1 as pb;

use crate::{Ctl, Keys, Output, calendar, default_key_file, generate_key, json, view, watch};

/// Turns the daemon's refusals into a hint at what to do.
fn explain(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unauthenticated => anyhow::anyhow!(
            "{} — pass a key with --key, SWITCHBOARD_API_KEY or --key-file (scripts/run.sh writes one to {})",
            status.message(),
            default_key_file().map_or_else(|| "~/.config/switchboard/admin.key".into(), |p| p.display().to_string())
        ),
        tonic::Code::PermissionDenied => anyhow::anyhow!("not allowed: {}", status.message()),
        code => anyhow::anyhow!("{}: {}", code_words(code), status.message()),
    }
}

/// `NotFound` as "not found", `FailedPrecondition` as "failed precondition".
fn code_words(code: tonic::Code) -> String {
    let mut words = String::new();
    for c in format!("{code:?}").chars() {
        if c.is_uppercase() && !words.is_empty() {
            words.push(' ');
        }
        words.extend(c.to_lowercase());
    }
    words
}

fn pairs(field: &str, v: &[String]) -> anyhow::Result<HashMap<String, u32>> {
    v.iter()
        .map(|s| {
            let (k, l) = s.split_once('=').with_context(|| format!("--{field} {s:?}: expected name=level"))?;
            Ok((k.to_string(), l.parse().with_context(|| format!("--{field} {s:?}: level is not a number"))?))
        })
        .collect()
}

/// `--closed CHANNEL=hold|refuse|overflow:QUEUE`.
fn closed_rule(s: &str) -> anyhow::Result<pb::ClosedRule> {
    let (ch, action) =
        s.split_once('=').with_context(|| format!("--closed {s:?}: expected CHANNEL=hold|refuse|overflow:QUEUE"))?;
    let channel = if ch == "all" {
        pb::Channel::Unspecified
    } else {
        channel(ch)
            .map_err(|_| anyhow::anyhow!("--closed {s:?}: channel {ch:?} is not voice, chat, sms, email or all"))?
    };
    let (action, overflow_queue) = match action.split_once(':') {
        Some(("overflow", q)) => (pb::ClosedAction::Overflow, q.to_string()),
        None if action == "hold" => (pb::ClosedAction::Hold, String::new()),
        None if action == "refuse" => (pb::ClosedAction::Refuse, String::new()),
        _ => bail!("--closed {s:?}: the action is hold, refuse or overflow:QUEUE"),
    };
    Ok(pb::ClosedRule { channel: channel as i32, action: action as i32, overflow_queue, message: String::new() })
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

/// Runs `cmd` against the daemon at `server`, printing to stdout (`watch` redraws a board in
/// place when stdout is a terminal).
pub async fn ctl(server: &str, key: Option<String>, output: Output, cmd: Ctl) -> anyhow::Result<()> {
    let live = std::io::stdout().is_terminal();
    run(server, key, output, cmd, live, &mut std::io::stdout()).await
}

/// Like [`ctl`], printing to `out` (never a terminal: `watch` writes rows, not a board).
pub async fn ctl_into(
    server: &str,
    key: Option<String>,
    output: Output,
    cmd: Ctl,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    run(server, key, output, cmd, false, out).await
}

async fn run(
    server: &str,
    key: Option<String>,
    output: Output,
    cmd: Ctl,
    live: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    if let Ctl::Keys(Keys::Generate) = cmd {
        let key = generate_key();
        match output {
            Output::Table => writeln!(out, "{key}")?,
            Output::Json => writeln!(out, "{}", serde_json::json!({ "key": key }))?,
        }
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
    let mut c = Clients {
        admin: pb::admin_client::AdminClient::with_interceptor(ch.clone(), cred.clone()),
        ixs: pb::interactions_client::InteractionsClient::with_interceptor(ch.clone(), cred.clone()),
        sup: pb::supervisor_client::SupervisorClient::with_interceptor(ch, cred),
    };
    let mut p = Printer { output, out };
    run_ctl(&mut c, &mut p, cmd, live).await.map_err(|e| match e.downcast::<tonic::Status>() {
        Ok(s) => explain(s),
        Err(e) => e,
    })
}

type Authed = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Credential>;

struct Clients {
    admin: pb::admin_client::AdminClient<Authed>,
    ixs: pb::interactions_client::InteractionsClient<Authed>,
    sup: pb::supervisor_client::SupervisorClient<Authed>,
}

/// Prints a reply: `table` for people, else the message as JSON.
struct Printer<'a> {
    output: Output,
    out: &'a mut (dyn Write + Send),
}

impl Printer<'_> {
    fn print<M: json::Proto>(&mut self, message: &M, table: impl FnOnce(&M) -> String) -> anyhow::Result<()> {
        let text = match self.output {
            Output::Table => table(message),
            Output::Json => json::pretty(message)?,
        };
        write!(self.out, "{text}")?;
        if !text.ends_with('\n') {
            writeln!(self.out)?;
        }
        Ok(())
    }
}

async fn run_ctl(c: &mut Clients, p: &mut Printer<'_>, cmd: Ctl, live: bool) -> anyhow::Result<()> {
    let now = SystemTime::now;
    match cmd {
        Ctl::Keys(Keys::Generate) => unreachable!("answered without a connection"),
        Ctl::Keys(Keys::Create { name, role, queues, agent }) => {
            let r = pb::CreateApiKeyRequest { name, role, queues, agent_id: agent };
            let k = c.admin.create_api_key(r).await?.into_inner();
            if p.output == Output::Table {
                let info = k.key.clone().unwrap_or_default();
                eprintln!("created key {} ({} {}); the secret is shown only now:", info.id, info.role, info.name);
            }
            // Only the secret on stdout: `KEY=$(switchboard ctl keys create ...)`.
            p.print(&k, |k| k.secret.clone())?;
        }
        Ctl::Keys(Keys::List) => {
            let keys = c.admin.list_api_keys(pb::ListApiKeysRequest {}).await?.into_inner();
            p.print(&keys, |k| {
                if k.keys.is_empty() {
                    "no runtime keys (keys from the config file are not listed)".into()
                } else {
                    view::keys(&k.keys).render()
                }
            })?;
        }
        Ctl::Keys(Keys::Revoke { id }) => {
            let k = c.admin.revoke_api_key(pb::RevokeApiKeyRequest { id }).await?.into_inner();
            p.print(&k, |k| format!("revoked {} ({} {})", k.id, k.role, k.name))?;
        }
        Ctl::Erase { contact } => {
            let r = c.admin.erase_contact(pb::EraseContactRequest { contact_id: contact.clone() }).await?.into_inner();
            p.print(&r, |r| {
                format!(
                    "erased contact {contact}: {} interactions and {} messages in the CRM store; {} interactions' \
                     copies in Switchboard ({} were still open and ended)",
                    r.interactions, r.messages_erased, r.copies_erased, r.ended
                )
            })?;
        }
        Ctl::PutAgent { id, name, skills, token } => {
            let agent = pb::Agent { id, name, skills: pairs("skill", &skills)?, token, ..Default::default() };
            let a = c.admin.put_agent(pb::PutAgentRequest { agent: Some(agent), allow_update: true }).await?;
            p.print(&a.into_inner(), |a| view::agent_configs(std::slice::from_ref(a)).render())?;
        }
        Ctl::PutQueue { name, skills, priority, wrap_up_secs, calendar, closed } => {
            let requirements = pairs("skill", &skills)?
                .into_iter()
                .map(|(skill, min_level)| pb::SkillRequirement { skill, min_level })
                .collect();
            let closed = closed.iter().map(|r| closed_rule(r)).collect::<anyhow::Result<_>>()?;
            let queue =
                pb::Queue { name, requirements, priority, wrap_up_secs, calendar, closed, ..Default::default() };
            let q = c.admin.put_queue(pb::PutQueueRequest { queue: Some(queue), allow_update: true }).await?;
            p.print(&q.into_inner(), |q| view::queues(std::slice::from_ref(q), &HashMap::new()).render())?;
        }
        Ctl::Queues => {
            let qs = c.admin.list_queues(pb::ListQueuesRequest {}).await?.into_inner();
            // Open or closed now, for people; scripts read the calendar's name and ask themselves.
            let mut hours = HashMap::new();
            if p.output == Output::Table {
                for q in qs.queues.iter().filter(|q| !q.calendar.is_empty()) {
                    let r = pb::ListOpeningsRequest { queue: q.name.clone(), days: 1, from: None };
                    if let Ok(r) = c.sup.list_openings(r).await {
                        hours.insert(q.name.clone(), r.into_inner());
                    }
                }
            }
            p.print(&qs, |r| {
                if r.queues.is_empty() { "no queues".into() } else { view::queues(&r.queues, &hours).render() }
            })?;
        }
        Ctl::Calendar { queue, days, from } => {
            let from = from.map(|f| calendar::parse_from(&f, &chrono::Local)).transpose()?;
            let r = pb::ListOpeningsRequest { queue: queue.clone(), days, from };
            let r = c.sup.list_openings(r).await?.into_inner();
            p.print(&r, |r| calendar::openings(&queue, r, days, &chrono::Local))?;
        }
        Ctl::Calendars => {
            let r = c.admin.list_calendars(pb::ListCalendarsRequest {}).await?.into_inner();
            p.print(&r, |r| {
                if r.calendars.is_empty() { "no calendars".into() } else { calendar::calendars(&r.calendars).render() }
            })?;
        }
        Ctl::PutCalendar { file } => {
            let cal = calendar::read_file(&file)?;
            let r = pb::PutCalendarRequest { calendar: Some(cal), allow_update: true };
            let cal = c.admin.put_calendar(r).await?.into_inner();
            p.print(&cal, |c| calendar::calendars(std::slice::from_ref(c)).render())?;
        }
        Ctl::Create { queue, channel: ch, customer, subject, body } => {
            let r = pb::CreateInteractionRequest {
                channel: channel(&ch)? as i32,
                customer_address: customer,
                subject,
                queue,
                body,
                ..Default::default()
            };
            let ix = c.ixs.create_interaction(r).await?.into_inner();
            p.print(&ix, |ix| view::interaction_line("created ", ix))?;
        }
        Ctl::Say { interaction, body } => {
            let r = pb::AppendMessageRequest { interaction_id: interaction.clone(), body, ..Default::default() };
            let m = c.ixs.append_message(r).await?.into_inner();
            p.print(&m, |m| format!("message {} of {interaction}", m.seq))?;
        }
        Ctl::Show { interaction } => {
            let r = pb::GetInteractionRequest { interaction_id: interaction, include_messages: true };
            let ix = c.ixs.get_interaction(r).await?.into_inner();
            p.print(&ix, |ix| view::interaction(ix, now()))?;
        }
        Ctl::Explain { what: crate::Explain::Interaction, id } => {
            let r = pb::ExplainInteractionRequest { interaction_id: id };
            let e = c.sup.explain_interaction(r).await?.into_inner();
            p.print(&e, crate::explain::interaction_explanation)?;
        }
        Ctl::Explain { what: crate::Explain::Agent, id } => {
            let e = c.sup.explain_agent(pb::ExplainAgentRequest { agent_id: id }).await?.into_inner();
            p.print(&e, crate::explain::agent_explanation)?;
        }
        Ctl::Waiting { queue } => {
            let w = c.sup.list_waiting(pb::ListWaitingRequest { queue, limit: 100 }).await?.into_inner();
            p.print(&w, |w| {
                if w.interactions.is_empty() {
                    "nothing waiting".into()
                } else {
                    view::waiting(&w.interactions, now()).render()
                }
            })?;
        }
        Ctl::Move { interaction, queue, clear_exclusions } => {
            let r = pb::MoveInteractionRequest { interaction_id: interaction, queue, clear_exclusions };
            let ix = c.sup.move_interaction(r).await?.into_inner();
            p.print(&ix, |ix| view::interaction_line("", ix))?;
        }
        Ctl::Agents => {
            let r = c.sup.list_agent_states(pb::ListAgentStatesRequest {}).await?.into_inner();
            p.print(&r, |r| {
                if r.agents.is_empty() { "no agents".into() } else { view::agents(&r.agents, now()).render() }
            })?;
        }
        Ctl::Watch { queues } => {
            let s = c.sup.watch(pb::WatchRequest { queues, include_agents: true }).await?.into_inner();
            watch::watch(s, p.output, live, p.out).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_words() {
        let e = explain(tonic::Status::not_found("interaction_id: no interaction \"x\""));
        assert_eq!(e.to_string(), "not found: interaction_id: no interaction \"x\"");
        assert_eq!(code_words(tonic::Code::FailedPrecondition), "failed precondition");
        assert_eq!(explain(tonic::Status::permission_denied("admins only")).to_string(), "not allowed: admins only");
    }

    #[test]
    fn closed_rules_are_written_channel_equals_action() {
        let r = closed_rule("voice=overflow:night").unwrap();
        assert_eq!(
            (r.channel(), r.action(), r.overflow_queue.as_str()),
            (pb::Channel::Voice, pb::ClosedAction::Overflow, "night")
        );
        let r = closed_rule("all=hold").unwrap();
        assert_eq!((r.channel(), r.action()), (pb::Channel::Unspecified, pb::ClosedAction::Hold));
        assert_eq!(closed_rule("chat=refuse").unwrap().action(), pb::ClosedAction::Refuse);
        for bad in ["voice", "fax=hold", "chat=wait", "chat=hold:x", "chat=overflow"] {
            let e = closed_rule(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--closed {bad:?}")), "{e}");
        }
    }
}
