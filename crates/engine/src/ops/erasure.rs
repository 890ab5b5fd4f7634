//! Right to erasure on Switchboard's side: finding a customer's interactions among those Redis
//! holds, and erasing what Redis keeps of them (threads, the customer's address and subject, email
//! thread maps, web chat sessions, parked events). Which customer is to be erased is the CRM's
//! business (its identities are normalized there); the engine only finds and erases.

use std::collections::HashSet;

use redis::AsyncCommands;
use switchboard_model::Channel;

use super::argv::argv;
use crate::{Engine, Result};

argv! {
    struct EraseArgs<'a> {
        reason: &'a str,
        ..iids,
    }
}

/// One interaction Redis holds, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerOf {
    pub interaction_id: String,
    /// None for a hash without a channel the model knows (it would not route either).
    pub channel: Option<Channel>,
    pub customer: String,
}

/// Keys SCAN is asked to look at per call.
const SCAN_COUNT: usize = 1000;
/// Interactions erased per function call: a call holds Redis for its whole length.
const ERASE_BATCH: usize = 100;

/// A SCAN pattern matching exactly the keys that begin with `prefix`.
fn prefix_pattern(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('*');
    p
}

impl Engine {
    /// One page of every interaction Redis holds (waiting, open, or ended and not yet expired)
    /// with its customer: call with cursor 0, then with the cursor returned until it is 0 again.
    /// SCAN may return an interaction twice; it misses none that exists throughout.
    pub async fn scan_customers(&self, cursor: u64) -> Result<(u64, Vec<CustomerOf>)> {
        let mut con = self.connection();
        let prefix = self.keys().ix("");
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(prefix_pattern(&prefix))
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(&mut con)
            .await?;
        // `ix:<id>` only; `ix:<id>:msgs` and `ix:<id>:excl` match the pattern too.
        let ids: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|id| !id.contains(':'))
            .map(String::from)
            .collect();
        if ids.is_empty() {
            return Ok((next, Vec::new()));
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET").arg(self.keys().ix(id)).arg("ch").arg("cust");
        }
        let rows: Vec<(Option<String>, Option<String>)> = pipe.query_async(&mut con).await?;
        let found = ids
            .into_iter()
            .zip(rows)
            .map(|(interaction_id, (ch, cust))| CustomerOf {
                interaction_id,
                channel: ch.as_deref().and_then(Channel::parse),
                customer: cust.unwrap_or_default(),
            })
            .collect();
        Ok((next, found))
    }

    /// Erases interactions: those still open end first (`reason`, as if the customer had left),
    /// then their threads and what names the customer go, and an `erased` event per interaction
    /// tells the CRM. Returns how many existed, and how many of those were still open.
    pub async fn erase_interactions(&self, ids: &[String], reason: &str) -> Result<(u32, u32)> {
        let (mut n, mut ended) = (0, 0);
        for batch in ids.chunks(ERASE_BATCH) {
            let r = self.run(EraseArgs { reason, iids: batch.to_vec() }).await?;
            n += crate::decode::parse_u64(r.first())? as u32;
            ended += crate::decode::parse_u64(r.get(1))? as u32;
        }
        Ok((n, ended))
    }

    /// After [`Engine::erase_interactions`]: removes the erased interactions' web chat sessions,
    /// email references and parked (dead-lettered) events, and moves their customers' screen-pop
    /// version on so no instance serves a cached screen-pop of them. Returns how many Redis
    /// entries went.
    pub async fn forget_erased(&self, ids: &HashSet<String>, customers: &[(Channel, String)]) -> Result<u64> {
        let mut removed = 0;
        removed += self.delete_keys_pointing_at(&self.keys().chat(""), ids).await?;
        removed += self.delete_keys_pointing_at(&self.keys().email_ref(""), ids).await?;
        removed += self.delete_dead_events_of(ids).await?;
        let mut con = self.connection();
        let mut pipe = redis::pipe();
        for (ch, address) in customers {
            pipe.incr(self.keys().popv(&format!("{ch}|{address}")), 1).ignore();
        }
        let () = pipe.query_async(&mut con).await?;
        Ok(removed)
    }

    /// Deletes every hash under `prefix` whose `ix` field is one of `ids`.
    async fn delete_keys_pointing_at(&self, prefix: &str, ids: &HashSet<String>) -> Result<u64> {
        let mut con = self.connection();
        let (mut cursor, mut removed) = (0u64, 0u64);
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(prefix_pattern(prefix))
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut con)
                .await?;
            if !keys.is_empty() {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.hget(k, "ix");
                }
                let owners: Vec<Option<String>> = pipe.query_async(&mut con).await?;
                let doomed: Vec<&String> = keys
                    .iter()
                    .zip(owners)
                    .filter(|(_, ix)| ix.as_ref().is_some_and(|ix| ids.contains(ix)))
                    .map(|(k, _)| k)
                    .collect();
                if !doomed.is_empty() {
                    removed += con.del::<_, u64>(doomed).await?;
                }
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn delete_dead_events_of(&self, ids: &HashSet<String>) -> Result<u64> {
        let mut con = self.connection();
        let key = self.keys().events_dead();
        let (mut from, mut removed) = ("-".to_string(), 0u64);
        loop {
            let page: redis::streams::StreamRangeReply = con.xrange_count(&key, &from, "+", SCAN_COUNT).await?;
            let Some(last) = page.ids.last() else { return Ok(removed) };
            from = format!("({}", last.id);
            let doomed: Vec<&str> = page
                .ids
                .iter()
                .filter(|e| e.get::<String>("ix").is_some_and(|ix| ids.contains(&ix)))
                .map(|e| e.id.as_str())
                .collect();
            if !doomed.is_empty() {
                removed += con.xdel::<_, _, u64>(&key, &doomed).await?;
            }
            if page.ids.len() < SCAN_COUNT {
                return Ok(removed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_pattern;

    #[test]
    fn a_prefix_matches_itself_only() {
        assert_eq!(prefix_pattern("sb:{default}:ix:"), "sb:{default}:ix:*");
        assert_eq!(prefix_pattern("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:*");
    }
}
