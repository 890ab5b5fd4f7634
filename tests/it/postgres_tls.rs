//! The built-in CRM store on PostgreSQL over TLS: `sslmode` and `sslrootcert` in the `postgres://` URL, as
//! `[crm] database` takes it, against a [`PgServer::start_tls`] server (which refuses TCP without TLS) and a plain one.

use crate::common::*;

use std::collections::BTreeMap;
use std::time::Duration;

use switchboard_crm::{CrmDb, CrmError, CrmOptions};
use switchboard_model::Channel;
use switchboard_testkit::postgres::url_with_ca;

async fn open(database_url: String) -> Result<CrmDb, CrmError> {
    CrmDb::open(CrmOptions { database_url, default_region: Some("DE".into()), create_unknown_contacts: true }).await
}

async fn start_pg(tls: bool) -> PgServer {
    init_tracing();
    tokio::task::spawn_blocking(move || if tls { PgServer::start_tls() } else { PgServer::start() })
        .await
        .expect("start postgres")
}

/// `open` fails, and its error says `needle`.
async fn expect_refused(what: &str, database_url: String, needle: &str) {
    match open(database_url).await {
        Ok(_) => panic!("{what}: the store opened"),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains(needle), "{what}: expected an error saying {needle:?}, got {text:?}");
        }
    }
}

/// verify-full with the server's CA: the store migrates, writes and reads over TLS (the server lets no TCP client in
/// without it), and again after the server restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_store_over_verify_full() {
    let mut pg = start_pg(true).await;
    let url = pg.tls_url("verify-full");
    assert!(url.contains("sslmode=verify-full&sslrootcert=/"), "{url}");

    let db = open(url.clone()).await.expect("open the CRM store with sslmode=verify-full");
    let fields = BTreeMap::from([("tier".to_string(), "gold".to_string())]);
    let made = db
        .upsert_contact(None, "Ada Lovelace", &[(Channel::Voice, "030 1234567".into())], &fields)
        .await
        .expect("upsert a contact over TLS");
    let found = db.find_contact(Channel::Voice, "+49 30 1234567").await.expect("find the contact over TLS");
    assert_eq!(found, made);
    assert_eq!(found.name, "Ada Lovelace");
    assert_eq!(found.identities, vec![(Channel::Voice, "+49301234567".to_string())]);
    assert_eq!(found.fields, fields);
    assert_eq!(db.get_contact(&made.id).await.expect("get the contact"), made);

    // The same CA without the host name check.
    let verify_ca = open(pg.tls_url("verify-ca")).await.expect("open with sslmode=verify-ca");
    assert_eq!(verify_ca.get_contact(&made.id).await.expect("get over verify-ca"), made);
    drop(verify_ca);

    // What got in did use TLS: without it, this server refuses TCP clients.
    expect_refused("sslmode=disable against a TLS-only server", format!("{}?sslmode=disable", pg.url), "no encryption")
        .await;

    // TLS stays on across a restart, and the pool's new connections verify it again.
    let pg = tokio::task::spawn_blocking(move || {
        pg.restart();
        pg
    })
    .await
    .expect("restart postgres");
    let after = eventually("the store answers again after the restart", PATIENCE, || async {
        db.find_contact(Channel::Voice, "+49 30 1234567").await.ok()
    })
    .await;
    assert_eq!(after, made);
    drop(db);
    drop(pg);
}

/// verify-full with a CA that did not sign the server's certificate fails, and says why; `require` encrypts but
/// checks no certificate, whatever `sslrootcert` says (sqlx, unlike libpq, which then verifies as verify-ca does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_fails_verify_full() {
    let pg = start_pg(true).await;
    let other = tempfile::Builder::new().prefix("switchboard-other-ca-").tempdir().expect("temp dir");
    let other_ca = PgTlsFiles::generate(other.path()).ca_cert;

    for mode in ["verify-full", "verify-ca"] {
        expect_refused(
            &format!("sslmode={mode} with another CA"),
            url_with_ca(&pg.url, mode, &other_ca),
            "invalid peer certificate: UnknownIssuer",
        )
        .await;
    }
    // sqlx's error does not name the file, only the OS error.
    expect_refused(
        "sslmode=verify-full with a CA file that does not exist",
        url_with_ca(&pg.url, "verify-full", &other.path().join("missing.pem")),
        "No such file or directory",
    )
    .await;

    let unverified = tokio::time::timeout(Duration::from_secs(30), open(url_with_ca(&pg.url, "require", &other_ca)))
        .await
        .expect("open within 30 s")
        .expect("sslmode=require does not verify the certificate");
    unverified.ping().await.expect("ping over unverified TLS");
}

/// `sslmode=require` against a server without TLS fails, and says so, rather than going on in plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_against_plain_server_fails() {
    let pg = start_pg(false).await;
    let other = tempfile::Builder::new().prefix("switchboard-other-ca-").tempdir().expect("temp dir");
    let ca = PgTlsFiles::generate(other.path()).ca_cert;
    for mode in ["require", "verify-ca", "verify-full"] {
        expect_refused(
            &format!("sslmode={mode} against a server with TLS off"),
            url_with_ca(&pg.url, mode, &ca),
            "server does not support TLS",
        )
        .await;
    }
    // The default (prefer) still falls back to plain text there.
    open(pg.url.clone()).await.expect("open without sslmode against a plain server").ping().await.expect("ping");
}
