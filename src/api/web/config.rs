//! `[web]`: the agent desktop (`/agent`) and supervisor wallboard (`/supervisor`) pages.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serves `/agent`, `/supervisor` and their assets on the HTTP listener.
    pub enabled: bool,
    /// Where browsers reach the gRPC listener's gRPC-Web (`https://api.example.com`, or a path
    /// such as `/` when a reverse proxy serves both on one origin). Empty: the host the page was
    /// loaded from, at the gRPC listener's port. The pages' origin must be listed in
    /// `server.grpc_web_origins` either way.
    pub grpc_url: String,
    /// The wallboard colours a queue whose service level is below this.
    pub service_level_target_percent: u32,
    /// ... or that has more waiting than this (0: no threshold).
    pub waiting_alert: u32,
    /// ... or whose longest wait is above this (0: no threshold).
    pub longest_wait_alert_secs: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            grpc_url: String::new(),
            service_level_target_percent: 80,
            waiting_alert: 10,
            longest_wait_alert_secs: 120,
        }
    }
}

impl WebConfig {
    /// The offending key (under `web.`) and what is wrong with it.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.service_level_target_percent > 100 {
            return Err(("service_level_target_percent", "must be between 0 and 100".into()));
        }
        let u = self.grpc_url.trim();
        if !u.is_empty() && !u.starts_with('/') {
            let parsed = url::Url::parse(u).map_err(|e| ("grpc_url", format!("{u:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(("grpc_url", format!("{u:?} must be an http(s) URL or a path starting with /")));
            }
        }
        if u.contains(['"', '\'', '<', '>', ' ', ';', ',']) {
            return Err(("grpc_url", format!("{u:?} contains characters a URL cannot")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_pass_and_the_rest_is_named() {
        let ok = |u: &str| WebConfig { grpc_url: u.into(), ..WebConfig::default() }.validate();
        assert!(ok("").is_ok());
        assert!(ok("/").is_ok());
        assert!(ok("https://api.example.com:8443").is_ok());
        assert_eq!(ok("ftp://x").unwrap_err().0, "grpc_url");
        assert_eq!(ok("not a url").unwrap_err().0, "grpc_url");
        let sl = WebConfig { service_level_target_percent: 120, ..WebConfig::default() };
        assert_eq!(sl.validate().unwrap_err().0, "service_level_target_percent");
    }
}
