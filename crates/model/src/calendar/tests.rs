//! Calendars by cases: daylight-saving days in Europe and America, holidays in a zone other than
//! UTC, ranges to midnight, weekends, and every refusal naming its field.

use chrono::{DateTime, NaiveDate, Utc};

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn spec(tz: &str, weekly: &[(usize, &[&str])]) -> CalendarSpec {
    let mut s = CalendarSpec::new("cal", tz);
    for (day, hours) in weekly {
        *s.weekly.day_mut(*day) = hours.iter().map(ToString::to_string).collect();
    }
    s
}

fn cal(tz: &str, weekly: &[(usize, &[&str])]) -> Calendar {
    spec(tz, weekly).compile().unwrap()
}

fn exception(from: &str, to: &str, hours: &[&str]) -> ExceptionSpec {
    ExceptionSpec {
        name: "holiday".into(),
        from: from.into(),
        to: to.into(),
        hours: hours.iter().map(ToString::to_string).collect(),
    }
}

fn openings(c: &Calendar, from: &str, days: u32) -> Vec<(String, String)> {
    c.openings(utc(from), days).into_iter().map(|(a, b)| (a.to_rfc3339(), b.to_rfc3339())).collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (utc(a).to_rfc3339(), utc(b).to_rfc3339())
}

const MON: usize = 0;
const TUE: usize = 1;
const SUN: usize = 6;
const WEEKDAYS: [usize; 5] = [0, 1, 2, 3, 4];

#[test]
fn berlin_spring_forward_day_is_23_hours_and_the_skipped_hour_maps_to_its_end() {
    // 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    let whole = cal("Europe/Berlin", &[(SUN, &["00:00-24:00"])]);
    assert_eq!(
        openings(&whole, "2026-03-28T12:00:00Z", 2),
        [pair("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z")],
        "23 hours"
    );
    // A range starting inside the gap starts when it ends; one wholly inside it is no opening.
    let c = cal("Europe/Berlin", &[(SUN, &["02:00-02:30", "02:30-04:00"])]);
    assert_eq!(openings(&c, "2026-03-28T12:00:00Z", 2), [pair("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z")]);
    assert!(!c.is_open(utc("2026-03-29T00:59:00Z")));
    assert!(c.is_open(utc("2026-03-29T01:30:00Z")), "03:30 CEST");
    assert_eq!(c.next_change(utc("2026-03-29T00:30:00Z")), Some((utc("2026-03-29T01:00:00Z"), true)));
    assert_eq!(c.next_change(utc("2026-03-29T01:00:00Z")), Some((utc("2026-03-29T02:00:00Z"), false)));
}

#[test]
fn berlin_fall_back_day_is_25_hours_and_a_repeated_time_is_its_first() {
    // 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:00-03:00 happens twice.
    let whole = cal("Europe/Berlin", &[(SUN, &["00:00-24:00"])]);
    assert_eq!(
        openings(&whole, "2026-10-24T12:00:00Z", 2),
        [pair("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")],
        "25 hours"
    );
    let c = cal("Europe/Berlin", &[(SUN, &["02:30-06:00"])]);
    // 02:30 CEST, the first of the two, to 06:00 CET.
    assert_eq!(openings(&c, "2026-10-24T12:00:00Z", 2), [pair("2026-10-25T00:30:00Z", "2026-10-25T05:00:00Z")]);
    assert!(c.is_open(utc("2026-10-25T01:15:00Z")), "02:15 CET, the second time round");
    assert!(!c.is_open(utc("2026-10-25T00:15:00Z")), "02:15 CEST");
    // The week after, 02:30 CET is 01:30 UTC again.
    assert_eq!(c.next_change(utc("2026-10-25T05:00:00Z")), Some((utc("2026-11-01T01:30:00Z"), true)));
}

#[test]
fn new_york_hours_follow_the_clock_change() {
    // 2026-03-08: 02:00 EST becomes 03:00 EDT; 09:00 is 14:00 UTC before and 13:00 UTC after.
    let days: Vec<(usize, &[&str])> = WEEKDAYS.iter().map(|d| (*d, &["09:00-17:00"][..])).collect();
    let c = cal("America/New_York", &days);
    let week = openings(&c, "2026-03-06T00:00:00Z", 7);
    assert_eq!(week.len(), 5, "{week:?}");
    assert_eq!(week[0], pair("2026-03-06T14:00:00Z", "2026-03-06T22:00:00Z"), "Friday, EST");
    assert_eq!(week[1], pair("2026-03-09T13:00:00Z", "2026-03-09T21:00:00Z"), "Monday, EDT");
    assert_eq!(c.next_change(utc("2026-03-06T22:00:00Z")), Some((utc("2026-03-09T13:00:00Z"), true)));
    // And back on 2026-11-01.
    assert_eq!(c.next_change(utc("2026-10-30T21:00:00Z")), Some((utc("2026-11-02T14:00:00Z"), true)));
}

#[test]
fn a_holiday_is_a_local_date_not_a_utc_one() {
    let every_day: Vec<(usize, &[&str])> = (0..7).map(|d| (d, &["00:00-24:00"][..])).collect();
    let mut s = spec("America/Los_Angeles", &every_day);
    s.exceptions = vec![exception("2026-12-25", "", &[])];
    let c = s.compile().unwrap();
    // 2026-12-25 04:00 UTC is still Christmas Eve in Los Angeles (PST, UTC-8).
    assert!(c.is_open(utc("2026-12-25T04:00:00Z")));
    assert!(!c.is_open(utc("2026-12-26T04:00:00Z")), "Christmas evening in Los Angeles");
    assert_eq!(c.next_change(utc("2026-12-25T04:00:00Z")), Some((utc("2026-12-25T08:00:00Z"), false)));
    assert_eq!(c.next_change(utc("2026-12-25T12:00:00Z")), Some((utc("2026-12-26T08:00:00Z"), true)));
    assert_eq!(
        c.exception_on(NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()).map(|e| e.name.as_str()),
        Some("holiday")
    );
}

#[test]
fn ranges_to_midnight_join_the_next_day_s_from_midnight() {
    // London in June is UTC+1.
    let c = cal("Europe/London", &[(MON, &["22:00-24:00"]), (TUE, &["09:00-10:00", "00:00-06:00"])]);
    assert_eq!(
        openings(&c, "2026-06-01T00:00:00Z", 2),
        [pair("2026-06-01T21:00:00Z", "2026-06-02T05:00:00Z"), pair("2026-06-02T08:00:00Z", "2026-06-02T09:00:00Z")]
    );
    assert!(c.is_open(utc("2026-06-01T23:00:00Z")), "midnight, inside the merged opening");
    assert_eq!(c.next_change(utc("2026-06-01T22:00:00Z")), Some((utc("2026-06-02T05:00:00Z"), false)));
    // Adjacent ranges on one day are one opening too.
    let c = cal("UTC", &[(MON, &["08:00-12:00", "12:00-13:00"])]);
    assert_eq!(openings(&c, "2026-06-01T00:00:00Z", 1), [pair("2026-06-01T08:00:00Z", "2026-06-01T13:00:00Z")]);
}

#[test]
fn next_change_skips_the_weekend() {
    let days: Vec<(usize, &[&str])> = WEEKDAYS.iter().map(|d| (*d, &["09:00-17:00"][..])).collect();
    let c = cal("Europe/Berlin", &days);
    // Friday 2026-06-05, CEST.
    assert!(c.is_open(utc("2026-06-05T14:59:59Z")));
    assert!(!c.is_open(utc("2026-06-05T15:00:00Z")), "the end is not inside");
    assert_eq!(c.next_change(utc("2026-06-05T14:00:00Z")), Some((utc("2026-06-05T15:00:00Z"), false)));
    assert_eq!(c.next_change(utc("2026-06-05T15:00:00Z")), Some((utc("2026-06-08T07:00:00Z"), true)));
    assert_eq!(c.next_change(utc("2026-06-06T10:00:00Z")), Some((utc("2026-06-08T07:00:00Z"), true)));
}

#[test]
fn always_and_never_open_never_change() {
    let every_day: Vec<(usize, &[&str])> = (0..7).map(|d| (d, &["00:00-24:00"][..])).collect();
    let always = cal("Asia/Tokyo", &every_day);
    let at = utc("2026-06-05T14:00:00Z");
    assert!(always.is_open(at));
    assert_eq!(always.next_change(at), None);
    assert_eq!(openings(&always, "2026-06-05T14:00:00Z", 2), [pair("2026-06-05T14:00:00Z", "2026-06-07T14:00:00Z")]);
    let never = cal("Asia/Tokyo", &[]);
    assert!(!never.is_open(at));
    assert_eq!(never.next_change(at), None);
    assert!(never.openings(at, 31).is_empty());
    // One opening day next year is still found.
    let mut s = spec("UTC", &[]);
    s.exceptions = vec![exception("2027-06-01", "", &["10:00-11:00"])];
    assert_eq!(s.compile().unwrap().next_change(at), Some((utc("2027-06-01T10:00:00Z"), true)));
}

#[test]
fn the_last_exception_covering_a_date_decides_it() {
    let days: Vec<(usize, &[&str])> = WEEKDAYS.iter().map(|d| (*d, &["09:00-17:00"][..])).collect();
    let mut s = spec("Europe/Berlin", &days);
    s.exceptions = vec![
        exception("2026-12-21", "2026-12-27", &[]),
        exception("2026-12-23", "", &["10:00-12:00"]),
        exception("2026-12-26", "2026-12-26", &["11:00-12:00"]),
    ];
    let c = s.compile().unwrap();
    let hours = |d: u32| {
        c.hours_on(NaiveDate::from_ymd_opt(2026, 12, d).unwrap()).iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    assert!(hours(22).is_empty());
    assert_eq!(hours(23), ["10:00-12:00"]);
    assert_eq!(hours(26), ["11:00-12:00"], "a Saturday opens by exception");
    assert!(hours(27).is_empty());
    assert_eq!(hours(28), ["09:00-17:00"]);
    assert_eq!(c.next_change(utc("2026-12-21T12:00:00Z")), Some((utc("2026-12-23T09:00:00Z"), true)));
}

#[test]
fn time_ranges_parse_strictly_and_print_back() {
    for s in ["00:00-24:00", "09:00-17:30", "23:59-24:00"] {
        assert_eq!(s.parse::<TimeRange>().unwrap().to_string(), s);
    }
    let r: TimeRange = "22:00-24:00".parse().unwrap();
    assert_eq!((r.start_minute(), r.end_minute()), (1320, 1440));
    for bad in [
        "9:00-17:00",
        "09:00",
        "09:00-17:60",
        "25:00-26:00",
        "24:00-24:00",
        "17:00-09:00",
        "09:00-09:00",
        "09:00 - 17:00",
        "",
        "24:30-24:45",
    ] {
        assert!(bad.parse::<TimeRange>().is_err(), "{bad:?}");
    }
}

type Change = Box<dyn Fn(&mut CalendarSpec)>;

#[test]
fn refusals_name_their_field() {
    let ok = || spec("Europe/Berlin", &[(MON, &["08:00-12:00", "13:00-18:00"])]);
    ok().validate().unwrap();
    let cases: Vec<(Change, &str, &str)> = vec![
        (Box::new(|s| s.name = "emea west".into()), "name", "may only contain"),
        (Box::new(|s| s.name.clear()), "name", "is required"),
        (Box::new(|s| s.time_zone = "Europe/Berlinn".into()), "time_zone", "unknown time zone"),
        (Box::new(|s| s.time_zone = "+01:00".into()), "time_zone", "IANA"),
        (Box::new(|s| s.time_zone.clear()), "time_zone", "is required"),
        (Box::new(|s| s.weekly.mon[1] = "13:00-1800".into()), "weekly.mon[1]", "HH:MM-HH:MM"),
        (Box::new(|s| s.weekly.tue = vec!["18:00-08:00".into()]), "weekly.tue[0]", "cross midnight"),
        (Box::new(|s| s.weekly.mon.push("11:00-14:00".into())), "weekly.mon[2]", "11:00-14:00 overlaps 08:00-12:00"),
        (
            Box::new(|s| s.weekly.mon.insert(0, "11:30-12:30".into())),
            "weekly.mon[1]",
            "08:00-12:00 overlaps 11:30-12:30",
        ),
        (Box::new(|s| s.weekly.sun = vec!["10:00-10:30".into(); 21]), "weekly.sun", "at most 20"),
        (Box::new(|s| s.exceptions = vec![exception("", "", &[])]), "exceptions[0].from", "is required"),
        (Box::new(|s| s.exceptions = vec![exception("24.12.2026", "", &[])]), "exceptions[0].from", "YYYY-MM-DD"),
        (Box::new(|s| s.exceptions = vec![exception("2026-02-30", "", &[])]), "exceptions[0].from", "not a date"),
        (
            Box::new(|s| s.exceptions = vec![exception("2026-12-24", "2026-12-1", &[])]),
            "exceptions[0].to",
            "YYYY-MM-DD",
        ),
        (Box::new(|s| s.exceptions = vec![exception("2026-12-24", "2026-12-23", &[])]), "exceptions[0].to", "before"),
        (
            Box::new(|s| {
                s.exceptions = vec![
                    exception("2026-12-24", "", &[]),
                    exception("2026-12-31", "", &["12:00-13:00", "12:30-14:00"]),
                ];
            }),
            "exceptions[1].hours[1]",
            "overlaps",
        ),
        (
            Box::new(|s| {
                s.exceptions = vec![ExceptionSpec { name: "a\nb".into(), ..exception("2026-12-24", "", &[]) }];
            }),
            "exceptions[0].name",
            "control characters",
        ),
        (Box::new(|s| s.exceptions = vec![exception("2026-12-24", "", &[]); 501]), "exceptions", "at most 500"),
    ];
    for (change, field, message) in cases {
        let mut s = ok();
        change(&mut s);
        let e = s.validate().unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.contains(message), "{field}: {e}");
    }
}
