/*
 * Switchboard web chat widget. Plain JavaScript, no build step.
 *
 *   <script src="https://chat.example.com/widget.js" async
 *           data-topic="billing" data-title="Chat with us"
 *           data-greeting="Hi! How can we help?" data-color="#0b5fff"></script>
 *
 * data-server   Switchboard's HTTP address (default: where this script came from)
 * data-topic    pre-selects the topic (the topic picks the queue); omit to let the visitor choose
 * data-title    panel title            data-greeting  first line shown above the form
 * data-color    accent colour          data-text-color text on the accent colour
 * data-open     "true" opens the panel on load
 *
 * Everything people write is put on the page with textContent, never as HTML.
 */
(function () {
  "use strict";
  if (window.SwitchboardChat) return;

  var script = document.currentScript || (function () {
    var s = document.querySelectorAll("script[src*='widget.js']");
    return s[s.length - 1];
  })();
  var data = script ? script.dataset : {};
  var server = (data.server || new URL(script.src, location.href).origin).replace(/\/$/, "");
  var wsUrl = server.replace(/^http/, "ws") + "/chat/ws";
  var opts = {
    topic: data.topic || "",
    title: data.title || "Chat with us",
    greeting: data.greeting || "Hi! Leave us a message and an agent will be with you shortly.",
    color: data.color || "#0b5fff",
    textColor: data.textColor || "#ffffff",
    open: data.open === "true"
  };
  var KEY = "switchboard-chat:" + server;

  function store(kind) {
    try { return kind === "local" ? window.localStorage : window.sessionStorage; } catch (e) { return null; }
  }
  function load() {
    var s = store("session");
    try { return JSON.parse((s && s.getItem(KEY)) || "{}"); } catch (e) { return {}; }
  }
  function save() {
    var s = store("session");
    if (!s) return;
    // lastSeq stays in memory: a reloaded page has an empty transcript and asks for all of it.
    s.setItem(KEY, JSON.stringify({ token: state.token, outbox: state.outbox, open: state.open }));
  }
  function randomId() {
    var a = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function visitorId() {
    var s = store("local");
    var id = s && s.getItem(KEY + ":visitor");
    if (!id) {
      id = "v-" + randomId();
      if (s) s.setItem(KEY + ":visitor", id);
    }
    return id;
  }

  var saved = load();
  var state = {
    token: saved.token || null,
    lastSeq: 0,
    outbox: saved.outbox || [],   // messages not yet confirmed: {client_id, body}
    open: saved.open || opts.open,
    ended: false,
    topics: [],
    closed: null,      // hello's closed: the default queue refuses chats now
    mode: "form",
    maxChars: 2000,
    ws: null,
    retry: 0,
    seen: {},
    callbackOffer: false, // the last queue frame's callback_offer: the visitor may be called back
    callbackPending: false,
    calledBack: false,    // callback_scheduled came: the confirmation is shown
    focusNew: false,      // the focus was on the callback form: "Start a new chat" takes it when it ends
    typingOn: false,
    typingTimer: null,
    lastTypingSent: 0
  };

  function el(tag, cls, attrs) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    return e;
  }
  function text(tag, cls, t, attrs) {
    var e = el(tag, cls, attrs);
    e.textContent = t;
    return e;
  }

  // ------------------------------------------------------------------ DOM
  var css = el("link", null, { rel: "stylesheet", href: server + "/widget.css" });
  document.head.appendChild(css);

  var root = el("div", "sbw-root", { id: "sbw-root" });
  root.style.setProperty("--sbw-accent", opts.color);
  root.style.setProperty("--sbw-on-accent", opts.textColor);

  var launcher = text("button", "sbw-launcher", "Chat", { type: "button", "aria-haspopup": "dialog", "aria-expanded": "false" });
  var panel = el("div", "sbw-panel", { role: "dialog", "aria-label": opts.title, hidden: "" });
  var header = el("div", "sbw-header");
  var title = text("h2", "sbw-title", opts.title);
  var close = text("button", "sbw-close", "\u2715", { type: "button", "aria-label": "Minimise chat" });
  header.appendChild(title);
  header.appendChild(close);

  var status = el("div", "sbw-status", { role: "status", "aria-live": "polite" });
  var log = el("ol", "sbw-log", { role: "log", "aria-live": "polite", "aria-label": "Conversation" });
  var typing = text("div", "sbw-typing", "", { "aria-live": "polite" });

  // Pre-chat form.
  var form = el("form", "sbw-form", { novalidate: "" });
  var greet = text("p", "sbw-greeting", opts.greeting);
  function field(id, label, input) {
    var wrap = el("div", "sbw-field");
    wrap.appendChild(text("label", null, label, { "for": id }));
    input.id = id;
    wrap.appendChild(input);
    return wrap;
  }
  var nameIn = el("input", null, { type: "text", autocomplete: "name", maxlength: "80" });
  var emailIn = el("input", null, { type: "email", autocomplete: "email", maxlength: "254" });
  var topicIn = el("select");
  var topicField = field("sbw-topic", "Topic", topicIn);
  topicField.hidden = true;
  var firstIn = el("textarea", null, { rows: "3", required: "" });
  var startBtn = text("button", "sbw-start sbw-primary", "Start chat", { type: "submit" });
  form.appendChild(greet);
  form.appendChild(field("sbw-name", "Name (optional)", nameIn));
  form.appendChild(field("sbw-email", "Email (optional)", emailIn));
  form.appendChild(topicField);
  form.appendChild(field("sbw-first", "How can we help?", firstIn));
  form.appendChild(startBtn);

  // Offline form: the topic's queue is closed and refuses chats; the message becomes an email.
  var offForm = el("form", "sbw-offline", { novalidate: "", hidden: "", "aria-labelledby": "sbw-off-title" });
  var offTitle = text("p", "sbw-offline-title", "We are closed right now.", { id: "sbw-off-title" });
  var offInfo = text("p", "sbw-offline-info", "");
  function offField(id, label, input) {
    var wrap = field(id, label, input);
    var err = text("span", "sbw-error", "", { id: id + "-error", "aria-live": "polite" });
    input.setAttribute("aria-describedby", id + "-error");
    wrap.appendChild(err);
    return { wrap: wrap, input: input, err: err };
  }
  var off = {
    name: offField("sbw-off-name", "Name", el("input", null, { type: "text", autocomplete: "name", maxlength: "80", required: "" })),
    email: offField("sbw-off-email", "Email", el("input", null, { type: "email", autocomplete: "email", maxlength: "254", required: "" })),
    topic: offField("sbw-off-topic", "Topic", el("select")),
    message: offField("sbw-off-message", "Your message", el("textarea", null, { rows: "4", required: "" }))
  };
  off.topic.wrap.hidden = true;
  var offSend = text("button", "sbw-offline-send sbw-primary", "Send message", { type: "submit" });
  offForm.appendChild(offTitle);
  offForm.appendChild(offInfo);
  offForm.appendChild(off.name.wrap);
  offForm.appendChild(off.email.wrap);
  offForm.appendChild(off.topic.wrap);
  offForm.appendChild(off.message.wrap);
  offForm.appendChild(offSend);

  // Callback offer: a visitor waiting in line may be called back instead, keeping their place.
  var cbForm = el("form", "sbw-callback", { novalidate: "", hidden: "", "aria-labelledby": "sbw-cb-title" });
  var cbTitle = text("p", "sbw-callback-title", "Rather be called back? You keep your place in line.", { id: "sbw-cb-title" });
  var cbField = el("div", "sbw-field sbw-callback-field");
  var cbNumber = el("input", null, { type: "tel", id: "sbw-cb-number", autocomplete: "tel", inputmode: "tel",
    maxlength: "40", required: "", "aria-describedby": "sbw-cb-number-error" });
  var cbRow = el("div", "sbw-callback-row");
  var cbSend = text("button", "sbw-callback-send sbw-primary", "Call me back", { type: "submit" });
  var cbErr = text("span", "sbw-error", "", { id: "sbw-cb-number-error", "aria-live": "polite" });
  cbField.appendChild(text("label", null, "Your phone number", { "for": "sbw-cb-number" }));
  cbRow.appendChild(cbNumber);
  cbRow.appendChild(cbSend);
  cbField.appendChild(cbRow);
  cbField.appendChild(cbErr);
  cbForm.appendChild(cbTitle);
  cbForm.appendChild(cbField);

  // Composer.
  var composer = el("form", "sbw-composer", { hidden: "" });
  var input = el("textarea", "sbw-input", { rows: "2", "aria-label": "Message", placeholder: "Type a message\u2026" });
  var send = text("button", "sbw-send sbw-primary", "Send", { type: "submit" });
  var endBtn = text("button", "sbw-end", "End chat", { type: "button" });
  composer.appendChild(input);
  composer.appendChild(send);
  var footer = el("div", "sbw-footer", { hidden: "" });
  footer.appendChild(endBtn);
  var newBtn = text("button", "sbw-new sbw-primary", "Start a new chat", { type: "button", hidden: "" });

  panel.appendChild(header);
  panel.appendChild(status);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(cbForm);
  panel.appendChild(form);
  panel.appendChild(offForm);
  panel.appendChild(composer);
  panel.appendChild(footer);
  panel.appendChild(newBtn);
  root.appendChild(panel);
  root.appendChild(launcher);

  function mount() { document.body.appendChild(root); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);

  // ------------------------------------------------------------------ view
  function setOpen(open, focus) {
    state.open = open;
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.hidden = open;
    save();
    if (open) {
      connect();
      if (focus !== false) {
        if (state.mode === "offline") off.name.input.focus();
        else (composer.hidden ? (nameIn.value ? firstIn : nameIn) : input).focus();
      }
    } else if (focus !== false) {
      launcher.focus();
    }
  }
  function setStatus(t) { status.textContent = t; }
  // The topic the visitor is writing about, and whether its queue is closed to chats.
  function currentTopic() {
    if (opts.topic) return opts.topic;
    if (state.topics.length === 0) return "";
    return state.mode === "offline" ? off.topic.input.value : topicIn.value;
  }
  function closedFor(topic) {
    if (!topic) return state.closed;
    for (var i = 0; i < state.topics.length; i++) if (state.topics[i].name === topic) return state.topics[i].closed || null;
    return null;
  }
  // The pre-chat form, or the offline form when the topic's queue refuses chats now.
  function showForm() {
    var c = closedFor(currentTopic());
    if (c) {
      offInfo.textContent = c.message || (c.opens ? "We open again " + c.opens + "." : "");
      offInfo.hidden = !offInfo.textContent;
      if (!off.name.input.value) off.name.input.value = nameIn.value;
      if (!off.email.input.value) off.email.input.value = emailIn.value;
      mode("offline");
    } else {
      mode("form");
    }
  }
  function mode(m) {
    state.mode = m;
    offForm.hidden = m !== "offline";
    form.hidden = m !== "form";
    composer.hidden = m !== "chat";
    footer.hidden = m !== "chat";
    newBtn.hidden = m !== "ended";
    showCallback();
  }
  // The callback offer shows while the chat waits in line and the server says the offer stands.
  function showCallback() {
    var show = state.mode === "chat" && state.callbackOffer && !state.ended && !state.calledBack;
    if (!show && cbForm.contains(document.activeElement)) {
      // Keyboard users are not left on a control that disappeared.
      if (state.mode === "chat" && !state.calledBack) input.focus();
      else state.focusNew = true;
    }
    cbForm.hidden = !show;
    if (state.mode === "ended" && state.focusNew) {
      state.focusNew = false;
      newBtn.focus();
    }
  }
  function callbackError(message) {
    cbErr.textContent = message;
    cbNumber.setAttribute("aria-invalid", "true");
    cbNumber.focus();
  }
  function clearCallbackError() {
    cbErr.textContent = "";
    cbNumber.removeAttribute("aria-invalid");
  }
  function scroll() { log.scrollTop = log.scrollHeight; }
  function addLine(cls, who, body, seq) {
    var li = el("li", "sbw-msg " + cls);
    if (seq) li.setAttribute("data-seq", String(seq));
    if (who) li.appendChild(text("span", "sbw-who", who));
    li.appendChild(text("span", "sbw-body", body));
    log.appendChild(li);
    scroll();
    return li;
  }
  function notice(t) { addLine("sbw-notice", null, t); }
  function pendingLine(m) {
    var li = addLine("sbw-visitor sbw-pending", "You", m.body);
    li.setAttribute("data-client-id", m.client_id);
  }
  function formatEta(s) {
    if (s == null) return "";
    if (s < 60) return " \u2014 about " + Math.max(1, Math.round(s)) + " s";
    return " \u2014 about " + Math.round(s / 60) + " min";
  }

  // ------------------------------------------------------------------ connection
  function sendFrame(f) {
    if (state.ws && state.ws.readyState === 1) {
      state.ws.send(JSON.stringify(f));
      return true;
    }
    return false;
  }
  function connect() {
    if (state.ws && state.ws.readyState <= 1) return;
    var ws = new WebSocket(wsUrl);
    state.ws = ws;
    ws.onopen = function () {
      state.retry = 0;
      if (state.token) sendFrame({ type: "resume", token: state.token, last_seq: state.lastSeq });
      else if (state.mode !== "sent") showForm();
    };
    ws.onmessage = function (e) {
      var f;
      try { f = JSON.parse(e.data); } catch (err) { return; }
      handle(f);
    };
    ws.onclose = function () {
      if (state.ws !== ws) return;
      state.ws = null;
      if (!state.open && !state.token) return;
      if (state.ended) return;
      setStatus("Reconnecting\u2026");
      var delay = Math.min(10000, 500 * Math.pow(2, state.retry++));
      setTimeout(connect, delay);
    };
  }
  function flushOutbox() {
    state.outbox.forEach(function (m) { sendFrame({ type: "message", body: m.body, client_id: m.client_id }); });
  }

  function handle(f) {
    switch (f.type) {
      case "hello":
        state.topics = f.topics || [];
        state.maxChars = f.max_message_chars || state.maxChars;
        firstIn.maxLength = input.maxLength = state.maxChars;
        while (topicIn.firstChild) topicIn.removeChild(topicIn.firstChild);
        state.topics.forEach(function (t) { topicIn.appendChild(text("option", null, t.label, { value: t.name })); });
        topicField.hidden = !!opts.topic || state.topics.length === 0;
        state.closed = f.closed || null;
        while (off.topic.input.firstChild) off.topic.input.removeChild(off.topic.input.firstChild);
        state.topics.forEach(function (t) { off.topic.input.appendChild(text("option", null, t.label, { value: t.name })); });
        off.topic.wrap.hidden = topicField.hidden;
        if (!state.token && (state.mode === "form" || state.mode === "offline")) showForm();
        break;
      case "offline_received":
        offSend.disabled = false;
        off.message.input.value = "";
        notice("Thank you. We have your message and will answer by email at " + f.email + ".");
        mode("sent");
        setStatus("Message sent");
        break;
      case "started":
        // Cleared only now: if the start is refused the visitor keeps what they wrote.
        firstIn.value = "";
        state.token = f.token;
        state.ended = false;
        state.callbackOffer = state.calledBack = state.callbackPending = false;
        state.outbox = state.outbox.filter(function (m) { return !m.start; });
        save();
        mode("chat");
        input.focus();
        break;
      case "resumed":
        state.callbackOffer = state.callbackPending = false;
        mode("chat");
        flushOutbox();
        break;
      case "message":
        if (state.seen[f.seq]) break;
        state.seen[f.seq] = true;
        state.lastSeq = Math.max(state.lastSeq, f.seq);
        save();
        if (f.author === "visitor") {
          var pending = log.querySelector(".sbw-pending");
          if (pending && pending.querySelector(".sbw-body").textContent === f.body) {
            pending.classList.remove("sbw-pending");
            pending.setAttribute("data-seq", String(f.seq));
            pending.removeAttribute("data-client-id");
            break;
          }
          addLine("sbw-visitor", "You", f.body, f.seq);
        } else if (f.author === "agent") {
          typing.textContent = "";
          addLine("sbw-agent", f.name || "Agent", f.body, f.seq);
        } else {
          addLine("sbw-notice", null, f.body, f.seq);
        }
        break;
      case "sent":
        state.outbox = state.outbox.filter(function (m) { return m.client_id !== f.client_id; });
        save();
        break;
      case "queue":
        if (f.position == null) setStatus("Waiting for an agent\u2026");
        else if (f.position <= 1) setStatus("You are next" + formatEta(f.eta_secs));
        else setStatus("You are number " + f.position + " in line" + formatEta(f.eta_secs));
        state.callbackOffer = f.callback_offer === true;
        showCallback();
        break;
      case "callback_scheduled":
        state.callbackPending = false;
        state.calledBack = true;
        cbSend.disabled = false;
        clearCallbackError();
        cbNumber.value = "";
        // The button was disabled while waiting for this answer, which may have cost it the focus.
        if (cbForm.contains(document.activeElement) || document.activeElement === document.body) state.focusNew = true;
        showCallback();
        setStatus("We will call you back");
        notice("We will call you at " + f.number + " \u2014 you keep your place in line.");
        break;
      case "agent_joined":
        state.callbackOffer = false;
        showCallback();
        setStatus(f.name + " is chatting with you");
        notice(f.name + " joined the chat");
        break;
      case "agent_left":
        notice("You are being transferred; please wait for the next agent.");
        break;
      case "typing":
        typing.textContent = f.on ? "The agent is typing\u2026" : "";
        break;
      case "ended":
        state.ended = true;
        typing.textContent = "";
        setStatus(state.calledBack ? "We will call you back" : "");
        if (f.reason === "callback") {
          // The confirmation is in the log already, unless this page came back after it.
          if (!state.calledBack) notice("You asked to be called back; you keep your place in line.");
        } else {
          notice(f.by === "visitor" ? "You ended the chat." : "The chat has ended.");
        }
        mode("ended");
        state.token = null;
        state.lastSeq = 0;
        state.outbox = [];
        save();
        break;
      case "error":
        if (f.code === "unknown_session" || f.code === "expired_session") {
          state.token = null;
          state.lastSeq = 0;
          state.outbox = [];
          save();
          notice(f.message);
          mode("form");
        } else if (state.callbackPending) {
          // The answer to the callback frame: shown at the number, the chat goes on waiting.
          state.callbackPending = false;
          cbSend.disabled = false;
          callbackError(f.message);
        } else if (state.mode === "offline" && f.field && off[f.field]) {
          offSend.disabled = false;
          fieldError(f.field, f.message);
        } else {
          offSend.disabled = false;
          notice(f.message);
        }
        break;
    }
  }

  // ------------------------------------------------------------------ input
  function fieldError(name, message) {
    var fl = off[name];
    fl.err.textContent = message;
    fl.input.setAttribute("aria-invalid", "true");
    fl.input.focus();
  }
  function clearErrors() {
    ["name", "email", "topic", "message"].forEach(function (k) {
      off[k].err.textContent = "";
      off[k].input.removeAttribute("aria-invalid");
    });
  }
  offForm.addEventListener("submit", function (e) {
    e.preventDefault();
    clearErrors();
    var name = off.name.input.value.trim(), email = off.email.input.value.trim(), body = off.message.input.value.trim();
    if (!name) return fieldError("name", "Please enter your name.");
    if (!email) return fieldError("email", "Please enter your email address: we answer by email.");
    if (!/^[^\s@<>,;]+@[^\s@<>,;]+\.[^\s@<>,;]+$/.test(email)) return fieldError("email", "This does not look like an email address.");
    if (!body) return fieldError("message", "Please write your message.");
    var ok = sendFrame({ type: "offline", name: name, email: email, topic: currentTopic(), message: body });
    if (!ok) { notice("Not connected yet; please try again in a moment."); connect(); return; }
    offSend.disabled = true;
  });
  cbForm.addEventListener("submit", function (e) {
    e.preventDefault();
    if (state.callbackPending) return;
    clearCallbackError();
    var number = cbNumber.value.trim();
    if (!number) return callbackError("Please enter the phone number we should call.");
    if (!sendFrame({ type: "callback", number: number })) {
      callbackError("Not connected yet; please try again in a moment.");
      connect();
      return;
    }
    state.callbackPending = true;
    cbSend.disabled = true;
  });
  topicIn.addEventListener("change", function () { off.topic.input.value = topicIn.value; showForm(); });
  off.topic.input.addEventListener("change", function () {
    topicIn.value = off.topic.input.value;
    clearErrors();
    showForm();
    if (state.mode === "form") topicIn.focus();
  });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var body = firstIn.value.trim();
    if (!body) { firstIn.focus(); return; }
    var topic = opts.topic || (topicField.hidden ? "" : topicIn.value);
    var startId = randomId();
    var ok = sendFrame({ type: "start", start_id: startId, visitor: visitorId(), name: nameIn.value.trim(),
      email: emailIn.value.trim(), topic: topic, message: body });
    if (!ok) { notice("Not connected yet; please try again in a moment."); connect(); return; }
    state.seen = {};
  });
  composer.addEventListener("submit", function (e) {
    e.preventDefault();
    var body = input.value.trim();
    if (!body) return;
    var m = { client_id: randomId(), body: body };
    state.outbox.push(m);
    save();
    pendingLine(m);
    sendFrame({ type: "message", body: body, client_id: m.client_id });
    input.value = "";
    stopTyping();
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      composer.requestSubmit ? composer.requestSubmit() : send.click();
    }
  });
  function stopTyping() {
    clearTimeout(state.typingTimer);
    if (state.typingOn) { state.typingOn = false; sendFrame({ type: "typing", on: false }); }
  }
  input.addEventListener("input", function () {
    var now = Date.now();
    if (!state.typingOn || now - state.lastTypingSent > 2500) {
      state.typingOn = true;
      state.lastTypingSent = now;
      sendFrame({ type: "typing", on: true });
    }
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(stopTyping, 3000);
  });
  endBtn.addEventListener("click", function () { sendFrame({ type: "end" }); });
  newBtn.addEventListener("click", function () {
    while (log.firstChild) log.removeChild(log.firstChild);
    state.ended = false;
    state.seen = {};
    state.callbackOffer = state.calledBack = state.callbackPending = false;
    showForm();
    connect();
    (state.mode === "offline" ? off.name.input : nameIn).focus();
  });
  launcher.addEventListener("click", function () { setOpen(true); });
  close.addEventListener("click", function () { setOpen(false); });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") setOpen(false); });

  mode(state.token ? "chat" : "form");
  if (state.open || state.token) setOpen(state.open, false);
  window.SwitchboardChat = { open: function () { setOpen(true); }, close: function () { setOpen(false); } };
})();
