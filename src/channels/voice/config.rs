//! `[cti]` in the daemon's config file: which queue a dialled number reaches, and where a call
//! goes that no queue takes.

use serde::Deserialize;

/// Errors name the key under `cti.` that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct CtiConfigError {
    pub key: String,
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> CtiConfigError {
    CtiConfigError { key: key.into(), message: message.into() }
}

/// A routing point: calls reaching it (by its name, or by the number dialled) go to a queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingPoint {
    /// The routing point's name as the platform sends it (`routing_point`); may be empty when
    /// `dialled` is given.
    #[serde(default)]
    pub name: String,
    /// Numbers that reach it (DNIS), as the platform sends them (compared without spaces).
    #[serde(default)]
    pub dialled: Vec<String>,
    pub queue: String,
    /// Priority of its calls; unset: the queue's.
    #[serde(default)]
    pub priority: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CtiConfig {
    /// Serves the `switchboard.cti.v1` hook on the gRPC listener (to `telephony` keys).
    pub enabled: bool,
    /// Where calls go that no routing point takes (voicemail, an announcement). Empty: such a
    /// request is refused with NOT_FOUND, and the platform applies its own fallback.
    pub default_destination: String,
    /// How long a transfer to a named agent waits for them before the queue takes the call.
    pub transfer_agent_wait_secs: u32,
    /// Sticky routing: a caller who talked to an agent within this many minutes rings that agent
    /// first (0: off) ...
    pub sticky_minutes: u32,
    /// ... waiting this long for them before anyone else qualified takes the call.
    pub sticky_wait_secs: u32,
    pub routing_points: Vec<RoutingPoint>,
    /// Kamailio nodes to bridge (`deploy/kamailio/`): their evapi sockets.
    pub kamailio: Vec<super::kamailio::KamailioNode>,
    /// Callbacks: how many times the customer is dialled before the callback is given up ...
    pub callback_attempts: u32,
    /// ... waiting this long after an attempt nobody answered before the next ...
    pub callback_retry_secs: u32,
    /// ... and failing an attempt the platform has not reported on (answered, or not) after this.
    pub callback_dial_timeout_secs: u32,
    /// Where a callback's service level is measured to: `connected` (the customer picked up) or
    /// `accepted` (an agent took it, like any interaction).
    pub callback_service_level: switchboard_model::callback::ServiceLevelAt,
    /// The telephony system (its key's name) that dials callbacks agents schedule for chat and
    /// SMS customers; empty: agents cannot schedule them. Callbacks from a call are dialled by
    /// the call's own system.
    pub callback_system: String,
}

impl Default for CtiConfig {
    fn default() -> Self {
        CtiConfig {
            enabled: true,
            default_destination: String::new(),
            transfer_agent_wait_secs: 30,
            sticky_minutes: 30,
            sticky_wait_secs: 15,
            routing_points: Vec::new(),
            kamailio: Vec::new(),
            callback_attempts: 3,
            callback_retry_secs: 300,
            callback_dial_timeout_secs: 90,
            callback_service_level: switchboard_model::callback::ServiceLevelAt::Connected,
            callback_system: String::new(),
        }
    }
}

/// Dialled numbers compare without the spaces, dashes and dots people write them with.
pub fn plain_number(n: &str) -> String {
    n.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect()
}

impl CtiConfig {
    pub fn validate(&self) -> Result<(), CtiConfigError> {
        switchboard_model::validate_line("default_destination", &self.default_destination, 512)
            .map_err(|e| invalid("default_destination", e.to_string()))?;
        if !(1..=switchboard_model::callback::MAX_ATTEMPTS).contains(&self.callback_attempts) {
            let max = switchboard_model::callback::MAX_ATTEMPTS;
            return Err(invalid("callback_attempts", format!("must be 1..={max}, got {}", self.callback_attempts)));
        }
        if !(1..=86_400).contains(&self.callback_retry_secs) {
            return Err(invalid("callback_retry_secs", format!("must be 1..=86400, got {}", self.callback_retry_secs)));
        }
        if !(10..=3_600).contains(&self.callback_dial_timeout_secs) {
            let got = self.callback_dial_timeout_secs;
            return Err(invalid("callback_dial_timeout_secs", format!("must be 10..=3600, got {got}")));
        }
        if !self.callback_system.is_empty() {
            switchboard_model::validate_id("callback_system", &self.callback_system)
                .map_err(|e| invalid("callback_system", e.message))?;
        }
        let mut names = std::collections::HashSet::new();
        let mut numbers = std::collections::HashSet::new();
        for (i, rp) in self.routing_points.iter().enumerate() {
            let key = |k: &str| format!("routing_points[{i}].{k}");
            if rp.name.is_empty() && rp.dialled.is_empty() {
                return Err(invalid(format!("routing_points[{i}]"), "needs a name or dialled numbers"));
            }
            switchboard_model::validate_id(&key("queue"), &rp.queue).map_err(|e| invalid(key("queue"), e.message))?;
            if let Some(p) = rp.priority {
                switchboard_model::validate_priority(&key("priority"), p)
                    .map_err(|e| invalid(key("priority"), e.message))?;
            }
            if !rp.name.is_empty() && !names.insert(rp.name.as_str()) {
                return Err(invalid(key("name"), format!("{:?} is used twice", rp.name)));
            }
            for (j, d) in rp.dialled.iter().enumerate() {
                let n = plain_number(d);
                if n.is_empty() {
                    return Err(invalid(format!("routing_points[{i}].dialled[{j}]"), "is empty"));
                }
                if !numbers.insert(n) {
                    return Err(invalid(format!("routing_points[{i}].dialled[{j}]"), format!("{d:?} is used twice")));
                }
            }
        }
        let mut nodes = std::collections::HashSet::new();
        for (i, k) in self.kamailio.iter().enumerate() {
            let key = |f: &str| format!("kamailio[{i}].{f}");
            switchboard_model::validate_id(&key("node"), &k.node).map_err(|e| invalid(key("node"), e.message))?;
            if !nodes.insert(k.node.as_str()) {
                return Err(invalid(key("node"), format!("{:?} is listed twice", k.node)));
            }
            switchboard_model::validate_id(&key("system"), &k.system).map_err(|e| invalid(key("system"), e.message))?;
            if k.evapi.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()) {
                return Err(invalid(key("evapi"), format!("expected host:port, got {:?}", k.evapi)));
            }
        }
        Ok(())
    }

    /// The routing point a call reached: by name if the platform named one, else by the number.
    pub fn routing_point(&self, name: &str, dialled: &str) -> Option<&RoutingPoint> {
        if !name.is_empty() {
            return self.routing_points.iter().find(|rp| rp.name == name);
        }
        let n = plain_number(dialled);
        self.routing_points.iter().find(|rp| rp.dialled.iter().any(|d| plain_number(d) == n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(name: &str, dialled: &[&str], queue: &str) -> RoutingPoint {
        RoutingPoint {
            name: name.into(),
            dialled: dialled.iter().map(ToString::to_string).collect(),
            queue: queue.into(),
            priority: None,
        }
    }

    #[test]
    fn a_call_finds_its_routing_point_by_name_or_number() {
        let c = CtiConfig {
            routing_points: vec![rp("sales-line", &["+49 30 1234-0"], "sales"), rp("", &["0800 111"], "support")],
            ..CtiConfig::default()
        };
        c.validate().unwrap();
        assert_eq!(c.routing_point("sales-line", "").unwrap().queue, "sales");
        assert_eq!(c.routing_point("", "+4930 12340").unwrap().queue, "sales");
        assert_eq!(c.routing_point("", "0800111").unwrap().queue, "support");
        assert!(c.routing_point("", "0800 222").is_none());
        assert!(c.routing_point("nope", "0800 111").is_none(), "a named routing point is not looked up by number");
    }

    #[test]
    fn bad_routing_points_name_their_key() {
        let bad = |rps: Vec<RoutingPoint>| {
            CtiConfig { routing_points: rps, ..CtiConfig::default() }.validate().unwrap_err().key
        };
        assert_eq!(bad(vec![rp("", &[], "sales")]), "routing_points[0]");
        assert_eq!(bad(vec![rp("a", &[], "bad queue")]), "routing_points[0].queue");
        assert_eq!(bad(vec![rp("a", &["1"], "q"), rp("b", &["1"], "q")]), "routing_points[1].dialled[0]");
        assert_eq!(bad(vec![rp("a", &[], "q"), rp("a", &[], "q")]), "routing_points[1].name");
    }

    #[test]
    fn callback_settings_out_of_range_name_their_key() {
        let d = CtiConfig::default();
        assert_eq!(CtiConfig { callback_attempts: 0, ..d.clone() }.validate().unwrap_err().key, "callback_attempts");
        assert_eq!(
            CtiConfig { callback_retry_secs: 0, ..d.clone() }.validate().unwrap_err().key,
            "callback_retry_secs"
        );
        let e = CtiConfig { callback_dial_timeout_secs: 5, ..d }.validate().unwrap_err();
        assert_eq!(e.key, "callback_dial_timeout_secs");
    }
}
