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
    /// How long arrivals come (hours of virtual time); the work they leave is then finished.
    pub hours: f64,
    /// How long an agent takes to accept an offer (seconds).
    #[serde(default)]
    pub accept_delay_secs: f64,
    /// Arrivals are left out of the figures for this long (seconds) while the center fills up
    /// from empty, as in any steady-state measurement.
    #[serde(default)]
    pub warm_up_secs: f64,
    pub arrivals: Vec<Arrivals>,
}

fn default_seed() -> u64 {
    1
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
        positive("hours".into(), self.hours)?;
        if self.hours > 24.0 * 31.0 {
            return Err(bad("hours", "at most 744 (31 days)"));
        }
        for (name, v) in [("accept_delay_secs", self.accept_delay_secs), ("warm_up_secs", self.warm_up_secs)] {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(name, format!("must be 0 or more, got {v}")));
            }
        }
        if self.warm_up_secs >= self.hours * 3600.0 {
            return Err(bad("warm_up_secs", "must be shorter than the run"));
        }
        if self.arrivals.is_empty() {
            return Err(bad("arrivals", "name at least one stream of arrivals ([[arrivals]])"));
        }
        for (i, a) in self.arrivals.iter().enumerate() {
            let f = |k: &str| format!("arrivals[{i}].{k}");
            switchboard_model::validate_id(&f("queue"), &a.queue).map_err(|e| bad(f("queue"), e.to_string()))?;
            positive(f("per_hour"), a.per_hour)?;
            positive(f("handle_secs"), a.handle_secs)?;
            if let Some(p) = a.patience_secs {
                positive(f("patience_secs"), p)?;
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
        assert_eq!(field(&format!("hours = 1\n{}", one.replace("120", "-1"))), "arrivals[0].per_hour");
        assert_eq!(field(&format!("hours = 1\n{one}handle = \"lognormal\"\n")), "arrivals[0].handle_sd_secs");
        assert_eq!(field(&format!("hours = 1\n{}", one.replace("sales", "a b"))), "arrivals[0].queue");
        assert!(field(&format!("hours = 1\nbogus = 1\n{one}")).starts_with("scenario"));
    }
}
