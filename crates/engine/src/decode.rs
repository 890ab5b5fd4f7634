//! Interactions and messages as Redis holds them (hashes, JSON messages, a function's `ok_ix`
//! reply, a push's carried copy), read into domain types: the one place that knows their fields.

use std::collections::{BTreeMap, HashMap};

use switchboard_model::{Author, Channel, Interaction, InteractionState, Message};

use crate::{EngineError, Result};

pub(crate) fn parse_u64(v: Option<&String>) -> Result<u64> {
    v.and_then(|s| s.parse().ok()).ok_or_else(|| EngineError::Corrupt(format!("expected a number, got {v:?}")))
}

pub(crate) fn num(h: &HashMap<String, String>, k: &str) -> u64 {
    h.get(k).and_then(|v| v.parse::<f64>().ok()).map(|f| f as u64).unwrap_or(0)
}

/// The interaction a push carries (`carry_ix` in lib.lua), or `None` if it does not carry all of
/// it (a thread too long to carry, or a push written without it), so the caller reads it.
pub fn interaction_from_push(v: &serde_json::Value) -> Result<Option<Interaction>> {
    let (Some(h), Some(1)) = (v.get("h").and_then(|h| h.as_array()), v.get("t").and_then(serde_json::Value::as_u64))
    else {
        return Ok(None);
    };
    let text = |x: &serde_json::Value| {
        x.as_str().map(str::to_string).ok_or_else(|| EngineError::Corrupt(format!("push: not a string: {x}")))
    };
    if h.len() % 2 != 0 {
        return Err(EngineError::Corrupt(format!("push: odd hash of {} entries", h.len())));
    }
    let id = v.get("ix").and_then(|x| x.as_str()).ok_or_else(|| EngineError::Corrupt("push: no ix".into()))?;
    let map = h.chunks(2).map(|kv| Ok((text(&kv[0])?, text(&kv[1])?))).collect::<Result<HashMap<_, _>>>()?;
    let mut ix = interaction_from_hash(id, &map)?;
    // An empty thread arrives as `{}`: Lua's cjson cannot tell an empty array from an empty object.
    if let Some(serde_json::Value::Array(msgs)) = v.get("m") {
        ix.messages = msgs.iter().map(|m| parse_message(&text(m)?)).collect::<Result<_>>()?;
    }
    Ok(Some(ix))
}

/// An interaction from a script's `ok_ix` reply (after 'ok' and any extra values): the number of
/// hash entries, the hash as field/value pairs, then the thread if asked for.
pub(crate) fn interaction_from_reply(id: &str, r: &[String], with_messages: bool) -> Result<Interaction> {
    let n: usize =
        r.first().and_then(|n| n.parse().ok()).ok_or_else(|| EngineError::Corrupt(format!("reply {r:?}")))?;
    let pairs = r.get(1..1 + n).ok_or_else(|| EngineError::Corrupt(format!("reply of {} entries", r.len())))?;
    if pairs.is_empty() {
        return Err(EngineError::NotFound("interaction_id: the interaction no longer exists".into()));
    }
    let h: HashMap<String, String> = pairs.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect();
    let mut ix = interaction_from_hash(id, &h)?;
    if with_messages {
        ix.messages = r[1 + n..].iter().map(|m| parse_message(m)).collect::<Result<_>>()?;
    }
    Ok(ix)
}

/// The hash does not hold the id: its key does.
pub(crate) fn interaction_from_hash(id: &str, h: &HashMap<String, String>) -> Result<Interaction> {
    let s = |k: &str| h.get(k).cloned().unwrap_or_default();
    let channel = Channel::parse(&s("ch")).ok_or_else(|| EngineError::Corrupt(format!("channel {:?}", s("ch"))))?;
    let state =
        InteractionState::parse(&s("state")).ok_or_else(|| EngineError::Corrupt(format!("state {:?}", s("state"))))?;
    let mut timestamps = BTreeMap::new();
    for st in InteractionState::ALL {
        let v = num(h, &format!("t_{}", st.as_str()));
        if v > 0 {
            timestamps.insert(st.as_str().to_string(), v);
        }
    }
    let attributes: BTreeMap<String, String> = serde_json::from_str(h.get("attrs").map_or("{}", |v| v.as_str()))
        .map_err(|e| EngineError::Corrupt(format!("attributes: {e}")))?;
    Ok(Interaction {
        id: id.to_string(),
        channel,
        customer_address: s("cust"),
        subject: s("subj"),
        attributes,
        queue: s("queue"),
        priority: num(h, "pri") as i32,
        state,
        agent_id: s("agent"),
        enqueued_ms: num(h, "enq"),
        timestamps,
        stage: num(h, "stage") as u32,
        disposition: s("disp"),
        notes: s("notes"),
        end_reason: s("end_reason"),
        messages: Vec::new(),
        offer_expires_ms: (state == InteractionState::Offered).then(|| num(h, "oexp")),
        offer_seq: num(h, "oseq"),
        transferred_by: s("xfrom"),
        excluded_agents: Vec::new(),
        callback: (!s("cb").is_empty()).then(|| switchboard_model::Callback {
            number: s("cb"),
            not_before_ms: num(h, "cb_nb"),
            attempts: num(h, "cb_try") as u32,
            max_attempts: num(h, "cb_max") as u32,
            connected_ms: num(h, "cb_conn"),
            call_id: s("cb_call"),
        }),
    })
}

pub(crate) fn parse_message(raw: &str) -> Result<Message> {
    #[derive(serde::Deserialize)]
    struct Raw {
        seq: u64,
        author: String,
        #[serde(default)]
        agent: String,
        body: String,
        at: f64,
        /// Delivery state (SMS replies): state, rank, code, segments.
        #[serde(default)]
        dlv: Option<RawDelivery>,
    }
    #[derive(serde::Deserialize)]
    struct RawDelivery {
        s: String,
        #[serde(default)]
        c: String,
        #[serde(default)]
        n: f64,
    }
    let r: Raw = serde_json::from_str(raw).map_err(|e| EngineError::Corrupt(format!("message: {e}")))?;
    Ok(Message {
        seq: r.seq,
        author: Author::parse(&r.author).ok_or_else(|| EngineError::Corrupt(format!("author {:?}", r.author)))?,
        agent_id: r.agent,
        body: r.body,
        sent_ms: r.at as u64,
        delivery: r.dlv.and_then(|d| {
            Some(switchboard_model::Delivery {
                state: switchboard_model::DeliveryState::parse(&d.s)?,
                code: d.c,
                segments: d.n as u32,
            })
        }),
    })
}

/// The decisions an interaction keeps (`dec`, JSON as the routing functions write it); garbage
/// reads as none rather than failing the caller.
pub(crate) fn decisions(s: &str) -> Vec<switchboard_model::explain::Decision> {
    if s.is_empty() {
        return Vec::new();
    }
    // One JSON object a line (lib.lua's kept_decisions); earlier versions kept one JSON list.
    if s.starts_with('[') {
        #[derive(serde::Deserialize)]
        struct Kept(
            #[serde(deserialize_with = "switchboard_model::explain::lua_list")]
            Vec<switchboard_model::explain::Decision>,
        );
        return serde_json::from_str::<Kept>(s).map(|k| k.0).unwrap_or_default();
    }
    s.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[cfg(test)]
mod decision_tests {
    use switchboard_model::explain::Via;

    #[test]
    fn decisions_read_as_lua_writes_them() {
        let d = super::decisions(
            r#"[{"via":"queue","pool":"sales#0","strategy":"most_skilled","skill":7,"idle_since":1000,"considered":2,"eligible":3,"at":5,"passed":[{"agent":"bob","why":"excluded"}]},{"via":"named","at":9}]"#,
        );
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].via, d[0].skill, d[0].eligible), (Via::Queue, Some(7), Some(3)));
        assert_eq!(d[0].passed[0].agent.as_deref(), Some("bob"));
        assert_eq!((d[1].via, d[1].passed.len()), (Via::Named, 0));
        assert!(super::decisions("{}").is_empty());
        assert!(super::decisions("not json").is_empty());
        let d = super::decisions(r#"[{"via":"pull","at":1,"passed":{}}]"#);
        assert!(d[0].passed.is_empty());
    }

    #[test]
    fn decisions_read_one_a_line() {
        let d = super::decisions(
            "{\"via\":\"queue\",\"pool\":\"sales#0\",\"at\":5,\"passed\":[{\"agent\":\"bob\",\"why\":\"excluded\"}]}\n{\"via\":\"pull\",\"at\":9,\"passed\":{}}",
        );
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].via, d[0].at, d[0].passed[0].agent.as_deref()), (Via::Queue, 5, Some("bob")));
        assert_eq!((d[1].via, d[1].at, d[1].passed.len()), (Via::Pull, 9, 0));
        assert!(super::decisions("{}").is_empty());
    }
}
