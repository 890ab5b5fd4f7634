//! The web chat widget in a real headless Chromium (chromedriver started here), talking to a real
//! Switchboard and Redis, with an agent on the gRPC desktop stream.

use crate::common::*;
use serde_json::json;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::api::pb::agent_request::Kind as Rq;

const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

/// The page's transcript: (css class of the line, text of its body), in order.
const TRANSCRIPT_JS: &str = r#"return Array.from(document.querySelectorAll('.sbw-log .sbw-msg'))
    .map(li => [li.classList.contains('sbw-agent') ? 'agent' : li.classList.contains('sbw-visitor') ? 'visitor' : 'notice',
                li.querySelector('.sbw-body').textContent]);"#;

async fn transcript(b: &Browser) -> Vec<(String, String)> {
    let v = b.js(TRANSCRIPT_JS).await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_str().unwrap().to_string()))
        .collect()
}

async fn wait_line(b: &Browser, class: &str, body: &str) {
    let script = format!(
        "return Array.from(document.querySelectorAll('.sbw-log .{class} .sbw-body')).some(e => e.textContent === {});",
        json!(body)
    );
    b.wait_js(&format!("{class} line {body:?}"), &script).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_chats_with_an_agent_from_the_demo_page() {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.webchat.enabled = true;
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    let mut q = queue("chat", &[]);
    q.channels = vec![pb::Channel::Chat as i32];
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true }).await.unwrap();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;

    let b = Browser::start().await;
    b.goto(&format!("http://{}/chat/demo", sb.http_addr)).await;
    // The demo opens the panel; the visitor fills the pre-chat form.
    b.type_into("#sbw-name", "Vera").await;
    b.type_into("#sbw-email", "vera@example.com").await;
    b.type_into("#sbw-first", "Hello from the browser").await;
    b.click(".sbw-start").await;

    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.attributes["name"], "Vera");
    assert_eq!(offer.messages[0].body, "Hello from the browser");
    let iid = offer.id;
    ann.accept(&iid).await.unwrap();
    b.wait_js("agent joined", "return document.querySelector('.sbw-status').textContent.includes('Agent ann');").await;

    ann.reply(&iid, "Hi Vera, how can I help?").await.unwrap();
    wait_line(&b, "sbw-agent", "Hi Vera, how can I help?").await;
    ann.request(Rq::SetTyping(pb::SetTyping { interaction_id: iid.clone(), typing: true })).await.unwrap();
    b.wait_js("typing shown", "return document.querySelector('.sbw-typing').textContent.includes('typing');").await;

    b.type_into(".sbw-input", &format!("My order is late{ENTER}")).await;
    ann.wait_for("customer typing", |e| matches!(e, Ev::CustomerTyping(t) if t.typing)).await;
    let Ev::CustomerMessage(m) = ann.wait_for("customer message", |e| matches!(e, Ev::CustomerMessage(_))).await else {
        unreachable!()
    };
    assert_eq!(m.message.unwrap().body, "My order is late");
    b.wait_js("message confirmed", "return document.querySelectorAll('.sbw-pending').length === 0 && document.querySelectorAll('.sbw-visitor').length === 2;").await;

    // Reload in the middle of the chat; the agent writes while the page is away.
    b.client.refresh().await.unwrap();
    ann.reply(&iid, "Sent while you were reloading").await.unwrap();
    wait_line(&b, "sbw-agent", "Sent while you were reloading").await;
    let lines: Vec<_> = transcript(&b).await.into_iter().filter(|(c, _)| c != "notice").collect();
    let expected = [
        ("visitor", "Hello from the browser"),
        ("agent", "Hi Vera, how can I help?"),
        ("visitor", "My order is late"),
        ("agent", "Sent while you were reloading"),
    ];
    assert_eq!(
        lines,
        expected.iter().map(|(c, t)| (c.to_string(), t.to_string())).collect::<Vec<_>>(),
        "after the reload the whole transcript is there, once, in order"
    );

    // Hostile text from either side is shown as text.
    let hostile = r#"<img src=x onerror="window.__pwned=1"><b>bold</b>"#;
    ann.reply(&iid, hostile).await.unwrap();
    wait_line(&b, "sbw-agent", hostile).await;
    b.type_into(".sbw-input", &format!(r#"<script>window.__pwned2=1</script><i>hi</i>{ENTER}"#)).await;
    wait_line(&b, "sbw-visitor", "<script>window.__pwned2=1</script><i>hi</i>").await;
    let dom = b
        .js("return [document.querySelectorAll('.sbw-log img, .sbw-log b, .sbw-log script, .sbw-log i').length, typeof window.__pwned, typeof window.__pwned2];")
        .await;
    assert_eq!(dom, json!([0, "undefined", "undefined"]));

    // Keyboard: Escape minimises the panel and gives focus back to the launcher.
    b.type_into(".sbw-input", ESCAPE).await;
    b.wait_js("panel closed", "return document.querySelector('.sbw-panel').hidden && document.activeElement === document.querySelector('.sbw-launcher');").await;
    b.click(".sbw-launcher").await;

    // The visitor ends the chat.
    b.click(".sbw-end").await;
    let Ev::InteractionEnded(e) = ann.wait_for("ended", |e| matches!(e, Ev::InteractionEnded(_))).await else {
        unreachable!()
    };
    assert_eq!(e.reason, "visitor_ended");
    b.wait_js("ended shown", "return document.querySelector('.sbw-log').textContent.includes('You ended the chat.');")
        .await;
    b.find(".sbw-new").await;
    b.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_visitor_takes_the_callback_offered_in_the_widget() {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.webchat.enabled = true;
    cfg.webchat.offer_callback = true;
    cfg.cti.callback_system = "pbx-1".into();
    cfg.crm.default_region = "DE".into();
    let sb = TestServer::start_with(cfg).await;
    let mut q = queue("chat", &[]);
    q.channels = vec![pb::Channel::Chat as i32, pb::Channel::Voice as i32];
    sb.admin().await.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();

    // Nobody is ready: the visitor waits, and is offered a callback.
    let b = Browser::start().await;
    b.goto(&format!("http://{}/chat/demo", sb.http_addr)).await;
    b.type_into("#sbw-first", "Is anybody there?").await;
    b.click(".sbw-start").await;
    b.wait_js("the callback offer", "return !document.querySelector('.sbw-callback').hidden;").await;
    let offer = b
        .js("return [document.querySelector('.sbw-callback-title').textContent, document.querySelector('label[for=sbw-cb-number]').textContent, document.getElementById('sbw-cb-number').type];")
        .await;
    assert_eq!(offer, json!(["Rather be called back? You keep your place in line.", "Your phone number", "tel"]));

    // A number that is none: the server's words at the field, which gets the focus; still waiting.
    b.type_into("#sbw-cb-number", "12").await;
    b.click(".sbw-callback-send").await;
    b.wait_js("number error", "return document.getElementById('sbw-cb-number-error').textContent.startsWith('number:') && document.activeElement.id === 'sbw-cb-number' && document.activeElement.getAttribute('aria-invalid') === 'true';").await;
    let waiting = b.js("return [!document.querySelector('.sbw-callback').hidden, !document.querySelector('.sbw-composer').hidden];").await;
    assert_eq!(waiting, json!([true, true]), "the chat goes on waiting");

    // A good one, sent from the keyboard.
    b.find("#sbw-cb-number").await.clear().await.unwrap();
    b.type_into("#sbw-cb-number", &format!("0151 12345678{ENTER}")).await;
    b.wait_js(
        "confirmation",
        "return document.querySelector('.sbw-log').textContent.includes('We will call you at +4915112345678 \u{2014} you keep your place in line.');",
    )
    .await;
    b.wait_js(
        "the chat has ended",
        "return document.querySelector('.sbw-callback').hidden && document.querySelector('.sbw-composer').hidden && !document.querySelector('.sbw-new').hidden && document.activeElement === document.querySelector('.sbw-new');",
    )
    .await;
    let lines: Vec<_> = transcript(&b).await.into_iter().map(|(_, t)| t).collect();
    assert!(!lines.iter().any(|t| t == "You ended the chat."), "{lines:?}");

    let waiting =
        sb.supervisor().await.list_waiting(pb::ListWaitingRequest::default()).await.unwrap().into_inner().interactions;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].callback.as_ref().expect("a callback").number, "+4915112345678");
    b.stop().await;
    sb.stop().await;
}
