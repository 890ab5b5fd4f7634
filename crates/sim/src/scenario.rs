//! What a simulation runs against: synthetic arrivals per queue and how agents behave. The center
//! itself (agents, queues, calendars) comes from the daemon's config.

use serde::Deserialize;
use switchboard_model::Channel;

/// `scenario.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The same seed gives the same arrivals, handle times and patience, so two configurations
    /// meet the same day.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How long synthetic arrivals come (hours of virtual time); the work they leave is then
    /// finished. With a recorded file, at least as long as it spans.
    #[serde(default)]
    pub hours: f64,
    /// A recorded day (`switchboard crm export`), relative to the scenario file; see
    /// [`crate::recorded`].
    #[serde(default)]
    pub recorded: Option<std::path::PathBuf>,
    /// How long an agent takes to accept an offer (seconds).
    #[serde(default)]
    pub accept_delay_secs: f64,
    /// Arrivals are left out of the figures for this long (seconds) while the center fills up
    /// from empty, as in any steady-state measurement.
    #[serde(default)]
    pub warm_up_secs: f64,
    #[serde(default)]
    pub arrivals: Vec<Arrivals>,
    /// Of the offers agents get, the percentage they turn down (each offer drawn on its own): the
    /// routing passes the contact to someone else and keeps it from that agent.
    #[serde(default)]
    pub reject_percent: f64,
    /// Of the offers agents get, the percentage they let ring out (the queue's offer timeout): the
    /// routing then sets the agent not ready, as it does for a real missed offer.
    #[serde(default)]
    pub miss_percent: f64,
    /// After missing an offer, an agent makes themselves ready again this much later (seconds).
    #[serde(default = "default_ready_after_miss")]
    pub ready_after_miss_secs: f64,
    /// Who is signed in when. An agent named in no shift works the whole run.
    #[serde(default)]
    pub shifts: Vec<Shift>,
    /// With a recorded file: the epoch ms its virtual time 0 stands for (the hour of its first
    /// contact); synthetic days start at [`crate::run::START_MS`].
    #[serde(skip)]
    pub recorded_start_ms: Option<u64>,
}

fn default_seed() -> u64 {
    1
}

fn default_ready_after_miss() -> f64 {
    30.0
}

/// Agents ready for routing from `from_hour` to `to_hour` of the run (hours since it began). At
/// the end of a shift an agent takes no new work and finishes what they have.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// Agent ids, or a prefix ending in `*` (`"a0*"`).
    pub agents: Vec<String>,
    pub from_hour: f64,
    pub to_hour: f64,
}

impl Shift {
    pub fn covers(&self, agent: &str) -> bool {
        self.agents.iter().any(|p| matches(p, agent))
    }
}

/// `p` names `agent`: the same id, or a prefix of it followed by `*`.
pub fn matches(p: &str, agent: &str) -> bool {
    match p.strip_suffix('*') {
        Some(prefix) => agent.starts_with(prefix),
        None => p == agent,
    }
}

/// A Poisson stream of contacts into one queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrivals {
    pub queue: String,
    #[serde(default = "default_channel")]
    pub channel: Channel,
    /// Mean arrivals per hour.
    pub per_hour: f64,
    #[serde(default)]
    pub priority: i32,
    /// Mean handle time (seconds), from accept to complete.
    pub handle_secs: f64,
    #[serde(default)]
    pub handle: Distribution,
    /// Standard deviation of a log-normal handle time (seconds).
    #[serde(default)]
    pub handle_sd_secs: Option<f64>,
    /// Mean patience (seconds, exponential): a customer still waiting after it leaves. None:
    /// nobody leaves.
    #[serde(default)]
    pub patience_secs: Option<f64>,
    /// Mean wrap-up an agent takes after a contact (seconds, exponential), ended early on the
    /// desktop; the queue's `wrap_up_secs` is the most it can be. None: the queue's whole time.
    #[serde(default)]
    pub wrap_up_secs: Option<f64>,
    /// Made from a recorded file's rows (never drawn): the report groups them like a stream.
    #[serde(skip)]
    pub recorded: bool,
}

fn default_channel() -> Channel {
    Channel::Voice
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    #[default]
    Exponential,
    Lognormal,
}

/// A scenario that cannot run, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScenarioError {
    pub field: String,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError { field: field.into(), message: message.into() }
}

impl Scenario {
    /// The epoch ms virtual time 0 stands for.
    pub fn start_ms(&self) -> u64 {
        self.recorded_start_ms.unwrap_or(crate::run::START_MS)
    }

    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let field = e.span().map_or_else(|| "scenario".to_string(), |sp| format!("scenario (byte {})", sp.start));
            bad(field, e.message().to_string())
        })?;
        s.validate()?;
        Ok(s)
    }

    /// Checks what serde cannot: positive rates and times, a finite day.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let positive = |field: String, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(bad(field, format!("must be a positive number, got {v}")))
            }
        };
        if self.arrivals.is_empty() && self.recorded.is_none() {
            return Err(bad(
                "arrivals",
                "name at least one stream of arrivals ([[arrivals]]) or a recorded file (recorded = \"day.csv\")",
            ));
        }
        if !self.arrivals.is_empty() || self.hours != 0.0 {
            positive("hours".into(), self.hours)?;
        }
        if self.hours > 24.0 * 31.0 {
            return Err(bad("hours", "at most 744 (31 days)"));
        }
        for (name, v) in [("accept_delay_secs", self.accept_delay_secs), ("warm_up_secs", self.warm_up_secs)] {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(name, format!("must be 0 or more, got {v}")));
            }
        }
        if self.hours > 0.0 && self.warm_up_secs >= self.hours * 3600.0 {
            return Err(bad("warm_up_secs", "must be shorter than the run"));
        }
        for (name, v) in [("reject_percent", self.reject_percent), ("miss_percent", self.miss_percent)] {
            if !v.is_finite() || !(0.0..=100.0).contains(&v) {
                return Err(bad(name, format!("must be 0 to 100, got {v}")));
            }
        }
        if self.reject_percent + self.miss_percent > 100.0 {
            return Err(bad("miss_percent", "reject_percent and miss_percent add up to more than 100"));
        }
        if !self.ready_after_miss_secs.is_finite() || self.ready_after_miss_secs < 0.0 {
            return Err(bad("ready_after_miss_secs", format!("must be 0 or more, got {}", self.ready_after_miss_secs)));
        }
        for (i, sh) in self.shifts.iter().enumerate() {
            let f = |k: &str| format!("shifts[{i}].{k}");
            if sh.agents.is_empty() {
                return Err(bad(f("agents"), "name at least one agent (an id, or a prefix ending in *)"));
            }
            for (j, p) in sh.agents.iter().enumerate() {
                let id = p.strip_suffix('*').unwrap_or(p);
                if !(id.is_empty() && p == "*") {
                    switchboard_model::validate_id(&format!("shifts[{i}].agents[{j}]"), id)
                        .map_err(|e| bad(format!("shifts[{i}].agents[{j}]"), e.to_string()))?;
                }
            }
            if !sh.from_hour.is_finite() || sh.from_hour < 0.0 {
                return Err(bad(f("from_hour"), format!("must be 0 or more, got {}", sh.from_hour)));
            }
            if !sh.to_hour.is_finite() || sh.to_hour <= sh.from_hour {
                return Err(bad(
                    f("to_hour"),
                    format!("must be after from_hour ({}), got {}", sh.from_hour, sh.to_hour),
                ));
            }
        }
        for (i, a) in self.arrivals.iter().enumerate().filter(|(_, a)| !a.recorded) {
            let f = |k: &str| format!("arrivals[{i}].{k}");
            switchboard_model::validate_id(&f("queue"), &a.queue).map_err(|e| bad(f("queue"), e.to_string()))?;
            positive(f("per_hour"), a.per_hour)?;
            positive(f("handle_secs"), a.handle_secs)?;
            if let Some(p) = a.patience_secs {
                positive(f("patience_secs"), p)?;
            }
            if let Some(w) = a.wrap_up_secs {
                positive(f("wrap_up_secs"), w)?;
            }
            match (a.handle, a.handle_sd_secs) {
                (Distribution::Lognormal, None) => {
                    return Err(bad(f("handle_sd_secs"), "a log-normal handle time needs its standard deviation"));
                }
                (Distribution::Lognormal, Some(sd)) => positive(f("handle_sd_secs"), sd)?,
                (Distribution::Exponential, Some(_)) => {
                    return Err(bad(f("handle_sd_secs"), "only for handle = \"lognormal\""));
                }
                (Distribution::Exponential, None) => {}
            }
            if !(0..=switchboard_model::MAX_PRIORITY).contains(&a.priority) {
                return Err(bad(f("priority"), format!("must be 0..={}", switchboard_model::MAX_PRIORITY)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_reads_and_bad_ones_name_their_field() {
        let s = Scenario::parse(
            "hours = 8\n[[arrivals]]\nqueue = \"sales\"\nper_hour = 120\nhandle_secs = 240\npatience_secs = 90\n",
        )
        .unwrap();
        assert_eq!(
            (s.seed, s.arrivals[0].channel, s.arrivals[0].handle),
            (1, Channel::Voice, Distribution::Exponential)
        );
        let field = |text: &str| Scenario::parse(text).unwrap_err().field;
        let one = "[[arrivals]]\nqueue = \"sales\"\nper_hour = 120\nhandle_secs = 240\n";
        assert_eq!(field(&format!("hours = 0\n{one}")), "hours");
        assert_eq!(field("hours = 1\narrivals = []\n"), "arrivals");
        assert_eq!(field(one), "hours");
        assert!(Scenario::parse("recorded = \"day.csv\"\n").is_ok());
        let with = |extra: &str| field(&format!("hours = 1\n{extra}\n{one}"));
        assert_eq!(with("reject_percent = 101"), "reject_percent");
        assert_eq!(with("reject_percent = 60\nmiss_percent = 50"), "miss_percent");
        assert_eq!(with("[[shifts]]\nagents = []\nfrom_hour = 0\nto_hour = 1"), "shifts[0].agents");
        assert_eq!(with("[[shifts]]\nagents = [\"a\", \"b c*\"]\nfrom_hour = 0\nto_hour = 1"), "shifts[0].agents[1]");
        assert_eq!(with("[[shifts]]\nagents = [\"a*\"]\nfrom_hour = 2\nto_hour = 1"), "shifts[0].to_hour");
        let s = Scenario::parse(&format!(
            "hours = 1\n{one}[[shifts]]\nagents = [\"a0*\", \"b\"]\nfrom_hour = 0\nto_hour = 1\n"
        ))
        .unwrap();
        assert!(
            s.shifts[0].covers("a01")
                && s.shifts[0].covers("b")
                && !s.shifts[0].covers("b1")
                && !s.shifts[0].covers("a1")
        );
        assert_eq!(field(&format!("hours = 1\n{}", one.replace("120", "-1"))), "arrivals[0].per_hour");
        assert_eq!(field(&format!("hours = 1\n{one}handle = \"lognormal\"\n")), "arrivals[0].handle_sd_secs");
        assert_eq!(field(&format!("hours = 1\n{}", one.replace("sales", "a b"))), "arrivals[0].queue");
        assert!(field(&format!("hours = 1\nbogus = 1\n{one}")).starts_with("scenario"));
    }
}
