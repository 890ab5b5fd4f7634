//! A queue's figures over the rolling window, as supervisors' dashboards show them.

use std::collections::{BTreeMap, HashMap};

use switchboard_model::{Channel, Presence};

use crate::{Engine, EngineError, Result, keys};

#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigures {
    pub queue: String,
    pub waiting: u32,
    pub longest_wait_ms: u64,
    pub offered: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub missed: u64,
    pub abandoned: u64,
    pub service_level_percent: Option<f64>,
    pub average_speed_of_answer_secs: f64,
    pub average_handle_time_secs: f64,
    pub window_secs: u32,
    pub agents_by_presence: BTreeMap<String, u32>,
    pub occupancy_percent: f64,
    pub at_ms: u64,
    /// Whether the queue's calendar is open at `at_ms`; `None` without a calendar (always open).
    pub open: Option<bool>,
    /// When it next opens or closes; `None` without a calendar or when it never does.
    pub next_change_ms: Option<u64>,
    /// Callbacks over the window: asked for (a caller's or an IVR's), reached the customer,
    /// gave up after their last attempt.
    pub callbacks_requested: u64,
    pub callbacks_connected: u64,
    pub callbacks_failed: u64,
}

/// The counters of a queue's minute (`figs`), in slot order: slot n is the big-endian i64 at byte
/// 8n, written by the routing functions' BITFIELD (lib.lua's fig_incr; the prelude's `FIG` gives
/// them the slots). Slot 0 counts the writes. New figures go at the end: a slot never moves.
pub(crate) const FIGURES: [&str; 16] = [
    "writes",
    "offered",
    "accepted",
    "asa_ms",
    "in_sl",
    "handled",
    "handle_ms",
    "missed",
    "rejected",
    "abandoned",
    "closed",
    "to_callback",
    "transferred",
    "cb_requested",
    "cb_connected",
    "cb_failed",
];

/// Adds to `pipe` the reads of a queue's figures over the `minutes` up to `this_minute`: per
/// minute its counters (`figs`) and the hash earlier builds kept (`fig`). [`sum_minutes`] adds
/// them up.
pub(crate) fn read_minutes(pipe: &mut redis::Pipeline, keys: &keys::Keys, queue: &str, this_minute: u64, minutes: u64) {
    for m in 0..minutes {
        pipe.get(keys.figs(queue, this_minute - m)).hgetall(keys.fig(queue, this_minute - m));
    }
}

/// Each figure's sum over what [`read_minutes`] read (two replies a minute).
pub(crate) fn sum_minutes(replies: &[redis::Value]) -> Result<HashMap<String, u64>> {
    let corrupt = |e: redis::ParsingError| EngineError::Corrupt(e.to_string());
    let mut sums: HashMap<String, u64> = HashMap::new();
    for pair in replies.chunks(2) {
        let figs: Option<Vec<u8>> = redis::from_redis_value(pair[0].clone()).map_err(corrupt)?;
        for (k, n) in slots(figs.as_deref().unwrap_or_default()) {
            *sums.entry(k.to_string()).or_default() += n.max(0) as u64;
        }
        let old: HashMap<String, u64> = redis::from_redis_value(pair[1].clone()).map_err(corrupt)?;
        for (k, n) in old {
            *sums.entry(k).or_default() += n;
        }
    }
    Ok(sums)
}

/// A `figs` string's counters by name (slots past its end are 0, as BITFIELD reads them).
fn slots(bytes: &[u8]) -> impl Iterator<Item = (&'static str, i64)> + '_ {
    FIGURES.iter().enumerate().map(|(i, name)| {
        let mut b = [0u8; 8];
        let part = bytes.get(i * 8..).unwrap_or_default();
        let n = part.len().min(8);
        b[..n].copy_from_slice(&part[..n]);
        (*name, i64::from_be_bytes(b))
    })
}

/// What a queue's figures need of its agents (presence, load, capacity), read once per agent:
/// a sampler that shows every queue shares one across them, since agents serve many queues.
#[derive(Debug, Default)]
pub struct AgentLoads(HashMap<String, Option<AgentLoad>>);

#[derive(Debug, Clone)]
struct AgentLoad {
    presence: Presence,
    load: u64,
    capacity: u64,
}

/// Agents read per round trip. Redis runs a client's pipelined commands back to back: a queue's
/// few hundred agents in one pipeline held every other client (a routing call, a RouteCall)
/// behind them for milliseconds.
const AGENTS_PER_READ: usize = 64;

/// The fields of an agent's hash the figures read: presence, then load and capacity per channel.
fn load_fields() -> Vec<String> {
    let mut f = vec!["presence".to_string()];
    for c in Channel::ALL {
        f.push(format!("load_{c}"));
    }
    for c in Channel::ALL {
        f.push(format!("cap_{c}"));
    }
    f
}

impl Engine {
    pub async fn queue_figures(&self, queue: &str) -> Result<QueueFigures> {
        self.queue_figures_with(queue, &mut AgentLoads::default()).await
    }

    /// [`Engine::queue_figures`], reading only the agents `loads` does not hold yet.
    pub async fn queue_figures_with(&self, queue: &str, loads: &mut AgentLoads) -> Result<QueueFigures> {
        let spec = self.get_queue(queue).await?;
        let calendar = self.queue_calendar(&spec).await?;
        let now = self.now_ms().await?;
        let window = self.opts.figures_window.as_secs().max(60);
        let minutes = window / 60;
        let this_minute = now / 60_000;
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        pipe.zcard(self.keys.qwait(queue));
        pipe.zrange_withscores(self.keys.qwait(queue), 0, 0);
        read_minutes(&mut pipe, &self.keys, queue, this_minute, minutes);
        let stages = spec.stage_requirements().len();
        let pools: Vec<String> = (0..stages).map(|s| self.keys.pool_agents(&keys::pool(queue, s))).collect();
        pipe.sunion(pools);
        let (head, rest): (Vec<redis::Value>, Vec<redis::Value>) = {
            let all: Vec<redis::Value> = pipe.query_async(&mut con).await?;
            let mut it = all.into_iter();
            let head: Vec<redis::Value> = it.by_ref().take(2).collect();
            (head, it.collect())
        };
        let waiting: u32 = redis::from_redis_value(head[0].clone()).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let oldest: Vec<(String, f64)> =
            redis::from_redis_value(head[1].clone()).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let sums = sum_minutes(&rest[..2 * minutes as usize])?;
        let members: Vec<String> = redis::from_redis_value(rest[2 * minutes as usize].clone())
            .map_err(|e| EngineError::Corrupt(e.to_string()))?;
        self.read_loads(&members, loads).await?;
        let get = |k: &str| sums.get(k).copied().unwrap_or(0);
        let (accepted, abandoned) = (get("accepted"), get("abandoned"));
        let mut by_presence = BTreeMap::new();
        let (mut load, mut cap) = (0u64, 0u64);
        for a in members.iter().filter_map(|id| loads.0.get(id).and_then(Option::as_ref)) {
            *by_presence.entry(a.presence.state_str().to_string()).or_insert(0) += 1;
            if a.presence != Presence::Offline {
                load += a.load;
                cap += a.capacity;
            }
        }
        Ok(QueueFigures {
            queue: queue.to_string(),
            waiting,
            longest_wait_ms: oldest.first().map(|(_, s)| now.saturating_sub(*s as u64)).unwrap_or(0),
            offered: get("offered"),
            accepted,
            rejected: get("rejected"),
            missed: get("missed"),
            abandoned,
            service_level_percent: (accepted + abandoned > 0)
                .then(|| 100.0 * get("in_sl") as f64 / (accepted + abandoned) as f64),
            average_speed_of_answer_secs: if accepted > 0 {
                get("asa_ms") as f64 / accepted as f64 / 1000.0
            } else {
                0.0
            },
            average_handle_time_secs: if get("handled") > 0 {
                get("handle_ms") as f64 / get("handled") as f64 / 1000.0
            } else {
                0.0
            },
            window_secs: window as u32,
            agents_by_presence: by_presence,
            occupancy_percent: if cap > 0 { 100.0 * load as f64 / cap as f64 } else { 0.0 },
            at_ms: now,
            open: calendar.as_ref().map(|c| c.is_open(instant(now))),
            next_change_ms: calendar
                .and_then(|c| c.next_change(instant(now)))
                .map(|(at, _)| at.timestamp_millis().max(0) as u64),
            callbacks_requested: get("cb_requested"),
            callbacks_connected: get("cb_connected"),
            callbacks_failed: get("cb_failed"),
        })
    }
}

impl Engine {
    /// Reads the agents among `ids` that `loads` does not hold, a few at a time.
    async fn read_loads(&self, ids: &[String], loads: &mut AgentLoads) -> Result<()> {
        let missing: Vec<&String> = ids.iter().filter(|id| !loads.0.contains_key(*id)).collect();
        let fields = load_fields();
        let mut con = self.con.clone();
        for chunk in missing.chunks(AGENTS_PER_READ) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HMGET").arg(self.keys.agent(id)).arg(&fields);
            }
            let rows: Vec<Vec<Option<String>>> = pipe.query_async(&mut con).await?;
            for (id, row) in chunk.iter().zip(rows) {
                loads.0.insert((*id).clone(), agent_load(&row)?);
            }
        }
        Ok(())
    }
}

/// One agent's row of [`load_fields`]; None for an agent deleted meanwhile (no presence).
fn agent_load(row: &[Option<String>]) -> Result<Option<AgentLoad>> {
    let Some(Some(state)) = row.first() else { return Ok(None) };
    let presence =
        Presence::from_parts(state, "").ok_or_else(|| EngineError::Corrupt(format!("presence {state:?}")))?;
    let n = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let channels = Channel::ALL.len();
    Ok(Some(AgentLoad {
        presence,
        load: row[1..=channels].iter().map(n).sum(),
        capacity: row[1 + channels..].iter().map(n).sum(),
    }))
}

/// A routing-clock time as the calendars take it.
fn instant(ms: u64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_read_as_bitfield_writes_them() {
        let mut bytes = Vec::new();
        for n in [3i64, 2, 1, 4500] {
            bytes.extend_from_slice(&n.to_be_bytes());
        }
        // A partial last slot (BITFIELD pads to the byte it wrote) and the missing ones read 0.
        bytes.push(0);
        let read: Vec<(&str, i64)> = slots(&bytes).collect();
        assert_eq!(read.len(), FIGURES.len());
        assert_eq!(&read[..5], &[("writes", 3), ("offered", 2), ("accepted", 1), ("asa_ms", 4500), ("in_sl", 0)]);
        assert!(read[5..].iter().all(|(_, n)| *n == 0));
    }
}
