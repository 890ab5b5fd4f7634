//! Every Redis key format, in one place.
//!
//! All keys of a routing domain share the root `<prefix>:{<domain>}:`. The braces are a Redis
//! Cluster hash tag: one domain lives in one slot, so every Lua function can touch any key of its
//! domain atomically, and many domains spread over a cluster.
//!
//! The Lua functions do not spell key formats themselves: [`lua_prelude`] generates a `K` table of
//! key builders from [`FORMATS`], so Rust and Lua cannot drift apart.

/// (name, format). `{}` placeholders are filled in order.
pub const FORMATS: &[(&str, &str)] = &[
    // String: test clock offset in ms added to Redis TIME (0 in production), or '=<ms>': a clock
    // stopped at that time (the simulator's).
    ("clock", "clock_offset"),
    // Hash: queues_ver, agents_ver — bumped by admin changes, checked by admin functions;
    // calendars_ver — bumped by calendar changes, read by every instance's opening-hours watch.
    ("meta", "meta"),
    // Set of agent ids.
    ("agents", "agents"),
    // Hash: an agent's spec, presence, per-channel capacity and load, session.
    ("agent", "agent:{}"),
    // Hash: pool -> skill score, the pools (queue stage) the agent is eligible for.
    ("agent_pools", "agent:{}:pools"),
    // Set: interactions offered to or held by the agent.
    ("agent_work", "agent:{}:work"),
    // Zset: interactions waiting for this agent in particular (transfer, sticky), by wait score.
    ("await", "agent:{}:await"),
    // Set of queue names.
    ("queues", "queues"),
    // Hash: queue configuration as the functions use it, plus the spec as JSON; `cal` its calendar,
    // `crules` its closed rule per channel (JSON), `closed` '1' while closed and `opens` when it
    // next opens (ms; set_open).
    ("queue", "queue:{}"),
    // Hash: calendar name -> its spec as JSON (opening hours; a queue's `cal` names one).
    ("calendars", "calendars"),
    // Hash: queue name -> "<strategy>|<channels csv>", then "|1" while the queue is closed: what
    // routing needs of every queue an agent serves, in one HMGET (kept by put_queue, delete_queue
    // and set_open).
    ("qroute", "qroute"),
    // Set: agents eligible for a pool ("<queue>#<stage>").
    ("pool_agents", "pool:{}:agents"),
    // Zset: agents that can take an offer now, by the queue strategy's score.
    ("avail", "avail:{}:{}"),
    // Zset: interactions waiting in a pool on a channel, by wait score (priority, then age).
    ("wait", "wait:{}:{}"),
    // Zset: every interaction waiting in a queue, by original enqueue time.
    ("qwait", "qwait:{}"),
    // Set: interactions of a queue that have not ended and are not waiting (offered, active,
    // wrap-up). With `qwait` it makes the queue's live interactions: each is in exactly one of them,
    // so a waiting interaction pays for one queue index entry, not two.
    ("qlive", "qlive:{}"),
    // Hash: an interaction.
    ("ix", "ix:{}"),
    // Set: agents that must not be offered this interaction again.
    ("ix_excl", "ix:{}:excl"),
    // List of JSON messages.
    ("ix_msgs", "ix:{}:msgs"),
    // String: idempotency key -> interaction id.
    ("idem", "idem:{}"),
    // Zset: timers by due time (ms). Members: "offer|<ix>|<seq>", "esc|<ix>|<qseq>|<step>",
    // "wrap|<ix>", "xfer|<ix>|<tseq>", "grace|<agent>|<session>", "inst|<instance>".
    ("timers", "timers"),
    // String: routing-clock time of the latest heartbeat of any instance (or of an outage noticed).
    ("beat", "beat"),
    // String: until when (ms) instances' leases and offers that come due are not held against
    // anyone: set when no instance could heartbeat for a whole grace period (Redis was out of
    // reach), so that an outage is not taken for every instance's death.
    ("amnesty", "amnesty"),
    // Stream: every state change (the interaction log outbox).
    ("events", "events"),
    // Stream: events the CRM refused as invalid, with its reason (parked so the log moves on).
    ("events_dead", "events_dead"),
    // String: the instance currently delivering the event log to the CRM (a lease with a TTL).
    ("outbox_lease", "outbox_lease"),
    // String: version of a customer's CRM data ("<channel>|<address>"), bumped when the CRM has
    // acknowledged new events for them; screen-pop caches compare it.
    ("popv", "popv:{}"),
    // Stream: pushes for the agent streams held by one instance.
    ("inbox", "inbox:{}"),
    // Set: agents whose desktop stream an instance holds.
    ("inst_agents", "inst:{}:agents"),
    // String: per-queue figures for one minute, a signed 64-bit counter per figure (BITFIELD; the
    // slots are figures.rs's FIGURES).
    ("figs", "figs:{}:{}"),
    // Hash: per-queue figures for one minute, as versions before `figs` wrote them (read with
    // `figs` until they expire).
    ("fig", "fig:{}:{}"),
    // Hash: a web chat session, by the SHA-256 (hex) of its token: ix, visitor, created_ms.
    // The token itself is never stored.
    ("chat", "chat:{}"),
    // Zset: web chats not yet ended, by when a visitor was last connected (ms). A chat whose
    // visitor stays away longer than the resume window is withdrawn.
    ("chat_live", "chat_live"),
    // Stream: short-lived signals for web chat visitors (agent typing), capped.
    ("chat_signals", "chat_signals"),
    // Email channel (src/channels/email). Message-IDs are hashed (32 hex) before they go into a key.
    // Hash: per mailbox, `uidvalidity` and `last_uid` — the IMAP position processed so far.
    ("email_cursor", "email:cursor:{}"),
    // String: the instance reading a mailbox (a lease with a TTL), so one instance reads it at a time.
    ("email_lease", "email:lease:{}"),
    // String: dedupe key of a processed message -> interaction id ("-" when set aside).
    ("email_seen", "email:seen:{}"),
    // Hash: a Message-ID we sent or received (hashed) -> `ix`, `cust` (the conversation's customer).
    ("email_ref", "email:ref:{}"),
    // String: subject token ("SB-XXXXXXXX") -> interaction id.
    ("email_token", "email:token:{}"),
    // Hash: an email interaction's thread: mailbox, cust, subject, token, last_in, refs (JSON).
    ("email_conv", "email:conv:{}"),
    // Hash: an agent reply by our Message-ID (hashed): state pending|sent|failed, ix, seq, attempts.
    ("email_out", "email:out:{}"),
    // Zset: our Message-IDs of replies awaiting a background retry, by next attempt time (ms).
    ("email_retry", "email:retry"),
    // SMS channel (src/channels/sms). A conversation is "<our number>|<customer number>".
    // String: a conversation -> its latest interaction id.
    ("sms_conv", "sms:conv:{}"),
    // String: who is processing a conversation's inbound text (a short lock), so two texts of one
    // customer arriving together do not start two interactions.
    ("sms_lock", "sms:lock:{}"),
    // Hash: an agent reply by its reply key ("<ix>|<seq>"): state, gateway, attempts, from, to,
    // segments, and per provider message id `p:<id>` its part's delivery state.
    ("sms_out", "sms:out:{}"),
    // String: "<gateway>|<provider message id>" -> reply key (status callbacks, SMPP receipts).
    ("sms_pid", "sms:pid:{}"),
    // Hash: reports (state -> code) that came for "<gateway>|<provider id>" before the reply's
    // record named that id (a provider answering faster than we recorded its answer); short TTL.
    ("sms_early", "sms:early:{}"),
    // Hash: parts of a concatenated inbound text so far, by index.
    ("sms_parts", "sms:parts:{}"),
    // String: present while a customer has opted out of texts from one of our numbers.
    ("sms_optout", "sms:optout:{}"),
    // String: an SMPP customer text's content hash -> the id its first copy got (a short TTL), so
    // an SMSC's redelivery is the same text (SMPP 3.4 gives customer texts no id).
    ("sms_mo", "sms:mo:{}"),
    // Zset: reply keys awaiting a retry, by next attempt time (ms).
    ("sms_retry", "sms:retry"),
    // String: the instance holding an SMPP bind (a lease with a TTL).
    ("smpp_lease", "smpp:lease:{}"),
    ("api_keys", "api_keys"),
    // String: the instance bridging a SIP node (Kamailio's evapi socket), a lease with a TTL.
    ("sip_lease", "sip:lease:{}"),
    // Hash: device (an agent's phone as the telephony system names it) -> agent id.
    ("devices", "devices"),
    // String: the agent who last talked to a caller ("<channel>|<normalized address>"), for a
    // while (sticky routing of repeat callers).
    ("last_agent", "last_agent:{}"),
    // String: a CTI event id already applied -> '1' (with a TTL), so a repeated event counts once.
    ("cti_event", "cti:ev:{}"),
    ("rate", "rate:{}:{}:{}"),
];

/// Key builders rooted at one routing domain.
#[derive(Debug, Clone)]
pub struct Keys {
    root: String,
}

impl Keys {
    pub fn new(root: impl Into<String>) -> Self {
        Keys { root: root.into() }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    fn fmt(&self, name: &str, args: &[&str]) -> String {
        let (_, f) = FORMATS.iter().find(|(n, _)| *n == name).expect("unknown key format");
        let mut out = self.root.clone();
        let mut args = args.iter();
        let mut parts = f.split("{}");
        out.push_str(parts.next().unwrap_or_default());
        for p in parts {
            out.push_str(args.next().expect("missing key argument"));
            out.push_str(p);
        }
        out
    }

    pub fn clock(&self) -> String {
        self.fmt("clock", &[])
    }
    pub fn meta(&self) -> String {
        self.fmt("meta", &[])
    }
    /// A shared rate counter: what is counted, for whom, in which window.
    pub fn rate(&self, kind: &str, subject: &str, window: u64) -> String {
        self.fmt("rate", &[kind, subject, &window.to_string()])
    }
    /// Runtime API keys: id → record (JSON with the key's hash, never the key).
    pub fn api_keys(&self) -> String {
        self.fmt("api_keys", &[])
    }
    pub fn agents(&self) -> String {
        self.fmt("agents", &[])
    }
    pub fn agent(&self, id: &str) -> String {
        self.fmt("agent", &[id])
    }
    pub fn agent_pools(&self, id: &str) -> String {
        self.fmt("agent_pools", &[id])
    }
    pub fn agent_work(&self, id: &str) -> String {
        self.fmt("agent_work", &[id])
    }
    pub fn await_agent(&self, id: &str) -> String {
        self.fmt("await", &[id])
    }
    pub fn queues(&self) -> String {
        self.fmt("queues", &[])
    }
    pub fn queue(&self, name: &str) -> String {
        self.fmt("queue", &[name])
    }
    pub fn calendars(&self) -> String {
        self.fmt("calendars", &[])
    }
    pub fn pool_agents(&self, pool: &str) -> String {
        self.fmt("pool_agents", &[pool])
    }
    pub fn avail(&self, pool: &str, channel: &str) -> String {
        self.fmt("avail", &[pool, channel])
    }
    pub fn wait(&self, pool: &str, channel: &str) -> String {
        self.fmt("wait", &[pool, channel])
    }
    pub fn qwait(&self, queue: &str) -> String {
        self.fmt("qwait", &[queue])
    }
    pub fn qlive(&self, queue: &str) -> String {
        self.fmt("qlive", &[queue])
    }
    pub fn ix(&self, id: &str) -> String {
        self.fmt("ix", &[id])
    }
    pub fn ix_msgs(&self, id: &str) -> String {
        self.fmt("ix_msgs", &[id])
    }
    pub fn ix_excl(&self, id: &str) -> String {
        self.fmt("ix_excl", &[id])
    }
    pub fn timers(&self) -> String {
        self.fmt("timers", &[])
    }
    pub fn events(&self) -> String {
        self.fmt("events", &[])
    }
    pub fn beat(&self) -> String {
        self.fmt("beat", &[])
    }
    pub fn amnesty(&self) -> String {
        self.fmt("amnesty", &[])
    }
    pub fn events_dead(&self) -> String {
        self.fmt("events_dead", &[])
    }
    pub fn outbox_lease(&self) -> String {
        self.fmt("outbox_lease", &[])
    }
    pub fn popv(&self, customer: &str) -> String {
        self.fmt("popv", &[customer])
    }
    pub fn inbox(&self, instance: &str) -> String {
        self.fmt("inbox", &[instance])
    }
    pub fn fig(&self, queue: &str, minute: u64) -> String {
        self.fmt("fig", &[queue, &minute.to_string()])
    }
    pub fn figs(&self, queue: &str, minute: u64) -> String {
        self.fmt("figs", &[queue, &minute.to_string()])
    }
    pub fn chat(&self, token_hash: &str) -> String {
        self.fmt("chat", &[token_hash])
    }
    pub fn chat_live(&self) -> String {
        self.fmt("chat_live", &[])
    }
    pub fn chat_signals(&self) -> String {
        self.fmt("chat_signals", &[])
    }
    pub fn email_cursor(&self, mailbox: &str) -> String {
        self.fmt("email_cursor", &[mailbox])
    }
    pub fn email_lease(&self, mailbox: &str) -> String {
        self.fmt("email_lease", &[mailbox])
    }
    pub fn email_seen(&self, dedupe_key: &str) -> String {
        self.fmt("email_seen", &[dedupe_key])
    }
    pub fn email_ref(&self, message_id_hash: &str) -> String {
        self.fmt("email_ref", &[message_id_hash])
    }
    pub fn email_token(&self, token: &str) -> String {
        self.fmt("email_token", &[token])
    }
    pub fn email_conv(&self, interaction_id: &str) -> String {
        self.fmt("email_conv", &[interaction_id])
    }
    pub fn email_out(&self, message_id_hash: &str) -> String {
        self.fmt("email_out", &[message_id_hash])
    }
    pub fn email_retry(&self) -> String {
        self.fmt("email_retry", &[])
    }
    pub fn idem(&self, key: &str) -> String {
        self.fmt("idem", &[key])
    }
    pub fn last_agent(&self, customer: &str) -> String {
        self.fmt("last_agent", &[customer])
    }
    pub fn sms_conv(&self, conversation: &str) -> String {
        self.fmt("sms_conv", &[conversation])
    }
    pub fn sms_lock(&self, conversation: &str) -> String {
        self.fmt("sms_lock", &[conversation])
    }
    pub fn sms_out(&self, reply_key: &str) -> String {
        self.fmt("sms_out", &[reply_key])
    }
    pub fn sms_pid(&self, gateway_and_id: &str) -> String {
        self.fmt("sms_pid", &[gateway_and_id])
    }
    pub fn sms_early(&self, gateway_and_id: &str) -> String {
        self.fmt("sms_early", &[gateway_and_id])
    }
    pub fn sms_parts(&self, key: &str) -> String {
        self.fmt("sms_parts", &[key])
    }
    pub fn sms_optout(&self, conversation: &str) -> String {
        self.fmt("sms_optout", &[conversation])
    }
    pub fn sms_mo(&self, content_hash: &str) -> String {
        self.fmt("sms_mo", &[content_hash])
    }
    pub fn sms_retry(&self) -> String {
        self.fmt("sms_retry", &[])
    }
    pub fn smpp_lease(&self, bind: &str) -> String {
        self.fmt("smpp_lease", &[bind])
    }
    pub fn sip_lease(&self, node: &str) -> String {
        self.fmt("sip_lease", &[node])
    }
    pub fn devices(&self) -> String {
        self.fmt("devices", &[])
    }
    pub fn cti_event(&self, event_id: &str) -> String {
        self.fmt("cti_event", &[event_id])
    }
}

/// Pool id: a queue at one escalation stage.
pub use switchboard_model::routing::pool;

/// Lua source defining `K.<name>(...)` for every format, rooted at `root`.
pub fn lua_prelude(root: &str) -> String {
    let mut s = format!("local ROOT = {}\nlocal K = {{}}\n", lua_string(root));
    for (name, f) in FORMATS {
        let n = f.matches("{}").count();
        let params: Vec<String> = (1..=n).map(|i| format!("a{i}")).collect();
        let mut expr = String::from("ROOT");
        let mut parts = f.split("{}");
        let first = parts.next().unwrap_or_default();
        if !first.is_empty() {
            expr.push_str(&format!(" .. {}", lua_string(first)));
        }
        for (i, p) in parts.enumerate() {
            expr.push_str(&format!(" .. a{}", i + 1));
            if !p.is_empty() {
                expr.push_str(&format!(" .. {}", lua_string(p)));
            }
        }
        s.push_str(&format!("K.{name} = function({}) return {expr} end\n", params.join(", ")));
    }
    s
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_keys_follow_formats() {
        let k = Keys::new("sb:{default}:");
        assert_eq!(k.agent("a1"), "sb:{default}:agent:a1");
        assert_eq!(k.avail("sales#0", "chat"), "sb:{default}:avail:sales#0:chat");
        assert_eq!(k.fig("sales", 7), "sb:{default}:fig:sales:7");
        assert_eq!(k.timers(), "sb:{default}:timers");
    }

    #[test]
    fn lua_prelude_defines_every_format() {
        let p = lua_prelude("sb:{x}:");
        for (name, _) in FORMATS {
            assert!(p.contains(&format!("K.{name} = function(")), "{name}");
        }
        assert!(p.contains("K.avail = function(a1, a2) return ROOT .. \"avail:\" .. a1 .. \":\" .. a2 end"));
        assert!(p.contains("K.timers = function() return ROOT .. \"timers\" end"));
    }
}
