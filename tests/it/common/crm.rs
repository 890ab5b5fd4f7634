//! The built-in CRM store on its own (SQLite in a temp dir), behind its authentication, as
//! `switchboard crm` runs it: one key for the daemon (role `crm`), one for an admin.

use std::sync::Arc;

use switchboard_auth::{Authenticator, Role, StaticKey};
use switchboard_crm::{CrmDb, CrmOptions};
use tokio_util::sync::CancellationToken;

pub struct AuthedCrm {
    pub db: CrmDb,
    pub endpoint: String,
    _stop: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

impl AuthedCrm {
    /// `daemon_key` has the role `crm` (named "switchboard"), `admin_key` the role `admin`.
    pub async fn start(daemon_key: &str, admin_key: &str) -> AuthedCrm {
        let dir = tempfile::tempdir().unwrap();
        let db = CrmDb::open(CrmOptions {
            database_url: format!("sqlite://{}/crm.db?mode=rwc", dir.path().display()),
            default_region: Some("DE".into()),
            create_unknown_contacts: true,
        })
        .await
        .unwrap();
        let keys = vec![
            StaticKey::new("switchboard", Role::Crm, vec![], "", daemon_key, false).unwrap(),
            StaticKey::new("crm-admin", Role::Admin, vec![], "", admin_key, false).unwrap(),
        ];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let auth = Arc::new(Authenticator::new(keys));
        tokio::spawn(switchboard_crm::serve(db.clone(), listener, None, auth, stop.clone()));
        AuthedCrm { db, endpoint, _stop: stop.drop_guard(), _dir: dir }
    }
}
