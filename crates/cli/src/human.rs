//! Values as people read them: local date-times, durations (`1m 05s`), percentages (`95.0 %`),
//! enum names (`not ready`), and [`UNKNOWN`] (`-`) for whatever is unset or unknown.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local, TimeZone};
use prost_types::Timestamp;
use switchboard_proto::v1 as pb;

/// What a cell shows for an unset, empty or unknown value.
pub const UNKNOWN: &str = "-";

/// The text, or [`UNKNOWN`] if it is empty.
pub fn or_dash(s: &str) -> String {
    if s.trim().is_empty() { UNKNOWN.to_string() } else { s.to_string() }
}

/// The items joined with ", ", or [`UNKNOWN`] if there are none.
pub fn list<I: IntoIterator<Item = String>>(items: I) -> String {
    let v: Vec<String> = items.into_iter().filter(|s| !s.is_empty()).collect();
    if v.is_empty() { UNKNOWN.to_string() } else { v.join(", ") }
}

/// `45s`, `1m 05s`, `2h 03m`, `3d 04h`: the two largest units, sub-seconds dropped.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A duration given in (fractional) seconds, rounded to the second; [`UNKNOWN`] if not a real one.
pub fn secs(secs: f64) -> String {
    if secs.is_finite() && secs >= 0.0 { duration(Duration::from_secs_f64(secs.round())) } else { UNKNOWN.into() }
}

/// A duration given in milliseconds.
pub fn millis(ms: u64) -> String {
    duration(Duration::from_millis(ms))
}

/// `95.0 %`; [`UNKNOWN`] for no value (e.g. a service level with nothing answered or abandoned).
pub fn percent(p: Option<f64>) -> String {
    match p {
        Some(p) if p.is_finite() => format!("{p:.1} %"),
        _ => UNKNOWN.into(),
    }
}

fn system_time(ts: &Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn in_zone<Tz: TimeZone>(ts: Option<&Timestamp>, tz: &Tz, format: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    // Unset, or the epoch itself: what a zero Timestamp means in practice.
    let Some(ts) = ts.filter(|t| t.seconds > 0) else { return UNKNOWN.into() };
    let Ok(nanos) = u32::try_from(ts.nanos) else { return UNKNOWN.into() };
    match DateTime::from_timestamp(ts.seconds, nanos) {
        Some(utc) => utc.with_timezone(tz).format(format).to_string(),
        None => UNKNOWN.into(),
    }
}

/// `2026-12-07 14:28:53` in `tz`, to the second.
pub fn date_time_in<Tz: TimeZone>(ts: Option<&Timestamp>, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    in_zone(ts, tz, "%Y-%m-%d %H:%M:%S")
}

/// `2026-12-07 14:28:53` in this machine's time zone (TZ, else /etc/localtime).
pub fn date_time(ts: Option<&Timestamp>) -> String {
    date_time_in(ts, &Local)
}

/// `14:28:53` in this machine's time zone: a live view's clock.
pub fn time_of_day(ts: Option<&Timestamp>) -> String {
    in_zone(ts, &Local, "%H:%M:%S")
}

/// `Fri 16:00` in this machine's time zone: a time within the coming days.
pub fn weekday_time(ts: Option<&Timestamp>) -> String {
    in_zone(ts, &Local, "%a %H:%M")
}

/// How long ago `ts` was, seen at `now`; `0s` for a time a little ahead of this machine's clock.
pub fn age(ts: Option<&Timestamp>, now: SystemTime) -> String {
    match ts.filter(|t| t.seconds > 0).and_then(system_time) {
        Some(t) => duration(now.duration_since(t).unwrap_or_default()),
        None => UNKNOWN.into(),
    }
}

/// The current time as a Timestamp.
pub fn now_timestamp() -> Timestamp {
    Timestamp::from(SystemTime::now())
}

pub fn channel(c: pb::Channel) -> &'static str {
    match c {
        pb::Channel::Unspecified => UNKNOWN,
        pb::Channel::Voice => "voice",
        pb::Channel::Chat => "chat",
        pb::Channel::Sms => "sms",
        pb::Channel::Email => "email",
    }
}

pub fn presence(p: pb::PresenceState) -> &'static str {
    match p {
        pb::PresenceState::Unspecified => UNKNOWN,
        pb::PresenceState::Offline => "offline",
        pb::PresenceState::Ready => "ready",
        pb::PresenceState::NotReady => "not ready",
        pb::PresenceState::WrapUp => "wrap-up",
    }
}

#[allow(deprecated)] // TRANSFERRED is never reported, but a name is still owed for it.
pub fn interaction_state(s: pb::InteractionState) -> &'static str {
    match s {
        pb::InteractionState::Unspecified => UNKNOWN,
        pb::InteractionState::Queued => "queued",
        pb::InteractionState::Offered => "offered",
        pb::InteractionState::Active => "active",
        pb::InteractionState::WrapUp => "wrap-up",
        pb::InteractionState::Completed => "completed",
        pb::InteractionState::Abandoned => "abandoned",
        pb::InteractionState::Transferred => "transferred",
    }
}

pub fn author(a: pb::Author) -> &'static str {
    match a {
        pb::Author::Unspecified => UNKNOWN,
        pb::Author::Customer => "customer",
        pb::Author::Agent => "agent",
        pb::Author::System => "system",
    }
}

pub fn strategy(s: pb::Strategy) -> &'static str {
    match s {
        // The daemon routes an unspecified strategy as longest idle.
        pb::Strategy::Unspecified | pb::Strategy::LongestIdle => "longest idle",
        pb::Strategy::MostSkilled => "most skilled",
        pb::Strategy::LeastOccupied => "least occupied",
    }
}

/// A state name from the daemon's maps (`not_ready`, `wrap_up`) as the tables write it.
pub fn state_name(name: &str) -> String {
    match name {
        "wrap_up" => "wrap-up".into(),
        other => other.replace('_', " "),
    }
}

/// Channel names in the order the tables list them: voice, chat, sms, email, then any other.
pub fn channel_rank(name: &str) -> (usize, &str) {
    let rank = ["voice", "chat", "sms", "email"].iter().position(|c| *c == name).unwrap_or(4);
    (rank, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn durations_show_the_two_largest_units() {
        let s = Duration::from_secs;
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_millis(999)), "0s");
        assert_eq!(duration(s(45)), "45s");
        assert_eq!(duration(s(60)), "1m 00s");
        assert_eq!(duration(s(65)), "1m 05s");
        assert_eq!(duration(s(3599)), "59m 59s");
        assert_eq!(duration(s(2 * 3600 + 3 * 60 + 59)), "2h 03m");
        assert_eq!(duration(s(3 * 86_400 + 4 * 3600)), "3d 04h");
        assert_eq!(millis(65_400), "1m 05s");
        assert_eq!(secs(12.6), "13s");
        assert_eq!(secs(0.0), "0s");
        assert_eq!(secs(f64::NAN), "-");
        assert_eq!(secs(-1.0), "-");
    }

    #[test]
    fn percentages_have_one_decimal_and_a_dash_for_none() {
        assert_eq!(percent(Some(100.0)), "100.0 %");
        assert_eq!(percent(Some(95.04)), "95.0 %");
        assert_eq!(percent(Some(0.0)), "0.0 %");
        assert_eq!(percent(None), "-");
        assert_eq!(percent(Some(f64::NAN)), "-");
    }

    #[test]
    fn date_times_are_in_the_given_zone_to_the_second() {
        // The example: Timestamp { seconds: 1796034533, nanos: 475000000 }.
        let ts = Timestamp { seconds: 1_796_034_533, nanos: 475_000_000 };
        assert_eq!(date_time_in(Some(&ts), &chrono::Utc), "2026-11-30 10:28:53");
        let cet = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(date_time_in(Some(&ts), &cet), "2026-11-30 11:28:53");
        let behind = FixedOffset::west_opt(11 * 3600).unwrap();
        assert_eq!(date_time_in(Some(&ts), &behind), "2026-11-29 23:28:53");
        // Whatever this machine's zone, a local time has the same shape.
        assert_eq!(date_time(Some(&ts)).len(), "2026-12-01 10:28:53".len());
        assert_eq!(time_of_day(Some(&ts)).len(), "10:28:53".len());
    }

    #[test]
    fn unset_times_and_texts_are_a_dash() {
        assert_eq!(date_time(None), "-");
        assert_eq!(date_time(Some(&Timestamp::default())), "-");
        assert_eq!(date_time(Some(&Timestamp { seconds: 1, nanos: -5 })), "-");
        assert_eq!(time_of_day(None), "-");
        assert_eq!(age(None, SystemTime::now()), "-");
        assert_eq!(or_dash(""), "-");
        assert_eq!(or_dash("  "), "-");
        assert_eq!(or_dash("lunch"), "lunch");
        assert_eq!(list(Vec::new()), "-");
        assert_eq!(list(vec![String::new()]), "-");
        assert_eq!(list(vec!["a".into(), "b".into()]), "a, b");
        assert_eq!(channel(pb::Channel::Unspecified), "-");
        assert_eq!(presence(pb::PresenceState::Unspecified), "-");
    }

    #[test]
    fn ages_count_from_the_timestamp() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_034_600);
        let ts = Timestamp { seconds: 1_796_034_533, nanos: 475_000_000 };
        assert_eq!(age(Some(&ts), now), "1m 06s");
        // A server clock slightly ahead of ours is not a negative age.
        let ahead = Timestamp { seconds: 1_796_034_610, nanos: 0 };
        assert_eq!(age(Some(&ahead), now), "0s");
    }

    #[test]
    fn names_are_words() {
        assert_eq!(presence(pb::PresenceState::NotReady), "not ready");
        assert_eq!(presence(pb::PresenceState::WrapUp), "wrap-up");
        assert_eq!(interaction_state(pb::InteractionState::WrapUp), "wrap-up");
        assert_eq!(strategy(pb::Strategy::Unspecified), "longest idle");
        assert_eq!(state_name("not_ready"), "not ready");
        assert_eq!(state_name("wrap_up"), "wrap-up");
        let mut chans = vec!["email", "other", "chat", "voice", "sms"];
        chans.sort_by_key(|c| channel_rank(c));
        assert_eq!(chans, ["voice", "chat", "sms", "email", "other"]);
    }
}
