//! What `ctl` shows of calendars: a queue's next openings in the calendar's time zone and the
//! viewer's (`ctl calendar`), the calendars as configured (`ctl calendars`), and a queue's hours
//! as a cell of `ctl queues`. A calendar file for `ctl put-calendar` is read here too.

use std::fmt::Display;
use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use prost_types::Timestamp;
use switchboard_model::calendar::{CalendarSpec, DAYS};
use switchboard_proto::v1 as pb;

use crate::human::{self, UNKNOWN};
use crate::table::Table;

/// How far the daemon looks for the next change (the model's horizon).
const HORIZON_DAYS: u64 = switchboard_model::calendar::HORIZON_DAYS;

fn instant(t: Option<&Timestamp>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

/// `Fri 2026-03-27 16:00 CET`.
fn when<Z: TimeZone>(t: DateTime<Utc>, zone: &Z) -> String
where
    Z::Offset: Display,
{
    t.with_timezone(zone).format("%a %Y-%m-%d %H:%M %Z").to_string()
}

/// `08:00-16:00 CET`, `22:00-Sat 06:00 CET`, `01:00 CET-04:00 CEST`: an opening in one zone, its
/// end's day named only when it is not the start's (midnight is the start day's 24:00).
fn span<Z: TimeZone>(start: DateTime<Utc>, end: DateTime<Utc>, zone: &Z) -> String
where
    Z::Offset: Display,
{
    let (s, e) = (start.with_timezone(zone), end.with_timezone(zone));
    let next_midnight = s.date_naive().succ_opt().map(|d| d.and_time(chrono::NaiveTime::MIN));
    let end_time = if e.date_naive() == s.date_naive() {
        e.format("%H:%M").to_string()
    } else if Some(e.naive_local()) == next_midnight {
        "24:00".into()
    } else {
        e.format("%a %H:%M").to_string()
    };
    let (sz, ez) = (s.format("%Z").to_string(), e.format("%Z").to_string());
    if sz == ez {
        format!("{}-{end_time} {sz}", s.format("%H:%M"))
    } else {
        format!("{} {sz}-{end_time} {ez}", s.format("%H:%M"))
    }
}

fn zone_of(r: &pb::ListOpeningsResponse) -> Tz {
    // The daemon only keeps zones it knows; one this build does not would be shown in UTC.
    Tz::from_str(&r.time_zone).unwrap_or(Tz::UTC)
}

/// `open · closes Fri 2026-03-27 16:00 CET (17:00 here, in 3h 05m)`.
fn now_line<H: TimeZone>(r: &pb::ListOpeningsResponse, here: &H) -> String
where
    H::Offset: Display,
{
    let zone = zone_of(r);
    let state = if r.open_now { "open" } else { "closed" };
    let now = instant(r.at.as_ref());
    match instant(r.next_change.as_ref()) {
        Some(t) => {
            let verb = if r.open_now { "closes" } else { "opens" };
            let here_at = t.with_timezone(here).format("%a %H:%M %Z");
            let within = now.map_or_else(|| UNKNOWN.into(), |n| human::duration((t - n).to_std().unwrap_or_default()));
            format!("{state} · {verb} {} ({here_at} here, in {within})", when(t, &zone))
        }
        None if r.open_now => format!("{state} · stays open (no change within {HORIZON_DAYS} days)"),
        None => format!("{state} · does not open within {HORIZON_DAYS} days"),
    }
}

/// `ctl calendar`: the queue, its calendar and state now, then each opening in the window.
pub fn openings<H: TimeZone>(queue: &str, r: &pb::ListOpeningsResponse, days: u32, here: &H) -> String
where
    H::Offset: Display,
{
    if r.calendar.is_empty() {
        return format!("{queue} has no calendar: always open\n");
    }
    let zone = zone_of(r);
    let mut f = Table::fields();
    f.row(["queue", queue]);
    f.row(["calendar".into(), format!("{} ({})", r.calendar, r.time_zone)]);
    f.row(["now".into(), now_line(r, here)]);
    let mut out = f.render();
    out.push('\n');
    if r.openings.is_empty() {
        out.push_str(&format!("no openings in these {days} days\n"));
        return out;
    }
    let mut t = Table::new(&["DAY", &format!("HOURS ({})", r.time_zone), "FOR", "YOUR TIME"]).right(&[2]);
    for o in &r.openings {
        let (Some(start), Some(end)) = (instant(o.start.as_ref()), instant(o.end.as_ref())) else { continue };
        t.row([
            start.with_timezone(&zone).format("%a %Y-%m-%d").to_string(),
            span(start, end, &zone),
            human::duration((end - start).to_std().unwrap_or_default()),
            format!("{} {}", start.with_timezone(here).format("%a"), span(start, end, here)),
        ]);
    }
    out.push_str(&t.render());
    out
}

/// The HOURS cell of `ctl queues`: `always`, the calendar's name, or with what the daemon said
/// of it now, `emea: open until Fri 16:00 CET`.
pub fn queue_hours(calendar: &str, now: Option<&pb::ListOpeningsResponse>) -> String {
    if calendar.is_empty() {
        return "always".into();
    }
    let Some(r) = now.filter(|r| r.calendar == calendar) else { return calendar.into() };
    let state = if r.open_now { "open" } else { "closed" };
    match instant(r.next_change.as_ref()) {
        Some(t) => format!("{calendar}: {state} until {}", t.with_timezone(&zone_of(r)).format("%a %H:%M %Z")),
        None => format!("{calendar}: {state}"),
    }
}

/// `ctl calendars`: each calendar's week and its exceptions.
pub fn calendars(list: &[pb::Calendar]) -> Table {
    let mut t = Table::new(&["CALENDAR", "TIME ZONE", "WEEK", "EXCEPTIONS"]);
    for c in list {
        let w = c.weekly.clone().unwrap_or_default();
        let days = [&w.mon, &w.tue, &w.wed, &w.thu, &w.fri, &w.sat, &w.sun];
        let week: Vec<String> = DAYS
            .iter()
            .zip(days)
            .map(|(d, h)| format!("{d} {}", if h.is_empty() { "closed".into() } else { h.join(", ") }))
            .collect();
        let exceptions: Vec<String> = c
            .exceptions
            .iter()
            .map(|e| {
                let dates =
                    if e.to.is_empty() || e.to == e.from { e.from.clone() } else { format!("{}..{}", e.from, e.to) };
                let hours = if e.hours.is_empty() { "closed".into() } else { e.hours.join(", ") };
                let name = if e.name.is_empty() { String::new() } else { format!("{}: ", e.name) };
                format!("{name}{dates} {hours}")
            })
            .collect();
        t.row([
            c.name.clone(),
            c.time_zone.clone(),
            week.join("\n"),
            if exceptions.is_empty() { UNKNOWN.into() } else { exceptions.join("\n") },
        ]);
    }
    t
}

/// A calendar file: TOML as a `[[calendars]]` entry of the config is written, or, named `*.json`,
/// the API's JSON (what `ctl calendars --output json` prints of one).
pub fn read_file(path: &std::path::Path) -> anyhow::Result<pb::Calendar> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        return crate::json::parse(&text).with_context(|| format!("{} is not a Calendar in JSON", path.display()));
    }
    let s: CalendarSpec = toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    Ok(pb::Calendar {
        name: s.name,
        time_zone: s.time_zone,
        weekly: Some(pb::WeeklyHours {
            mon: s.weekly.mon,
            tue: s.weekly.tue,
            wed: s.weekly.wed,
            thu: s.weekly.thu,
            fri: s.weekly.fri,
            sat: s.weekly.sat,
            sun: s.weekly.sun,
        }),
        exceptions: s
            .exceptions
            .into_iter()
            .map(|e| pb::CalendarException { name: e.name, from: e.from, to: e.to, hours: e.hours })
            .collect(),
    })
}

/// A `--from` of `ctl calendar`: a date (its midnight in `here`) or an RFC 3339 time.
pub fn parse_from<H: TimeZone>(v: &str, here: &H) -> anyhow::Result<Timestamp> {
    let t = match chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        Ok(d) => here
            .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .with_context(|| format!("--from {v}: no such time here"))?,
        Err(_) => DateTime::parse_from_rfc3339(v)
            .with_context(|| format!("--from {v:?}: expected a date (2026-12-24) or an RFC 3339 time"))?
            .with_timezone(&Utc),
    };
    Ok(Timestamp { seconds: t.timestamp(), nanos: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<Timestamp> {
        let t = DateTime::parse_from_rfc3339(s).unwrap();
        Some(Timestamp { seconds: t.timestamp(), nanos: 0 })
    }

    fn opening(a: &str, b: &str) -> pb::Opening {
        pb::Opening { start: ts(a), end: ts(b) }
    }

    fn berlin_week() -> pb::ListOpeningsResponse {
        pb::ListOpeningsResponse {
            calendar: "emea".into(),
            time_zone: "Europe/Berlin".into(),
            openings: vec![
                opening("2026-03-27T07:00:00Z", "2026-03-27T15:00:00Z"),
                opening("2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z"),
                opening("2026-03-30T20:00:00Z", "2026-03-31T04:00:00Z"),
                opening("2026-03-31T20:00:00Z", "2026-03-31T22:00:00Z"),
            ],
            open_now: true,
            next_change: ts("2026-03-27T15:00:00Z"),
            at: ts("2026-03-27T11:55:00Z"),
        }
    }

    #[test]
    fn openings_read_in_the_calendar_s_zone_and_the_viewer_s() {
        let out = openings("sales", &berlin_week(), 7, &Utc);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "queue     sales");
        assert_eq!(lines[1], "calendar  emea (Europe/Berlin)");
        assert_eq!(lines[2], "now       open · closes Fri 2026-03-27 16:00 CET (Fri 15:00 UTC here, in 3h 05m)");
        assert_eq!(lines[4], "DAY             HOURS (Europe/Berlin)     FOR  YOUR TIME");
        assert_eq!(lines[5], "Fri 2026-03-27  08:00-16:00 CET        8h 00m  Fri 07:00-15:00 UTC");
        // The night clocks go forward: two hours from 01:00 winter time to 04:00 summer time.
        assert_eq!(lines[6], "Sun 2026-03-29  01:00 CET-04:00 CEST   2h 00m  Sun 00:00-02:00 UTC");
        assert_eq!(lines[7], "Mon 2026-03-30  22:00-Tue 06:00 CEST   8h 00m  Mon 20:00-Tue 04:00 UTC");
        assert_eq!(lines[8], "Tue 2026-03-31  22:00-24:00 CEST       2h 00m  Tue 20:00-22:00 UTC");
    }

    #[test]
    fn closed_always_open_and_no_openings_say_so() {
        let mut r = berlin_week();
        r.open_now = false;
        r.next_change = ts("2026-03-30T06:00:00Z");
        r.at = ts("2026-03-27T16:00:00Z");
        let out = openings("sales", &r, 7, &Utc);
        assert!(
            out.contains("now       closed · opens Mon 2026-03-30 08:00 CEST (Mon 06:00 UTC here, in 2d 14h)\n"),
            "{out}"
        );
        r.next_change = None;
        r.openings.clear();
        let out = openings("sales", &r, 3, &Utc);
        assert!(out.contains("closed · does not open within 400 days\n\nno openings in these 3 days\n"), "{out}");
        let plain = pb::ListOpeningsResponse { open_now: true, ..Default::default() };
        assert_eq!(openings("general", &plain, 7, &Utc), "general has no calendar: always open\n");
    }

    #[test]
    fn a_queue_s_hours_in_a_cell() {
        assert_eq!(queue_hours("", None), "always");
        assert_eq!(queue_hours("emea", None), "emea");
        assert_eq!(queue_hours("emea", Some(&berlin_week())), "emea: open until Fri 16:00 CET");
        let r = pb::ListOpeningsResponse {
            calendar: "emea".into(),
            time_zone: "Europe/Berlin".into(),
            ..Default::default()
        };
        assert_eq!(queue_hours("emea", Some(&r)), "emea: closed");
    }

    #[test]
    fn from_is_a_date_here_or_a_time() {
        assert_eq!(parse_from("2026-12-24", &Utc).unwrap(), ts("2026-12-24T00:00:00Z").unwrap());
        assert_eq!(parse_from("2026-12-24", &Tz::Europe__Berlin).unwrap(), ts("2026-12-23T23:00:00Z").unwrap());
        assert_eq!(parse_from("2026-12-24T08:00:00+01:00", &Utc).unwrap(), ts("2026-12-24T07:00:00Z").unwrap());
        assert!(parse_from("24.12.2026", &Utc).is_err());
    }

    #[test]
    fn calendars_list_their_week_and_exceptions() {
        let c = pb::Calendar {
            name: "emea".into(),
            time_zone: "Europe/Berlin".into(),
            weekly: Some(pb::WeeklyHours {
                mon: vec!["08:00-12:00".into(), "13:00-18:00".into()],
                ..Default::default()
            }),
            exceptions: vec![
                pb::CalendarException {
                    name: "Christmas".into(),
                    from: "2026-12-24".into(),
                    to: "2026-12-26".into(),
                    hours: vec![],
                },
                pb::CalendarException {
                    from: "2026-12-31".into(),
                    hours: vec!["08:00-12:00".into()],
                    ..Default::default()
                },
            ],
        };
        let out = calendars(&[c]).render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            "emea      Europe/Berlin  mon 08:00-12:00, 13:00-18:00  Christmas: 2026-12-24..2026-12-26 closed"
        );
        assert_eq!(lines[2], "                         tue closed                    2026-12-31 08:00-12:00");
        assert_eq!(lines.len(), 8);
    }
}
