//! Recorded arrivals: a day that happened, as `switchboard crm export` writes it from the CRM log,
//! replayed instead of (or beside) synthetic streams. One row a contact:
//!
//! ```text
//! at,interaction_id,channel,queue,priority,handle_secs,patience_secs,wrap_up_secs
//! 2026-12-07T09:00:01.250Z,01J...,voice,billing,0,312.400,,20.000
//! 2026-12-07T09:00:04.000Z,01J...,chat,sales,0,,45.120,
//! ```
//!
//! `handle_secs` is empty for a contact nobody answered (the customer left first): if the routing
//! under test answers it, its handle time is drawn from those of its queue that were answered.
//! `patience_secs` is set only for a customer who left; one who was answered waited as long as it
//! took and would, as far as the record knows, have waited longer, so it never leaves in the run —
//! a configuration that makes customers wait longer than they did is judged kindly on abandons.
//! `wrap_up_secs` is how long the agent took after it (empty: no wrap-up).

use std::collections::{BTreeMap, HashMap};

use chrono::DateTime;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom as _;
use switchboard_model::Channel;

use crate::run::Arrival;
use crate::scenario::{Arrivals, Distribution, Scenario};

pub const HEADER: &str = "at,interaction_id,channel,queue,priority,handle_secs,patience_secs,wrap_up_secs";

/// One recorded contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The line it came from (1 is the header).
    pub line: usize,
    pub at_ms: u64,
    pub channel: Channel,
    pub queue: String,
    pub priority: i32,
    pub handle_ms: Option<u64>,
    pub patience_ms: Option<u64>,
    pub wrap_ms: Option<u64>,
}

/// A recorded file that cannot be replayed, naming the line.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {message}")]
pub struct RecordedError {
    pub line: usize,
    pub message: String,
}

fn bad(line: usize, message: impl Into<String>) -> RecordedError {
    RecordedError { line, message: message.into() }
}

/// Reads a recorded file; every row is checked, and the first bad one is named.
pub fn parse(text: &str) -> Result<Vec<Recorded>, RecordedError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    match lines.next() {
        Some((_, h)) if h.trim() == HEADER => {}
        Some((_, h)) => return Err(bad(1, format!("the header must be `{HEADER}`, got `{h}`"))),
        None => return Err(bad(1, format!("the file is empty (expected the header `{HEADER}`)"))),
    }
    let mut out: Vec<Recorded> = Vec::new();
    for (n, l) in lines {
        if l.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        if f.len() != 8 {
            return Err(bad(n, format!("{} fields, expected 8 ({HEADER})", f.len())));
        }
        let at = DateTime::parse_from_rfc3339(f[0])
            .map_err(|e| bad(n, format!("at: {:?} is not an RFC 3339 time ({e})", f[0])))?;
        let at_ms = u64::try_from(at.timestamp_millis()).map_err(|_| bad(n, "at: before 1970"))?;
        let channel = Channel::parse(f[2])
            .ok_or_else(|| bad(n, format!("channel: {:?} is not voice, chat, sms or email", f[2])))?;
        switchboard_model::validate_id("queue", f[3]).map_err(|e| bad(n, e.to_string()))?;
        let priority: i32 = f[4].parse().map_err(|_| bad(n, format!("priority: {:?} is not a whole number", f[4])))?;
        if !(0..=switchboard_model::MAX_PRIORITY).contains(&priority) {
            return Err(bad(n, format!("priority: must be 0..={}", switchboard_model::MAX_PRIORITY)));
        }
        let secs = |name: &str, v: &str| -> Result<Option<u64>, RecordedError> {
            if v.is_empty() {
                return Ok(None);
            }
            match v.parse::<f64>() {
                Ok(s) if (0.0..31.0 * 86_400.0).contains(&s) => Ok(Some((s * 1000.0).round() as u64)),
                _ => Err(bad(n, format!("{name}: {v:?} is not a number of seconds (0 to 31 days)"))),
            }
        };
        let handle_ms = secs("handle_secs", f[5])?.map(|h| h.max(1));
        let patience_ms = secs("patience_secs", f[6])?;
        let wrap_ms = secs("wrap_up_secs", f[7])?;
        if handle_ms.is_some() && patience_ms.is_some() {
            return Err(bad(n, "handle_secs and patience_secs: a contact was either answered or left, not both"));
        }
        if wrap_ms.is_some() && handle_ms.is_none() {
            return Err(bad(n, "wrap_up_secs: only after a contact was answered (handle_secs)"));
        }
        if let Some(prev) = out.last()
            && at_ms < prev.at_ms
        {
            return Err(bad(
                n,
                format!("at: {} is before line {}'s time (rows must be in time order)", f[0], prev.line),
            ));
        }
        out.push(Recorded {
            line: n,
            at_ms,
            channel,
            queue: f[3].to_string(),
            priority,
            handle_ms,
            patience_ms,
            wrap_ms,
        });
    }
    if out.is_empty() {
        return Err(bad(1, "no contacts after the header"));
    }
    Ok(out)
}

/// Adds the recorded contacts to `scenario` as streams of their own (one per queue, channel and
/// priority, so the report groups them as it groups synthetic ones) and returns them as arrivals.
/// The run's virtual time starts on the hour of the first contact, so calendars apply as they did
/// that day; the run lasts at least until the last one.
pub fn add_to(scenario: &mut Scenario, rows: &[Recorded]) -> Result<Vec<Arrival>, RecordedError> {
    let first = rows.first().ok_or_else(|| bad(1, "no contacts after the header"))?;
    let start_ms = first.at_ms - first.at_ms % 3_600_000;
    // Whole hours, so the chart's half hours fall on the clock's.
    let span_h = ((rows.last().expect("not empty").at_ms - start_ms) / 3_600_000 + 1) as f64;
    // Handle times of those answered, by queue, for those who were not (drawn the same for a seed).
    let mut answered: HashMap<&str, Vec<(u64, Option<u64>)>> = HashMap::new();
    for r in rows {
        if let Some(h) = r.handle_ms {
            answered.entry(r.queue.as_str()).or_default().push((h, r.wrap_ms));
        }
    }
    let everyone: Vec<(u64, Option<u64>)> = rows.iter().filter_map(|r| Some((r.handle_ms?, r.wrap_ms))).collect();
    if everyone.is_empty() {
        return Err(bad(first.line, "no contact in the file was answered, so there is no handle time to replay"));
    }
    let mut rng = StdRng::seed_from_u64(scenario.seed ^ 0x5eed_0f7e_c04d);
    let mut streams: BTreeMap<(String, Channel, i32), usize> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let key = (r.queue.clone(), r.channel, r.priority);
        let stream = match streams.get(&key) {
            Some(&s) => s,
            None => {
                scenario.arrivals.push(Arrivals {
                    queue: r.queue.clone(),
                    channel: r.channel,
                    per_hour: 0.0,
                    priority: r.priority,
                    handle_secs: 0.0,
                    handle: Distribution::Exponential,
                    handle_sd_secs: None,
                    patience_secs: None,
                    wrap_up_secs: None,
                    recorded: true,
                });
                streams.insert(key, scenario.arrivals.len() - 1);
                scenario.arrivals.len() - 1
            }
        };
        let (handle_ms, wrap_ms) = match r.handle_ms {
            Some(h) => (h, r.wrap_ms),
            None => {
                let pool = answered.get(r.queue.as_str()).filter(|p| !p.is_empty()).unwrap_or(&everyone);
                *pool.choose(&mut rng).expect("not empty")
            }
        };
        out.push(Arrival { at_ms: r.at_ms - start_ms, stream, handle_ms, patience_ms: r.patience_ms, wrap_ms });
    }
    let mut counts = vec![0usize; scenario.arrivals.len()];
    for a in &out {
        counts[a.stream] += 1;
    }
    for (s, n) in scenario.arrivals.iter_mut().zip(counts).filter(|(s, _)| s.recorded) {
        s.per_hour = n as f64 / span_h;
    }
    scenario.recorded_start_ms = Some(start_ms);
    scenario.hours = scenario.hours.max(span_h);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "at,interaction_id,channel,queue,priority,handle_secs,patience_secs,wrap_up_secs\n\
        2026-12-07T09:10:00.000Z,i1,voice,billing,0,300.000,,12\n\
        2026-12-07T09:10:02.500Z,i2,chat,sales,1,,45.5,\n\
        2026-12-07T10:59:59.000Z,i3,voice,billing,0,,,\n";

    #[test]
    fn a_recorded_day_reads_and_becomes_arrivals_from_the_hour_it_began() {
        let rows = parse(GOOD).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[1].channel, rows[1].priority, rows[1].handle_ms, rows[1].patience_ms),
            (Channel::Chat, 1, None, Some(45_500))
        );
        let mut s = Scenario::parse("recorded = \"day.csv\"\n").unwrap();
        let arrivals = add_to(&mut s, &rows).unwrap();
        // 09:00 is the start: the first contact came 10 minutes in.
        assert_eq!(arrivals.iter().map(|a| a.at_ms).collect::<Vec<_>>(), [600_000, 602_500, 7_199_000]);
        let nine = DateTime::parse_from_rfc3339("2026-12-07T09:00:00Z").unwrap().timestamp_millis() as u64;
        assert_eq!(s.recorded_start_ms, Some(nine));
        // Two streams (billing voice 0, sales chat 1), both recorded; billing's unanswered contact
        // gets billing's one handle time.
        assert_eq!(s.arrivals.len(), 2);
        assert!(s.arrivals.iter().all(|a| a.recorded));
        assert_eq!(arrivals[0].stream, arrivals[2].stream);
        assert_eq!((arrivals[0].handle_ms, arrivals[0].wrap_ms), (300_000, Some(12_000)));
        assert_eq!((arrivals[2].handle_ms, arrivals[2].wrap_ms), (300_000, Some(12_000)));
        assert_eq!(arrivals[2].patience_ms, None);
        assert_eq!(s.hours, 2.0);
    }

    #[test]
    fn bad_rows_name_their_line() {
        let err = |body: &str| parse(&format!("{HEADER}\n{body}")).unwrap_err();
        let ok = "2026-12-07T09:10:00Z,i1,voice,billing,0,300,,";
        assert_eq!(err(&format!("{ok}\nyesterday,i2,voice,billing,0,1,,")).line, 3);
        assert!(err("2026-12-07T09:10:00Z,i1,fax,billing,0,1,,").message.starts_with("channel"));
        assert!(err("2026-12-07T09:10:00Z,i1,voice,billing,0,1,").message.contains("7 fields"));
        assert!(err("2026-12-07T09:10:00Z,i1,voice,bil ling,0,1,,").message.contains("queue"));
        assert!(err("2026-12-07T09:10:00Z,i1,voice,billing,x,1,,").message.starts_with("priority"));
        assert!(err("2026-12-07T09:10:00Z,i1,voice,billing,0,-3,,").message.starts_with("handle_secs"));
        assert!(err("2026-12-07T09:10:00Z,i1,voice,billing,0,3,4,").message.contains("not both"));
        assert!(err("2026-12-07T09:10:00Z,i1,voice,billing,0,,4,5").message.starts_with("wrap_up_secs"));
        let late = err(&format!("{ok}\n2026-12-07T09:09:59Z,i2,voice,billing,0,1,,"));
        assert_eq!(late.line, 3);
        assert!(late.message.contains("before line 2"), "{}", late.message);
        assert_eq!(parse("at,queue\n").unwrap_err().line, 1);
        assert_eq!(parse("").unwrap_err().line, 1);
        assert!(parse(&format!("{HEADER}\n")).unwrap_err().message.contains("no contacts"));
    }
}
