//! Right to erasure across the CRM store and Switchboard's own copies (`Admin.EraseContact`), with
//! a real Redis, a real daemon and the built-in CRM store behind its authentication.

use std::time::Duration;

use crate::common::*;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::crm::pb as crm_pb;
use tonic::Code;

const DAEMON_KEY: &str = "test-erasure-daemon-key-0123456789abcdef0";
const CRM_ADMIN_KEY: &str = "test-erasure-crm-admin-0123456789abcdef01";

async fn crm() -> AuthedCrm {
    AuthedCrm::start(DAEMON_KEY, CRM_ADMIN_KEY).await
}

type CrmClient = crm_pb::crm_store_client::CrmStoreClient<Authed>;

async fn crm_admin(endpoint: &str) -> CrmClient {
    crm_pb::crm_store_client::CrmStoreClient::new(authed(endpoint, CRM_ADMIN_KEY).await)
}

async fn find(c: &mut CrmClient, address: &str) -> Result<crm_pb::Contact, tonic::Status> {
    let identity = crm_pb::Identity { channel: crm_pb::Channel::Chat as i32, address: address.into() };
    c.find_contact(crm_pb::FindContactRequest { identity: Some(identity) }).await.map(tonic::Response::into_inner)
}

async fn get(sb: &TestServer, id: &str) -> pb::Interaction {
    let mut ixs = sb.interactions().await;
    let r = pb::GetInteractionRequest { interaction_id: id.into(), include_messages: true };
    ixs.get_interaction(r).await.unwrap().into_inner()
}

async fn log_len(redis: &RedisServer) -> u64 {
    let mut con = redis.client().await;
    redis::AsyncCommands::xlen(&mut con, "sb:{default}:events").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_reaches_redis_ends_open_work_and_late_events_bring_nothing_back() {
    let redis = RedisServer::start();
    let crm = crm().await;
    let mut cfg = test_config(&redis.url);
    cfg.crm.endpoint = crm.endpoint.clone();
    cfg.crm.api_key = switchboard::config::Secret(DAEMON_KEY.into());
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true }).await.unwrap();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut ixs = sb.interactions().await;

    // Eve's first chat is handled and reaches the CRM, which makes her a contact.
    let first = ixs.create_interaction(new_chat("sales", "visitor-eve", "My IBAN is DE89 3704")).await.unwrap();
    let first = first.into_inner().id;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, first);
    ann.accept(&first).await.unwrap();
    ann.reply(&first, "Noted, Eve").await.unwrap();
    ann.complete(&first, "resolved").await.unwrap();
    let mut dpo = crm_admin(&crm.endpoint).await;
    let eve = eventually("Eve in the CRM", Duration::from_secs(20), || async {
        let c = find(&mut dpo.clone(), "visitor-eve").await.ok()?;
        (log_len(&redis).await == 0).then_some(c)
    })
    .await;

    // A second chat is open with Ann; a third waits (Ann is not ready any more); another
    // customer's chat waits beside it.
    let open = ixs.create_interaction(new_chat("sales", "visitor-eve", "I moved to Main St 5")).await.unwrap();
    let open = open.into_inner().id;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, open);
    ann.accept(&open).await.unwrap();
    ann.set_presence(pb::PresenceState::NotReady, "lunch").await;
    let waiting = ixs.create_interaction(new_chat("sales", "visitor-eve", "Call me on 0151 555")).await.unwrap();
    let waiting = waiting.into_inner().id;
    let other = ixs.create_interaction(new_chat("sales", "visitor-kim", "Kim here")).await.unwrap().into_inner().id;

    // Only admins erase.
    let mut as_supervisor = pb::admin_client::AdminClient::new(sb.with_key(SUPERVISOR_KEY).await);
    let denied = as_supervisor.erase_contact(pb::EraseContactRequest { contact_id: eve.id.clone() }).await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    let unknown = admin.erase_contact(pb::EraseContactRequest { contact_id: "no-such-contact".into() }).await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
    let empty = admin.erase_contact(pb::EraseContactRequest { contact_id: String::new() }).await.unwrap_err();
    assert_eq!((empty.code(), empty.message()), (Code::InvalidArgument, "contact_id: is required"));

    let r = admin.erase_contact(pb::EraseContactRequest { contact_id: eve.id.clone() }).await.unwrap().into_inner();
    assert!(r.interactions >= 1, "the CRM knew Eve's first chat at least: {r:?}");
    assert_eq!((r.copies_erased, r.ended), (3, 2), "three interactions of Eve's in Redis, two still open: {r:?}");

    // Switchboard's copies are blank, the open ones ended, and Ann was told.
    for id in [&first, &open, &waiting] {
        let ix = get(&sb, id).await;
        assert_eq!(ix.customer_address, "", "{id}");
        assert!(ix.messages.is_empty(), "{id}: {:?}", ix.messages);
        assert!(ix.attributes.is_empty(), "{id}");
    }
    assert_eq!(get(&sb, &waiting).await.state, pb::InteractionState::Abandoned as i32);
    assert_eq!(get(&sb, &waiting).await.end_reason, "erased");
    ann.wait_for("the open chat ended", |e| matches!(e, Ev::InteractionEnded(x) if x.interaction_id == open)).await;
    let kim = get(&sb, &other).await;
    assert_eq!((kim.customer_address.as_str(), kim.messages.len()), ("visitor-kim", 1), "Kim untouched");

    // Everything the log still held reaches the CRM, and brings nothing of Eve back: no contact is
    // made for her address, and no body, address or subject is stored for any of her interactions.
    eventually("the log delivered", Duration::from_secs(20), || async { (log_len(&redis).await == 0).then_some(()) })
        .await;
    assert_eq!(find(&mut dpo, "visitor-eve").await.unwrap_err().code(), Code::NotFound);
    for id in [&first, &open, &waiting] {
        assert_eq!(crm.db.messages(id).await.unwrap(), Vec::new(), "bodies of {id}");
        let events = crm.db.event_details(id).await.unwrap();
        assert!(events.iter().any(|(t, _)| t == "erased"), "{id}: {events:?}");
        for (typ, details) in &events {
            for secret in ["visitor-eve", "IBAN", "Main St", "0151 555", "Noted, Eve"] {
                assert!(!details.contains(secret), "{typ} of {id} keeps {secret:?}: {details}");
            }
        }
    }
    assert_eq!(crm.db.messages(&other).await.unwrap().len(), 1, "Kim's chat is in the CRM as it was");

    // The erasure is audited under the admin who asked.
    let trail = dpo
        .list_audit_events(crm_pb::ListAuditEventsRequest {
            types: vec!["contact_erased".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!((trail[0].actor.as_str(), trail[0].actor_address.as_str()), ("admin:test-admin", "127.0.0.1"));

    // Erased is gone: a second erasure finds nothing.
    let twice = admin.erase_contact(pb::EraseContactRequest { contact_id: eve.id.clone() }).await;
    assert_eq!(twice.unwrap_err().code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_without_a_crm_store_says_so() {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.crm.enabled = false;
    let sb = TestServer::start_with(cfg).await;
    let e = sb.admin().await.erase_contact(pb::EraseContactRequest { contact_id: "c-1".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    assert!(e.message().contains("CRM"), "{}", e.message());
}
