//! The client side: a credential sent as `authorization` metadata on every call.

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Adds `authorization: <value>` to each request; with no credential it adds nothing, so the
/// server answers with its own clear `UNAUTHENTICATED`.
#[derive(Clone, Default)]
pub struct Credential(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Credential {
    /// `Bearer <key>` for an API key or a JWT.
    pub fn bearer(key: &str) -> Result<Credential, String> {
        Self::header(&format!("Bearer {}", key.trim()))
    }

    /// HTTP Basic with an agent's id and desktop token.
    pub fn agent(agent_id: &str, token: &str) -> Result<Credential, String> {
        use base64::Engine as _;
        Self::header(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{agent_id}:{token}"))
        ))
    }

    pub fn none() -> Credential {
        Credential(None)
    }

    fn header(v: &str) -> Result<Credential, String> {
        let mut v: MetadataValue<_> =
            v.parse().map_err(|_| "the credential holds characters a header cannot carry".to_string())?;
        v.set_sensitive(true);
        Ok(Credential(Some(v)))
    }
}

impl Interceptor for Credential {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}
