//! Calendars (opening hours): stored as their specs, one hash field each, shared by every instance.
//! Changing or deleting one is a function call, so that deleting cannot race a queue starting to
//! name it (`put_queue` checks the name in the same call that writes it).

use redis::AsyncCommands;
use switchboard_model::{Calendar, CalendarSpec};

use super::argv::argv;
use crate::{Engine, EngineError, Result};

argv! {
    struct PutCalendarArgs<'a> {
        name: &'a str,
        allow_update: bool,
        spec: &'a str,
    }
}

argv! {
    struct DeleteCalendarArgs<'a> {
        name: &'a str,
    }
}

fn decode(name: &str, json: &str) -> Result<CalendarSpec> {
    serde_json::from_str(json).map_err(|e| EngineError::Corrupt(format!("calendar {name:?}: {e}")))
}

impl Engine {
    /// Creates a calendar, or replaces it with `allow_update`; true if it is new. Queues that keep
    /// it follow the new hours at once, on every instance.
    pub async fn put_calendar(&self, spec: &CalendarSpec, allow_update: bool) -> Result<bool> {
        spec.validate().map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let json = serde_json::to_string(spec).expect("a calendar spec serializes");
        let r = self.run(PutCalendarArgs { name: &spec.name, allow_update, spec: &json }).await?;
        Ok(r.first().is_some_and(|s| s == "1"))
    }

    pub async fn get_calendar(&self, name: &str) -> Result<CalendarSpec> {
        let mut con = self.connection();
        let json: Option<String> = con.hget(self.keys().calendars(), name).await?;
        let json = json.ok_or_else(|| EngineError::NotFound(format!("name: no calendar named {name:?}")))?;
        decode(name, &json)
    }

    /// Every calendar, by name.
    pub async fn list_calendars(&self) -> Result<Vec<CalendarSpec>> {
        let mut con = self.connection();
        let all: Vec<(String, String)> = con.hgetall(self.keys().calendars()).await?;
        let mut calendars = all.iter().map(|(name, json)| decode(name, json)).collect::<Result<Vec<_>>>()?;
        calendars.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(calendars)
    }

    /// Refused (FailedPrecondition, naming them) while a queue keeps it.
    pub async fn delete_calendar(&self, name: &str) -> Result<()> {
        self.run(DeleteCalendarArgs { name }).await.map(|_| ())
    }

    /// The hours a queue keeps, ready to ask: `None` for a queue without a calendar (always open).
    pub async fn queue_calendar(&self, queue: &switchboard_model::QueueSpec) -> Result<Option<Calendar>> {
        let Some(name) = &queue.calendar else { return Ok(None) };
        let spec = self.get_calendar(name).await.map_err(|e| match e {
            // put_queue and delete_calendar keep this from happening.
            EngineError::NotFound(_) => {
                EngineError::Corrupt(format!("queue {:?} keeps calendar {name:?}, which is gone", queue.name))
            }
            e => e,
        })?;
        let calendar = spec.compile().map_err(|e| EngineError::Corrupt(format!("calendar {name:?}: {e}")))?;
        Ok(Some(calendar))
    }
}
