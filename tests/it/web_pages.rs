//! The agent desktop (`/agent`) and the wallboard (`/supervisor`) in a real headless Chromium
//! (chromedriver started here), against a real Switchboard and Redis; the customer is a web chat
//! visitor on the real WebSocket.

use std::time::Duration;

use crate::common::*;
use serde_json::json;
use switchboard::api::cti::pb as cti;
use switchboard::api::pb;

const ENTER: &str = "\u{E007}";
const TAB: &str = "\u{E004}";
const CONTROL: &str = "\u{E009}";
const ALT: &str = "\u{E00A}";
const NULL_KEY: &str = "\u{E000}";

/// A daemon whose pages may call its gRPC-Web (its HTTP origin is listed), with a chat queue and
/// agent `ann` (token `tok-ann`).
async fn start(offer_timeout_secs: u32) -> (RedisServer, TestServer) {
    let redis = RedisServer::start();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = pages_config(&redis, http.local_addr().unwrap());
    let sb = TestServer::start_bound(cfg, grpc, http).await;
    let mut admin = sb.admin().await;
    let mut q = queue("chat", &[]);
    q.channels = vec![pb::Channel::Chat as i32];
    q.offer_timeout_secs = offer_timeout_secs;
    q.wrap_up_secs = 30;
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true }).await.unwrap();
    (redis, sb)
}

/// The config `start` runs with, for a daemon started again on the same listeners.
fn pages_config(redis: &RedisServer, http: std::net::SocketAddr) -> switchboard::config::Config {
    let mut cfg = test_config(&redis.url);
    cfg.webchat.enabled = true;
    cfg.server.grpc_web_origins = vec![format!("http://{http}")];
    cfg
}

async fn sign_in_agent(b: &Browser, sb: &TestServer, token: &str) {
    b.goto(&format!("http://{}/agent", sb.http_addr)).await;
    b.type_into("#agent-id", "ann").await;
    b.type_into("#token", &format!("{token}{ENTER}")).await;
}

async fn sign_in_supervisor(b: &Browser, sb: &TestServer, key: &str) {
    b.goto(&format!("http://{}/supervisor", sb.http_addr)).await;
    b.type_into("#key", &format!("{key}{ENTER}")).await;
}

async fn text(b: &Browser, css: &str) -> String {
    let v = b.js(&format!("const e = document.querySelector({}); return e ? e.textContent : null;", json!(css))).await;
    v.as_str().unwrap_or_default().to_string()
}

async fn wait_text(b: &Browser, what: &str, css: &str, needle: &str) {
    let script = format!(
        "const e = document.querySelector({}); return !!e && e.textContent.includes({});",
        json!(css),
        json!(needle)
    );
    let start = std::time::Instant::now();
    while start.elapsed() < PATIENCE {
        if b.client.execute(&script, vec![]).await.ok() == Some(json!(true)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        // What the page said: its alert line and connection state, for the failure's reader.
        let page = b.js("return [document.querySelector('#alert')?.textContent, document.querySelector('#conn')?.textContent, document.querySelector('#signin-error')?.textContent, window.SB && SB.agent ? [...SB.agent.state.work.values()].map(w => [w.ix.state, w.ended, w.call]) : null];").await;
        let now = text(b, css).await;
        panic!("timed out waiting for {what}: {css} has {now:?}, not {needle:?}; page: {page}");
    }
}

/// Saves a screenshot where the run keeps its artifacts (`SWITCHBOARD_SCREENSHOTS`, or
/// `target/screenshots`).
async fn screenshot(b: &Browser, name: &str) {
    let dir = std::env::var("SWITCHBOARD_SCREENSHOTS")
        .unwrap_or_else(|_| format!("{}/target/screenshots", env!("CARGO_MANIFEST_DIR")));
    std::fs::create_dir_all(&dir).unwrap();
    b.client.set_window_size(1280, 900).await.ok();
    b.js("window.scrollTo(0, 0); return true;").await;
    let png = b.client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
}

/// Ready, as an agent would: pick it, then Set.
async fn go_ready(b: &Browser) {
    b.find("#presence").await.select_by_value("ready").await.unwrap();
    b.click("#apply-presence").await;
    wait_text(b, "ready", "#presence-now", "Ready").await;
}

/// Sends keys to whatever has the focus (chords: modifier, key, NULL to release).
async fn keys(b: &Browser, k: &str) {
    b.client.active_element().await.unwrap().send_keys(k).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_a_web_chat_in_the_browser_while_the_wallboard_follows() {
    let (_redis, sb) = start(60).await;
    let agent = Browser::start().await;
    let wall = Browser::start().await;

    // A wrong token: a clear message, no session, still on the sign-in form.
    sign_in_agent(&agent, &sb, "wrong").await;
    wait_text(&agent, "sign-in refused", "#signin-error", "Wrong agent id or token").await;
    assert_eq!(agent.js("return sessionStorage.getItem('sb.agent');").await, json!(null));
    agent.find("#token").await.send_keys(&format!("tok-ann{ENTER}")).await.unwrap();
    agent.find("#desk").await;
    wait_text(&agent, "connected", "#conn", "Connected").await;
    wait_text(&agent, "signed-in name", "#who", "Agent ann").await;

    sign_in_supervisor(&wall, &sb, SUPERVISOR_KEY).await;
    wall.find("#board").await;
    wall.find("#agents tr[data-agent='ann']").await;

    // The customer writes while nobody is ready: the wallboard shows them waiting.
    let mut visitor = Visitor::connect(sb.http_addr).await;
    let (_token, iid) = visitor.start("Vera", "Hello, my order is late").await;
    wait_text(&wall, "one waiting", "[data-queue='chat'] .fig.waiting .value", "1").await;
    wall.find(&format!("#waiting tr[data-id='{iid}']")).await;

    // Ready: the offer comes with its countdown and the screen-pop, and a key accepts it.
    go_ready(&agent).await;
    wait_text(&wall, "agent ready on the wallboard", "#agents tr[data-agent='ann']", "Ready").await;
    let offer = format!(".offer[data-id='{iid}']");
    agent.find(&offer).await;
    wait_text(&agent, "countdown", &format!("{offer} .countdown"), "left").await;
    wait_text(&agent, "first message", &format!("{offer} blockquote"), "Hello, my order is late").await;
    agent.find(&format!("{offer} .pop")).await;
    agent.find("#main").await.click().await.unwrap();
    keys(&agent, &format!("{ALT}a{NULL_KEY}")).await;
    let card = format!(".conversation[data-id='{iid}']");
    agent.find(&card).await;
    visitor.wait_type("agent_joined").await;
    wait_text(&wall, "nobody waiting", "[data-queue='chat'] .fig.waiting .value", "0").await;
    wait_text(&wall, "ann's chat load", "#agents tr[data-agent='ann']", "chat 1/").await;

    // Hostile text shows as text: no element is made from it, no script runs, nothing overflows.
    let hostile = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script><b>bold?</b>";
    visitor.say(hostile, "c1").await;
    let long_word = "x".repeat(400);
    visitor.say(&long_word, "c2").await;
    let bodies = format!(
        "return Array.from(document.querySelectorAll(\"{card} .msg.customer .body\")).map(e => e.textContent);"
    );
    agent.wait_js("hostile lines shown", &format!("const b = (() => {{ {bodies} }})(); return b.length === 3;")).await;
    let shown = agent.js(&bodies).await;
    assert_eq!(shown, json!(["Hello, my order is late", hostile, long_word]));
    let made = agent
        .js(&format!(
            "return document.querySelectorAll(\"{card} .thread img, {card} .thread script, {card} .thread b\").length;"
        ))
        .await;
    assert_eq!(made, json!(0), "customer text made elements");
    assert_eq!(agent.js("return window.pwned === undefined;").await, json!(true));
    let overflow = agent.js("return document.documentElement.scrollWidth <= window.innerWidth;").await;
    assert_eq!(overflow, json!(true), "a long word widened the page");

    // The customer types, the agent sees it; the agent replies with Ctrl+Enter.
    visitor.send(json!({"type": "typing", "on": true})).await;
    wait_text(&agent, "customer typing", &format!("{card} .typing"), "typing").await;
    agent.type_into(&format!("{card} .reply"), "Hi Vera, let me check that order.").await;
    visitor.wait("agent typing", |f| f["type"] == "typing" && f["on"] == true).await;
    keys(&agent, &format!("{CONTROL}{ENTER}{NULL_KEY}")).await;
    visitor.wait_message("Hi Vera, let me check that order.").await;
    wait_text(&agent, "reply in the thread", &format!("{card} .msg.agent .body"), "let me check").await;
    assert_eq!(agent.js(&format!("return document.querySelector(\"{card} .reply\").value;")).await, json!(""));

    screenshot(&agent, "agent").await;
    screenshot(&wall, "supervisor").await;
    assert_eq!(agent.js("return getComputedStyle(document.querySelector('#signin')).display;").await, json!("none"));
    assert_eq!(wall.js("return getComputedStyle(document.querySelector('#signin')).display;").await, json!("none"));

    // A reload mid-conversation loses nothing: the server's snapshot rebuilds the card.
    let before = agent.js(&format!("return document.querySelectorAll(\"{card} .msg\").length;")).await;
    agent.client.refresh().await.unwrap();
    agent.find(&card).await;
    agent
        .wait_js("thread rebuilt", &format!("return document.querySelectorAll(\"{card} .msg\").length === {before};"))
        .await;
    assert_eq!(agent.js("return document.querySelector('#signin').hidden;").await, json!(true));
    visitor.say("Are you still there?", "c3").await;
    wait_text(&agent, "message after reload", &format!("{card} .thread"), "Are you still there?").await;

    // Complete with a disposition: wrap-up, then done; the wallboard follows.
    agent.type_into(&format!("{card} .disposition"), "resolved").await;
    agent.type_into(&format!("{card} .notes"), "Order re-shipped").await;
    agent.click(&format!("{card} .complete")).await;
    wait_text(&agent, "wrap-up", &format!("{card} .state"), "Wrap-up").await;
    wait_text(&wall, "ann in wrap-up", "#agents tr[data-agent='ann']", "Wrap-up").await;
    agent.click(&format!("{card} .end-wrap")).await;
    agent.wait_js("card gone", &format!("return !document.querySelector(\"{card}\");")).await;
    wait_text(&wall, "ann ready again", "#agents tr[data-agent='ann']", "Ready").await;
    let ix = sb
        .interactions()
        .await
        .get_interaction(pb::GetInteractionRequest { interaction_id: iid.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ix.disposition, "resolved");
    assert_eq!(ix.notes, "Order re-shipped");

    agent.stop().await;
    wall.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_show_the_servers_reason_and_the_pages_stay_usable() {
    let (_redis, sb) = start(2).await;
    let agent = Browser::start().await;
    sign_in_agent(&agent, &sb, "tok-ann").await;
    agent.find("#desk").await;
    go_ready(&agent).await;

    // An offer that times out is taken back, and saying so is the page's job.
    let mut visitor = Visitor::connect(sb.http_addr).await;
    let (_token, iid) = visitor.start("Vera", "Anyone?").await;
    let offer = format!(".offer[data-id='{iid}']");
    agent.find(&offer).await;
    agent.js(&format!("window.kept = document.querySelector(\"{offer}\"); return true;")).await;
    agent.wait_js("offer taken back", &format!("return !document.querySelector(\"{offer}\");")).await;
    wait_text(&agent, "why", "#alert", "not answered in time").await;

    // Accepting it anyway (the card put back, as a slow page would still show it): the
    // server's reason, and the page goes on working.
    agent.js("document.querySelector('#offers').append(window.kept); return true;").await;
    agent.click(&format!("{offer} .accept")).await;
    agent
        .wait_js(
            "refusal shown",
            "const a = document.querySelector('#alert'); return !a.hidden && /offer|not|interaction/i.test(a.textContent) && a.className.includes('error');",
        )
        .await;
    let shown = text(&agent, "#alert .alert-text").await;
    assert!(!shown.contains("not answered in time"), "the refusal replaced the notice: {shown}");
    agent.click("#apply-presence").await;
    wait_text(&agent, "still usable", "#conn", "Connected").await;

    // A supervisor logs the agent out: the page says so and asks to sign in again.
    sb.supervisor().await.logout_agent(pb::LogoutAgentRequest { agent_id: "ann".into() }).await.unwrap();
    wait_text(&agent, "signed out by a supervisor", "#signin-error", "supervisor signed you out").await;
    assert_eq!(agent.js("return document.querySelector('#desk').hidden;").await, json!(true));
    assert_eq!(agent.js("return sessionStorage.getItem('sb.agent');").await, json!(null));

    // A wallboard with a key that may not supervise, then with no valid key at all.
    let wall = Browser::start().await;
    sign_in_supervisor(&wall, &sb, CHANNEL_KEY).await;
    wait_text(&wall, "not a supervisor", "#signin-error", "may not supervise").await;
    wall.type_into("#key", &format!("sbk_nope_0000000000000000000000000000{ENTER}")).await;
    wait_text(&wall, "unknown key", "#signin-error", "not accepted").await;
    assert_eq!(wall.js("return document.querySelector('#board').hidden;").await, json!(true));

    // With a real key: an intervention asks first, and the server's refusal is shown. The chat
    // still waits (ann missed it); moving it to a queue that does not exist is refused.
    wall.type_into("#key", &format!("{SUPERVISOR_KEY}{ENTER}")).await;
    let row = format!("#waiting tr[data-id='{iid}']");
    wall.find(&row).await;
    wall.click(&format!("{row} button[aria-label^='Move']")).await;
    wall.find("#confirm[open]").await;
    wall.js("document.querySelector('#confirm-input').value = ''; return true;").await;
    wall.type_into("#confirm-input", &format!("no-such-queue{ENTER}")).await;
    wait_text(&wall, "refusal shown", "#alert .alert-text", "no-such-queue").await;
    assert_eq!(wall.js("return document.querySelector('#conn').textContent;").await, json!("Live"));
    // Cancelled: nothing is asked of the server.
    wall.click(&format!("{row} button[aria-label^='Withdraw']")).await;
    wall.find("#confirm[open]").await;
    wall.click("#confirm-cancel").await;
    wall.wait_js("dialog closed", "return !document.querySelector('#confirm').open;").await;
    let waiting = sb.supervisor().await.list_waiting(pb::ListWaitingRequest::default()).await.unwrap().into_inner();
    assert!(waiting.interactions.iter().any(|ix| ix.id == iid), "a cancelled withdraw withdrew");

    agent.stop().await;
    wall.stop().await;
    sb.stop().await;
}

/// Every visible control of a page: labelled, reached by Tab, and every text readable.
const A11Y_JS: &str = r#"
// Inside a closed <details> only its summary shows (the rest is reached by opening it).
const folded = (e) => { const d = e.closest('details'); return !!d && !d.open && e.parentElement !== d; };
const visible = (e) => !folded(e) && !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length) && getComputedStyle(e).visibility !== 'hidden';
// A disabled control is out of the Tab order by design (a logged-out agent's Ready button).
const controls = [...document.querySelectorAll('button, input, select, textarea, a[href], summary')].filter((e) => visible(e) && !e.disabled);
const problems = [];
controls.forEach((e, i) => {
  e.dataset.a11y = String(i);
  const byFor = e.id ? document.querySelector('label[for="' + e.id + '"]') : null;
  const name = (e.getAttribute('aria-label') || (byFor && byFor.textContent) || (e.closest('label') && e.closest('label').textContent) || (e.tagName !== 'INPUT' && e.tagName !== 'TEXTAREA' && e.tagName !== 'SELECT' ? e.textContent : '') || '').trim();
  if (!name) problems.push('no label: ' + e.outerHTML.slice(0, 100));
});
const lum = (c) => {
  const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const background = (e) => {
  for (let n = e; n; n = n.parentElement) {
    const c = getComputedStyle(n).backgroundColor, m = c.match(/[\d.]+/g);
    if (m && (m.length < 4 || Number(m[3]) > 0.5)) return c;
  }
  return 'rgb(255, 255, 255)';
};
for (const e of document.querySelectorAll('body *')) {
  if (!visible(e) || e.closest('[disabled]') || e.matches('svg, svg *')) continue;
  const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own) continue;
  const fg = lum(getComputedStyle(e).color), bg = lum(background(e));
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  if (ratio < 4.5) problems.push('contrast ' + ratio.toFixed(2) + ': ' + e.tagName + ' ' + JSON.stringify(e.textContent.slice(0, 40)));
}
return { problems, count: controls.length };
"#;

/// Tabs through the page from the top; returns the controls (by A11Y_JS's index) never reached.
async fn unreachable_by_tab(b: &Browser, count: usize) -> Vec<usize> {
    b.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); return true;").await;
    b.find("body").await.click().await.ok();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..(count * 2 + 10) {
        keys(b, TAB).await;
        if let Some(i) = b.js("return document.activeElement.dataset.a11y || null;").await.as_str() {
            seen.insert(i.parse::<usize>().unwrap());
        }
        if seen.len() == count {
            break;
        }
    }
    (0..count).filter(|i| !seen.contains(i)).collect()
}

async fn check_a11y(b: &Browser, page: &str) {
    // A live page may re-render while Tab walks it (a wallboard's figures, an offer's timer): a
    // control that was missed and is gone from the page since is no finding; the walk is done again.
    for _ in 0..3 {
        let r = b.js(A11Y_JS).await;
        let problems = r["problems"].as_array().unwrap();
        assert!(problems.is_empty(), "{page}: {problems:#?}");
        let count = r["count"].as_u64().unwrap() as usize;
        assert!(count > 3, "{page}: only {count} controls found");
        let missed = unreachable_by_tab(b, count).await;
        if missed.is_empty() {
            return;
        }
        let html = b
            .js(&format!(
                "return {missed:?}.map(i => document.querySelector('[data-a11y=\"' + i + '\"]')).filter(e => e).map(e => e.outerHTML.slice(0, 120));"
            ))
            .await;
        if html.as_array().is_some_and(|still| !still.is_empty()) {
            panic!("{page}: controls not reached by Tab: {html:#}");
        }
    }
    panic!("{page}: the page kept changing while Tab walked it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_pages_are_labelled_keyboard_reachable_and_readable() {
    let (_redis, sb) = start(60).await;
    let agent = Browser::start().await;
    agent.goto(&format!("http://{}/agent", sb.http_addr)).await;
    agent.find("#agent-id").await;
    check_a11y(&agent, "agent sign-in").await;
    sign_in_agent(&agent, &sb, "tok-ann").await;
    agent.find("#desk").await;
    go_ready(&agent).await;
    let mut visitor = Visitor::connect(sb.http_addr).await;
    let (_token, iid) = visitor.start("Vera", "Hello").await;
    agent.find(&format!(".offer[data-id='{iid}']")).await;
    check_a11y(&agent, "agent with an offer").await;
    agent.click(&format!(".offer[data-id='{iid}'] .accept")).await;
    agent.find(&format!(".conversation[data-id='{iid}']")).await;
    check_a11y(&agent, "agent with a conversation").await;

    let wall = Browser::start().await;
    sign_in_supervisor(&wall, &sb, SUPERVISOR_KEY).await;
    wall.find("#agents tr[data-agent='ann']").await;
    wall.find("[data-queue='chat']").await;
    check_a11y(&wall, "wallboard").await;
    // Large type: the same board, bigger.
    let small = wall.js("return parseFloat(getComputedStyle(document.documentElement).fontSize);").await;
    wall.click("#large").await;
    let large = wall.js("return parseFloat(getComputedStyle(document.documentElement).fontSize);").await;
    assert!(large.as_f64().unwrap() > small.as_f64().unwrap() * 1.3, "{small} → {large}");
    assert_eq!(wall.js("return document.querySelector('#large').getAttribute('aria-pressed');").await, json!("true"));

    agent.stop().await;
    wall.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_are_served_with_a_policy_their_schema_and_settings() {
    let (_redis, sb) = start(60).await;
    let http = switchboard_auth::https_client(None, Duration::from_secs(5)).unwrap();
    let base = format!("http://{}", sb.http_addr);
    for page in ["agent", "supervisor"] {
        let r = http.get(format!("{base}/{page}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains(&format!("http://127.0.0.1:{}", sb.grpc_addr.port())), "{csp}");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert!(r.text().await.unwrap().contains("web/grpc.js"));
    }
    let cfg: serde_json::Value =
        http.get(format!("{base}/web/config.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(cfg["grpcPort"], json!(sb.grpc_addr.port()));
    assert_eq!(cfg["serviceLevelTargetPercent"], json!(80));
    let schema: serde_json::Value =
        http.get(format!("{base}/web/schema.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        schema["methods"]["switchboard.v1.AgentDesktop/Open"],
        json!(["switchboard.v1.Login", "switchboard.v1.AgentEvent"])
    );
    sb.stop().await;

    // Turned off: not served.
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.web.enabled = false;
    let sb = TestServer::start_with(cfg).await;
    assert_eq!(sb.http("/agent").await.0, 404);
    assert_eq!(sb.http("/web/schema.json").await.0, 404);
    sb.stop().await;
}

/// A telephony system's event on the PublishEvents stream `tx`; waits for its ack.
async fn call_event(
    tx: &tokio::sync::mpsc::Sender<cti::TelephonyEvent>,
    acks: &mut tonic::Streaming<cti::EventAck>,
    seq: u64,
    kind: cti::call_event::Kind,
) {
    let call = cti::CallEvent {
        call_id: "call-1".into(),
        sequence: seq,
        agent_id: "ann".into(),
        kind: Some(kind),
        ..Default::default()
    };
    let e = cti::TelephonyEvent {
        event_id: format!("e-{seq}"),
        at: None,
        event: Some(cti::telephony_event::Event::Call(call)),
    };
    tx.send(e).await.unwrap();
    let ack = tokio::time::timeout(PATIENCE, acks.message()).await.expect("ack in time").unwrap().unwrap();
    assert_eq!(ack.outcome, cti::Outcome::Applied as i32, "{ack:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_and_a_text_show_as_the_phone_and_the_gateway_report_them() {
    let (_redis, sb) = start(60).await;
    // A support line for calls and a queue for texts; ann has a phone.
    let mut admin = sb.admin().await;
    let mut voice = queue("support", &[]);
    voice.channels = vec![pb::Channel::Voice as i32];
    voice.wrap_up_secs = 30;
    let mut texts = queue("texts", &[]);
    texts.channels = vec![pb::Channel::Sms as i32];
    for q in [voice, texts] {
        admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
    }
    let ann = pb::Agent { devices: vec!["1001".into()], ..agent("ann", &[]) };
    admin.put_agent(pb::PutAgentRequest { agent: Some(ann), allow_update: true }).await.unwrap();

    let b = Browser::start().await;
    sign_in_agent(&b, &sb, "tok-ann").await;
    b.find("#desk").await;
    go_ready(&b).await;

    // The call rings: the desktop shows it, but only the phone answers.
    let mut pbx = cti::cti_client::CtiClient::new(sb.with_key(TELEPHONY_KEY).await);
    let route = cti::RouteRequest {
        call_id: "call-1".into(),
        caller: "+4915112345678".into(),
        attempt: 1,
        queue: "support".into(),
        user_data: [("order".to_string(), "A-1234".to_string())].into(),
        ..Default::default()
    };
    let r = pbx.route_call(route).await.unwrap().into_inner();
    let iid = r.interaction_id.clone();
    let offer = format!(".offer[data-id='{iid}']");
    wait_text(&b, "a voice offer", &offer, "answer it there").await;
    assert_eq!(b.js(&format!("return !!document.querySelector(\"{offer} .accept\");")).await, json!(false));
    b.find(&format!("{offer} .reject")).await;

    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut acks = pbx.publish_events(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    use cti::call_event::Kind;
    call_event(&tx, &mut acks, 2, Kind::Answered(cti::Answered {})).await;
    let card = format!(".conversation[data-id='{iid}']");
    wait_text(&b, "talking", &format!("{card} .call"), "Call talking").await;
    wait_text(&b, "user data", &format!("{card} .userdata"), "A-1234").await;
    call_event(&tx, &mut acks, 3, Kind::Held(cti::Held {})).await;
    wait_text(&b, "held", &format!("{card} .call"), "Call held").await;
    call_event(&tx, &mut acks, 4, Kind::Retrieved(cti::Retrieved {})).await;
    wait_text(&b, "talking again", &format!("{card} .call"), "held ").await;

    // A text arrives while ann is on the phone: it waits (the call blocks other channels).
    let text = pb::CreateInteractionRequest {
        channel: pb::Channel::Sms as i32,
        customer_address: "+4915112345679".into(),
        queue: "texts".into(),
        body: "Is my parcel on its way?".into(),
        ..Default::default()
    };
    let sms = sb.interactions().await.create_interaction(text).await.unwrap().into_inner();
    let released = cti::Released { cause: "normal_clearing".into(), by: cti::Party::Caller as i32 };
    call_event(&tx, &mut acks, 5, Kind::Released(released)).await;
    wait_text(&b, "after-call work", &format!("{card} .state"), "Wrap-up").await;
    wait_text(&b, "call over", &format!("{card} .call"), "Call ended").await;
    assert_eq!(b.js(&format!("return document.querySelector(\"{offer}\") === null && !!document.querySelector(\".offer[data-id='{}']\");", sms.id)).await, json!(false), "no text offered during the call's after-call work");
    b.type_into(&format!("{card} .disposition"), "parcel-info").await;
    b.click(&format!("{card} .end-wrap")).await;
    b.wait_js("call card gone", &format!("return !document.querySelector(\"{card}\");")).await;
    assert_eq!(ix_state(&sb, &iid).await, (pb::InteractionState::Completed as i32, "parcel-info".to_string()));

    // Now the text: accepted, and the reply box counts characters and segments as typed.
    let sms_offer = format!(".offer[data-id='{}']", sms.id);
    b.click(&format!("{sms_offer} .accept")).await;
    let sms_card = format!(".conversation[data-id='{}']", sms.id);
    b.type_into(&format!("{sms_card} .reply"), "Yes, it left today.").await;
    wait_text(&b, "GSM-7 count", &format!("{sms_card} .count"), "19 characters · 1 SMS segment (GSM-7)").await;
    // Cyrillic is not in the GSM alphabet: the whole text goes as UCS-2, 67 a segment.
    b.type_into(&format!("{sms_card} .reply"), &" ж".repeat(40)).await;
    wait_text(&b, "UCS-2 count", &format!("{sms_card} .count"), "99 characters · 2 SMS segments (UCS-2)").await;

    b.stop().await;
    sb.stop().await;
}

async fn ix_state(sb: &TestServer, id: &str) -> (i32, String) {
    let r = pb::GetInteractionRequest { interaction_id: id.into(), include_messages: false };
    let ix = sb.interactions().await.get_interaction(r).await.unwrap().into_inner();
    (ix.state, ix.disposition)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_reconnects_by_itself_when_the_daemon_comes_back() {
    let (redis, sb) = start(60).await;
    let b = Browser::start().await;
    sign_in_agent(&b, &sb, "tok-ann").await;
    b.find("#desk").await;
    go_ready(&b).await;
    let mut visitor = Visitor::connect(sb.http_addr).await;
    let (_token, iid) = visitor.start("Vera", "Still there?").await;
    b.click(&format!(".offer[data-id='{iid}'] .accept")).await;
    let card = format!(".conversation[data-id='{iid}']");
    b.find(&card).await;

    // The daemon stops (its desktops are told), then comes back on the same addresses.
    let (grpc_addr, http_addr) = (sb.grpc_addr, sb.http_addr);
    sb.stop().await;
    wait_text(&b, "the page notices", "#conn", "Reconnecting").await;
    let grpc = tokio::net::TcpListener::bind(grpc_addr).await.unwrap();
    let http = tokio::net::TcpListener::bind(http_addr).await.unwrap();
    let sb = TestServer::start_bound(pages_config(&redis, http_addr), grpc, http).await;

    // Without a click: connected again, the conversation still there, and it goes on.
    wait_text(&b, "connected again", "#conn", "Connected").await;
    b.find(&card).await;
    b.type_into(&format!("{card} .reply"), &format!("Yes, still here{CONTROL}{ENTER}{NULL_KEY}")).await;
    wait_text(&b, "reply after the restart", &format!("{card} .msg.agent .body"), "Yes, still here").await;
    assert_eq!(b.js("return document.querySelector('#alert').hidden;").await, json!(true));

    b.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallboard_says_whether_a_queue_is_open_and_until_when() {
    let (_redis, sb) = start(60).await;
    // Open every morning (UTC); whatever the time now, the tile says which and when it changes.
    let mornings = vec!["00:00-12:00".to_string()];
    let weekly = pb::WeeklyHours {
        mon: mornings.clone(),
        tue: mornings.clone(),
        wed: mornings.clone(),
        thu: mornings.clone(),
        fri: mornings.clone(),
        sat: mornings.clone(),
        sun: mornings,
    };
    let cal =
        pb::Calendar { name: "mornings".into(), time_zone: "UTC".into(), weekly: Some(weekly), exceptions: vec![] };
    let mut admin = sb.admin().await;
    admin.put_calendar(pb::PutCalendarRequest { calendar: Some(cal), allow_update: true }).await.unwrap();
    let mut q = admin.get_queue(pb::GetQueueRequest { name: "chat".into() }).await.unwrap().into_inner();
    q.calendar = "mornings".into();
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
    let figures = sb.supervisor().await.get_queue_figures(pb::GetQueueFiguresRequest { queue: "chat".into() }).await;
    let open = figures.unwrap().into_inner().open.expect("a queue with a calendar says whether it is open");

    let wall = Browser::start().await;
    sign_in_supervisor(&wall, &sb, SUPERVISOR_KEY).await;
    let expected = if open { "Open · closes" } else { "Closed · opens" };
    wait_text(&wall, "opening hours on the tile", "[data-queue='chat'] .hours", expected).await;
    wall.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_hands_the_conversation_to_another_queue_and_a_wrong_one_is_refused() {
    let (_redis, sb) = start(60).await;
    let mut admin = sb.admin().await;
    let mut sales = queue("sales", &[]);
    sales.channels = vec![pb::Channel::Chat as i32];
    admin.put_queue(pb::PutQueueRequest { queue: Some(sales), allow_update: true }).await.unwrap();
    let b = Browser::start().await;
    sign_in_agent(&b, &sb, "tok-ann").await;
    b.find("#desk").await;
    go_ready(&b).await;
    let mut visitor = Visitor::connect(sb.http_addr).await;
    let (_token, iid) = visitor.start("Vera", "I want to buy").await;
    b.click(&format!(".offer[data-id='{iid}'] .accept")).await;
    let card = format!(".conversation[data-id='{iid}']");
    b.click(&format!("{card} details.more summary")).await;

    // A queue that does not exist: the server's reason, and the conversation stays.
    b.type_into(&format!("{card} .target"), "nowhere").await;
    b.click(&format!("{card} .transfer")).await;
    wait_text(&b, "refused transfer", "#alert .alert-text", "nowhere").await;
    b.find(&card).await;

    b.js(&format!("document.querySelector(\"{card} .target\").value = ''; return true;")).await;
    b.type_into(&format!("{card} .target"), "sales").await;
    b.click(&format!("{card} .transfer")).await;
    b.wait_js("handed on", &format!("return !document.querySelector(\"{card}\");")).await;
    let r = pb::GetInteractionRequest { interaction_id: iid.clone(), include_messages: false };
    let ix = sb.interactions().await.get_interaction(r).await.unwrap().into_inner();
    assert_eq!(ix.queue, "sales");
    assert_eq!(ix.transferred_by, "ann");
    b.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_schedules_a_callback_for_a_texter_and_accepts_it_to_dial() {
    let redis = RedisServer::start();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = pages_config(&redis, http.local_addr().unwrap());
    // Callbacks agents schedule are dialled by the test's telephony system.
    cfg.cti.callback_system = "pbx-1".into();
    let sb = TestServer::start_bound(cfg, grpc, http).await;
    let mut admin = sb.admin().await;
    let mut q = queue("support", &[]);
    q.channels = vec![pb::Channel::Sms as i32, pb::Channel::Voice as i32];
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
    let ann = pb::Agent { devices: vec!["1001".into()], ..agent("ann", &[]) };
    admin.put_agent(pb::PutAgentRequest { agent: Some(ann), allow_update: true }).await.unwrap();
    let mut pbx = cti::cti_client::CtiClient::new(sb.with_key(TELEPHONY_KEY).await);
    let mut watch = pbx.watch_routes(cti::WatchRoutesRequest {}).await.unwrap().into_inner();

    let b = Browser::start().await;
    sign_in_agent(&b, &sb, "tok-ann").await;
    b.find("#desk").await;
    go_ready(&b).await;
    let text = pb::CreateInteractionRequest {
        channel: pb::Channel::Sms as i32,
        customer_address: "+4915112345679".into(),
        queue: "support".into(),
        body: "Can someone call me about my bill?".into(),
        ..Default::default()
    };
    let sms = sb.interactions().await.create_interaction(text).await.unwrap().into_inner();
    b.click(&format!(".offer[data-id='{}'] .accept", sms.id)).await;
    let card = format!(".conversation[data-id='{}']", sms.id);
    // The number is the texter's; the agent schedules the callback, then completes the text.
    b.click(&format!("{card} details.callback summary")).await;
    let number = b.js(&format!("return document.querySelector(\"{card} .cb-number\").value;")).await;
    assert_eq!(number, json!("+4915112345679"));
    b.click(&format!("{card} .schedule-callback")).await;
    wait_text(&b, "the callback scheduled", "#alert", "Callback to +4915112345679 scheduled").await;
    b.type_into(&format!("{card} .disposition"), "callback").await;
    b.click(&format!("{card} .complete")).await;
    b.wait_js("text card gone", &format!("return !document.querySelector(\"{card}\");")).await;

    // The callback comes to Ann (free again) with its own Accept; accepting dials the customer.
    wait_text(&b, "a callback offer", ".offer .callback-note", "Callback to +4915112345679").await;
    b.click(".offer .accept").await;
    wait_text(&b, "dialing", ".conversation .call", "Calling +4915112345679").await;
    let dial = loop {
        let i = tokio::time::timeout(PATIENCE, watch.message()).await.expect("a dial in time").unwrap().unwrap();
        if let Some(cti::route_instruction::Action::Dial(d)) = i.action {
            break d;
        }
    };
    assert_eq!((dial.agent_id.as_str(), dial.device.as_str(), dial.number.as_str()), ("ann", "1001", "+4915112345679"));
    b.stop().await;
    sb.stop().await;
}

/// A supervisor of the chat queue only.
const CHAT_LEAD_KEY: &str = "test-chat-lead-key-0123456789abcdef0123456";

/// The lines the explanation's live region reads out, as shown.
async fn shown_summary(b: &Browser) -> Vec<String> {
    let v = b.js("return [...document.querySelectorAll('#explain-said li')].map(e => e.textContent);").await;
    serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallboard_explains_an_interaction_and_an_agent_as_the_api_does() {
    let redis = RedisServer::start();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = pages_config(&redis, http.local_addr().unwrap());
    let mut lead = key("chat-lead", switchboard::model::Role::Supervisor, CHAT_LEAD_KEY);
    lead.queues = vec!["chat".into()];
    cfg.auth.keys.push(lead);
    let sb = TestServer::start_bound(cfg, grpc, http).await;
    let mut admin = sb.admin().await;
    // Billing on chat needs level 5 for an hour, then 3. Bob meets it but is logged out; Dan is
    // ready and takes chat, but has no billing skill at all.
    let mut chat = queue("chat", &[]);
    chat.channels = vec![pb::Channel::Chat as i32];
    let mut billing = queue("billing", &[("billing", 5)]);
    billing.channels = vec![pb::Channel::Chat as i32];
    billing.escalation = vec![pb::EscalationStep {
        after_secs: 3600,
        action: Some(pb::escalation_step::Action::LowerLevel(pb::SkillRequirement {
            skill: "billing".into(),
            min_level: 3,
        })),
    }];
    for q in [chat, billing] {
        admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
    }
    for a in [agent("bob", &[("billing", 6)]), agent("dan", &[])] {
        admin.put_agent(pb::PutAgentRequest { agent: Some(a), allow_update: true }).await.unwrap();
    }
    let mut dan = sb.desktop("dan", "tok-dan").await;
    dan.ready().await;
    let waiting = sb.interactions().await.create_interaction(new_chat("billing", "visitor-7", "My invoice")).await;
    let waiting = waiting.unwrap().into_inner();
    let mut sup = sb.supervisor().await;

    let wall = Browser::start().await;
    sign_in_supervisor(&wall, &sb, SUPERVISOR_KEY).await;
    let row = format!("#waiting tr[data-id='{}']", waiting.id);
    wall.find(&row).await;

    // From its row: the daemon's own words first, then the details, and the focus on the answer.
    wall.click(&format!("{row} button[aria-label^='Explain']")).await;
    wait_text(&wall, "the explanation", "#explain-said h3", &format!("Interaction {}", waiting.id)).await;
    let api = sup
        .explain_interaction(pb::ExplainInteractionRequest { interaction_id: waiting.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(api.summary[0], "1 agent meets stage 0 (billing ≥ 5): 0 available, 1 logged out.");
    assert_eq!(shown_summary(&wall).await, api.summary);
    assert_eq!(wall.js("return document.activeElement.id;").await, json!("explain-heading"));
    let w = api.waiting.expect("it waits");
    assert_eq!(text(&wall, "#explain-details .w-stage").await, w.stage.to_string());
    assert_eq!(text(&wall, "#explain-details .w-ahead").await, w.ahead.to_string());
    let reqs: Vec<String> = w.requirements.iter().map(|(s, l)| format!("{s} ≥ {l}")).collect();
    assert_eq!(text(&wall, "#explain-details .w-requirements").await, reqs.join(", "));
    let c = &w.candidates[0];
    assert_eq!((c.agent_id.as_str(), c.standing.as_str()), ("bob", "logged_out"));
    assert_eq!(
        text(&wall, "#explain-details .explain-candidates tr[data-explain-agent='bob'] .standing").await,
        "Logged out"
    );
    let step = w.next_step.expect("a next step");
    let said = format!(
        "lower {} to level {} — {} agent eligible then.",
        step.skill,
        step.min_level,
        step.eligible_after.unwrap()
    );
    assert!(text(&wall, "#explain-details .next-step").await.ends_with(&said), "{said}");
    assert_eq!(text(&wall, "#explain-details .no-decisions").await, "Not offered to anyone yet.");

    // Dan, from the agent grid: eligible for chat, lacking billing.
    wall.click("#agents tr[data-agent='dan'] button[aria-label^='Explain']").await;
    wait_text(&wall, "dan explained", "#explain-said h3", "Agent dan").await;
    let api = sup.explain_agent(pb::ExplainAgentRequest { agent_id: "dan".into() }).await.unwrap().into_inner();
    assert_eq!(shown_summary(&wall).await, api.summary);
    assert!(api.summary.contains(&"billing: not eligible at any stage — lacks billing ≥ 3 (has none).".to_string()));
    let b = api.queues.iter().find(|q| q.queue == "billing").unwrap();
    assert_eq!(b.stage, None);
    assert_eq!(
        text(&wall, "#explain-details .explain-queues tr[data-explain-queue='billing'] .eligible").await,
        "At no stage"
    );
    assert_eq!(
        text(&wall, "#explain-details .explain-queues tr[data-explain-queue='billing'] .lacks").await,
        b.lacks.join(", ")
    );
    assert_eq!(
        text(&wall, "#explain-details .explain-queues tr[data-explain-queue='chat'] .eligible").await,
        "From the start"
    );
    let ch = api.channels.iter().find(|c| c.channel == pb::Channel::Chat as i32).unwrap();
    let load = "#explain-details .explain-channels tr[data-explain-channel='CHANNEL_CHAT']";
    assert_eq!(text(&wall, &format!("{load} .load")).await, format!("{} / {}", ch.load, ch.capacity));
    assert_eq!(
        (ch.standing.as_str(), text(&wall, &format!("{load} .standing")).await.as_str()),
        ("available", "Available")
    );
    assert_eq!(text(&wall, "#explain-details .a-presence").await, "Ready");
    assert_eq!(text(&wall, "#explain-details .a-desktop").await, "Connected");
    check_a11y(&wall, "wallboard with an explanation").await;

    // An offered interaction, by its id typed in: its decision.
    let offered = sb.interactions().await.create_interaction(new_chat("chat", "visitor-8", "Hi")).await;
    let offered = offered.unwrap().into_inner();
    assert_eq!(dan.wait_offer().await.interaction.unwrap().id, offered.id);
    wall.js("document.querySelector('#explain-ix').value = ''; return true;").await;
    wall.type_into("#explain-ix", &format!("{}{ENTER}", offered.id)).await;
    wait_text(&wall, "the offered one", "#explain-said h3", &format!("Interaction {}", offered.id)).await;
    let api = sup
        .explain_interaction(pb::ExplainInteractionRequest { interaction_id: offered.id.clone() })
        .await
        .unwrap()
        .into_inner();
    let shown = shown_summary(&wall).await;
    // The first line counts the offer's seconds down; the rest is fixed.
    assert!(shown[0].starts_with("Offered to dan; the offer runs out in "), "{shown:?}");
    assert_eq!(shown[1..], api.summary[1..]);
    let d = &api.decisions[0];
    let decision = "#explain-details .explain-decisions tr.decision";
    assert_eq!(text(&wall, &format!("{decision} .to")).await, d.agent_id);
    assert_eq!(text(&wall, &format!("{decision} .pool")).await, format!("{}, stage {}", d.queue, d.stage));
    assert_eq!(
        text(&wall, &format!("{decision} .could")).await,
        format!("{} of {} eligible", d.considered, d.eligible)
    );
    assert!(text(&wall, &format!("{decision} .via")).await.starts_with("Came to its queue"));
    assert!(text(&wall, &format!("{decision} .score")).await.starts_with("Longest idle"));
    assert_eq!(text(&wall, "#explain-details .ix-state").await, "Offered");

    // An unknown id: the server's reason, in the answer's place.
    let unknown = "no-such-interaction";
    let refused =
        sup.explain_interaction(pb::ExplainInteractionRequest { interaction_id: unknown.into() }).await.unwrap_err();
    wall.js("document.querySelector('#explain-ix').value = ''; return true;").await;
    wall.type_into("#explain-ix", &format!("{unknown}{ENTER}")).await;
    wait_text(&wall, "refusal shown", "#explain-said .explain-error", refused.message()).await;
    assert_eq!(text(&wall, "#explain-details").await, "");

    // A supervisor of the chat queue only may not look into billing.
    wall.click("#sign-out").await;
    sign_in_supervisor(&wall, &sb, CHAT_LEAD_KEY).await;
    wall.find("#board").await;
    let mut lead = pb::supervisor_client::SupervisorClient::new(sb.with_key(CHAT_LEAD_KEY).await);
    let refused = lead
        .explain_interaction(pb::ExplainInteractionRequest { interaction_id: waiting.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    wall.type_into("#explain-ix", &format!("{}{ENTER}", waiting.id)).await;
    wait_text(&wall, "no permission", "#explain-said .explain-error", refused.message()).await;
    wait_text(&wall, "said as such", "#explain-said .explain-error", "permission denied").await;

    drop(dan);
    wall.stop().await;
    sb.stop().await;
}
