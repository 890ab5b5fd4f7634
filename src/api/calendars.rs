//! Calendars through the API: proto ↔ model, and when a queue is open (`ListOpenings`). The admin
//! and supervisor services hand their calendar calls here.

use chrono::{DateTime, Utc};
use tonic::Status;

use super::access::check_queue;
use super::{pb, status};
use crate::model::calendar::{CalendarSpec, ExceptionSpec, WeeklyHours};
use crate::model::{self, Principal};
use switchboard_engine::Engine;

/// `ListOpenings` without `days`: a week.
pub const DEFAULT_DAYS: u32 = 7;
pub const MAX_DAYS: u32 = 31;
/// The latest `from` a listing may start at (9999-12-31T23:59:59Z): dates past it have no
/// four-digit year.
const MAX_FROM_SECS: i64 = 253_402_300_799;

pub fn calendar_to_pb(c: &CalendarSpec) -> pb::Calendar {
    let w = &c.weekly;
    pb::Calendar {
        name: c.name.clone(),
        time_zone: c.time_zone.clone(),
        weekly: Some(pb::WeeklyHours {
            mon: w.mon.clone(),
            tue: w.tue.clone(),
            wed: w.wed.clone(),
            thu: w.thu.clone(),
            fri: w.fri.clone(),
            sat: w.sat.clone(),
            sun: w.sun.clone(),
        }),
        exceptions: c
            .exceptions
            .iter()
            .map(|e| pb::CalendarException {
                name: e.name.clone(),
                from: e.from.clone(),
                to: e.to.clone(),
                hours: e.hours.clone(),
            })
            .collect(),
    }
}

/// Field for field: the engine checks it (every writer goes through it), naming the fields as
/// this message does (`weekly.mon[1]`, `exceptions[0].from`).
pub fn calendar_from_pb(c: pb::Calendar) -> CalendarSpec {
    let w = c.weekly.unwrap_or_default();
    CalendarSpec {
        name: c.name,
        time_zone: c.time_zone,
        weekly: WeeklyHours { mon: w.mon, tue: w.tue, wed: w.wed, thu: w.thu, fri: w.fri, sat: w.sat, sun: w.sun },
        exceptions: c
            .exceptions
            .into_iter()
            .map(|e| ExceptionSpec { name: e.name, from: e.from, to: e.to, hours: e.hours })
            .collect(),
    }
}

fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

fn instant(field: &str, t: &prost_types::Timestamp) -> Result<DateTime<Utc>, Status> {
    let nanos = u32::try_from(t.nanos).ok().filter(|n| *n < 1_000_000_000);
    match nanos.and_then(|n| DateTime::from_timestamp(t.seconds, n)) {
        Some(at) if (0..=MAX_FROM_SECS).contains(&t.seconds) => Ok(at),
        _ => Err(Status::invalid_argument(format!("{field}: must be a time between 1970 and 9999"))),
    }
}

/// The openings of `queue`'s calendar in a window, and whether it is open now (routing clock).
pub async fn list_openings(
    engine: &Engine,
    p: &Principal,
    r: pb::ListOpeningsRequest,
) -> Result<pb::ListOpeningsResponse, Status> {
    model::validate_id("queue", &r.queue).map_err(super::invalid)?;
    check_queue(p, &r.queue)?;
    let days = match r.days {
        0 => DEFAULT_DAYS,
        d if d <= MAX_DAYS => d,
        d => return Err(Status::invalid_argument(format!("days: at most {MAX_DAYS}, got {d}"))),
    };
    let from = r.from.as_ref().map(|t| instant("from", t)).transpose()?;
    let queue = engine.get_queue(&r.queue).await.map_err(status)?;
    let calendar = engine.queue_calendar(&queue).await.map_err(status)?;
    let now_ms = engine.now_ms().await.map_err(status)?;
    let now = DateTime::from_timestamp_millis(now_ms as i64).unwrap_or_default();
    let from = from.unwrap_or(now);
    let Some(c) = calendar else {
        let until = from + chrono::Duration::days(i64::from(days));
        return Ok(pb::ListOpeningsResponse {
            openings: vec![pb::Opening { start: Some(timestamp(from)), end: Some(timestamp(until)) }],
            open_now: true,
            at: Some(timestamp(now)),
            ..Default::default()
        });
    };
    Ok(pb::ListOpeningsResponse {
        calendar: c.name.clone(),
        time_zone: c.time_zone.name().to_string(),
        openings: c
            .openings(from, days)
            .into_iter()
            .map(|(start, end)| pb::Opening { start: Some(timestamp(start)), end: Some(timestamp(end)) })
            .collect(),
        open_now: c.is_open(now),
        next_change: c.next_change(now).map(|(at, _)| timestamp(at)),
        at: Some(timestamp(now)),
    })
}
