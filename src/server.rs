//! Wires one Switchboard instance together: Redis store, config bootstrap, inbox hub, timers,
//! gRPC services and the HTTP listener, all under one cancellation token.
//!
//! `run` takes already-bound listeners, so tests bind `127.0.0.1:0` and start real servers
//! in-process.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::api::{self, pb};
use crate::channels::Channels;
use crate::config::Config;
use crate::hub::Hub;
use switchboard_auth::{AuthLayer, Authenticator, Credential};
use switchboard_engine::{Engine, EngineError, EngineOptions};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("loading {what} {name:?} from the config: {source}")]
    Bootstrap { what: &'static str, name: String, source: EngineError },
    #[error("releasing the sessions of instance {instance:?}'s previous run: {source}")]
    InstanceStart { instance: String, source: EngineError },
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
    #[error("built-in CRM: {0}")]
    Crm(#[from] switchboard_crm::CrmError),
    #[error("email channel: {0}")]
    Email(#[from] crate::channels::email::EmailError),
    #[error(transparent)]
    Sms(#[from] crate::channels::sms::SmsError),
    #[error("invalid config: {0}")]
    Access(#[from] crate::access::AccessError),
    #[error("crm.api_key: {0}")]
    CrmKey(String),
    #[error("tls: {0}")]
    Tls(#[from] switchboard_auth::TlsError),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// Settings no retry can fix: the URL, a scheme this build cannot speak, unusable TLS files.
    #[error("redis {url}: {source} (see redis.url and the redis.*_file keys; not retried)")]
    RedisSettings { url: String, source: EngineError },
}

pub struct Server {
    config: Config,
    channels: Channels,
}

impl Server {
    pub fn new(config: Config) -> Self {
        Server { config, channels: Channels::default() }
    }

    /// Outbound channel adapters for agent replies.
    pub fn with_channels(mut self, channels: Channels) -> Self {
        self.channels = channels;
        self
    }

    pub async fn run(
        self,
        grpc: TcpListener,
        http: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        let cfg = self.config;
        let instance = if cfg.server.instance_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            cfg.server.instance_id.clone()
        };
        let metrics = crate::telemetry::metrics_handle();
        let store_slot = Arc::new(tokio::sync::RwLock::new(None));
        let tracker = TaskTracker::new();
        // Background tasks stop on their own token, after the listeners have drained.
        let background = CancellationToken::new();

        let webchat_slot: Option<crate::channels::webchat::routes::WebChatSlot> =
            cfg.webchat.enabled.then(Default::default);
        let sms_slot: Option<crate::channels::sms::routes::SmsSlot> = cfg.sms.enabled().then(Default::default);
        // http/1.1 beside h2: gRPC-Web from browsers and proxies that speak HTTP/1.1 to us.
        let grpc_tls = cfg.tls.server(&[b"h2", b"http/1.1"])?;
        let http_tls = cfg.tls.server_http()?;
        for tls in grpc_tls.iter().chain(http_tls.iter()) {
            tls.clone().spawn_reloader(cfg.tls.reload_every(), background.clone());
        }
        crate::tls::warn_if_plain("grpc", grpc.local_addr()?, grpc_tls.is_some());
        crate::tls::warn_if_plain("http", http.local_addr()?, http_tls.is_some());
        let grpc_port = grpc.local_addr()?.port();
        if cfg.web.enabled && cfg.server.grpc_web_origins.is_empty() {
            info!(
                message = "The /agent and /supervisor pages are served, but no page origin may call the API: list it in server.grpc_web_origins to use them."
            );
        }
        let http_state = crate::http::HttpState {
            engine: store_slot.clone(),
            metrics: metrics.clone(),
            webchat: webchat_slot.clone(),
            sms: sms_slot.clone(),
            web: cfg.web.enabled.then(|| crate::api::web::WebSlot::new(cfg.web.clone(), grpc_port, grpc_tls.is_some())),
        };
        let app = crate::http::router(http_state, cfg.server.metrics_listen.is_none());
        let http_task = tracker.spawn(crate::http::serve(http, http_tls, app, shutdown.clone()));
        tracker.spawn(crate::sampler::run(store_slot.clone(), cfg.routing.heartbeat(), shutdown.clone()));
        if let Some(addr) = cfg.server.metrics_listen {
            let listener = TcpListener::bind(addr).await?;
            info!(message = "Metrics on their own listener.", addr = %listener.local_addr()?);
            tracker.spawn(crate::http::serve(listener, None, crate::http::metrics_router(metrics), shutdown.clone()));
        }

        let opts = EngineOptions {
            key_root: cfg.redis.key_root(),
            presence_grace: cfg.routing.presence_grace(),
            figures_window: cfg.routing.figures_window(),
            cross_channel_blocking: cfg.routing.cross_channel_blocking,
            events_maxlen: if cfg.crm.enabled { 0 } else { 1_000_000 },
            redis_tls: cfg.redis.tls()?,
        };
        let Some(engine) = connect_with_retry(&cfg.redis.url, &cfg.redis.redacted_url(), opts, &shutdown).await? else {
            tracker.close();
            tracker.wait().await;
            return Ok(());
        };
        // Config changes are on record like any admin's, under the daemon's own name.
        bootstrap(&engine.acting_as(crate::model::Actor::new(&crate::access::system_principal(), None)), &cfg).await?;
        match engine.hash_clear_tokens().await {
            Ok(0) => {}
            Ok(n) => info!(message = "Hashed agent tokens an older version stored in clear.", agents = n),
            Err(error) => warn!(message = "Could not hash the agent tokens stored in clear.", %error),
        }
        // Before any desktop can log in here: sessions a crashed run under this id left behind
        // are ghosts, and this run's heartbeats would otherwise keep them alive.
        match engine.instance_started(&instance).await {
            Ok(0) => {}
            Ok(released) => {
                info!(message = "Released the sessions of this instance's previous run.", instance, released);
            }
            Err(source) => return Err(ServerError::InstanceStart { instance, source }),
        }
        *store_slot.write().await = Some(engine.clone());
        let auth = crate::access::authenticator(&cfg.auth, &cfg.tls, &engine)?;
        let auth_layer = AuthLayer::new(auth.clone(), api::policy::policy(cfg.auth.reflection))
            .with_rate(cfg.server.rate_per_caller, cfg.server.burst_per_caller)
            .with_failures_before_backoff(cfg.auth.failures_before_backoff)
            .with_stream_recheck(Duration::from_secs(cfg.auth.stream_recheck_secs.max(1)));

        let crm = if cfg.crm.enabled {
            let (endpoint, credential) = if cfg.crm.endpoint.is_empty() {
                // The built-in CRM runs in-process but is still reached through its gRPC API, so
                // it is interchangeable with an external one. Its port is only on loopback, and
                // still it answers no one but this process: the key is made fresh for each run.
                let db = switchboard_crm::CrmDb::open(crm_options(&cfg)).await?;
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let (secret, key) = crate::access::internal_crm_key();
                let crm_auth = Arc::new(Authenticator::new(vec![key]));
                let stop = background.clone();
                tracker.spawn(async move {
                    if let Err(error) = switchboard_crm::serve(db, listener, None, crm_auth, stop).await {
                        warn!(message = "Built-in CRM stopped.", %error);
                    }
                });
                (format!("http://{addr}"), Credential::bearer(&secret).map_err(ServerError::CrmKey)?)
            } else {
                let credential = if cfg.crm.api_key.is_empty() {
                    warn!(message = "crm.api_key is not set: the external CRM store will see an anonymous caller.");
                    Credential::none()
                } else {
                    Credential::bearer(cfg.crm.api_key.expose()).map_err(ServerError::CrmKey)?
                };
                (cfg.crm.endpoint.clone(), credential)
            };
            // Keepalive pings find a CRM that stopped answering (frozen, or a connection silently
            // dropped by something in between) instead of waiting on it forever.
            let mut ep = tonic::transport::Endpoint::from_shared(endpoint.clone())?
                .connect_timeout(Duration::from_secs(5))
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5))
                .keep_alive_while_idle(true);
            if endpoint.starts_with("https://") {
                ep = ep.tls_config(crm_client_tls(&cfg.crm)?)?;
            }
            let channel = ep.connect_lazy();
            Some(crate::crm::pb::crm_store_client::CrmStoreClient::with_interceptor(channel, credential))
        } else {
            None
        };
        if let Some(client) = &crm {
            tracker.spawn(crate::crm::delivery::run(
                engine.clone(),
                client.clone(),
                instance.clone(),
                cfg.crm.delivery_timeout(),
                background.clone(),
            ));
        }

        // Voice: the CTI hook's logic, and the callbacks every channel's customers may take.
        let voice = Arc::new(crate::channels::voice::Voice::new(
            engine.clone(),
            cfg.cti.clone(),
            (!cfg.crm.default_region.is_empty()).then(|| cfg.crm.default_region.clone()),
        ));
        let mut channels = self.channels;
        if let Some(slot) = &webchat_slot {
            let chat = crate::channels::webchat::WebChat::new(
                cfg.webchat.clone(),
                engine.clone(),
                shutdown.clone(),
                voice.clone(),
            );
            tracker.spawn(chat.clone().run(background.clone()));
            channels = channels.with(chat.clone());
            let _ = slot.set(chat);
        }

        if !cfg.email.mailboxes.is_empty() {
            let email = crate::channels::email::EmailChannel::new(cfg.email.clone(), engine.clone())?;
            let readers = email.spawn(&instance, background.clone());
            tracker.spawn(async move {
                for r in readers {
                    let _ = r.await;
                }
            });
            channels = channels.with(email);
        }

        if let Some(slot) = &sms_slot {
            let sms = crate::channels::sms::SmsChannel::new(cfg.sms.clone(), engine.clone(), &instance, voice.clone())?;
            let tasks = sms.spawn(background.clone());
            tracker.spawn(async move {
                for t in tasks {
                    let _ = t.await;
                }
            });
            channels = channels.with(sms.clone());
            let _ = slot.set(sms);
        }

        let hub = Hub::new(instance.clone(), engine.clone());
        tracker.spawn(hub.clone().run(background.clone()));
        tracker.spawn(crate::recovery::run(
            engine.clone(),
            Arc::new(cfg.clone()),
            hub.clone(),
            cfg.routing.heartbeat(),
            background.clone(),
        ));
        tracker.spawn(crate::timers::run_timers(
            engine.clone(),
            cfg.routing.timer_poll(),
            cfg.routing.heartbeat(),
            background.clone(),
        ));
        tracker.spawn(crate::timers::run_heartbeat(
            engine.clone(),
            instance.clone(),
            cfg.routing.heartbeat(),
            background.clone(),
        ));

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<pb::agent_desktop_server::AgentDesktopServer<api::agent::AgentDesktopService>>().await;
        health.set_serving::<pb::supervisor_server::SupervisorServer<api::supervisor::SupervisorService>>().await;
        health.set_serving::<pb::admin_server::AdminServer<api::admin::AdminService>>().await;
        health
            .set_serving::<pb::interactions_server::InteractionsServer<api::interactions::InteractionsService>>()
            .await;
        if cfg.cti.enabled {
            health.set_serving::<api::cti::pb::cti_server::CtiServer<api::cti::CtiService>>().await;
        }
        // Both reflection versions: many clients still ask v1alpha only (grpcio-reflection,
        // older grpcurl, Postman, evans) and would get UNIMPLEMENTED from v1 alone.
        let reflection_builder = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(api::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(api::cti::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let (reflection, reflection_alpha) = if cfg.auth.reflection {
            (Some(reflection_builder().build_v1()?), Some(reflection_builder().build_v1alpha()?))
        } else {
            (None, None)
        };

        let screen_pop = crm.as_ref().map(|client| {
            Arc::new(crate::crm::screen_pop::ScreenPopper::new(
                client.clone(),
                engine.clone(),
                cfg.crm.screen_pop_deadline(),
                cfg.crm.history_limit,
                Duration::from_secs(cfg.crm.cache_ttl_secs),
            ))
        });
        let eraser = crm.as_ref().map(|client| {
            Arc::new(crate::crm::erasure::Eraser {
                client: client.clone(),
                engine: engine.clone(),
                default_region: (!cfg.crm.default_region.is_empty()).then(|| cfg.crm.default_region.clone()),
            })
        });
        let sessions = TaskTracker::new();
        let desktop = api::agent::AgentDesktopService {
            engine: engine.clone(),
            hub: hub.clone(),
            channels,
            shutdown: shutdown.clone(),
            tasks: sessions.clone(),
            screen_pop,
            throttle: auth_layer.throttle(),
            pending_logins: Arc::new(tokio::sync::Semaphore::new(api::agent::MAX_PENDING_LOGINS)),
            voice: voice.clone(),
        };
        let feed = api::feed::EventFeed::new(engine.clone(), cfg.server.max_watchers, background.clone());
        if cfg.cti.enabled {
            for node in &cfg.cti.kamailio {
                let run = crate::channels::voice::kamailio::run(
                    (*voice).clone(),
                    node.clone(),
                    instance.clone(),
                    background.clone(),
                );
                tracker.spawn(run);
            }
        }
        let cti = cfg.cti.enabled.then(|| {
            api::cti::pb::cti_server::CtiServer::new(api::cti::CtiService {
                voice,
                feed: feed.clone(),
                shutdown: shutdown.clone(),
            })
        });
        let supervisor =
            api::supervisor::SupervisorService { engine: engine.clone(), shutdown: shutdown.clone(), feed };
        info!(
            message = "Switchboard serving.",
            instance,
            grpc = %grpc.local_addr()?,
            redis = %cfg.redis.redacted_url(),
            key_root = %cfg.redis.key_root(),
        );
        let grpc_shutdown = shutdown.clone();
        let background_for_tls = shutdown.clone();
        let grace = cfg.server.shutdown_grace();
        let web_origins = api::grpc_web::origins(&cfg.server.browser_origins());
        let router = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .max_concurrent_streams(cfg.server.max_streams_per_connection)
            // gRPC-Web (api/grpc_web.rs), also over HTTP/1.1. Outermost first: unlisted origins
            // refused, CORS preflights answered, gRPC-Web translated to gRPC — and only then the
            // auth layer, which sees every call as a native one.
            .accept_http1(true)
            .layer(api::grpc_web::OriginGateLayer::new(web_origins.clone()))
            .layer(api::grpc_web::cors(&web_origins))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(auth_layer.clone())
            .add_service(health_service)
            .add_optional_service(reflection)
            .add_optional_service(reflection_alpha)
            .add_service(pb::agent_desktop_server::AgentDesktopServer::new(desktop))
            .add_service(pb::supervisor_server::SupervisorServer::new(supervisor))
            .add_service(pb::admin_server::AdminServer::new(api::admin::AdminService {
                engine: engine.clone(),
                auth: auth.clone(),
                eraser,
            }))
            .add_service(pb::interactions_server::InteractionsServer::new(api::interactions::InteractionsService {
                engine: engine.clone(),
            }))
            .add_optional_service(cti);
        let stop = async move { grpc_shutdown.cancelled().await };
        let serve = async move {
            match grpc_tls {
                Some(tls) => router.serve_with_incoming_shutdown(tls.incoming(grpc, background_for_tls), stop).await,
                None => {
                    // TCP_NODELAY: without it small pushes (offers) wait on Nagle and delayed ACKs, ~20-40 ms.
                    let incoming = tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
                    router.serve_with_incoming_shutdown(incoming, stop).await
                }
            }
        };
        let grpc_result = tokio::select! {
            r = serve => r,
            // Streams that do not end within the grace period are cut.
            _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                warn!(message = "Shutdown grace period over; closing remaining streams.");
                Ok(())
            }
        };
        info!(message = "Switchboard stopping.", instance);
        hub.close_all("shutdown");
        // Each session task records its end (offers back to the queue, the agent through the
        // grace period so it can resume on another instance); the deregistration below ends any
        // session whose task could not.
        sessions.close();
        if tokio::time::timeout(Duration::from_secs(5), sessions.wait()).await.is_err() {
            warn!(message = "Desktop sessions still open at shutdown; ending them with the instance.");
        }
        if let Err(error) = engine.heartbeat(&instance, true).await {
            warn!(message = "Could not deregister the instance.", %error);
        }
        background.cancel();
        tracker.close();
        tracker.wait().await;
        let _ = http_task.await;
        grpc_result?;
        Ok(())
    }
}

/// TLS to an external CRM store: the operator's CA (or the web's roots), and a client
/// certificate when the store asks for one.
fn crm_client_tls(crm: &crate::config::CrmConfig) -> Result<tonic::transport::ClientTlsConfig, ServerError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|source| ServerError::Tls(switchboard_auth::TlsError::Read { path: p.to_path_buf(), source }))
    };
    let mut tls = tonic::transport::ClientTlsConfig::new();
    tls = match &crm.ca_file {
        Some(ca) => tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?)),
        None => tls.with_webpki_roots(),
    };
    if let (Some(cert), Some(key)) = (&crm.client_cert_file, &crm.client_key_file) {
        tls = tls.identity(tonic::transport::Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(tls)
}

pub fn crm_options(cfg: &Config) -> switchboard_crm::CrmOptions {
    switchboard_crm::CrmOptions {
        database_url: cfg.crm.database.clone(),
        default_region: (!cfg.crm.default_region.is_empty()).then(|| cfg.crm.default_region.clone()),
        create_unknown_contacts: cfg.crm.create_unknown_contacts,
    }
}

/// Waits for Redis (None: shut down meanwhile). Each failed try is logged with what failed: a
/// refused connection, the TLS handshake (a certificate Redis or the daemon does not accept),
/// the ACL login. Settings that cannot work are an error at once, not retried.
async fn connect_with_retry(
    url: &str,
    shown: &str,
    opts: EngineOptions,
    shutdown: &CancellationToken,
) -> Result<Option<Engine>, ServerError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match Engine::connect(url, opts.clone()).await {
            Ok(s) => return Ok(Some(s)),
            Err(source) if source.is_client_config() => {
                return Err(ServerError::RedisSettings { url: shown.to_string(), source });
            }
            Err(error) => {
                let failed = error.connect_failure();
                warn!(message = "Cannot connect to Redis yet; retrying.", redis = %shown, %failed, %error, retry_in = ?delay);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Upserts the calendars, agents and queues of the config file (calendars first, for the queues
/// that keep them; then queues, overflow targets before the queues that overflow to them), then
/// marks the data as loaded.
pub(crate) async fn bootstrap(engine: &Engine, cfg: &Config) -> Result<(), ServerError> {
    for c in &cfg.calendars {
        engine.put_calendar(c, true).await.map_err(|source| ServerError::Bootstrap {
            what: "calendar",
            name: c.name.clone(),
            source,
        })?;
    }
    let mut pending: Vec<_> = cfg.queues.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut next = Vec::new();
        let mut last_error = None;
        for q in pending {
            match engine.put_queue(q, true).await {
                Ok(_) => {}
                // Its overflow target may come later in the file.
                Err(EngineError::NotFound(m)) => {
                    last_error = Some((q.name.clone(), EngineError::NotFound(m)));
                    next.push(q);
                }
                Err(source) => return Err(ServerError::Bootstrap { what: "queue", name: q.name.clone(), source }),
            }
        }
        if next.len() == before {
            let (name, source) = last_error.expect("no progress implies an error");
            return Err(ServerError::Bootstrap { what: "queue", name, source });
        }
        pending = next;
    }
    for a in &cfg.agents {
        engine.put_agent(a, true).await.map_err(|source| ServerError::Bootstrap {
            what: "agent",
            name: a.id.clone(),
            source,
        })?;
    }
    // What tells a Redis that lost its data (recovery.rs) from one that kept it.
    engine.mark_loaded().await.map_err(|source| ServerError::Bootstrap {
        what: "mark",
        name: "loaded".into(),
        source,
    })?;
    if !cfg.queues.is_empty() || !cfg.agents.is_empty() || !cfg.calendars.is_empty() {
        info!(
            message = "Loaded agents, queues and calendars from the config.",
            agents = cfg.agents.len(),
            queues = cfg.queues.len(),
            calendars = cfg.calendars.len()
        );
    }
    Ok(())
}
