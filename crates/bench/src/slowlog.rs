//! The Redis a run starts, with its slow log on, and the reading of that log: a long call holds up
//! every request behind it, so a phase's latency can be told apart from waits outside Redis.

use switchboard_testkit::RedisServer;

/// A Redis of the run's own (stopped by PID when dropped, also when the run is interrupted),
/// logging every call that ran 2 ms or longer inside it, so a phase can tell a long call (which
/// holds up everyone behind it) from waits outside Redis.
pub fn local_redis() -> RedisServer {
    RedisServer::start_with(&SLOWLOG_ARGS)
}

/// The arguments that turn a Redis's slow log on as [`local_redis`] has it (calls of 2 ms and longer, listed by phase).
pub const SLOWLOG_ARGS: [&str; 4] = ["--slowlog-log-slower-than", "2000", "--slowlog-max-len", "100000"];

/// Redis's slow log since the last call (then emptied).
pub async fn slow_calls(con: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Vec<(u64, String)>> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG").arg("GET").arg(-1).query_async(con).await?;
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query_async(con).await?;
    Ok(slow_entries(entries))
}

/// Each `SLOWLOG GET` entry (`[id, unix time, µs, argv, client address, client name]`) as its µs
/// and what it was: the operation for one of our FCALLs, else the command.
fn slow_entries(entries: Vec<redis::Value>) -> Vec<(u64, String)> {
    let text = |v: &redis::Value| redis::from_redis_value::<String>(v.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for e in entries {
        let redis::Value::Array(f) = e else { continue };
        let (Some(us), Some(redis::Value::Array(argv))) = (f.get(2), f.get(3)) else { continue };
        let us: u64 = redis::from_redis_value(us.clone()).unwrap_or(0);
        let cmd = argv.first().map(text).unwrap_or_default().to_lowercase();
        let what = match (cmd.as_str(), argv.get(1)) {
            // `sb_<digest>_<operation>`
            ("fcall", Some(name)) => text(name).splitn(3, '_').nth(2).unwrap_or_default().to_string(),
            _ => cmd,
        };
        out.push((us, what));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_log_entries_are_named_by_operation_or_command() {
        use redis::Value::{Array, BulkString, Int};
        let entry = |us: i64, argv: &[&str]| {
            Array(vec![
                Int(7),
                Int(1_790_000_000),
                Int(us),
                Array(argv.iter().map(|a| BulkString(a.as_bytes().to_vec())).collect()),
                BulkString(b"127.0.0.1:40000".to_vec()),
                BulkString(Vec::new()),
            ])
        };
        let got = slow_entries(vec![
            entry(2500, &["FCALL", "sb_3f2a9c_complete", "4", "k1"]),
            entry(14_100, &["SISMEMBER", "sb:q:x", "i"]),
            entry(2100, &["hgetall", "sb:ix:1"]),
            // Not an entry: skipped.
            Int(3),
        ]);
        assert_eq!(
            got,
            [(2500, "complete".to_string()), (14_100, "sismember".to_string()), (2100, "hgetall".to_string())]
        );
    }
}
