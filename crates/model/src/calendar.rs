//! Calendars: named opening hours in one time zone — weekly hours (several ranges a day) and
//! exceptions (holidays, one-off closures, days with other hours) — and when they are open.
//!
//! [`CalendarSpec`] is what people write (config, API) and what is stored: texts, so that a bad
//! one is refused with the field that is wrong rather than a parse error. [`CalendarSpec::compile`]
//! checks it and gives the [`Calendar`] that answers [`Calendar::is_open`],
//! [`Calendar::next_change`] and [`Calendar::openings`].
//!
//! Hours are local times of the calendar's zone. Where a local time does not exist (the hour
//! skipped when clocks go forward) it stands for the first instant after the gap; where it exists
//! twice (clocks go back) for the earlier one. So "00:00-24:00" lasts 23 or 25 hours on those days,
//! and a range wholly inside a skipped hour is no opening at all.
//!
//! Exceptions take the place of the weekly hours on their dates. Exceptions may overlap: on a
//! date several cover, the one listed **last** applies (a closed week, then one short day in it).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::validate::{MAX_NAME_LEN, ValidationError, validate_id, validate_line};

mod local;

pub use chrono_tz::Tz as TimeZone;

/// More ranges than this on one day is a mistake, not a schedule.
pub const MAX_RANGES_PER_DAY: usize = 20;
/// Holidays and closures for a few years ahead fit easily.
pub const MAX_EXCEPTIONS: usize = 500;
/// How far [`Calendar::next_change`] looks ahead: a year and a bit, so that a yearly closure
/// (or the one opening day of a year) is found.
pub const HORIZON_DAYS: u64 = 400;

/// The week's days as the config and the API name them, Monday first.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Opening hours per weekday, each a list of `"HH:MM-HH:MM"`; a day with none is closed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeeklyHours {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mon: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tue: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thu: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fri: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sat: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sun: Vec<String>,
}

impl WeeklyHours {
    /// The hours of day `i` of [`DAYS`] (0 = Monday).
    pub fn day(&self, i: usize) -> &[String] {
        [&self.mon, &self.tue, &self.wed, &self.thu, &self.fri, &self.sat, &self.sun][i % 7]
    }

    pub fn day_mut(&mut self, i: usize) -> &mut Vec<String> {
        match i % 7 {
            0 => &mut self.mon,
            1 => &mut self.tue,
            2 => &mut self.wed,
            3 => &mut self.thu,
            4 => &mut self.fri,
            5 => &mut self.sat,
            _ => &mut self.sun,
        }
    }
}

/// Dates whose hours differ from the week's: a holiday (no hours), a closure, a short day.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionSpec {
    /// What people call it ("Christmas"); may be empty.
    #[serde(default)]
    pub name: String,
    /// First date, `YYYY-MM-DD`, in the calendar's zone.
    #[serde(default)]
    pub from: String,
    /// Last date, inclusive; empty: `from` alone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub to: String,
    /// Hours on each of those dates; none: closed all day.
    #[serde(default)]
    pub hours: Vec<String>,
}

/// A calendar as written in the config or sent to the API, and as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    pub name: String,
    /// An IANA time zone name, e.g. `Europe/Berlin`.
    #[serde(default)]
    pub time_zone: String,
    #[serde(default)]
    pub weekly: WeeklyHours,
    #[serde(default)]
    pub exceptions: Vec<ExceptionSpec>,
}

impl CalendarSpec {
    pub fn new(name: impl Into<String>, time_zone: impl Into<String>) -> Self {
        CalendarSpec {
            name: name.into(),
            time_zone: time_zone.into(),
            weekly: WeeklyHours::default(),
            exceptions: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        self.compile().map(drop)
    }

    /// Checks every field (errors name it: `weekly.mon[1]`, `exceptions[0].to`) and parses them.
    pub fn compile(&self) -> Result<Calendar, ValidationError> {
        validate_id("name", &self.name)?;
        if self.time_zone.is_empty() {
            return Err(ValidationError::new("time_zone", "is required (an IANA name such as \"Europe/Berlin\")"));
        }
        let time_zone = Tz::from_str(&self.time_zone).map_err(|_| {
            ValidationError::new(
                "time_zone",
                format!(
                    "unknown time zone {:?}: use an IANA name such as \"Europe/Berlin\" or \"UTC\"",
                    self.time_zone
                ),
            )
        })?;
        let mut weekly: [Vec<TimeRange>; 7] = Default::default();
        for (i, day) in weekly.iter_mut().enumerate() {
            *day = day_hours(&format!("weekly.{}", DAYS[i]), self.weekly.day(i))?;
        }
        if self.exceptions.len() > MAX_EXCEPTIONS {
            return Err(ValidationError::new(
                "exceptions",
                format!("at most {MAX_EXCEPTIONS} exceptions, got {}", self.exceptions.len()),
            ));
        }
        let mut exceptions = Vec::with_capacity(self.exceptions.len());
        for (i, e) in self.exceptions.iter().enumerate() {
            let f = format!("exceptions[{i}]");
            validate_line(&format!("{f}.name"), &e.name, MAX_NAME_LEN)?;
            if e.from.is_empty() {
                return Err(ValidationError::new(format!("{f}.from"), "is required (the first date, YYYY-MM-DD)"));
            }
            let from = date(&format!("{f}.from"), &e.from)?;
            let to = if e.to.is_empty() { from } else { date(&format!("{f}.to"), &e.to)? };
            if to < from {
                return Err(ValidationError::new(format!("{f}.to"), format!("{} is before from ({})", e.to, e.from)));
            }
            let hours = day_hours(&format!("{f}.hours"), &e.hours)?;
            exceptions.push(Exception { name: e.name.clone(), from, to, hours });
        }
        Ok(Calendar { name: self.name.clone(), time_zone, weekly, exceptions })
    }
}

fn date(field: &str, v: &str) -> Result<NaiveDate, ValidationError> {
    // chrono alone would take "2026-1-5"; one spelling keeps stored calendars comparable.
    let well_formed = v.len() == 10 && v.bytes().enumerate().all(|(i, b)| matches!(i, 4 | 7) == (b == b'-'));
    match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        Ok(d) if well_formed => Ok(d),
        _ => Err(ValidationError::new(field, format!("{v:?} is not a date: expected YYYY-MM-DD, e.g. \"2026-12-24\""))),
    }
}

/// One day's ranges, in order of their start; overlapping ranges are refused (adjacent ones are
/// one opening).
fn day_hours(field: &str, ranges: &[String]) -> Result<Vec<TimeRange>, ValidationError> {
    if ranges.len() > MAX_RANGES_PER_DAY {
        return Err(ValidationError::new(
            field,
            format!("at most {MAX_RANGES_PER_DAY} ranges a day, got {}", ranges.len()),
        ));
    }
    let mut parsed = Vec::with_capacity(ranges.len());
    for (i, r) in ranges.iter().enumerate() {
        let range = r.parse::<TimeRange>().map_err(|m| ValidationError::new(format!("{field}[{i}]"), m))?;
        parsed.push((i, range));
    }
    parsed.sort_by_key(|(_, r)| *r);
    for pair in parsed.windows(2) {
        let ((i, a), (j, b)) = (pair[0], pair[1]);
        if b.start < a.end {
            // Named at the one listed later; the other by its text (the API and the config put
            // their own path before `field`, which a second path in the message would lack).
            let (at, range, other) = if i > j { (i, a, b) } else { (j, b, a) };
            return Err(ValidationError::new(format!("{field}[{at}]"), format!("{range} overlaps {other}")));
        }
    }
    Ok(parsed.into_iter().map(|(_, r)| r).collect())
}

/// A range of local time within one day, `[start, end)` in minutes since midnight; `end` may be
/// 24:00 (1440). A range never crosses midnight: 22:00-06:00 is two ranges on two days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeRange {
    start: u16,
    end: u16,
}

const DAY_MINUTES: u16 = 24 * 60;

impl TimeRange {
    /// `start < end`, both minutes since midnight, `end` at most 1440.
    pub fn new(start: u16, end: u16) -> Option<TimeRange> {
        (start < end && end <= DAY_MINUTES).then_some(TimeRange { start, end })
    }

    pub fn start_minute(self) -> u16 {
        self.start
    }

    pub fn end_minute(self) -> u16 {
        self.end
    }
}

fn hh_mm(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || !b.iter().enumerate().all(|(i, c)| i == 2 || c.is_ascii_digit()) {
        return None;
    }
    let (h, m) =
        (u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0'), u16::from(b[3] - b'0') * 10 + u16::from(b[4] - b'0'));
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

impl FromStr for TimeRange {
    type Err = String;

    fn from_str(s: &str) -> Result<TimeRange, String> {
        let malformed = || {
            format!(
                "{s:?} is not a time range: expected \"HH:MM-HH:MM\" in local time, e.g. \"09:00-17:30\" (the end may be \"24:00\")"
            )
        };
        let (a, b) = s.split_once('-').ok_or_else(malformed)?;
        let (start, end) = (hh_mm(a).ok_or_else(malformed)?, hh_mm(b).ok_or_else(malformed)?);
        if start == DAY_MINUTES {
            return Err(format!("{s:?}: a range cannot start at 24:00"));
        }
        TimeRange::new(start, end).ok_or_else(|| {
            format!(
                "{s:?}: the start must be before the end (a range may not cross midnight: write \"22:00-24:00\" and \
                 \"00:00-06:00\" on the next day)"
            )
        })
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}-{:02}:{:02}", self.start / 60, self.start % 60, self.end / 60, self.end % 60)
    }
}

/// Dates with their own hours (none: closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub name: String,
    pub from: NaiveDate,
    /// Inclusive.
    pub to: NaiveDate,
    pub hours: Vec<TimeRange>,
}

/// A checked calendar: what is open when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    pub name: String,
    pub time_zone: Tz,
    /// Monday first, each day's ranges in order.
    pub weekly: [Vec<TimeRange>; 7],
    /// In the order given: the last one covering a date applies.
    pub exceptions: Vec<Exception>,
}

/// An opening: open from `.0` (inclusive) to `.1` (exclusive).
pub type Opening = (DateTime<Utc>, DateTime<Utc>);

impl Calendar {
    /// The hours that apply on a local date: the last exception covering it, else its weekday's.
    pub fn hours_on(&self, date: NaiveDate) -> &[TimeRange] {
        match self.exceptions.iter().rev().find(|e| e.from <= date && date <= e.to) {
            Some(e) => &e.hours,
            None => &self.weekly[date.weekday().num_days_from_monday() as usize],
        }
    }

    /// The exception that decides a local date's hours, if one does.
    pub fn exception_on(&self, date: NaiveDate) -> Option<&Exception> {
        self.exceptions.iter().rev().find(|e| e.from <= date && date <= e.to)
    }

    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let day = self.local_date(at);
        self.spans(day.pred_opt().unwrap_or(day), 3).find(|(_, end)| *end > at).is_some_and(|(start, _)| start <= at)
    }

    /// The next time it opens or closes after `at`, and whether it is open from then on; `None`
    /// when it stays as it is for [`HORIZON_DAYS`] (always open, or never).
    pub fn next_change(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, bool)> {
        let first = self.local_date(at).pred_opt()?;
        let days = HORIZON_DAYS + 2;
        let horizon = local::resolve(self.time_zone, add_days(first, days).and_time(NaiveTime::MIN));
        let (start, end) = self.spans(first, days).find(|(_, end)| *end > at)?;
        if start > at {
            Some((start, true))
        } else {
            // An opening that runs to the end of what was looked at does not end in sight.
            (end < horizon).then_some((end, false))
        }
    }

    /// The openings between `from` and `days` × 24 hours later, adjacent ranges merged (22:00-24:00
    /// and the next day's 00:00-06:00 are one opening), cut to that window.
    pub fn openings(&self, from: DateTime<Utc>, days: u32) -> Vec<Opening> {
        let until =
            from.checked_add_signed(chrono::Duration::days(i64::from(days))).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let first = self.local_date(from).pred_opt().unwrap_or(NaiveDate::MIN);
        let count = (self.local_date(until) - first).num_days().max(0) as u64 + 2;
        self.spans(first, count)
            .skip_while(|(_, end)| *end <= from)
            .take_while(|(start, _)| *start < until)
            .map(|(start, end)| (start.max(from), end.min(until)))
            .collect()
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.time_zone).date_naive()
    }

    /// The openings of `days` local dates from `first`, in order, adjacent ones merged.
    fn spans(&self, first: NaiveDate, days: u64) -> impl Iterator<Item = Opening> + '_ {
        let mut ranges = (0..days).map(move |i| add_days(first, i)).flat_map(move |date| {
            self.hours_on(date).iter().filter_map(move |r| {
                let start = local::resolve(self.time_zone, date.and_time(minute(r.start)));
                let end = if r.end == DAY_MINUTES {
                    local::resolve(self.time_zone, add_days(date, 1).and_time(NaiveTime::MIN))
                } else {
                    local::resolve(self.time_zone, date.and_time(minute(r.end)))
                };
                // A range inside the hour skipped when clocks go forward is empty.
                (start < end).then_some((start, end))
            })
        });
        let mut pending = ranges.next();
        std::iter::from_fn(move || {
            let (start, mut end) = pending?;
            loop {
                match ranges.next() {
                    Some((s, e)) if s <= end => end = end.max(e),
                    next => {
                        pending = next;
                        return Some((start, end));
                    }
                }
            }
        })
    }
}

/// A closed queue's message ([`crate::ClosedRule::message`]) as the customer reads it: `{opens}`
/// becomes the next opening in the calendar's zone, e.g. "Mon 2026-12-28 09:00 CET", or "further
/// notice" when it does not open within [`HORIZON_DAYS`].
pub fn closed_message(template: &str, opens: Option<DateTime<Utc>>, zone: Tz) -> String {
    if !template.contains("{opens}") {
        return template.to_string();
    }
    let when = match opens {
        Some(t) => t.with_timezone(&zone).format("%a %Y-%m-%d %H:%M %Z").to_string(),
        None => "further notice".to_string(),
    };
    template.replace("{opens}", &when)
}

fn minute(m: u16) -> NaiveTime {
    NaiveTime::from_hms_opt(u32::from(m / 60), u32::from(m % 60), 0).expect("a minute of the day")
}

fn add_days(d: NaiveDate, n: u64) -> NaiveDate {
    d.checked_add_days(Days::new(n)).unwrap_or(NaiveDate::MAX)
}

#[cfg(test)]
mod tests;
