//! Opening hours applied to routing. A queue whose calendar says closed carries a flag in Redis
//! (`closed` in its hash, `|1` in `qroute`, which routing reads anyway): nothing waiting in it is
//! offered until it opens. [`Engine::set_queue_open`] changes the flag and applies the queue's
//! closed rules at closing (overflow moves) and offers its waiting work at opening; every instance
//! calls it when the routing clock passes a change ([`Engine::check_opening_hours`]), and exactly
//! one call applies each transition. New contacts meet the rules in `create` ([`IfRefused`]);
//! [`Engine::closed_rule`] tells a channel what a closed queue answers.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use switchboard_model::calendar::{TimeZone, closed_message};
use switchboard_model::{Calendar, Channel, ClosedAction, QueueSpec};

use super::argv::argv;
use crate::{Engine, EngineError, Result};

argv! {
    struct SetOpenArgs<'a> {
        name: &'a str,
        open: bool,
        opens: Option<u64>,
    }
}

/// What creating an interaction does when its queue is closed and the queue's rule for the
/// channel refuses it ([`ClosedAction::Refuse`]). Overflow and hold rules apply whatever this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfRefused {
    /// Create it anyway: it waits for the opening. What the channels that have no answer of
    /// their own yet (web chat, email, SMS) do, so nothing a customer sent is lost.
    #[default]
    Hold,
    /// Create nothing: [`EngineError::FailedPrecondition`] saying until when the queue is closed.
    Fail,
    /// Record it as an interaction that ends at once (`end_reason` "closed"; counted apart from
    /// abandonment): a call sent to the default destination.
    End,
}

impl IfRefused {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            IfRefused::Hold => "hold",
            IfRefused::Fail => "fail",
            IfRefused::End => "end",
        }
    }
}

/// What a closed queue does with a contact of one channel, and what to tell the customer.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedAnswer {
    pub queue: String,
    pub calendar: String,
    /// The calendar's zone, in which `{opens}` is written (None if the calendar is unreadable).
    pub time_zone: Option<TimeZone>,
    pub action: ClosedAction,
    /// [`ClosedAction::Overflow`]: where new contacts go.
    pub overflow_queue: String,
    /// The rule's message as written (may contain `{opens}`); empty: none.
    pub message: String,
    /// When the queue next opens; None when it does not within the calendar's horizon.
    pub opens_at_ms: Option<u64>,
}

impl ClosedAnswer {
    /// The message as the customer reads it: `{opens}` becomes the next opening in the calendar's
    /// zone ("Mon 2026-12-28 09:00 CET").
    pub fn message_text(&self) -> String {
        let opens = self.opens_at_ms.and_then(|ms| DateTime::<Utc>::from_timestamp_millis(ms as i64));
        closed_message(&self.message, opens, self.time_zone.unwrap_or(TimeZone::UTC))
    }
}

/// One channel's rule as `put_queue` stores it (`crules`).
#[derive(serde::Deserialize)]
struct StoredRule {
    a: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    m: String,
}

/// What one instance knows of the queues' hours between checks: read again when a queue or a
/// calendar changes (their versions in `meta`).
#[derive(Default)]
pub struct HoursWatch {
    versions: Option<(Option<String>, Option<String>)>,
    /// Queues that keep a calendar, with it compiled.
    queues: Vec<(String, Arc<Calendar>)>,
}

/// What a check did, and when the next one is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoursCheck {
    /// The queues this call opened (true) or closed (false).
    pub changed: Vec<(String, bool)>,
    /// The earliest time (routing clock, ms) a calendar opens or closes next.
    pub next_change_ms: Option<u64>,
}

fn instant(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms as i64).unwrap_or_default()
}

fn ms(t: DateTime<Utc>) -> u64 {
    t.timestamp_millis().max(0) as u64
}

/// Whether `calendar` is open at `now`, and if not, when it next opens.
fn state_at(calendar: &Calendar, now: u64) -> (bool, Option<u64>) {
    let at = instant(now);
    if calendar.is_open(at) {
        return (true, None);
    }
    (false, calendar.next_change(at).filter(|(_, open)| *open).map(|(t, _)| ms(t)))
}

impl Engine {
    /// Opens or closes a queue (`opens`: when a closed one next opens). True only for the call
    /// that changed its state, so among instances applying one change exactly one does; closing
    /// applies the queue's closed rules to what waits (overflow moves), opening offers what waits.
    pub async fn set_queue_open(&self, queue: &str, open: bool, opens: Option<u64>) -> Result<bool> {
        let r = self.run(SetOpenArgs { name: queue, open, opens }).await?;
        Ok(r.first().is_some_and(|s| s == "1"))
    }

    /// Whether routing holds the queue closed now.
    pub async fn queue_is_closed(&self, queue: &str) -> Result<bool> {
        let mut con = self.connection();
        let v: Option<String> = con.hget(self.keys().queue(queue), "closed").await?;
        Ok(v.as_deref() == Some("1"))
    }

    /// What the queue does with a contact of `channel` while it is closed — None while it is open
    /// (or has no calendar, or does not exist). For channels answering the customer: the rule's
    /// message and when the queue opens. One read while open.
    pub async fn closed_rule(&self, queue: &str, channel: Channel) -> Result<Option<ClosedAnswer>> {
        let mut con = self.connection();
        let (closed, opens, crules, calendar): (Option<String>, Option<String>, Option<String>, Option<String>) =
            con.hmget(self.keys().queue(queue), &["closed", "opens", "crules", "cal"]).await?;
        if closed.as_deref() != Some("1") {
            return Ok(None);
        }
        let rules: HashMap<String, StoredRule> = serde_json::from_str(crules.as_deref().unwrap_or("{}"))
            .map_err(|e| EngineError::Corrupt(format!("queue {queue:?}: closed rules: {e}")))?;
        let (action, overflow_queue, message) = match rules.get(channel.as_str()) {
            Some(r) => (ClosedAction::parse(&r.a).unwrap_or(ClosedAction::Hold), r.q.clone(), r.m.clone()),
            None => (ClosedAction::Hold, String::new(), String::new()),
        };
        let calendar = calendar.unwrap_or_default();
        let time_zone = if calendar.is_empty() {
            None
        } else {
            self.get_calendar(&calendar).await.ok().and_then(|c| c.time_zone.parse().ok())
        };
        Ok(Some(ClosedAnswer {
            queue: queue.to_string(),
            calendar,
            time_zone,
            action,
            overflow_queue,
            message,
            opens_at_ms: opens.and_then(|o| o.parse().ok()),
        }))
    }

    /// Whether `spec`'s calendar is open now, and if not when it opens, for `put_queue`: a queue
    /// starts in the state its hours say. A calendar that is missing reads as open (`put_queue`
    /// refuses the name anyway).
    pub(crate) async fn hours_now(&self, spec: &QueueSpec) -> Result<(bool, Option<u64>)> {
        let calendar = match self.queue_calendar(spec).await {
            Ok(Some(c)) => c,
            Ok(None) | Err(EngineError::Corrupt(_)) => return Ok((true, None)),
            Err(e) => return Err(e),
        };
        Ok(state_at(&calendar, self.now_ms().await?))
    }

    /// Brings every queue that keeps a calendar to the state its hours say at `now_ms` (routing
    /// clock), and says when to look again. One round trip while nothing changed; the queues and
    /// calendars are read again when either changed (on any instance).
    pub async fn check_opening_hours(&self, watch: &mut HoursWatch, now_ms: u64) -> Result<HoursCheck> {
        let mut flags = self.hours_flags(watch).await?;
        let reloaded = flags.is_none();
        if reloaded {
            self.reload_hours(watch).await?;
            flags = self.hours_flags(watch).await?;
        }
        let Some(flags) = flags else {
            // Changed again meanwhile: the next check reads them once more.
            return Ok(HoursCheck { changed: Vec::new(), next_change_ms: Some(now_ms) });
        };
        let mut check = HoursCheck::default();
        let at = instant(now_ms);
        for ((name, calendar), closed) in watch.queues.iter().zip(flags) {
            let (open, opens) = state_at(calendar, now_ms);
            // A closed queue's next opening may have moved with new hours.
            if open == closed || (reloaded && !open) {
                match self.set_queue_open(name, open, opens).await {
                    Ok(true) => check.changed.push((name.clone(), open)),
                    Ok(false) => {}
                    // Deleted since it was read.
                    Err(EngineError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some((t, _)) = calendar.next_change(at) {
                let t = ms(t);
                check.next_change_ms = Some(check.next_change_ms.map_or(t, |n| n.min(t)));
            }
        }
        Ok(check)
    }

    /// The closed flags of the watched queues, in order; None if the queues or calendars changed
    /// since the watch read them.
    async fn hours_flags(&self, watch: &mut HoursWatch) -> Result<Option<Vec<bool>>> {
        let mut con = self.connection();
        let mut pipe = redis::pipe();
        pipe.hmget(self.keys().meta(), &["queues_ver", "calendars_ver"]);
        for (name, _) in &watch.queues {
            pipe.hget(self.keys().queue(name), "closed");
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut con).await?;
        let decode = |e: redis::ParsingError| EngineError::Corrupt(e.to_string());
        let versions: (Option<String>, Option<String>) = redis::from_redis_value(replies[0].clone()).map_err(decode)?;
        if watch.versions.as_ref() != Some(&versions) {
            watch.versions = Some(versions);
            return Ok(None);
        }
        replies[1..]
            .iter()
            .map(|v| {
                let flag: Option<String> = redis::from_redis_value(v.clone()).map_err(decode)?;
                Ok(flag.as_deref() == Some("1"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    async fn reload_hours(&self, watch: &mut HoursWatch) -> Result<()> {
        let calendars: HashMap<String, Arc<Calendar>> = self
            .list_calendars()
            .await?
            .into_iter()
            .filter_map(|spec| match spec.compile() {
                Ok(c) => Some((spec.name, Arc::new(c))),
                Err(e) => {
                    tracing::error!(message = "A stored calendar does not compile.", calendar = %spec.name, error = %e);
                    None
                }
            })
            .collect();
        watch.queues = self
            .list_queues()
            .await?
            .into_iter()
            .filter_map(|q| {
                let c = calendars.get(q.calendar.as_deref()?)?;
                Some((q.name, c.clone()))
            })
            .collect();
        Ok(())
    }
}
