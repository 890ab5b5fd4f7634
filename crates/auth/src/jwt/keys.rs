//! Reading a JWK set, from a file or a response body, leniently: one key we cannot use (an
//! encryption key, a curve we do not know) must not make a provider's whole set unusable.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("GET {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("GET {url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: the response is larger than {max} bytes")]
    TooLarge { url: String, max: usize },
    #[error("{from}: not a JWK set: {message}")]
    NotAJwkSet { from: String, message: String },
    #[error("{from}: holds no key usable for verifying signatures")]
    NoKeys { from: String },
}

/// Which keys a set may contribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// A file the operator put there: any key, symmetric ones too.
    File,
    /// A URL: public by nature, so a symmetric key there would let anyone who can read it sign
    /// tokens; such keys are left out.
    Url,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// The usable keys of a JWK set; `from` names the file or URL in errors.
pub(super) fn parse(bytes: &[u8], from: &str, origin: Origin) -> Result<JwkSet, JwksError> {
    let raw: RawSet = serde_json::from_slice(bytes)
        .map_err(|e| JwksError::NotAJwkSet { from: from.to_string(), message: e.to_string() })?;
    let mut keys = Vec::with_capacity(raw.keys.len());
    for value in raw.keys {
        let kid = value.get("kid").and_then(serde_json::Value::as_str).unwrap_or("").to_string();
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(error) => {
                tracing::debug!(message = "Skipped a key of the JWK set that cannot be read.", from, kid, %error);
                continue;
            }
        };
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            continue;
        }
        if origin == Origin::Url && matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            tracing::warn!(
                message =
                    "Skipped a symmetric key published at the JWKS URL: anyone who can read it could sign tokens.",
                from,
                kid
            );
            continue;
        }
        keys.push(jwk);
    }
    if keys.is_empty() {
        return Err(JwksError::NoKeys { from: from.to_string() });
    }
    Ok(JwkSet { keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let set = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "sig", "use": "sig", "alg": "ES256", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "what-is-this", "kid": "odd"},
        ]})
        .to_string();
        let ids = |s: &JwkSet| s.keys.iter().filter_map(|k| k.common.key_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&parse(set.as_bytes(), "u", Origin::Url).unwrap()), ["sig"]);
        assert_eq!(ids(&parse(set.as_bytes(), "f", Origin::File).unwrap()), ["sym", "sig"]);
        assert!(matches!(parse(b"{\"keys\": []}", "u", Origin::Url), Err(JwksError::NoKeys { .. })));
        assert!(matches!(parse(b"<html>", "u", Origin::Url), Err(JwksError::NotAJwkSet { .. })));
    }
}
