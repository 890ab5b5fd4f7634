//! The telephony system's WatchRoutes reader: a ring instruction for a held call is answered on
//! the phone at once (and, in the route-rate phase, hung up); it also stops the clock of the
//! release that freed the agent. Rings RouteCall already gave are repeats and change nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::calls::Calls;
use super::lifecycle::{answer, check_device};
use super::platform::{Platform, pb};

pub async fn watch(
    platform: Arc<Platform>,
    calls: Arc<Calls>,
    mut routes: tonic::Streaming<pb::RouteInstruction>,
    stop: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            n = routes.message() => n,
        };
        let i = match next {
            Ok(Some(i)) => i,
            Ok(None) => return calls.error("WatchRoutes ended"),
            Err(s) => return calls.error(format!("WatchRoutes: {:?} {}", s.code(), s.message())),
        };
        // Stamped before anything else is done with it: this is when the platform knows.
        let at = Instant::now();
        match i.action {
            Some(pb::route_instruction::Action::Ring(ring)) => {
                if !calls.rang(&i.call_id, &ring, at) {
                    continue;
                }
                check_device(&calls, &ring);
                calls.held_rung(&ring.agent_id, at);
                let (p, c) = (platform.clone(), calls.clone());
                let release = calls.release_after_hold.load(Relaxed);
                tokio::spawn(async move { answer(&p, &c, &i.call_id, &ring.agent_id, release).await });
            }
            Some(pb::route_instruction::Action::Cancel(_)) => calls.cancelled(),
            // The benchmark asks for no callbacks.
            Some(pb::route_instruction::Action::Dial(_)) => return calls.error("WatchRoutes: a dial nobody asked for"),
            None => {}
        }
    }
}
