//! Redis Cluster: a routing domain lives in one hash slot (its keys share the `{<domain>}` hash
//! tag), so an instance only ever talks to the one primary that serves that slot. Rather than a
//! cluster client routing every command, the engine connects to that primary as to a plain server
//! and looks it up again when the slot moves (`MOVED`), the cluster is failing over
//! (`CLUSTERDOWN`, `TRYAGAIN`) or the node is gone — the same way it follows a Sentinel failover.
//! Pipelines, blocking reads and function calls then work unchanged, with no redirections on the
//! routing path.

use redis::{ConnectionAddr, RedisResult, Value};

/// `redis+cluster://[user:password@]host:port[,host:port...]`: any few nodes of the cluster (seeds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    pub seeds: Vec<(String, u16)>,
    pub username: Option<String>,
    pub password: Option<String>,
}

pub const CLUSTER_SCHEME: &str = "redis+cluster://";

impl ClusterUrl {
    /// None when `url` is not a cluster URL; an error naming what is wrong when it is a bad one.
    pub fn parse(url: &str) -> Option<Result<ClusterUrl, String>> {
        let rest = url.strip_prefix(CLUSTER_SCHEME)?;
        Some(Self::parse_rest(rest))
    }

    fn parse_rest(rest: &str) -> Result<ClusterUrl, String> {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !matches!(path, "" | "0") {
            return Err(format!("a cluster has only database 0, not {path:?}"));
        }
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = crate::primary::userinfo(userinfo);
        let seeds = crate::primary::host_list(hosts, 6379, "node")?;
        if seeds.is_empty() {
            return Err("names no node (redis+cluster://host:7000,host:7001)".into());
        }
        Ok(ClusterUrl { seeds, username, password })
    }

    fn client(&self, host: &str, port: u16) -> RedisResult<redis::Client> {
        let mut settings = redis::RedisConnectionInfo::default();
        if let Some(u) = &self.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &self.password {
            settings = settings.set_password(p);
        }
        redis::Client::open(
            redis::IntoConnectionInfo::into_connection_info(ConnectionAddr::Tcp(host.to_string(), port))?
                .set_redis_settings(settings),
        )
    }
}

/// Finds the primary serving one key's slot.
pub struct ClusterLocator {
    url: ClusterUrl,
    /// The domain's key (any key of it: they share one slot).
    key: String,
    /// Nodes to ask: the seeds, then every node the cluster named, so that losing the seeds
    /// named in the URL does not lose the cluster.
    known: Vec<(String, u16)>,
}

impl ClusterLocator {
    pub fn new(url: ClusterUrl, key: String) -> ClusterLocator {
        let known = url.seeds.clone();
        ClusterLocator { url, key, known }
    }

    /// The client of the primary serving the key's slot now, as the first node that answers says.
    pub async fn locate(&mut self) -> RedisResult<redis::Client> {
        let mut last = None;
        for (host, port) in self.known.clone() {
            match self.ask(&host, port).await {
                Ok((client, nodes)) => {
                    for n in nodes {
                        if !self.known.contains(&n) {
                            self.known.push(n);
                        }
                    }
                    return Ok(client);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| (redis::ErrorKind::InvalidClientConfig, "no cluster node").into()))
    }

    /// Asks one node which primary serves the key's slot; also returns every node it names.
    async fn ask(&self, host: &str, port: u16) -> RedisResult<(redis::Client, Vec<(String, u16)>)> {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)));
        let mut con = self.url.client(host, port)?.get_multiplexed_async_connection_with_config(&cfg).await?;
        let (slot, slots): (i64, Value) = redis::pipe()
            .cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&self.key)
            .cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut con)
            .await?;
        let ranges = parse_slots(&slots).ok_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "CLUSTER SLOTS", format!("{slots:?}")))
        })?;
        let nodes = ranges.iter().flat_map(|r| r.nodes.iter().cloned()).collect();
        let owner =
            ranges.iter().find(|r| (r.start..=r.end).contains(&slot)).and_then(|r| r.nodes.first()).ok_or_else(
                || {
                    redis::RedisError::from((
                        redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
                        "no primary serves the domain's slot yet",
                        format!("slot {slot}"),
                    ))
                },
            )?;
        // A node that does not know its own address says "" (or "?"): it is the one asked.
        let (h, p) = if owner.0.is_empty() || owner.0 == "?" { (host.to_string(), owner.1) } else { owner.clone() };
        Ok((self.url.client(&h, p)?, nodes))
    }
}

/// One entry of `CLUSTER SLOTS`: a slot range and its nodes, the primary first.
#[derive(Debug, PartialEq)]
struct SlotRange {
    start: i64,
    end: i64,
    nodes: Vec<(String, u16)>,
}

fn parse_slots(v: &Value) -> Option<Vec<SlotRange>> {
    let Value::Array(entries) = v else { return None };
    entries
        .iter()
        .map(|e| {
            let Value::Array(parts) = e else { return None };
            let int = |v: &Value| match v {
                Value::Int(i) => Some(*i),
                _ => None,
            };
            let (start, end) = (int(parts.first()?)?, int(parts.get(1)?)?);
            let nodes = parts[2..]
                .iter()
                .map(|n| {
                    let Value::Array(n) = n else { return None };
                    let host = match n.first()? {
                        Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
                        Value::SimpleString(s) => s.clone(),
                        _ => return None,
                    };
                    Some((host, u16::try_from(int(n.get(1)?)?).ok()?))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(SlotRange { start, end, nodes })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seeds() {
        assert_eq!(ClusterUrl::parse("redis://127.0.0.1:6379"), None);
        let u = ClusterUrl::parse("redis+cluster://sb:p%40ss@10.0.0.1:7000,10.0.0.2").unwrap().unwrap();
        assert_eq!(u.seeds, vec![("10.0.0.1".to_string(), 7000), ("10.0.0.2".to_string(), 6379)]);
        assert_eq!((u.username.as_deref(), u.password.as_deref()), (Some("sb"), Some("p@ss")));
        assert!(ClusterUrl::parse("redis+cluster://h:1/0").unwrap().is_ok());
        for bad in ["redis+cluster://", "redis+cluster://h:x", "redis+cluster://:1", "redis+cluster://h:1/2"] {
            assert!(ClusterUrl::parse(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn cluster_slots_replies_give_each_range_its_primary_first() {
        let node = |h: &str, p: i64| {
            Value::Array(vec![
                Value::BulkString(h.as_bytes().to_vec()),
                Value::Int(p),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(0), Value::Int(5460), node("127.0.0.1", 7001), node("127.0.0.1", 7004)]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node("", 7002)]),
        ]);
        let r = parse_slots(&reply).unwrap();
        assert_eq!(
            r[0],
            SlotRange { start: 0, end: 5460, nodes: vec![("127.0.0.1".into(), 7001), ("127.0.0.1".into(), 7004)] }
        );
        assert_eq!(r[1].nodes, vec![(String::new(), 7002)]);
        assert!(parse_slots(&Value::Array(vec![Value::Int(1)])).is_none());
    }
}
