//! The benchmark as a telephony system: its API key (role `telephony`; the key's name is the
//! system's id), one RouteCall client per caller and one PublishEvents stream per caller, each
//! event's ack handed to whoever sent it, stamped with when it arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use switchboard_proto::cti as pb;

/// The telephony system's id (its key's name in `[[auth.keys]]`).
pub const SYSTEM: &str = "bench-pbx";

/// Callers sharing one HTTP/2 connection, as in the gRPC ceiling.
const CALLERS_PER_CONNECTION: usize = 10;

/// How long an event's ack may take before it counts as an error.
const ACK_PATIENCE: Duration = Duration::from_secs(30);

/// A key for this run only: the daemon is on loopback and lives as long as the point.
pub fn telephony_key() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("bench-telephony-{nanos:032x}{:08x}", std::process::id())
}

/// `authorization: Bearer <key>` on every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = pb::cti_client::CtiClient<InterceptedService<Channel, Bearer>>;

/// An event's ack, and when it reached the benchmark.
pub struct Acked {
    pub ack: pb::EventAck,
    pub at: Instant,
}

/// One PublishEvents stream. The daemon applies a stream's events one at a time, in order, so
/// a call's events all go on one stream and the callers each have their own.
struct EventStream {
    tx: mpsc::Sender<pb::TelephonyEvent>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Acked>>>>,
}

pub struct Platform {
    callers: Vec<Client>,
    streams: Vec<EventStream>,
}

impl Platform {
    /// `lanes` callers and event streams on the daemon at `endpoint`.
    pub async fn connect(endpoint: &str, key: &str, lanes: usize) -> anyhow::Result<Platform> {
        let bearer = Bearer(format!("Bearer {key}").parse()?);
        let mut callers = Vec::new();
        let mut streams = Vec::new();
        for lane in 0..lanes.max(1) {
            if lane % CALLERS_PER_CONNECTION == 0 {
                let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())?.connect().await?;
                callers.push(pb::cti_client::CtiClient::new(InterceptedService::new(channel, bearer.clone())));
            } else {
                callers.push(callers[lane - lane % CALLERS_PER_CONNECTION].clone());
            }
            streams.push(EventStream::open(callers[lane].clone()).await?);
        }
        Ok(Platform { callers, streams })
    }

    pub fn lanes(&self) -> usize {
        self.callers.len()
    }

    /// The lane a call's events go on, the same for all of them.
    pub fn lane_of(&self, call_id: &str) -> usize {
        call_id.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b))) % self.lanes()
    }

    pub async fn route(&self, lane: usize, req: pb::RouteRequest) -> Result<pb::RouteResponse, tonic::Status> {
        let mut c = self.callers[lane % self.lanes()].clone();
        Ok(c.route_call(req).await?.into_inner())
    }

    /// Every ring instruction from now on (the subscription is in place when this returns).
    pub async fn watch(&self) -> anyhow::Result<tonic::Streaming<pb::RouteInstruction>> {
        let mut c = self.callers[0].clone();
        Ok(c.watch_routes(pb::WatchRoutesRequest {}).await?.into_inner())
    }

    /// Sends a call event on its call's stream and waits for its ack.
    pub async fn event(&self, e: pb::TelephonyEvent) -> anyhow::Result<Acked> {
        self.events(vec![e]).await.pop().expect("one event, one ack")
    }

    /// Sends a call's events one after the other without waiting in between (they are applied in
    /// that order), then waits for their acks.
    pub async fn events(&self, events: Vec<pb::TelephonyEvent>) -> Vec<anyhow::Result<Acked>> {
        let mut sent = Vec::new();
        for e in events {
            sent.push(self.send(e).await);
        }
        let mut acks = Vec::new();
        for s in sent {
            acks.push(match s {
                Ok((id, rx)) => match tokio::time::timeout(ACK_PATIENCE, rx).await {
                    Ok(Ok(a)) => Ok(a),
                    Ok(Err(_)) => Err(anyhow::anyhow!("event {id}: the PublishEvents stream ended before its ack")),
                    Err(_) => Err(anyhow::anyhow!("event {id}: no ack within {ACK_PATIENCE:?}")),
                },
                Err(e) => Err(e),
            });
        }
        acks
    }

    async fn send(&self, e: pb::TelephonyEvent) -> anyhow::Result<(String, oneshot::Receiver<Acked>)> {
        let call = match &e.event {
            Some(pb::telephony_event::Event::Call(c)) => c.call_id.as_str(),
            _ => "",
        };
        let s = &self.streams[self.lane_of(call)];
        let (tx, rx) = oneshot::channel();
        let id = e.event_id.clone();
        s.waiting.lock().expect("lock").insert(id.clone(), tx);
        s.tx.send(e).await.map_err(|_| anyhow::anyhow!("event {id}: the PublishEvents stream has closed"))?;
        Ok((id, rx))
    }
}

impl EventStream {
    async fn open(mut client: Client) -> anyhow::Result<EventStream> {
        let (tx, rx) = mpsc::channel(256);
        let mut acks = client.publish_events(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
        let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Acked>>>> = Arc::default();
        let w = waiting.clone();
        tokio::spawn(async move {
            while let Ok(Some(ack)) = acks.message().await {
                let at = Instant::now();
                if let Some(to) = w.lock().expect("lock").remove(&ack.event_id) {
                    let _ = to.send(Acked { ack, at });
                }
            }
            // Ended: whoever still waits hears so (their senders drop here).
            w.lock().expect("lock").clear();
        });
        Ok(EventStream { tx, waiting })
    }
}

/// A call event as the platform reports it: its id is unique per system (the call and what).
pub fn call_event(call_id: &str, agent_id: &str, sequence: u64, kind: pb::call_event::Kind) -> pb::TelephonyEvent {
    let what = match &kind {
        pb::call_event::Kind::Answered(_) => "answered",
        pb::call_event::Kind::Released(_) => "released",
        _ => "other",
    };
    pb::TelephonyEvent {
        event_id: format!("{call_id}/{what}"),
        at: None,
        event: Some(pb::telephony_event::Event::Call(pb::CallEvent {
            call_id: call_id.to_string(),
            sequence,
            agent_id: agent_id.to_string(),
            kind: Some(kind),
            ..Default::default()
        })),
    }
}
