// The agent desktop: one `Open` stream for what the server pushes, one `Act` call per thing the
// agent does. The server's snapshot (`loggedIn`) is the truth after every (re)connect: the page
// rebuilds from it, so a reload or a dropped network loses nothing.
'use strict';

(function () {
  const { el, $, duration } = SB;
  const DESK = 'switchboard.v1.AgentDesktop/';
  const STORE_KEY = 'sb.agent';

  const state = {
    boot: null,
    api: null,
    agent: '',
    token: '',
    sessionId: '',
    me: null, // AgentState
    offers: new Map(), // interaction id → {offer, node}
    work: new Map(), // interaction id → {ix, pop, node, typing, call, ended}
    stream: null, // AbortController of the open stream
    retry: 0,
    stopped: true,
  };

  // ------------------------------------------------------------------ connection

  async function start() {
    try {
      state.boot = await SB.boot();
    } catch (e) {
      SB.alert('Cannot load the page settings: ' + e.message);
      return;
    }
    state.api = new SB.Api(state.boot.base, state.boot.schema, () =>
      state.agent ? 'Basic ' + btoa(unescape(encodeURIComponent(state.agent + ':' + state.token))) : null);
    $('#signin').addEventListener('submit', onSignIn);
    $('#sign-out').addEventListener('click', signOut);
    $('#apply-presence').addEventListener('click', applyPresence);
    document.addEventListener('keydown', onKey);
    setInterval(tick, 1000);
    const saved = SB.store.get(STORE_KEY);
    if (saved && saved.agent && saved.token) {
      state.agent = saved.agent;
      state.token = saved.token;
      connect();
    } else {
      showSignIn('');
    }
  }

  function onSignIn(ev) {
    ev.preventDefault();
    const agent = $('#agent-id').value.trim();
    const token = $('#token').value;
    if (!agent || !token) {
      $('#signin-error').textContent = !agent ? 'Enter your agent id.' : 'Enter your token.';
      return;
    }
    state.agent = agent;
    state.token = token;
    $('#signin-error').textContent = '';
    $('#signin-button').disabled = true;
    // Asked here, on the agent's click: browsers allow the prompt only from a gesture.
    if ('Notification' in window && Notification.permission === 'default') Notification.requestPermission().catch(() => {});
    unlockSound();
    connect();
  }

  function showSignIn(message) {
    state.stopped = true;
    $('#signin').hidden = false;
    $('#desk').hidden = true;
    $('#me').hidden = true;
    $('#signin-button').disabled = false;
    $('#signin-error').textContent = message;
    $('#conn').textContent = '';
    $('#agent-id').value = state.agent || $('#agent-id').value;
    $('#token').value = '';
    (state.agent ? $('#token') : $('#agent-id')).focus();
  }

  function signOut() {
    // Offline first (the server ends the session's offers), then forget the sign-in.
    const done = () => {
      stopStream();
      SB.store.clear(STORE_KEY);
      state.token = '';
      state.sessionId = '';
      clearDesk();
      showSignIn('Signed out.');
    };
    act({ setPresence: { presence: { state: 'PRESENCE_STATE_OFFLINE' } } }).then(done, done);
  }

  function stopStream() {
    state.stopped = true;
    if (state.stream) state.stream.abort();
    state.stream = null;
  }

  function connect() {
    if (state.stream) state.stream.abort();
    const ctrl = new AbortController();
    state.stream = ctrl;
    state.stopped = false;
    $('#conn').textContent = 'Connecting…';
    let loggedIn = false;
    state.api
      .stream(DESK + 'Open', { agentId: state.agent, token: state.token }, (ev) => {
        if (ev.loggedIn) loggedIn = true;
        onEvent(ev);
      }, ctrl.signal)
      .then(
        () => ended(ctrl, loggedIn, null),
        (e) => ended(ctrl, loggedIn, e),
      );
  }

  // The stream ended: why decides whether to go again, ask for a sign-in, or stop.
  function ended(ctrl, loggedIn, e) {
    if (ctrl !== state.stream || ctrl.signal.aborted) return;
    state.stream = null;
    if (state.closedFor) {
      const reason = state.closedFor;
      state.closedFor = null;
      if (reason === 'shutdown' || reason === 'stale') return later(0);
      if (reason === 'replaced') {
        state.stopped = true;
        $('#conn').textContent = '';
        SB.alert('You signed in somewhere else (another tab or desktop), so this page stopped. Reload it to work here again.', 'info');
        return;
      }
      SB.store.clear(STORE_KEY);
      clearDesk();
      return showSignIn(reason === 'logged_out' ? 'A supervisor signed you out.' : 'Your sign-in has expired; sign in again.');
    }
    if (e && e.code === 16) {
      SB.store.clear(STORE_KEY);
      clearDesk();
      return showSignIn(loggedIn ? 'Your session has ended; sign in again.' : 'Wrong agent id or token: ' + e.message);
    }
    if (e && (e.code === 7 || e.code === 3)) {
      SB.store.clear(STORE_KEY);
      return showSignIn(SB.reason(e));
    }
    if (!loggedIn && e && e.code === 8) return showSignIn(SB.reason(e));
    later(loggedIn ? 0 : state.retry, e);
  }

  function later(after, e) {
    const wait = Math.min(15000, Math.max(1000, after * 2 || 1000));
    state.retry = wait;
    $('#conn').textContent = 'Reconnecting' + (e ? ' (' + e.message + ')' : '') + '…';
    $('#conn').className = 'conn bad';
    setTimeout(() => { if (!state.stopped && !state.stream) connect(); }, wait);
  }

  async function act(request) {
    request.requestId = SB.id();
    try {
      return await state.api.unary(DESK + 'Act', { agentId: state.agent, sessionId: state.sessionId, request });
    } catch (e) {
      // The session is gone (replaced, expired): the stream reports why; reconnect if it can.
      if (e.code === 16 && !state.stopped && !state.stream) connect();
      throw e;
    }
  }

  // Runs an action from a control: the control waits, and a refusal shows the server's reason.
  async function run(button, request, done) {
    if (button) button.disabled = true;
    try {
      const ack = await act(request);
      SB.clearAlert();
      if (done) done(ack);
      return ack;
    } catch (e) {
      SB.alert(SB.reason(e));
      return null;
    } finally {
      if (button && button.isConnected) button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ events

  function onEvent(ev) {
    if (ev.loggedIn) return onLoggedIn(ev.loggedIn);
    if (ev.presenceChanged) return showPresence(ev.presenceChanged.presence, ev.presenceChanged.cause);
    if (ev.offer) return addOffer(ev.offer);
    if (ev.offerRevoked) return revokeOffer(ev.offerRevoked);
    if (ev.assigned) return assign(ev.assigned.interaction, null);
    if (ev.customerMessage) return addMessage(ev.customerMessage.interactionId, ev.customerMessage.message);
    if (ev.interactionEnded) return endInteraction(ev.interactionEnded);
    if (ev.customerTyping) return showTyping(ev.customerTyping);
    if (ev.callState) return showCall(ev.callState);
    if (ev.delivery) return showDelivery(ev.delivery);
    if (ev.sessionClosed) { state.closedFor = ev.sessionClosed.reason; return; }
  }

  function onLoggedIn(li) {
    state.sessionId = li.sessionId;
    state.retry = 0;
    SB.store.set(STORE_KEY, { agent: state.agent, token: state.token });
    $('#signin').hidden = true;
    $('#desk').hidden = false;
    $('#me').hidden = false;
    $('#conn').textContent = 'Connected';
    $('#conn').className = 'conn ok';
    state.me = li.agent;
    $('#who').textContent = (li.agent && li.agent.name) || state.agent;
    showPresence(li.agent && li.agent.presence, '');
    // Rebuild from the snapshot, keeping what the page knew that the snapshot does not carry
    // (screen-pops, call timers).
    const pops = new Map([...state.work].map(([id, w]) => [id, w.pop]));
    clearDesk();
    for (const offer of li.offers) addOffer(offer, true);
    for (const ix of li.interactions) assign(ix, pops.get(ix.id) || null);
  }

  function clearDesk() {
    for (const o of state.offers.values()) o.node.remove();
    for (const w of state.work.values()) w.node.remove();
    state.offers.clear();
    state.work.clear();
    updateIdle();
  }

  function updateIdle() {
    $('#idle').hidden = state.offers.size + state.work.size > 0;
  }

  function showPresence(p, cause) {
    if (!p) return;
    if (state.me) state.me.presence = p;
    const badge = $('#presence-now');
    badge.textContent = SB.presence(p) + (cause && cause !== 'agent' ? ' · ' + cause : '');
    badge.className = 'badge ' + SB.presenceClass(p);
    const sel = $('#presence');
    if (document.activeElement !== sel) sel.value = p.state === 'PRESENCE_STATE_READY' ? 'ready' : 'not_ready';
    if (document.activeElement !== $('#reason')) $('#reason').value = p.state === 'PRESENCE_STATE_NOT_READY' ? p.reason || '' : '';
  }

  function applyPresence(ev) {
    const ready = $('#presence').value === 'ready';
    const presence = ready ? { state: 'PRESENCE_STATE_READY' } : { state: 'PRESENCE_STATE_NOT_READY', reason: $('#reason').value.trim() };
    run(ev.currentTarget, { setPresence: { presence } }, (ack) => ack.agent && showPresence(ack.agent.presence, 'agent'));
  }

  // ------------------------------------------------------------------ offers

  function addOffer(offer, quiet) {
    const ix = offer.interaction;
    if (!ix || state.offers.has(ix.id)) return;
    const expires = SB.ms(offer.expiresAt);
    const countdown = el('span', { class: 'countdown', 'aria-live': 'off' });
    // A call is answered on the phone, not here: its offer can only be declined. A callback is
    // accepted here, and then your phone calls the customer.
    const cb = ix.callback;
    const voice = ix.channel === 'CHANNEL_VOICE' && !cb;
    const accept = voice ? null : el('button', { type: 'button', class: 'primary accept' }, cb ? 'Accept and call' : 'Accept');
    const reject = el('button', { type: 'button', class: 'reject' }, 'Reject');
    const node = el('article', { class: 'card offer', 'data-id': ix.id, 'aria-label': 'Offer: ' + SB.channel(ix.channel) + ' from ' + ix.customerAddress },
      el('header', {},
        el('span', { class: 'chan chan-' + SB.channel(ix.channel).toLowerCase() }, SB.channel(ix.channel)),
        el('strong', { class: 'customer' }, ix.customerAddress || 'unknown customer'),
        el('span', { class: 'queue' }, 'queue ' + ix.queue),
        countdown),
      ix.subject ? el('p', { class: 'subject' }, ix.subject) : null,
      firstMessage(ix),
      screenPop(offer.screenPop),
      voice ? el('p', { class: 'ring-note' }, 'Your phone is ringing: answer it there.') : null,
      cb ? el('p', { class: 'ring-note callback-note' }, callbackLine(cb, ix)) : null,
      el('div', { class: 'actions' }, accept, reject));
    if (accept) accept.addEventListener('click', () => {
      const pop = offer.screenPop;
      run(accept, { accept: { interactionId: ix.id } }, (ack) => {
        removeOffer(ix.id);
        assign(ack.interaction || ix, pop);
      });
    });
    reject.addEventListener('click', () => run(reject, { reject: { interactionId: ix.id, reason: 'declined' } }, () => removeOffer(ix.id)));
    state.offers.set(ix.id, { offer, node, expires, countdown });
    $('#offers').append(node);
    updateIdle();
    tickOffer(state.offers.get(ix.id));
    if (!quiet) announce(ix);
  }

  // "Callback to +49…, waiting 12 min · attempt 2 of 3".
  function callbackLine(cb, ix) {
    const since = SB.ms(ix.enqueuedAt);
    const tries = cb.attempts ? ' · attempt ' + (cb.attempts + 1) + ' of ' + cb.maxAttempts : '';
    return 'Callback to ' + cb.number + (since ? ', waiting ' + duration(Date.now() - since) : '') + tries + '. Accept, and your phone calls the customer.';
  }

  function firstMessage(ix) {
    const m = (ix.messages || []).find((x) => x.author === 'AUTHOR_CUSTOMER');
    return m ? el('blockquote', { class: 'first' }, m.body) : null;
  }

  function removeOffer(id) {
    const o = state.offers.get(id);
    if (!o) return;
    o.node.remove();
    state.offers.delete(id);
    updateIdle();
  }

  function revokeOffer(r) {
    if (!state.offers.has(r.interactionId)) return;
    removeOffer(r.interactionId);
    const why = { timeout: 'it was not answered in time', abandoned: 'the customer left or it was withdrawn', offline: 'you went offline', shutdown: 'the server restarted' };
    SB.alert('An offer was withdrawn: ' + (why[r.reason] || r.reason) + '.', 'info');
  }

  function tickOffer(o) {
    if (!o.expires) { o.countdown.textContent = ''; return; }
    const left = o.expires - Date.now();
    o.countdown.textContent = left > 0 ? duration(left) + ' left' : 'expiring';
    o.countdown.classList.toggle('urgent', left < 10000);
  }

  // The screen-pop: who the customer is and what happened last.
  function screenPop(pop) {
    const box = el('section', { class: 'pop', 'aria-label': 'Customer' });
    if (!pop || pop.status === 'SCREEN_POP_STATUS_NOT_CONFIGURED') return null;
    if (pop.status === 'SCREEN_POP_STATUS_UNAVAILABLE') {
      box.append(el('p', { class: 'muted' }, 'Customer record unavailable right now.'));
      return box;
    }
    const c = pop.contact;
    if (!c || !c.id) {
      box.append(el('p', { class: 'muted' }, 'New customer: no record yet.'));
    } else {
      box.append(el('h3', { class: 'contact-name' }, c.name || 'Unnamed contact'));
      const ids = (c.identities || []).map((i) => SB.channel(i.channel) + ' ' + i.address);
      if (ids.length) box.append(el('p', { class: 'identities' }, ids.join(' · ')));
    }
    const history = pop.history || [];
    if (history.length) {
      box.append(el('table', { class: 'history' },
        el('caption', {}, 'Last interactions'),
        el('thead', {}, el('tr', {}, ['When', 'Channel', 'Agent', 'Outcome', 'Disposition', 'Notes'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, history.map((h) => el('tr', {},
          el('td', {}, SB.dateTime(SB.ms(h.startedAt))),
          el('td', {}, SB.channel(h.channel)),
          el('td', {}, h.agentId || '-'),
          el('td', {}, h.outcome || '-'),
          el('td', {}, h.disposition || '-'),
          el('td', { class: 'notes' }, h.notes || h.summary || '-'))))));
    } else if (c && c.id) {
      box.append(el('p', { class: 'muted' }, 'No earlier interactions.'));
    }
    return box;
  }

  // A new offer: a short tone and, when the page is not in front, a notification.
  let audio = null;
  function unlockSound() {
    try { audio = audio || new AudioContext(); } catch (_) { audio = null; }
  }
  function announce(ix) {
    if (audio) {
      try {
        const o = audio.createOscillator(), g = audio.createGain();
        o.frequency.value = 880; g.gain.value = 0.1;
        o.connect(g); g.connect(audio.destination);
        o.start(); o.stop(audio.currentTime + 0.2);
      } catch (_) { /* no sound: the card and notification remain */ }
    }
    if (document.hidden && 'Notification' in window && Notification.permission === 'granted') {
      try { new Notification('New ' + SB.channel(ix.channel) + ' offer', { body: ix.customerAddress + (ix.subject ? ': ' + ix.subject : ''), tag: ix.id }); } catch (_) { /* not shown */ }
    }
  }

  // ------------------------------------------------------------------ conversations

  function assign(ix, pop) {
    if (!ix) return;
    removeOffer(ix.id);
    const existing = state.work.get(ix.id);
    if (existing) {
      existing.ix = ix;
      for (const m of ix.messages || []) addMessage(ix.id, m);
      renderState(existing);
      return;
    }
    const w = { ix, pop, typing: false, call: null, ended: null, seqs: new Set(), myTyping: false, typingTimer: null };
    w.thread = el('ol', { class: 'thread', 'aria-label': 'Messages', 'aria-live': 'polite', tabindex: '0' });
    w.typingLine = el('p', { class: 'typing', 'aria-live': 'polite' });
    w.stateLine = el('p', { class: 'state', role: 'status' });
    w.callCard = el('div', { class: 'call', hidden: true });
    const idSuffix = ix.id.replace(/[^a-zA-Z0-9_-]/g, '');
    const replyId = 'reply-' + idSuffix;
    w.reply = el('textarea', { id: replyId, class: 'reply', rows: 3, maxlength: 65536, placeholder: 'Write a reply…' });
    w.count = el('span', { class: 'count', 'aria-live': 'polite' });
    w.send = el('button', { type: 'button', class: 'primary send' }, 'Send');
    w.dispo = el('input', { id: 'dispo-' + idSuffix, class: 'disposition', maxlength: 100 });
    w.notes = el('textarea', { id: 'notes-' + idSuffix, class: 'notes', rows: 2, maxlength: 10000 });
    w.complete = el('button', { type: 'button', class: 'complete' }, 'Complete');
    w.endWrap = el('button', { type: 'button', class: 'end-wrap', hidden: true }, 'End wrap-up');
    w.target = el('input', { id: 'target-' + idSuffix, class: 'target', maxlength: 64, placeholder: 'queue or agent id' });
    w.targetKind = el('select', { id: 'kind-' + idSuffix, class: 'target-kind' }, el('option', { value: 'queue' }, 'Queue'), el('option', { value: 'agent' }, 'Agent'));
    w.transfer = el('button', { type: 'button', class: 'transfer' }, 'Transfer');
    // A callback for a chat or SMS customer who would rather talk: it keeps this conversation's
    // place in the queue, and an agent's phone calls them.
    const sms = ix.channel === 'CHANNEL_SMS';
    w.cbNumber = el('input', { id: 'cbnum-' + idSuffix, class: 'cb-number', type: 'tel', maxlength: 32, placeholder: '+49 151 …', value: sms ? ix.customerAddress : '' });
    w.cbAfter = el('input', { id: 'cbafter-' + idSuffix, class: 'cb-after', type: 'time' });
    w.cbButton = el('button', { type: 'button', class: 'schedule-callback' }, 'Schedule callback');
    const voice = ix.channel === 'CHANNEL_VOICE';
    w.node = el('article', { class: 'card conversation', 'data-id': ix.id, 'aria-label': SB.channel(ix.channel) + ' with ' + ix.customerAddress },
      el('header', {},
        el('span', { class: 'chan chan-' + SB.channel(ix.channel).toLowerCase() }, SB.channel(ix.channel)),
        el('strong', { class: 'customer' }, ix.customerAddress || 'unknown customer'),
        el('span', { class: 'queue' }, 'queue ' + ix.queue)),
      ix.subject ? el('p', { class: 'subject' }, ix.channel === 'CHANNEL_EMAIL' ? 'Subject: ' + ix.subject : ix.subject) : null,
      w.stateLine,
      w.callCard,
      el('details', { class: 'pop-box', open: true }, el('summary', {}, 'Customer'), screenPop(pop) || el('p', { class: 'muted' }, 'No customer record.')),
      voice ? null : w.thread,
      voice ? null : w.typingLine,
      voice ? null : el('div', { class: 'compose' },
        el('label', { for: replyId }, 'Reply'), w.reply,
        el('div', { class: 'row' }, w.count, w.send)),
      el('details', { class: 'more' }, el('summary', {}, 'Transfer'),
        el('div', { class: 'row' },
          el('label', { for: 'kind-' + idSuffix }, 'To'), w.targetKind,
          el('label', { for: 'target-' + idSuffix, class: 'sr-only' }, 'Transfer target'), w.target, w.transfer)),
      voice ? null : el('details', { class: 'more callback' }, el('summary', {}, 'Call back'),
        el('div', { class: 'row' },
          el('label', { for: 'cbnum-' + idSuffix }, 'Number'), w.cbNumber,
          el('label', { for: 'cbafter-' + idSuffix }, 'Not before'), w.cbAfter, w.cbButton)),
      el('div', { class: 'wrap' },
        el('label', { for: 'dispo-' + idSuffix }, 'Disposition'), w.dispo,
        el('label', { for: 'notes-' + idSuffix }, 'Notes'), w.notes,
        el('div', { class: 'row' }, w.complete, w.endWrap)));
    if (!voice) {
      w.reply.addEventListener('input', () => { updateCount(w); typing(w, true); });
      w.reply.addEventListener('blur', () => typing(w, false));
      w.reply.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); send(w); } });
      w.send.addEventListener('click', () => send(w));
    }
    w.transfer.addEventListener('click', () => transfer(w));
    w.cbButton.addEventListener('click', () => scheduleCallback(w));
    w.complete.addEventListener('click', () => complete(w));
    w.endWrap.addEventListener('click', () => endWrapUp(w));
    state.work.set(ix.id, w);
    $('#work').append(w.node);
    for (const m of ix.messages || []) addMessage(ix.id, m);
    renderState(w);
    updateCount(w);
    updateIdle();
    // After a reload the snapshot has no screen-pop: ask for it again.
    if (!pop) fetchPop(w);
  }

  async function fetchPop(w) {
    try {
      const pop = await state.api.unary(DESK + 'GetScreenPop', { interactionId: w.ix.id });
      w.pop = pop;
      const box = w.node.querySelector('.pop-box');
      const fresh = screenPop(pop);
      if (box && fresh) box.replaceChildren(el('summary', {}, 'Customer'), fresh);
    } catch (_) { /* the card says no record; the rest works */ }
  }

  function renderState(w) {
    const ix = w.ix;
    const wrap = ix.state === 'INTERACTION_STATE_WRAP_UP';
    let text = { INTERACTION_STATE_ACTIVE: 'Active', INTERACTION_STATE_WRAP_UP: 'Wrap-up', INTERACTION_STATE_COMPLETED: 'Completed', INTERACTION_STATE_ABANDONED: 'Ended' }[ix.state] || '';
    if (wrap) {
      const since = SB.ms((ix.timestamps || {}).wrap_up);
      text = 'Wrap-up' + (since ? ' · ' + duration(Date.now() - since) : '');
    }
    if (w.ended) text = 'Ended: ' + (w.ended.reason || 'closed');
    w.stateLine.textContent = text;
    w.node.classList.toggle('wrapping', wrap);
    w.complete.hidden = wrap || !!w.ended;
    w.endWrap.hidden = !wrap;
    w.send.disabled = wrap || !!w.ended;
    w.reply.disabled = wrap || !!w.ended;
    w.transfer.disabled = wrap || !!w.ended;
    w.cbButton.disabled = !!w.ended;
  }

  function addMessage(iid, m) {
    const w = state.work.get(iid);
    if (!w || !m) return;
    if (w.seqs.has(m.seq)) return;
    w.seqs.add(m.seq);
    const who = { AUTHOR_CUSTOMER: 'customer', AUTHOR_AGENT: 'agent', AUTHOR_SYSTEM: 'system' }[m.author] || 'system';
    const label = who === 'customer' ? 'Customer' : who === 'agent' ? (m.agentId || 'Agent') : 'System';
    const li = el('li', { class: 'msg ' + who, 'data-seq': m.seq },
      el('span', { class: 'from' }, label),
      el('span', { class: 'at' }, SB.clock(SB.ms(m.sentAt))),
      el('div', { class: 'body' }, m.body),
      el('span', { class: 'delivery' }));
    // Keep thread order by seq, whatever order the stream and the ack arrive in.
    const after = [...w.thread.children].find((x) => Number(x.dataset.seq) > m.seq);
    w.thread.insertBefore(li, after || null);
    if (m.delivery) paintDelivery(li, m.delivery);
    if (who === 'customer') { w.typing = false; w.typingLine.textContent = ''; }
    w.thread.scrollTop = w.thread.scrollHeight;
  }

  function paintDelivery(li, d) {
    const span = li.querySelector('.delivery');
    const seg = d.segments ? ' · ' + d.segments + ' segment' + (d.segments > 1 ? 's' : '') : '';
    span.textContent = d.state + (d.code ? ' (' + d.code + ')' : '') + seg;
    span.className = 'delivery d-' + d.state;
  }

  function showDelivery(u) {
    const w = state.work.get(u.interactionId);
    if (!w) return;
    const li = w.thread.querySelector('li[data-seq="' + Number(u.seq) + '"]');
    if (li && u.delivery) paintDelivery(li, u.delivery);
  }

  function showTyping(t) {
    const w = state.work.get(t.interactionId);
    if (!w) return;
    w.typing = t.typing;
    w.typingLine.textContent = t.typing ? 'The customer is typing…' : '';
  }

  function showCall(c) {
    const w = state.work.get(c.interactionId);
    if (!w) return;
    w.call = { state: c.state, since: SB.ms(c.since), holdMs: c.holdMs };
    paintCall(w);
  }

  function paintCall(w) {
    const c = w.call;
    if (!c) return;
    if (c.state === 'ended') {
      w.callCard.replaceChildren(el('p', { class: 'call-state' }, 'Call ended' + (c.holdMs ? ' · held ' + duration(c.holdMs) : '')));
      return;
    }
    const attrs = Object.entries(w.ix.attributes || {}).filter(([k]) => !k.startsWith('cti.'));
    const cb = w.ix.callback;
    const what = c.state === 'dialing' ? 'Calling ' + (cb ? cb.number : w.ix.customerAddress) : 'Call ' + c.state;
    w.callCard.hidden = false;
    w.callCard.replaceChildren(
      el('p', { class: 'call-state call-' + c.state }, what + ' · ' + duration(Date.now() - c.since) + (c.holdMs ? ' · held ' + duration(c.holdMs) : '')),
      el('p', {}, (cb ? 'Callback to ' : 'Caller ') + w.ix.customerAddress),
      attrs.length ? el('dl', { class: 'userdata' }, attrs.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])) : null,
      el('p', { class: 'muted' }, 'Answer and hang up on your phone.'));
  }

  function endInteraction(e) {
    removeOffer(e.interactionId);
    const w = state.work.get(e.interactionId);
    if (!w) return;
    // A callback nobody answered leaves the desk: it is tried again later (maybe by someone
    // else), or, after its last attempt, it is over.
    if (e.reason === 'callback_retry' || e.reason === 'callback_failed') {
      const n = w.ix.callback ? w.ix.callback.number : w.ix.customerAddress;
      dropWork(e.interactionId);
      SB.alert(e.reason === 'callback_retry'
        ? 'Nobody answered the callback to ' + n + '. It will be tried again later.'
        : 'Nobody answered the callback to ' + n + ' at its last attempt. It is closed as failed.', 'info');
      return;
    }
    if (e.state === 'INTERACTION_STATE_COMPLETED') return dropWork(e.interactionId);
    if (e.state === 'INTERACTION_STATE_WRAP_UP') {
      // The call was released (or the customer left): after-call work, with its disposition.
      w.ix = { ...w.ix, state: e.state, timestamps: { ...(w.ix.timestamps || {}), wrap_up: { seconds: Math.floor(Date.now() / 1000), nanos: 0 } } };
      if (w.call) w.call.state = 'ended';
      w.typingLine.textContent = '';
      renderState(w);
      return;
    }
    w.ended = { state: e.state, reason: e.reason };
    w.typingLine.textContent = '';
    renderState(w);
  }

  function dropWork(id) {
    const w = state.work.get(id);
    if (!w) return;
    clearTimeout(w.typingTimer);
    w.node.remove();
    state.work.delete(id);
    updateIdle();
  }

  // Typing: said when it starts and when it stops (3 s without a key), not per key.
  function typing(w, on) {
    clearTimeout(w.typingTimer);
    if (on) w.typingTimer = setTimeout(() => typing(w, false), 3000);
    if (w.myTyping === on) return;
    w.myTyping = on;
    act({ setTyping: { interactionId: w.ix.id, typing: on } }).catch(() => {});
  }

  async function send(w) {
    const body = w.reply.value;
    if (!body.trim()) { SB.alert('Write something first: the reply is empty.'); w.reply.focus(); return; }
    const ack = await run(w.send, { sendReply: { interactionId: w.ix.id, body } });
    if (ack) {
      w.reply.value = '';
      updateCount(w);
      typing(w, false);
      if (ack.message) addMessage(w.ix.id, ack.message);
      w.reply.focus();
    }
  }

  function transfer(w) {
    const target = w.target.value.trim();
    if (!target) { SB.alert('Name the queue or agent to transfer to.'); w.target.focus(); return; }
    const t = { interactionId: w.ix.id };
    if (w.targetKind.value === 'queue') t.queue = target; else t.agentId = target;
    run(w.transfer, { transfer: t }, () => dropWork(w.ix.id));
  }

  function scheduleCallback(w) {
    const c = { interactionId: w.ix.id, number: w.cbNumber.value.trim() };
    // "Not before" is a time today, in this browser's zone (tomorrow if it has passed).
    if (w.cbAfter.value) {
      const [h, m] = w.cbAfter.value.split(':').map(Number);
      const at = new Date();
      at.setHours(h, m, 0, 0);
      if (at.getTime() < Date.now()) at.setDate(at.getDate() + 1);
      c.notBefore = { seconds: Math.floor(at.getTime() / 1000), nanos: 0 };
    }
    run(w.cbButton, { scheduleCallback: c }, (ack) => {
      const cb = ack.interaction && ack.interaction.callback;
      SB.alert('Callback to ' + (cb ? cb.number : c.number) + ' scheduled: it keeps this conversation\'s place in queue ' + w.ix.queue + '. Complete the conversation as usual.', 'info');
    });
  }

  function complete(w) {
    if (w.ended && w.ended.state === 'INTERACTION_STATE_ABANDONED' && !w.ix.agentId) return dropWork(w.ix.id);
    run(w.complete, { complete: { interactionId: w.ix.id, disposition: w.dispo.value.trim(), notes: w.notes.value } }, (ack) => {
      const ix = ack.interaction;
      if (!ix || ix.state === 'INTERACTION_STATE_COMPLETED') return dropWork(w.ix.id);
      w.ix = ix;
      renderState(w);
      w.endWrap.focus();
    });
  }

  function endWrapUp(w) {
    run(w.endWrap, { endWrapUp: { interactionId: w.ix.id, disposition: w.dispo.value.trim(), notes: w.notes.value } }, () => dropWork(w.ix.id));
  }

  // SMS: characters and segments as the customer's phone will receive them.
  const GSM = '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
  const GSM_EXT = '^{}\\[~]|€\f';
  function smsSegments(text) {
    let septets = 0, gsm = true;
    for (const ch of text) {
      if (GSM.includes(ch)) septets += 1;
      else if (GSM_EXT.includes(ch)) septets += 2;
      else { gsm = false; break; }
    }
    if (gsm) return { chars: septets, segments: septets <= 160 ? 1 : Math.ceil(septets / 153), encoding: 'GSM-7' };
    const units = [...text].reduce((n, ch) => n + (ch.codePointAt(0) > 0xffff ? 2 : 1), 0);
    return { chars: units, segments: units <= 70 ? 1 : Math.ceil(units / 67), encoding: 'UCS-2' };
  }

  function updateCount(w) {
    if (w.ix.channel !== 'CHANNEL_SMS') { w.count.textContent = ''; return; }
    const s = smsSegments(w.reply.value);
    w.count.textContent = w.reply.value ? s.chars + ' characters · ' + s.segments + ' SMS segment' + (s.segments > 1 ? 's' : '') + ' (' + s.encoding + ')' : '';
  }

  // ------------------------------------------------------------------ keys and clock

  function onKey(e) {
    if (!e.altKey || e.ctrlKey || e.metaKey) return;
    const first = state.offers.values().next().value;
    if (!first) return;
    const key = e.key.toLowerCase();
    const accept = first.node.querySelector('.accept');
    if (key === 'a' && accept) { e.preventDefault(); accept.click(); }
    if (key === 'r') { e.preventDefault(); first.node.querySelector('.reject').click(); }
  }

  function tick() {
    for (const o of state.offers.values()) tickOffer(o);
    for (const w of state.work.values()) {
      if (w.call) paintCall(w);
      if (w.ix.state === 'INTERACTION_STATE_WRAP_UP') renderState(w);
    }
  }

  SB.agent = { state, smsSegments };
  start();
})();
