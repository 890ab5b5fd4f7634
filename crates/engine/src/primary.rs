//! The connection every engine call shares, to Redis's primary. A plain URL is one server, and the
//! connection manager reconnects to it. A `redis+sentinel://` URL names Sentinels and a service:
//! the primary is looked up through them (a `redis+cluster://` URL: through the cluster's nodes,
//! see `cluster`), and looked up again whenever a request finds the one in
//! use gone (connection refused or dropped, a timeout) or demoted (`READONLY`) — so a failover is
//! followed without a restart. The failed request itself is not retried: whether it ran before
//! the connection broke is unknown, and the caller's idempotency key makes its own retry safe.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Cmd, ConnectionAddr, Pipeline, RedisError, RedisFuture, Value};
use tokio::sync::Mutex;

use crate::cluster::{ClusterLocator, ClusterUrl};

/// `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    pub sentinels: Vec<(String, u16)>,
    pub service: String,
    pub db: i64,
    /// For Redis itself (Sentinels are asked without credentials).
    pub username: Option<String>,
    pub password: Option<String>,
}

pub const SENTINEL_SCHEME: &str = "redis+sentinel://";

impl SentinelUrl {
    /// None when `url` is not a Sentinel URL; an error naming what is wrong when it is a bad one.
    pub fn parse(url: &str) -> Option<Result<SentinelUrl, String>> {
        let rest = url.strip_prefix(SENTINEL_SCHEME)?;
        Some(Self::parse_rest(rest))
    }

    fn parse_rest(rest: &str) -> Result<SentinelUrl, String> {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo_part, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = userinfo(userinfo_part);
        let sentinels = host_list(hosts, 26379, "sentinel")?;
        if sentinels.is_empty() {
            return Err("names no sentinel (redis+sentinel://host:26379,host:26379/service)".into());
        }
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let service = parts.next().ok_or("names no service after the sentinels (…/mymaster)")?.to_string();
        let db = match parts.next() {
            Some(d) => d.parse::<i64>().map_err(|_| format!("database {d:?} is not a number"))?,
            None => 0,
        };
        if parts.next().is_some() {
            return Err("has more after the service and database".into());
        }
        Ok(SentinelUrl { sentinels, service, db, username, password })
    }

    fn client(&self) -> redis::RedisResult<SentinelClient> {
        let addrs =
            self.sentinels.iter().map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port)).collect::<Vec<_>>();
        let mut b = SentinelClientBuilder::new(addrs, &self.service, SentinelServerType::Master)?
            .set_client_to_redis_db(self.db);
        if let Some(u) = &self.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &self.password {
            b = b.set_client_to_redis_password(p);
        }
        b.build()
    }
}

/// `host:port,host:port` (a missing port is `default_port`); errors name the `what` at fault.
pub(crate) fn host_list(hosts: &str, default_port: u16, what: &str) -> Result<Vec<(String, u16)>, String> {
    let mut out = Vec::new();
    for h in hosts.split(',').filter(|h| !h.is_empty()) {
        let (host, port) = match h.rsplit_once(':') {
            Some((host, port)) => {
                (host, port.parse::<u16>().map_err(|_| format!("{what} {h:?}: the port is not a number"))?)
            }
            None => (h, default_port),
        };
        if host.is_empty() {
            return Err(format!("{what} {h:?}: no host"));
        }
        out.push((host.to_string(), port));
    }
    Ok(out)
}

/// A URL's `user:password` (either may be empty, or the whole a password), percent-decoded.
pub(crate) fn userinfo(u: Option<&str>) -> (Option<String>, Option<String>) {
    match u {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => ((!user.is_empty()).then(|| decode(user)), (!pass.is_empty()).then(|| decode(pass))),
            None => (None, Some(decode(u))),
        },
    }
}

/// Percent-decoding of a URL's user or password.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The primary in use: its connection and client (for dedicated connections), and how many times
/// it has been looked up (a request that failed on an older one does not look it up again).
struct Current {
    generation: u64,
    con: ConnectionManager,
    client: redis::Client,
    /// A request found this server gone or demoted, and it has not been confirmed since: until
    /// the Sentinels (or the cluster) name it again, nothing is sent to it. Otherwise the
    /// connection manager would reconnect to whatever listens at its address — an old primary
    /// restarted empty, before it is made a replica — and write there.
    suspect: std::sync::atomic::AtomicBool,
}

impl Current {
    fn new(generation: u64, con: ConnectionManager, client: redis::Client) -> Arc<Current> {
        Arc::new(Current { generation, con, client, suspect: std::sync::atomic::AtomicBool::new(false) })
    }

    fn is_suspect(&self) -> bool {
        self.suspect.load(std::sync::atomic::Ordering::Acquire)
    }

    fn set_suspect(&self, v: bool) {
        self.suspect.store(v, std::sync::atomic::Ordering::Release);
    }
}

/// The error a request gets while the primary is being looked up again (an I/O error: callers
/// answer `UNAVAILABLE`, and retry).
fn unconfirmed() -> RedisError {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "the Redis primary is being looked up again").into()
}

/// Who says which server is the primary, for a URL that does not name it outright.
enum Locator {
    Sentinel(SentinelClient),
    /// The primary serving the domain's slot.
    Cluster(ClusterLocator),
}

impl Locator {
    async fn locate(&mut self) -> redis::RedisResult<redis::Client> {
        match self {
            Locator::Sentinel(s) => s.async_get_client().await,
            Locator::Cluster(c) => c.locate().await,
        }
    }
}

/// A failed look-up is not tried again sooner than this: while a failover is under way every
/// request fails, and each would otherwise ask again.
const RELOCATE_PAUSE: Duration = Duration::from_millis(200);

/// How often the Sentinels are asked for the primary when no request has failed.
const SENTINEL_POLL: Duration = Duration::from_secs(1);

struct Following {
    locator: Locator,
    last_try: Option<Instant>,
}

#[derive(Clone)]
pub struct Primary {
    current: Arc<RwLock<Arc<Current>>>,
    /// Set for a Sentinel or cluster URL; one look-up at a time.
    following: Option<Arc<Mutex<Following>>>,
    cfg: ConnectionManagerConfig,
}

impl Primary {
    /// A plain server's connection.
    pub async fn direct(client: redis::Client, cfg: ConnectionManagerConfig) -> redis::RedisResult<Primary> {
        Self::start(client, None, cfg).await
    }

    /// The primary of `url`'s service, as its Sentinels say now.
    pub async fn through_sentinels(url: &SentinelUrl, cfg: ConnectionManagerConfig) -> redis::RedisResult<Primary> {
        let mut sentinel = url.client()?;
        let client = sentinel.async_get_client().await?;
        tracing::info!(message = "Redis primary found through Sentinel.", service = %url.service, primary = %client.get_connection_info().addr());
        Self::start(client, Some(Locator::Sentinel(sentinel)), cfg).await
    }

    /// The cluster's primary serving `key`'s slot (the domain's), as the cluster says now.
    pub async fn in_cluster(url: ClusterUrl, key: String, cfg: ConnectionManagerConfig) -> redis::RedisResult<Primary> {
        let mut locator = ClusterLocator::new(url, key);
        let client = locator.locate().await?;
        tracing::info!(message = "Redis Cluster primary of the domain's slot found.", primary = %client.get_connection_info().addr());
        Self::start(client, Some(Locator::Cluster(locator)), cfg).await
    }

    async fn start(
        client: redis::Client,
        locator: Option<Locator>,
        cfg: ConnectionManagerConfig,
    ) -> redis::RedisResult<Primary> {
        let con = ConnectionManager::new_with_config(client.clone(), cfg.clone()).await?;
        let polled = matches!(locator, Some(Locator::Sentinel(_)));
        let primary = Primary {
            current: Arc::new(RwLock::new(Current::new(0, con, client))),
            following: locator.map(|locator| Arc::new(Mutex::new(Following { locator, last_try: None }))),
            cfg,
        };
        if polled {
            primary.poll_sentinels();
        }
        Ok(primary)
    }

    /// Asks the Sentinels every [`SENTINEL_POLL`] which server is the primary, for as long as a
    /// clone of this handle lives. A failover on purpose (or a partition) leaves the old primary
    /// up and still taking writes until the Sentinels reconfigure it, which takes them seconds:
    /// waiting for a request to meet `READONLY` would write into a server about to be a replica.
    fn poll_sentinels(&self) {
        let (current, following) = (Arc::downgrade(&self.current), self.following.as_ref().map(Arc::downgrade));
        let cfg = self.cfg.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SENTINEL_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (Some(current), Some(following)) =
                    (current.upgrade(), following.as_ref().and_then(std::sync::Weak::upgrade))
                else {
                    return;
                };
                let primary = Primary { current, following: Some(following), cfg: cfg.clone() };
                primary.follow(primary.current().generation).await;
            }
        });
    }

    fn current(&self) -> Arc<Current> {
        self.current.read().expect("primary lock").clone()
    }

    /// The client of the primary in use, for connections of their own (blocking reads); an error
    /// while the primary is being looked up again after a failure.
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        Ok(self.confirmed().await?.client.clone())
    }

    /// The primary in use, once confirmed after a failure (see [`Current::suspect`]).
    async fn confirmed(&self) -> redis::RedisResult<Arc<Current>> {
        let cur = self.current();
        if !cur.is_suspect() {
            return Ok(cur);
        }
        self.follow(cur.generation).await;
        let cur = self.current();
        if cur.is_suspect() { Err(unconfirmed()) } else { Ok(cur) }
    }

    /// After a request on `cur` found the server gone or demoted.
    async fn lost(&self, cur: &Current) {
        if self.following.is_some() {
            cur.set_suspect(true);
        }
        self.follow(cur.generation).await;
    }

    /// Looks the primary up again after a request on generation `failed` found it gone.
    async fn follow(&self, failed: u64) {
        let Some(following) = &self.following else { return };
        let mut following = following.lock().await;
        if self.current().generation != failed || following.last_try.is_some_and(|t| t.elapsed() < RELOCATE_PAUSE) {
            return;
        }
        following.last_try = Some(Instant::now());
        let found = match following.locator.locate().await {
            Ok(client) if client.get_connection_info().addr() == self.current().client.get_connection_info().addr() => {
                // Still the same server (a blip, or no failover yet): confirmed, and the
                // connection manager reconnects to it by itself.
                self.current().set_suspect(false);
                return;
            }
            Ok(client) => match ConnectionManager::new_with_config(client.clone(), self.cfg.clone()).await {
                Ok(con) => Ok((client, con)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match found {
            Ok((client, con)) => {
                tracing::warn!(message = "Following the Redis primary (a failover, or the domain's slot moved).", primary = %client.get_connection_info().addr());
                *self.current.write().expect("primary lock") = Current::new(failed + 1, con, client);
            }
            Err(error) => tracing::warn!(message = "No reachable Redis primary named yet.", %error),
        }
    }
}

/// The primary in use is gone, no longer the primary, or no longer serves the domain's slot.
fn lost_primary(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.code().is_some_and(lost_code)
}

/// The same, said by the server in a reply: a connection hands server errors back as values
/// (they become `Err` only where the reply is read), so they are looked for here too.
fn lost_reply(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if lost_code(e.code()))
}

fn lost_code(code: &str) -> bool {
    // NOREPLICAS: a primary under `min-replicas-to-write` that lost its replicas, such as an old
    // primary whose replica was promoted.
    matches!(code, "READONLY" | "MASTERDOWN" | "LOADING" | "MOVED" | "CLUSTERDOWN" | "TRYAGAIN" | "NOREPLICAS")
}

impl ConnectionLike for Primary {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let cur = self.confirmed().await?;
            let mut con = cur.con.clone();
            let r = con.req_packed_command(cmd).await;
            if r.as_ref().map_or_else(lost_primary, lost_reply) {
                self.lost(&cur).await;
            }
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let cur = self.confirmed().await?;
            let mut con = cur.con.clone();
            let r = con.req_packed_commands(pipeline, offset, count).await;
            if r.as_ref().map_or_else(lost_primary, |vs| vs.iter().any(lost_reply)) {
                self.lost(&cur).await;
            }
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.current().con.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_their_sentinels_service_and_database() {
        assert_eq!(SentinelUrl::parse("redis://127.0.0.1:6379"), None);
        let u = SentinelUrl::parse("redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2/mymaster/2").unwrap().unwrap();
        assert_eq!(u.sentinels, vec![("10.0.0.1".to_string(), 26379), ("10.0.0.2".to_string(), 26379)]);
        assert_eq!((u.service.as_str(), u.db), ("mymaster", 2));
        assert_eq!((u.username, u.password.as_deref()), (None, Some("s@cret")));
        let u = SentinelUrl::parse("redis+sentinel://sb:pw@h:1/svc").unwrap().unwrap();
        assert_eq!((u.username.as_deref(), u.password.as_deref(), u.db), (Some("sb"), Some("pw"), 0));
        for bad in [
            "redis+sentinel://",
            "redis+sentinel://h:1",
            "redis+sentinel://h:x/svc",
            "redis+sentinel://:1/svc",
            "redis+sentinel://h:1/svc/x",
            "redis+sentinel://h:1/svc/1/more",
        ] {
            assert!(SentinelUrl::parse(bad).unwrap().is_err(), "{bad}");
        }
    }
}
