//! Runtime API keys: created and revoked through the admin API, found by id on every call that
//! presents one. Only records are kept (name, role, scope, the key's hash); each change is an
//! audited event.

use redis::AsyncCommands;
use switchboard_model::ApiKeyRecord;

use super::argv::argv;
use crate::{Engine, EngineError, Result};

argv! {
    struct ApiKeyArgs<'a> {
        op: &'a str,
        id: &'a str,
        record: String,
        details: String,
    }
}

fn decode(id: &str, json: &str) -> Result<ApiKeyRecord> {
    serde_json::from_str(json).map_err(|e| EngineError::Corrupt(format!("api key {id:?}: {e}")))
}

impl Engine {
    pub async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let record = serde_json::to_string(key).expect("a key record serializes");
        let details = serde_json::json!({
            "id": key.id, "name": key.name, "role": key.role, "queues": key.queues, "agent_id": key.agent_id,
        })
        .to_string();
        self.run(ApiKeyArgs { op: "put", id: &key.id, record, details }).await.map(|_| ())
    }

    /// Removes a key; it stops working everywhere once the instances' caches (seconds) expire.
    pub async fn revoke_api_key(&self, id: &str) -> Result<ApiKeyRecord> {
        let r = self.run(ApiKeyArgs { op: "revoke", id, record: String::new(), details: String::new() }).await?;
        decode(id, r.first().map_or("", String::as_str))
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let mut con = self.connection();
        let json: Option<String> = con.hget(self.keys().api_keys(), id).await?;
        json.map(|j| decode(id, &j)).transpose()
    }

    /// Every runtime key, oldest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let mut con = self.connection();
        let all: Vec<(String, String)> = con.hgetall(self.keys().api_keys()).await?;
        let mut keys = all.iter().map(|(id, j)| decode(id, j)).collect::<Result<Vec<_>>>()?;
        keys.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(keys)
    }
}
