//! Which conversation a message belongs to, and how our replies keep a thread together. Pure.
//!
//! A reply finds its conversation through In-Reply-To/References (each Message-ID we sent or
//! received is remembered with its interaction and customer) or, for clients that drop those
//! headers, through the `[#SB-XXXXXXXX]` token we put in every subject. A match counts only when
//! the sender is the conversation's customer: two people answering the same newsletter or quoting
//! the same thread never end up in one interaction.

use sha2::{Digest, Sha256};

/// Longest Message-ID we keep (RFC 5322 sets no limit; 250 is far beyond any real one).
pub const MAX_MESSAGE_ID_LEN: usize = 250;
const TOKEN_LEN: usize = 8;
const TOKEN_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// `<id@host>` or `id@host` → `id@host`; None for an empty or implausible id.
pub fn normalize_message_id(s: &str) -> Option<String> {
    let t = s.trim().trim_start_matches('<').trim_end_matches('>').trim();
    if t.is_empty()
        || t.len() > MAX_MESSAGE_ID_LEN
        || t.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return None;
    }
    Some(t.to_string())
}

/// The subject token of an interaction: short, stable, unambiguous to read aloud.
pub fn token_for(interaction_id: &str) -> String {
    let d = Sha256::digest(interaction_id.as_bytes());
    let mut out = String::from("SB-");
    for b in d.iter().take(TOKEN_LEN) {
        out.push(TOKEN_ALPHABET[(*b & 31) as usize] as char);
    }
    out
}

/// Finds `[#SB-XXXXXXXX]` in a subject (any case).
pub fn extract_token(subject: &str) -> Option<String> {
    let upper = subject.to_ascii_uppercase();
    let mut rest = upper.as_str();
    while let Some(i) = rest.find("[#SB-") {
        let cand = &rest[i + 2..];
        // Not `?`: a cut through a character here is no token, but one may still follow.
        if let Some(body) = cand.get(3..3 + TOKEN_LEN)
            && body.bytes().all(|b| TOKEN_ALPHABET.contains(&b))
            && cand.as_bytes().get(3 + TOKEN_LEN) == Some(&b']')
        {
            return Some(format!("SB-{body}"));
        }
        rest = &rest[i + 5..];
    }
    None
}

/// `Re: <subject without reply prefixes> [#SB-...]`.
pub fn reply_subject(original: &str, token: &str) -> String {
    let mut s = original.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        let cut = ["re:", "aw:", "sv:", "fw:", "fwd:", "wg:", "tr:", "antw:"].iter().find(|p| lower.starts_with(*p));
        match cut {
            Some(p) => s = s[p.len()..].trim_start(),
            None => break,
        }
    }
    let tag = format!("[#{token}]");
    let base = if s.is_empty() { "Your message" } else { s };
    if extract_token(base).as_deref() == Some(token) { format!("Re: {base}") } else { format!("Re: {base} {tag}") }
}

/// Message-ID of the agent reply `seq` of an interaction: the same on every attempt, so a retry
/// after an ambiguous failure is recognisably the same message.
pub fn our_message_id(interaction_id: &str, seq: u64, domain: &str) -> String {
    format!("sb.{interaction_id}.{seq}@{domain}")
}

/// Marks a customer address that the sender's MTA did not authenticate. The marked address is
/// the interaction's customer and the conversation's owner, so such mail only ever threads with
/// mail equally unverified, and a CRM never takes it for the customer's own address (with the
/// space it is no valid address): no contact, no history shown.
pub const UNVERIFIED_SUFFIX: &str = " (unverified)";

pub fn unverified_identity(address: &str) -> String {
    format!("{address}{UNVERIFIED_SUFFIX}")
}

/// Where replies to a conversation's customer go: the address without the unverified mark.
pub fn reply_address(customer: &str) -> &str {
    customer.strip_suffix(UNVERIFIED_SUFFIX).unwrap_or(customer)
}

/// What we know about a conversation a message points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub interaction_id: String,
    pub customer: String,
    pub state: CandidateState,
    /// Agent who last held it.
    pub agent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateState {
    /// Queued, offered, active or in wrap-up: the message joins it.
    Open,
    /// Completed or abandoned at this time (ms).
    Ended(u64),
    /// Expired from Redis.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Append to this open interaction.
    Append(String),
    /// New interaction following up `previous`, waiting first for `agent` (may be empty).
    FollowUp { previous: String, agent: String },
    /// A conversation of its own.
    New,
}

/// Candidates come in order of confidence (In-Reply-To, References newest first, subject token).
pub fn decide(sender: &str, candidates: &[Candidate], now_ms: u64, window_ms: u64) -> Decision {
    let mine = candidates.iter().filter(|c| c.customer.eq_ignore_ascii_case(sender));
    let mut best_ended: Option<&Candidate> = None;
    for c in mine {
        match c.state {
            CandidateState::Open => return Decision::Append(c.interaction_id.clone()),
            CandidateState::Ended(at) if now_ms.saturating_sub(at) <= window_ms && best_ended.is_none() => {
                best_ended = Some(c);
            }
            _ => {}
        }
    }
    match best_ended {
        Some(c) => Decision::FollowUp { previous: c.interaction_id.clone(), agent: c.agent.clone() },
        None => Decision::New,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids() {
        assert_eq!(normalize_message_id(" <a.b@c> ").as_deref(), Some("a.b@c"));
        assert_eq!(normalize_message_id("a@c").as_deref(), Some("a@c"));
        assert_eq!(normalize_message_id("<>"), None);
        assert_eq!(normalize_message_id("<a b@c>"), None);
        assert_eq!(normalize_message_id(&"x".repeat(300)), None);
    }

    #[test]
    fn tokens_round_trip_through_subjects() {
        let t = token_for("0195f0e2-7c1a-7000-8000-000000000001");
        assert_eq!(t.len(), 11);
        assert_ne!(t, token_for("0195f0e2-7c1a-7000-8000-000000000002"));
        let s = reply_subject("Invoice wrong", &t);
        assert_eq!(s, format!("Re: Invoice wrong [#{t}]"));
        assert_eq!(extract_token(&s), Some(t.clone()));
        assert_eq!(extract_token(&format!("AW: RE: re: invoice [#{}]", t.to_lowercase())), Some(t.clone()));
        // Replying to our reply keeps one token and one "Re:".
        assert_eq!(reply_subject(&format!("RE: Re: Invoice wrong [#{t}]"), &t), s);
        assert_eq!(extract_token("no token [#SB-12]"), None);
        assert_eq!(extract_token("[#SB-"), None);
        assert_eq!(reply_subject("", &t), format!("Re: Your message [#{t}]"));
    }

    #[test]
    fn unverified_addresses_reply_to_the_address() {
        let u = unverified_identity("a@x.test");
        assert_eq!(u, "a@x.test (unverified)");
        assert_eq!(reply_address(&u), "a@x.test");
        assert_eq!(reply_address("a@x.test"), "a@x.test");
    }

    fn cand(id: &str, cust: &str, state: CandidateState) -> Candidate {
        Candidate { interaction_id: id.into(), customer: cust.into(), state, agent: "ann".into() }
    }

    #[test]
    fn decisions() {
        use CandidateState::*;
        let hour = 3_600_000;
        let now = 100 * hour;
        let table: Vec<(&str, Vec<Candidate>, Decision)> = vec![
            ("a@x", vec![], Decision::New),
            ("a@x", vec![cand("1", "a@x", Open)], Decision::Append("1".into())),
            ("A@X", vec![cand("1", "a@x", Open)], Decision::Append("1".into())),
            // A different customer replying to the same thread (a newsletter) never joins it.
            ("b@x", vec![cand("1", "a@x", Open)], Decision::New),
            (
                "a@x",
                vec![cand("1", "a@x", Ended(now - hour))],
                Decision::FollowUp { previous: "1".into(), agent: "ann".into() },
            ),
            ("a@x", vec![cand("1", "a@x", Ended(now - 80 * hour))], Decision::New),
            ("a@x", vec![cand("1", "a@x", Gone)], Decision::New),
            // An unverified sender is another customer than the verified one, both ways.
            ("a@x (unverified)", vec![cand("1", "a@x", Open)], Decision::New),
            ("a@x (unverified)", vec![cand("1", "a@x", Ended(now - hour))], Decision::New),
            ("a@x", vec![cand("1", "a@x (unverified)", Open)], Decision::New),
            ("a@x (unverified)", vec![cand("1", "a@x (unverified)", Open)], Decision::Append("1".into())),
            // An open one wins over a recently ended one.
            ("a@x", vec![cand("1", "a@x", Ended(now - hour)), cand("2", "a@x", Open)], Decision::Append("2".into())),
        ];
        for (sender, cands, want) in table {
            assert_eq!(decide(sender, &cands, now, 72 * hour), want, "{sender} {cands:?}");
        }
    }
}
