//! The SMS section of `bench.md` and the `sms_*` columns of `bench.csv`: a row per SMS phase,
//! against the same run's ceilings.

use super::figures::Lat;
use super::texts::JOIN_EVERY;
use crate::ceiling::Ceiling;
use crate::row::Row;

pub fn sms_note() -> String {
    format!(
        "\nSMS channel, on a point of its own: a fresh Redis and daemon with `[sms]` and one Twilio-compatible \
gateway, our number per queue; the same agents taking one text conversation at a time, logged in on desktop \
streams. The benchmark is the provider both ways: it posts each customer's text to `/sms/<gateway>/inbound` \
as a form signed with `X-Twilio-Signature`, and serves the Messages REST API the daemon sends replies \
through (201 with a sid at once). Each conversation is a new customer number (a new interaction); in every \
{JOIN_EVERY}th the customer texts again once the agent has accepted it, and that text joins the open \
conversation. The desktop accepts each offer, replies (once the second text is on its desktop, where there \
is one) and completes, each step after the previous one's ack, so agents free up and the phase stays where \
it began. Stored: the webhook timed from the request leaving to its 200 (the text is stored when it is \
answered); stored/s counts all texts. Offered/s: offers on the desktops per second; text → offer: from the \
first text's webhook leaving to the offer on the desktop, `max` with one text at a time on each of the \
`--concurrency` senders (the ceiling), paced otherwise (the rate counts first texts; the second texts come \
on top). Before the create: the part of text → offer until the create function ran in Redis (the webhook, \
its signature, the conversation's lock and look-ups). Second text → desktop: from its webhook leaving to the \
message on the agent's desktop. Reply → provider: from SendReply leaving the desktop to the provider \
receiving the REST send; → ack: to SendReply's ack, which the daemon sends once the provider took the text. \
Not stored: webhooks answered other than 200, or not at all; errors: desktop requests refused, sends without \
the account's credentials, offers the benchmark cannot place (none is expected). Per-conversation figures \
divide the phase's work (texts in, routing, accepting, replying, completing) by its offers. Ceiling share: \
offers/s against the same run's EVALSHA/s.\n\n"
    )
}

pub const SMS_HEAD: &str = "| phase | agents | texts (joining) | stored/s | stored p50 / p99 / max ms | offered/s | % of EVALSHA ceiling | text → offer p50 / p99 / p99.9 / max ms | before the create p50 / p99 ms | second text → desktop p50 / p99 ms | reply → provider p50 / p99 / max ms | reply → ack p50 / p99 ms | not stored | errors | Redis round trips/conversation | Redis CPU µs/conversation | daemon+bench CPU µs/conversation | CPU stolen % |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

fn three(l: &Lat) -> String {
    if l.n == 0 { "–".into() } else { format!("{:.2} / {:.2} / {:.2}", l.p50, l.p99, l.max) }
}

fn two(l: &Lat) -> String {
    if l.n == 0 { "–".into() } else { format!("{:.2} / {:.2}", l.p50, l.p99) }
}

pub fn sms_row(r: &Row, ceiling: Ceiling) -> String {
    let Some(s) = &r.sms else { return String::new() };
    let k = &s.counts;
    let before = r.split.map_or("–".to_string(), |p| format!("{:.2} / {:.2}", p.before_p50, p.before_p99));
    let offer = if s.offered.n == 0 {
        "–".to_string()
    } else {
        format!("{:.2} / {:.2} / {:.2} / {:.2}", r.p50_ms, r.p99_ms, r.p999_ms, s.offered.max)
    };
    format!(
        "| {} | {} | {} ({}) | {:.0} | {} | {:.0} | {:.1} % | {offer} | {before} | {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.1} |\n",
        r.phase,
        r.agents,
        k.texts,
        k.joining,
        s.stored_per_s,
        three(&s.stored),
        r.per_sec,
        100.0 * r.per_sec / ceiling.evalsha.max(1.0),
        two(&s.joined),
        three(&s.to_provider),
        two(&s.reply_acked),
        k.not_stored,
        k.errors,
        r.round_trips,
        r.redis_cpu_us,
        r.own_cpu_us,
        r.steal_pct
    )
}

/// The `sms_*` columns' names, after the CTI ones.
pub const SMS_CSV_HEAD: &str = "sms_texts,sms_joining,sms_stored,sms_not_stored,sms_stored_per_s,\
sms_stored_p50_ms,sms_stored_p99_ms,sms_stored_max_ms,sms_offer_max_ms,sms_joined,sms_join_p50_ms,sms_join_p99_ms,\
sms_replies,sms_reply_provider_p50_ms,sms_reply_provider_p99_ms,sms_reply_provider_max_ms,sms_reply_ack_p50_ms,\
sms_reply_ack_p99_ms,sms_errors";

/// The `sms_*` cells: empty for the other points' rows.
pub fn sms_cells(r: &Row) -> String {
    let Some(s) = &r.sms else { return ",".repeat(SMS_CSV_HEAD.matches(',').count()) };
    let k = &s.counts;
    format!(
        "{},{},{},{},{:.1},{:.3},{:.3},{:.3},{:.3},{},{:.3},{:.3},{},{:.3},{:.3},{:.3},{:.3},{:.3},{}",
        k.texts,
        k.joining,
        k.stored,
        k.not_stored,
        s.stored_per_s,
        s.stored.p50,
        s.stored.p99,
        s.stored.max,
        s.offered.max,
        k.joined,
        s.joined.p50,
        s.joined.p99,
        k.replies,
        s.to_provider.p50,
        s.to_provider.p99,
        s.to_provider.max,
        s.reply_acked.p50,
        s.reply_acked.p99,
        k.errors
    )
}
