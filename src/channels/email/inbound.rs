//! Reading a mailbox over IMAP (async-imap): connect (TLS, STARTTLS or plain), log in, select
//! the folder, process every message above the stored position, then wait with IDLE (or poll) and
//! repeat; on any error reconnect with backoff.
//!
//! No loss, no duplicates: the position (`last_uid` under a `uidvalidity`) advances only after a
//! message is stored and then flagged or moved; a crash in between processes it again, and
//! processing is idempotent (see `ingest.rs`). A new UIDVALIDITY makes every UID meaningless, so
//! the folder is read again from the start and the dedupe keys drop what was already processed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::Session;
use async_imap::extensions::idle::IdleResponse;
use async_imap::types::UnsolicitedResponse;
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::config::{AfterProcessing, MailboxConfig, Security};
use super::ingest::{Ingest, Outcome};
use switchboard_engine::email::EmailState;

/// Keyword on messages this channel has processed (flag mode), and on those it set aside.
pub const PROCESSED_KEYWORD: &str = "$Switchboard";
pub const SET_ASIDE_KEYWORD: &str = "$SwitchboardSetAside";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Every IMAP command must answer within this.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The mailbox lease; renewed at least every third of it.
const LEASE_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("connecting to {0}: {1}")]
    Connect(String, String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("IMAP: {0}")]
    Io(#[from] std::io::Error),
    #[error("IMAP login refused: {0}")]
    Login(String),
    #[error("IMAP server gave no UIDVALIDITY for {0}")]
    NoUidValidity(String),
    #[error("IMAP command timed out: {0}")]
    Timeout(&'static str),
    #[error(transparent)]
    Engine(#[from] switchboard_engine::EngineError),
    #[error(transparent)]
    Ingest(#[from] super::ingest::IngestError),
    #[error("lost the mailbox lease to another instance")]
    LeaseLost,
}

/// A plain or TLS connection: async-imap needs one concrete stream type.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

async fn timed<T, E: Into<InboundError>>(
    what: &'static str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, InboundError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(InboundError::Timeout(what)),
    }
}

fn tls_connector(m: &MailboxConfig) -> Result<TlsConnector, InboundError> {
    let mut roots = rustls::RootCertStore::empty();
    match &m.tls_ca_file {
        Some(f) => {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let pem = std::fs::read(f).map_err(|e| InboundError::Tls(format!("{}: {e}", f.display())))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| InboundError::Tls(format!("{}: {e}", f.display())))?;
                roots.add(cert).map_err(|e| InboundError::Tls(format!("{}: {e}", f.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| InboundError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn wrap_tls(m: &MailboxConfig, tcp: TcpStream) -> Result<Conn, InboundError> {
    let name = rustls::pki_types::ServerName::try_from(m.imap.host.clone())
        .map_err(|e| InboundError::Tls(format!("{}: {e}", m.imap.host)))?;
    let tls = timed("TLS handshake", tls_connector(m)?.connect(name, tcp)).await?;
    Ok(Conn::Tls(Box::new(tls)))
}

/// What the server offers that the reader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// IDLE, and the mailbox wants it.
    pub idle: bool,
    /// MOVE (RFC 6851); without it a move is COPY, `\Deleted` and UID EXPUNGE (UIDPLUS).
    pub move_: bool,
}

/// Connects and logs in.
pub async fn connect(m: &MailboxConfig) -> Result<(Session<Conn>, Capabilities), InboundError> {
    let addr = format!("{}:{}", m.imap.host, m.imap.port());
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(InboundError::Connect(addr, e.to_string())),
        Err(_) => return Err(InboundError::Connect(addr, "timed out".into())),
    };
    let _ = tcp.set_nodelay(true);
    let mut client = match m.imap.security {
        Security::Tls => async_imap::Client::new(wrap_tls(m, tcp).await?),
        Security::Plain => async_imap::Client::new(Conn::Plain(tcp)),
        Security::Starttls => {
            let mut plain = async_imap::Client::new(Conn::Plain(tcp));
            timed("greeting", async { plain.read_response().await }).await?;
            timed("STARTTLS", plain.run_command_and_check_ok("STARTTLS", None)).await?;
            let Conn::Plain(tcp) = plain.into_inner() else { unreachable!("plain before STARTTLS") };
            // The greeting came before STARTTLS; the TLS session starts without one.
            let client = async_imap::Client::new(wrap_tls(m, tcp).await?);
            return login(m, client).await;
        }
    };
    timed("greeting", async { client.read_response().await }).await?;
    login(m, client).await
}

async fn login(
    m: &MailboxConfig,
    client: async_imap::Client<Conn>,
) -> Result<(Session<Conn>, Capabilities), InboundError> {
    let mut session =
        match tokio::time::timeout(COMMAND_TIMEOUT, client.login(&m.imap.username, &m.imap.password)).await {
            Ok(Ok(s)) => s,
            Ok(Err((e, _))) => return Err(InboundError::Login(e.to_string())),
            Err(_) => return Err(InboundError::Timeout("LOGIN")),
        };
    let caps = timed("CAPABILITY", session.capabilities()).await?;
    Ok((session, Capabilities { idle: caps.has_str("IDLE") && m.imap.idle, move_: caps.has_str("MOVE") }))
}

/// Reads one mailbox until `cancel`: reconnects with backoff, holds the mailbox lease.
pub async fn run_mailbox(
    m: MailboxConfig,
    ingest: Ingest,
    state: EmailState,
    instance: String,
    cancel: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let held = match state.lease(&m.name, &instance, LEASE_TTL.as_millis() as u64).await {
            Ok(h) => h,
            Err(error) => {
                warn!(message = "Mailbox lease check failed.", %error, mailbox = %m.name);
                false
            }
        };
        if !held {
            // Another instance reads it; check again before its lease could run out.
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(LEASE_TTL / 3) => continue,
            }
        }
        let mut connected = false;
        let r = session(&m, &ingest, &state, &instance, &cancel, &mut connected).await;
        if connected {
            backoff = MIN_BACKOFF;
        }
        match r {
            Ok(()) => break,
            Err(error) => {
                metrics::counter!("switchboard_email_imap_errors_total", "mailbox" => m.name.clone()).increment(1);
                warn!(message = "IMAP session ended; reconnecting.", %error, mailbox = %m.name, ?backoff);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    let _ = state.release(&m.name, &instance).await;
    debug!(message = "Mailbox reader stopped.", mailbox = %m.name);
}

async fn session(
    m: &MailboxConfig,
    ingest: &Ingest,
    state: &EmailState,
    instance: &str,
    cancel: &CancellationToken,
    connected: &mut bool,
) -> Result<(), InboundError> {
    let (mut s, caps) = connect(m).await?;
    let idle = caps.idle;
    // async-imap quotes mailbox names itself.
    let mbox = timed("SELECT", s.select(&m.imap.folder)).await?;
    let validity = mbox.uid_validity.ok_or_else(|| InboundError::NoUidValidity(m.imap.folder.clone()))?;
    if m.after_processing == AfterProcessing::Move {
        // Already there is fine; any other problem shows up on the first MOVE.
        let _ = timed("CREATE", s.create(&m.move_to)).await;
    }
    *connected = true;
    info!(message = "IMAP mailbox open.", mailbox = %m.name, folder = %m.imap.folder, uidvalidity = validity, idle);
    let wait = Duration::from_secs(m.imap.poll_secs.into()).min(LEASE_TTL / 3);
    loop {
        if !state.lease(&m.name, instance, LEASE_TTL.as_millis() as u64).await? {
            return Err(InboundError::LeaseLost);
        }
        sync(m, &mut s, caps, validity, ingest, state, cancel).await?;
        // Mail that arrived while we were busy was announced (EXISTS) in the answers to our
        // commands, not during IDLE: look again now rather than at the next IDLE timeout.
        let mut arrived = false;
        while let Ok(r) = s.unsolicited_responses.try_recv() {
            arrived |= matches!(r, UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_));
        }
        if arrived && !cancel.is_cancelled() {
            continue;
        }
        if cancel.is_cancelled() {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.logout()).await;
            return Ok(());
        }
        if idle {
            let mut handle = s.idle();
            timed("IDLE", handle.init()).await?;
            let (fut, stop) = handle.wait_with_timeout(wait);
            let r = tokio::select! {
                r = fut => Some(r),
                _ = cancel.cancelled() => None,
            };
            drop(stop);
            match r {
                Some(Ok(IdleResponse::NewData(d))) => {
                    debug!(message = "IMAP IDLE woke.", mailbox = %m.name, data = ?d.parsed());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            }
            s = timed("DONE", handle.done()).await?;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return Ok(()),
            }
            timed("NOOP", s.noop()).await?;
        }
    }
}

/// Processes every message above the stored position, oldest first.
async fn sync(
    m: &MailboxConfig,
    s: &mut Session<Conn>,
    caps: Capabilities,
    validity: u32,
    ingest: &Ingest,
    state: &EmailState,
    cancel: &CancellationToken,
) -> Result<(), InboundError> {
    let (stored_validity, mut last) = state.cursor(&m.name).await?;
    if stored_validity != Some(validity) {
        if stored_validity.is_some() {
            warn!(message = "UIDVALIDITY changed; reading the folder again.", mailbox = %m.name,
                  old = ?stored_validity, new = validity);
            metrics::counter!("switchboard_email_uidvalidity_changes_total", "mailbox" => m.name.clone()).increment(1);
        }
        last = 0;
        state.set_cursor(&m.name, validity, 0).await?;
    }
    // Processed mail carries the keyword in both modes (moved mail has left the folder, except
    // what is set aside or left behind by an interrupted COPY + EXPUNGE).
    let query = format!("UID {}:* UNKEYWORD {PROCESSED_KEYWORD}", last + 1);
    let found = timed("UID SEARCH", s.uid_search(&query)).await?;
    let mut uids: Vec<u32> = found.into_iter().filter(|u| *u > last).collect();
    uids.sort_unstable();
    if !uids.is_empty() {
        debug!(message = "New mail.", mailbox = %m.name, count = uids.len());
    }
    for uid in uids {
        if cancel.is_cancelled() {
            break;
        }
        let query = format!("(UID RFC822.SIZE BODY.PEEK[]<0.{}>)", m.max_message_bytes);
        let fetched: Vec<_> =
            timed("UID FETCH", async { s.uid_fetch(uid.to_string(), &query).await?.try_collect().await }).await?;
        let Some(f) = fetched.into_iter().find(|f| f.uid == Some(uid)) else {
            // Expunged meanwhile.
            state.set_cursor(&m.name, validity, uid).await?;
            continue;
        };
        let raw = f.body().map(<[u8]>::to_vec).unwrap_or_default();
        let size = f.size.unwrap_or(raw.len() as u32);
        let outcome = ingest.process(m, raw).await?;
        metrics::counter!("switchboard_email_received_total", "mailbox" => m.name.clone(), "outcome" => outcome.label())
            .increment(1);
        match &outcome {
            Outcome::SetAside(reason) => {
                warn!(message = "Email set aside.", mailbox = %m.name, uid, size, %reason);
            }
            o => info!(message = "Email processed.", mailbox = %m.name, uid, size, outcome = ?o),
        }
        mark(m, s, caps, uid, matches!(outcome, Outcome::SetAside(_))).await?;
        state.set_cursor(&m.name, validity, uid).await?;
    }
    Ok(())
}

/// Flags or moves a processed message; only after its outcome is stored.
async fn mark(
    m: &MailboxConfig,
    s: &mut Session<Conn>,
    caps: Capabilities,
    uid: u32,
    set_aside: bool,
) -> Result<(), InboundError> {
    let flags = if set_aside {
        format!("+FLAGS.SILENT (\\Seen {PROCESSED_KEYWORD} {SET_ASIDE_KEYWORD})")
    } else {
        format!("+FLAGS.SILENT (\\Seen {PROCESSED_KEYWORD})")
    };
    timed("UID STORE", async {
        let _: Vec<_> = s.uid_store(uid.to_string(), &flags).await?.try_collect().await?;
        Ok::<_, async_imap::error::Error>(())
    })
    .await?;
    // Set-aside mail stays in the folder for a person to look at.
    if m.after_processing == AfterProcessing::Move && !set_aside {
        if caps.move_ {
            timed("UID MOVE", s.uid_mv(uid.to_string(), &m.move_to)).await?;
        } else {
            // A crash between COPY and EXPUNGE leaves a copy in both folders; the original is
            // flagged as processed, so it is not read again.
            timed("UID COPY", s.uid_copy(uid.to_string(), &m.move_to)).await?;
            timed("UID STORE", async {
                let _: Vec<_> = s.uid_store(uid.to_string(), "+FLAGS.SILENT (\\Deleted)").await?.try_collect().await?;
                Ok::<_, async_imap::error::Error>(())
            })
            .await?;
            timed("UID EXPUNGE", async {
                let _: Vec<_> = s.uid_expunge(uid.to_string()).await?.try_collect().await?;
                Ok::<_, async_imap::error::Error>(())
            })
            .await?;
        }
    }
    Ok(())
}
