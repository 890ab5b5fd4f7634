//! Local times of a zone as instants, across daylight-saving changes.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant a local time stands for: itself where it exists once; the earlier of two where
/// clocks went back; the first instant after the gap where clocks went forward over it (02:30 on
/// the day Berlin skips 02:00-03:00 is 03:00 CEST).
pub fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => after_gap(tz, local),
    }
}

/// The first instant whose local time is past `local`, a time inside a gap: the change itself.
fn after_gap(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let offset =
        |utc: NaiveDateTime| Duration::seconds(i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()));
    let local_at = |utc: NaiveDateTime| utc + offset(utc);
    // A day either side stands for the offsets before and after the gap (no zone changes twice a day).
    let (before, after) = (offset(local - Duration::days(1)), offset(local + Duration::days(1)));
    // Between these two instants the local time runs from before the gap to after it.
    let (lo, hi) = (local - after, local - before);
    if lo < hi && local_at(lo) < local && local_at(hi) >= local {
        // Whole seconds: offsets are, and so is the change.
        let (mut lo, mut hi) = (lo.and_utc().timestamp(), hi.and_utc().timestamp());
        let past = |secs: i64| DateTime::from_timestamp(secs, 0).is_some_and(|t| local_at(t.naive_utc()) >= local);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if past(mid) { hi = mid } else { lo = mid }
        }
        return DateTime::from_timestamp(hi, 0).unwrap_or_else(|| local.and_utc());
    }
    // Not the usual shape of a gap: the first whole minute after it that exists.
    let mut t = local;
    for _ in 0..48 * 60 {
        t += Duration::minutes(1);
        if let Some(e) = tz.from_local_datetime(&t).earliest() {
            return e.with_timezone(&Utc);
        }
    }
    local.and_utc()
}
