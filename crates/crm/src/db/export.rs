//! The contacts that arrived in a time window and how each one went, read back from the log:
//! what `switchboard crm export` writes for the simulator to replay.
//!
//! One statement, streamed: the window's interactions (their `created` time is `started_ms`)
//! joined to the five kinds of events that matter through `events_interaction`, in arrival
//! order per interaction, so each contact is folded and handed on before the next one is read
//! and a long window is never held in memory.

use sqlx::Row;
use tokio_stream::StreamExt;

use super::{CrmDb, CrmError};
use switchboard_model::{Channel, EventKind};

/// Why a contact that was never answered ended, when it was not the customer's doing: the queue
/// was closed (after-hours), the customer took a callback instead (a new interaction of its own),
/// a supervisor withdrew it without a reason, or the contact was erased.
const ENDED_BY_US: &[&str] = &["closed", "callback", "erased", "supervisor"];

/// One contact that arrived in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// The `created` event's time.
    pub at_ms: i64,
    pub interaction_id: String,
    pub channel: Channel,
    /// The queue it arrived in (the `created` event's), not one it was moved to later.
    pub queue: String,
    /// Its priority on arrival.
    pub priority: i64,
    pub fate: Fate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Accepted, then completed: handled from the first `accepted` to the wrap-up (transfers
    /// included), or to `completed` when there was none; then in wrap-up until `completed`.
    Handled { handle_ms: i64, wrap_ms: Option<i64> },
    /// The customer left before anyone answered, after waiting this long (the `abandoned`
    /// event's `waited_ms`).
    Left { waited_ms: i64 },
    /// Not ended when the log was read (waiting, offered, being handled or in wrap-up).
    Open,
}

/// What the export read: the arrivals handed on, and those left out because they ended
/// otherwise (see [`ENDED_BY_US`]) or the log no longer says enough about them (erased details
/// without a channel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArrivalCounts {
    pub exported: u64,
    pub left_out: u64,
}

/// Whether an `abandoned` event means the customer gave up: anything but the reasons that
/// mean the center ended it, unless a supervisor or an admin asked for it (a withdrawal with a
/// reason of their own). A voice call's reason is the telephony platform's cause, so the
/// reasons that mean the customer left cannot be listed; those that do not can.
pub fn customer_left(reason: &str, actor: &str) -> bool {
    if ENDED_BY_US.contains(&reason) {
        return false;
    }
    let role = actor.split_once(':').map_or("", |(role, _)| role);
    !matches!(role, "supervisor" | "admin")
}

/// An interaction's events as they are folded.
#[derive(Default)]
struct Folding {
    id: String,
    started_ms: i64,
    /// The interactions row's channel: what is left when erasure blanked the events' details.
    row_channel: String,
    created: Option<(i64, String, serde_json::Value)>,
    first_accepted_ms: Option<i64>,
    /// The last `wrap_up` (a transferred contact's earlier agents' ends are part of its handling).
    wrap_up_ms: Option<i64>,
    completed_ms: Option<i64>,
    /// reason (None when the details are gone), waited_ms, actor.
    abandoned: Option<(Option<String>, Option<i64>, String)>,
}

fn millis(v: Option<&serde_json::Value>) -> Option<i64> {
    let v = v?;
    // cjson writes whole numbers as integers, but a float is no reason to lose the row.
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f.round() as i64))
}

impl Folding {
    /// None when the arrival is left out.
    fn finish(self) -> Option<Arrival> {
        let (at_ms, queue, details) = self.created.unwrap_or((self.started_ms, String::new(), serde_json::Value::Null));
        let channel = details
            .get("channel")
            .and_then(serde_json::Value::as_str)
            .and_then(Channel::parse)
            .or_else(|| Channel::parse(&self.row_channel))?;
        let priority = millis(details.get("priority")).unwrap_or(0);
        let fate = match (self.first_accepted_ms, self.completed_ms, self.abandoned) {
            (Some(accepted), Some(completed), _) => {
                match self.wrap_up_ms.filter(|w| (accepted..=completed).contains(w)) {
                    Some(wrap) => Fate::Handled { handle_ms: wrap - accepted, wrap_ms: Some(completed - wrap) },
                    None => Fate::Handled { handle_ms: (completed - accepted).max(0), wrap_ms: None },
                }
            }
            (_, _, Some((Some(reason), Some(waited_ms), actor))) if customer_left(&reason, &actor) => {
                Fate::Left { waited_ms: waited_ms.max(0) }
            }
            (_, None, None) => Fate::Open,
            _ => return None,
        };
        Some(Arrival { at_ms, interaction_id: self.id, channel, queue, priority, fate })
    }
}

impl CrmDb {
    /// Hands each contact whose `created` event is in [`since_ms`, `until_ms`) to `each`, ordered
    /// by that time, then id. Their later events count wherever they fall: a contact that arrived
    /// just before `until_ms` and was answered after it is handled, not open.
    pub async fn arrivals<E: From<CrmError>>(
        &self,
        since_ms: i64,
        until_ms: i64,
        mut each: impl FnMut(Arrival) -> Result<(), E>,
    ) -> Result<ArrivalCounts, E> {
        if until_ms <= since_ms {
            return Err(CrmError::Invalid("until: must be after since".into()).into());
        }
        // CROSS JOIN: SQLite then reads the window's interactions first (interactions_started)
        // and looks their events up by events_interaction; left to itself (no statistics) it
        // reads the whole log instead.
        // PostgreSQL plans it as the inner join it is.
        let mut rows = sqlx::query(
            "SELECT i.id, i.started_ms, i.channel, e.type, e.at_ms, e.queue, e.details, e.actor \
             FROM interactions i CROSS JOIN events e \
             WHERE e.interaction_id = i.id AND i.started_ms >= $1 AND i.started_ms < $2 \
             AND e.type IN ($3, $4, $5, $6, $7) \
             ORDER BY i.started_ms, i.id, e.received_seq",
        )
        .bind(since_ms)
        .bind(until_ms)
        .bind(EventKind::Created.as_str())
        .bind(EventKind::Accepted.as_str())
        .bind(EventKind::Completed.as_str())
        .bind(EventKind::Abandoned.as_str())
        .bind(EventKind::WrapUp.as_str())
        .fetch(&self.pool);
        let mut counts = ArrivalCounts::default();
        let mut current: Option<Folding> = None;
        let mut hand_on = |f: Folding, counts: &mut ArrivalCounts| -> Result<(), E> {
            match f.finish() {
                Some(arrival) => {
                    counts.exported += 1;
                    each(arrival)
                }
                None => {
                    counts.left_out += 1;
                    Ok(())
                }
            }
        };
        while let Some(row) = rows.next().await {
            let row = row.map_err(CrmError::from)?;
            let id: String = row.try_get(0).map_err(CrmError::from)?;
            if current.as_ref().is_some_and(|f| f.id != id)
                && let Some(done) = current.take()
            {
                hand_on(done, &mut counts)?;
            }
            let f = match &mut current {
                Some(f) => f,
                None => current.insert(Folding {
                    id,
                    started_ms: row.try_get(1).map_err(CrmError::from)?,
                    row_channel: row.try_get(2).map_err(CrmError::from)?,
                    ..Folding::default()
                }),
            };
            let typ: String = row.try_get(3).map_err(CrmError::from)?;
            let at_ms: i64 = row.try_get(4).map_err(CrmError::from)?;
            match EventKind::parse(&typ) {
                Some(EventKind::Created) if f.created.is_none() => {
                    let details: String = row.try_get(6).map_err(CrmError::from)?;
                    let details = serde_json::from_str(&details).unwrap_or(serde_json::Value::Null);
                    f.created = Some((at_ms, row.try_get(5).map_err(CrmError::from)?, details));
                }
                Some(EventKind::Accepted) if f.first_accepted_ms.is_none() => f.first_accepted_ms = Some(at_ms),
                Some(EventKind::WrapUp) => f.wrap_up_ms = Some(at_ms),
                Some(EventKind::Completed) if f.completed_ms.is_none() => f.completed_ms = Some(at_ms),
                Some(EventKind::Abandoned) if f.abandoned.is_none() => {
                    let details: String = row.try_get(6).map_err(CrmError::from)?;
                    let details: serde_json::Value = serde_json::from_str(&details).unwrap_or_default();
                    let reason = details.get("reason").and_then(serde_json::Value::as_str).map(str::to_string);
                    f.abandoned =
                        Some((reason, millis(details.get("waited_ms")), row.try_get(7).map_err(CrmError::from)?));
                }
                _ => {}
            }
        }
        if let Some(done) = current.take() {
            hand_on(done, &mut counts)?;
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_customer_left_unless_the_center_ended_it() {
        for reason in ["customer_left", "caller_hung_up", "visitor_ended", "originator_cancel", ""] {
            assert!(customer_left(reason, ""), "{reason:?}");
            assert!(customer_left(reason, "channel:web"), "{reason:?} from a channel");
            assert!(customer_left(reason, "telephony:pbx-1"), "{reason:?} from a PBX");
        }
        for reason in ENDED_BY_US {
            assert!(!customer_left(reason, ""), "{reason:?}");
        }
        assert!(!customer_left("duplicate", "supervisor:lead"));
        assert!(!customer_left("customer_left", "admin:ops"));
    }

    fn folding() -> Folding {
        Folding {
            id: "ix-1".into(),
            started_ms: 1_000,
            row_channel: "voice".into(),
            created: Some((1_000, "sales".into(), serde_json::json!({ "channel": "chat", "priority": 3 }))),
            ..Folding::default()
        }
    }

    #[test]
    fn a_contact_folds_into_its_fate() {
        let wrapped = Folding {
            first_accepted_ms: Some(5_000),
            wrap_up_ms: Some(60_000),
            completed_ms: Some(65_250),
            ..folding()
        };
        assert_eq!(wrapped.finish().unwrap().fate, Fate::Handled { handle_ms: 55_000, wrap_ms: Some(5_250) });
        let handled = Folding { first_accepted_ms: Some(5_000), completed_ms: Some(65_250), ..folding() };
        assert_eq!(
            handled.finish().unwrap(),
            Arrival {
                at_ms: 1_000,
                interaction_id: "ix-1".into(),
                channel: Channel::Chat,
                queue: "sales".into(),
                priority: 3,
                fate: Fate::Handled { handle_ms: 60_250, wrap_ms: None },
            }
        );
        let left =
            Folding { abandoned: Some((Some("customer_left".into()), Some(42_000), String::new())), ..folding() };
        assert_eq!(left.finish().unwrap().fate, Fate::Left { waited_ms: 42_000 });
        assert_eq!(Folding { first_accepted_ms: Some(5_000), ..folding() }.finish().unwrap().fate, Fate::Open);
        assert_eq!(folding().finish().unwrap().fate, Fate::Open);
        for reason in ["closed", "callback"] {
            let ended = Folding { abandoned: Some((Some(reason.into()), Some(0), String::new())), ..folding() };
            assert_eq!(ended.finish(), None, "{reason}");
        }
        // Erased: the details (reason, channel, priority) are gone, the row's channel is not.
        let erased = Folding {
            created: Some((1_000, "sales".into(), serde_json::json!({ "erased": true }))),
            abandoned: Some((None, None, String::new())),
            ..folding()
        };
        assert_eq!(erased.finish(), None);
        let erased = Folding {
            created: Some((1_000, "sales".into(), serde_json::json!({ "erased": true }))),
            first_accepted_ms: Some(2_000),
            completed_ms: Some(3_000),
            ..folding()
        };
        let a = erased.finish().unwrap();
        assert_eq!(
            (a.channel, a.priority, a.fate),
            (Channel::Voice, 0, Fate::Handled { handle_ms: 1_000, wrap_ms: None })
        );
        assert_eq!(Folding { row_channel: String::new(), created: None, ..folding() }.finish(), None);
    }
}
