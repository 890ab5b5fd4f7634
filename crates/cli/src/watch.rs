//! `ctl watch`: queue figures and agent states as they change. On a terminal, a board redrawn in
//! place (the queues, then the agents; the times in it tick); otherwise one row per event, under a
//! header repeated when the kind of row changes; with `--output json`, one object per line.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use tokio_stream::{Stream, StreamExt};

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::supervisor_event::Kind;

use crate::table::{StreamTable, Table};
use crate::{Output, human, json, view};

/// A board's redraws, at most this often while events come in.
const REDRAW_MIN: Duration = Duration::from_millis(200);
/// ... and at least this often, so its durations keep counting.
const REDRAW_MAX: Duration = Duration::from_secs(1);

pub async fn watch<S>(mut events: S, output: Output, live: bool, out: &mut (dyn Write + Send)) -> anyhow::Result<()>
where
    S: Stream<Item = Result<pb::SupervisorEvent, tonic::Status>> + Unpin,
{
    match (output, live) {
        (Output::Json, _) => {
            while let Some(ev) = events.next().await {
                writeln!(out, "{}", json::line(&ev?)?)?;
                out.flush()?;
            }
        }
        (Output::Table, false) => {
            let mut log = Log::default();
            while let Some(ev) = events.next().await {
                out.write_all(log.line(&ev?, SystemTime::now()).as_bytes())?;
                out.flush()?;
            }
        }
        (Output::Table, true) => {
            let mut board = Board::default();
            let mut tick = tokio::time::interval(REDRAW_MIN);
            // The first draw waits a moment for the snapshot, not to flash an empty board.
            let mut drawn = Instant::now();
            let mut dirty = true;
            loop {
                tokio::select! {
                    ev = events.next() => match ev {
                        Some(ev) => {
                            board.apply(ev?);
                            dirty = true;
                        }
                        None => return Ok(()),
                    },
                    _ = tick.tick() => {}
                }
                let since = drawn.elapsed();
                if since >= REDRAW_MAX || (dirty && since >= REDRAW_MIN) {
                    // Home, clear the screen, draw.
                    write!(out, "\x1b[H\x1b[2J{}", board.render(SystemTime::now()))?;
                    out.flush()?;
                    drawn = Instant::now();
                    dirty = false;
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowKind {
    Queue,
    Agent,
}

/// One row per event; a header before the first row, when the kind of row changes, and when a
/// column had to grow.
#[derive(Debug)]
pub struct Log {
    queues: StreamTable,
    agents: StreamTable,
    last: Option<RowKind>,
}

fn with_time(header: &[&'static str]) -> Vec<&'static str> {
    std::iter::once("TIME").chain(header.iter().copied()).collect()
}

fn shifted(right: &[usize]) -> Vec<usize> {
    right.iter().map(|c| c + 1).collect()
}

impl Default for Log {
    fn default() -> Log {
        // TIME, QUEUE, ..., SL, ASA, AHT: room for "100.0 %", "1m 05s", "2h 03m".
        let queue_min = [8, 10, 0, 7, 0, 0, 0, 0, 0, 7, 6, 6, 0];
        let agent_min = [8, 8, 8, 9, 8, 8, 9];
        Log {
            queues: StreamTable::new(&with_time(view::FIGURES_HEADER), &shifted(view::FIGURES_RIGHT), &queue_min),
            agents: StreamTable::new(&with_time(view::AGENT_HEADER), &shifted(view::AGENT_RIGHT), &agent_min),
            last: None,
        }
    }
}

impl Log {
    /// The lines an event prints, seen at `now`.
    pub fn line(&mut self, ev: &pb::SupervisorEvent, now: SystemTime) -> String {
        let now_ts = prost_types::Timestamp::from(now);
        let (kind, table, cells) = match &ev.kind {
            Some(Kind::Queue(f)) => {
                let time = human::time_of_day(Some(f.at.as_ref().unwrap_or(&now_ts)));
                (RowKind::Queue, &mut self.queues, [vec![time], view::figures_row(f)].concat())
            }
            Some(Kind::Agent(a)) => {
                let time = human::time_of_day(Some(&now_ts));
                (RowKind::Agent, &mut self.agents, [vec![time], view::agent_row(a, now)].concat())
            }
            None => return String::new(),
        };
        let (row, grew) = table.row(&cells);
        let mut out = String::new();
        if self.last != Some(kind) || grew {
            if self.last.is_some() {
                out.push('\n');
            }
            out.push_str(&table.header());
        }
        out.push_str(&row);
        self.last = Some(kind);
        out
    }
}

/// The latest of everything, as a board shows it.
#[derive(Debug, Default)]
pub struct Board {
    queues: BTreeMap<String, pb::QueueFigures>,
    agents: BTreeMap<String, pb::AgentState>,
}

impl Board {
    pub fn apply(&mut self, ev: pb::SupervisorEvent) {
        match ev.kind {
            Some(Kind::Queue(f)) => {
                self.queues.insert(f.queue.clone(), f);
            }
            Some(Kind::Agent(a)) => {
                self.agents.insert(a.agent_id.clone(), a);
            }
            None => {}
        }
    }

    pub fn render(&self, now: SystemTime) -> String {
        let window = self.queues.values().map(|f| f.window_secs).find(|w| *w > 0);
        let mut out = format!(
            "{}  queues{}  (Ctrl-C to stop)\n\n",
            human::time_of_day(Some(&prost_types::Timestamp::from(now))),
            window.map_or_else(String::new, |w| format!(
                ", counters over the last {}",
                human::duration(Duration::from_secs(w.into()))
            )),
        );
        let mut q = Table::new(view::FIGURES_HEADER).right(view::FIGURES_RIGHT);
        for f in self.queues.values() {
            // The oldest has waited on since the figures were taken.
            let longest = if f.waiting == 0 {
                human::UNKNOWN.into()
            } else {
                let taken = f.at.and_then(|t| SystemTime::try_from(t).ok());
                let since = taken.and_then(|t| now.duration_since(t).ok()).unwrap_or_default();
                human::duration(Duration::from_millis(f.longest_wait_ms) + since)
            };
            q.row(view::figures_row_with(f, longest));
        }
        out.push_str(&if q.is_empty() { "no queues\n".into() } else { q.render() });
        if !self.agents.is_empty() {
            out.push('\n');
            let agents: Vec<pb::AgentState> = self.agents.values().cloned().collect();
            out.push_str(&view::agents(&agents, now).render());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;

    fn queue(name: &str, waiting: u32, at: i64) -> pb::SupervisorEvent {
        pb::SupervisorEvent {
            kind: Some(Kind::Queue(pb::QueueFigures {
                queue: name.into(),
                waiting,
                longest_wait_ms: u64::from(waiting) * 10_000,
                window_secs: 3600,
                at: Some(Timestamp { seconds: at, nanos: 0 }),
                ..Default::default()
            })),
        }
    }

    fn agent(id: &str) -> pb::SupervisorEvent {
        pb::SupervisorEvent {
            kind: Some(Kind::Agent(pb::AgentState {
                agent_id: id.into(),
                presence: Some(pb::Presence { state: pb::PresenceState::Ready as i32, reason: String::new() }),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn the_log_repeats_its_header_when_the_kind_of_row_changes() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut log = Log::default();
        let text: String =
            [queue("sales", 1, 1_000_000), queue("support", 0, 1_000_000), agent("ann"), queue("sales", 0, 1_000_001)]
                .iter()
                .map(|e| log.line(e, now))
                .collect();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TIME      QUEUE       WAITING  LONGEST"), "{text}");
        assert!(lines[1].contains("  sales             1      10s  "), "{text}");
        assert!(lines[2].contains("  support           0        -  "), "{text}");
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("TIME      AGENT     NAME      STATE"), "{text}");
        assert!(lines[5].contains("  ann       -         ready"), "{text}");
        assert_eq!(lines[6], "");
        assert!(lines[7].starts_with("TIME      QUEUE"), "{text}");
        assert_eq!(lines.len(), 9, "{text}");
        // Columns line up under the header.
        assert_eq!(lines[0].find("WAITING").unwrap() + "WAITING".len(), lines[1].find("1 ").unwrap() + 1);
    }

    #[test]
    fn the_board_keeps_the_latest_of_each_and_counts_the_longest_wait_on() {
        let mut b = Board::default();
        for e in [queue("sales", 1, 1_000_000), agent("bo"), agent("ann"), queue("sales", 2, 1_000_000)] {
            b.apply(e);
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_005);
        let out = b.render(now);
        assert!(out.contains("queues, counters over the last 1h 00m"), "{out}");
        let sales: Vec<&str> = out.lines().filter(|l| l.starts_with("sales")).collect();
        assert_eq!(sales.len(), 1, "{out}");
        // 20 s when the figures were taken, 5 s ago.
        assert!(sales[0].starts_with("sales        2      25s"), "{out}");
        let agents: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("AGENT")).collect();
        assert!(agents[1].starts_with("ann ") && agents[2].starts_with("bo "), "{out}");
    }
}
