//! Redis's own counters: `INFO` sections and `MEMORY USAGE`, read and parsed.

use std::collections::BTreeMap;

/// Bytes a key takes, counted exactly (`SAMPLES 0`); 0 if it does not exist.
pub async fn memory_usage(con: &mut redis::aio::MultiplexedConnection, key: &str) -> anyhow::Result<u64> {
    let n: Option<u64> = redis::cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0).query_async(con).await?;
    Ok(n.unwrap_or(0))
}

pub async fn redis_info(con: &mut redis::aio::MultiplexedConnection, section: &str) -> anyhow::Result<String> {
    Ok(redis::cmd("INFO").arg(section).query_async(con).await?)
}

pub fn info_field(info: &str, key: &str) -> u64 {
    info.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// One numeric field per command from `INFO commandstats` (`calls`, `usec`).
pub fn commandstats_field(info: &str, field: &str) -> BTreeMap<String, u64> {
    let tag = format!("{field}=");
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let v = rest.split(',').find_map(|kv| kv.strip_prefix(tag.as_str()))?.parse().ok()?;
            Some((name.to_string(), v))
        })
        .collect()
}

/// Redis's CPU time so far (main thread and I/O), in microseconds.
pub fn redis_cpu_us(info: &str) -> u64 {
    let f = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    ((f("used_cpu_user") + f("used_cpu_sys")) * 1e6) as u64
}
