//! Runtime API keys: `sbk_<id>_<secret>`. The id finds the stored record without a scan and is
//! what operators list and revoke; the secret is only ever shown once, at creation.

use rand::RngCore;
use switchboard_model::access::{ApiKeyRecord, Role, secret_hash};

const PREFIX: &str = "sbk_";
const ID_BYTES: usize = 6;
/// 192 bits: far beyond guessing, and a fast hash at rest is then enough.
const SECRET_BYTES: usize = 24;

/// A freshly generated key: the secret to hand to the operator once, and the record to store.
pub struct NewKey {
    pub secret: String,
    pub record: ApiKeyRecord,
}

pub fn generate(name: &str, role: Role, queues: Vec<String>, agent_id: &str, now_ms: u64, by: &str) -> NewKey {
    let id = random_hex(ID_BYTES);
    let secret = format!("{PREFIX}{id}_{}", random_hex(SECRET_BYTES));
    let record = ApiKeyRecord {
        id,
        name: name.to_string(),
        role,
        queues,
        agent_id: agent_id.to_string(),
        hash: secret_hash(&secret),
        created_ms: now_ms,
        created_by: by.to_string(),
    };
    NewKey { secret, record }
}

/// The id of a runtime key, if `s` has a runtime key's shape.
pub fn runtime_key_id(s: &str) -> Option<&str> {
    let rest = s.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |v: &str, n: usize| v.len() == n * 2 && v.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, ID_BYTES) && hex(secret, SECRET_BYTES)).then_some(id)
}

/// `n` random bytes from the OS source, in hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_carries_its_id_and_only_its_hash_is_kept() {
        let k = generate("ops", Role::Admin, vec![], "", 1, "test");
        assert_eq!(runtime_key_id(&k.secret), Some(k.record.id.as_str()));
        assert_eq!(k.record.hash, secret_hash(&k.secret));
        assert!(!serde_json::to_string(&k.record).unwrap().contains(&k.secret));
        assert_ne!(generate("ops", Role::Admin, vec![], "", 1, "test").secret, k.secret);
    }

    #[test]
    fn other_strings_are_not_runtime_keys() {
        assert_eq!(runtime_key_id("sbk_zz_00"), None);
        assert_eq!(runtime_key_id("a-config-key-of-any-shape"), None);
        assert_eq!(runtime_key_id("sbk_0123456789ab_00"), None);
    }
}
