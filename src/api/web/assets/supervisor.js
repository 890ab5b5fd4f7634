// The wallboard: `Supervisor.Watch` streams queue figures (at most once a second per queue) and
// agent states; the waiting list is read every two seconds; interventions ask first.
'use strict';

(function () {
  const { el, $, duration } = SB;
  const SUP = 'switchboard.v1.Supervisor/';
  const STORE_KEY = 'sb.supervisor';
  const HOUR = 3600 * 1000;

  const state = {
    boot: null, api: null, key: '', stream: null, stopped: true,
    queues: new Map(), // name → {figures, node, history: [{at, waiting, sl}]}
    agents: new Map(), // id → {agent, row}
    waitingTimer: null,
  };

  async function start() {
    try {
      state.boot = await SB.boot();
    } catch (e) {
      SB.alert('Cannot load the page settings: ' + e.message);
      return;
    }
    state.api = new SB.Api(state.boot.base, state.boot.schema, () => (state.key ? 'Bearer ' + state.key : null));
    $('#signin').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const key = $('#key').value.trim();
      if (!key) { $('#signin-error').textContent = 'Enter your API key or token.'; return; }
      state.key = key;
      $('#signin-button').disabled = true;
      connect();
    });
    $('#sign-out').addEventListener('click', () => {
      stop();
      SB.store.clear(STORE_KEY);
      state.key = '';
      showSignIn('Signed out.');
    });
    $('#large').addEventListener('click', () => setLarge(!document.documentElement.classList.contains('large')));
    $('#confirm-cancel').addEventListener('click', () => $('#confirm').close('cancel'));
    if (new URLSearchParams(location.search).get('large') === '1') setLarge(true);
    setInterval(tick, 1000);
    const saved = SB.store.get(STORE_KEY);
    if (saved && saved.key) { state.key = saved.key; connect(); } else showSignIn('');
  }

  function setLarge(on) {
    document.documentElement.classList.toggle('large', on);
    $('#large').setAttribute('aria-pressed', String(on));
  }

  function showSignIn(message) {
    $('#signin').hidden = false;
    $('#board').hidden = true;
    $('#me').hidden = true;
    $('#signin-button').disabled = false;
    $('#signin-error').textContent = message;
    $('#conn').textContent = '';
    $('#key').value = '';
    $('#key').focus();
  }

  function stop() {
    state.stopped = true;
    if (state.stream) state.stream.abort();
    state.stream = null;
    clearInterval(state.waitingTimer);
    for (const q of state.queues.values()) q.node.remove();
    for (const r of state.agents.values()) r.row.remove();
    state.queues.clear();
    state.agents.clear();
  }

  function connect() {
    if (state.stream) state.stream.abort();
    const ctrl = new AbortController();
    state.stream = ctrl;
    state.stopped = false;
    let first = true;
    $('#conn').textContent = 'Connecting…';
    state.api.stream(SUP + 'Watch', { includeAgents: true }, (ev) => {
      if (first) { first = false; onConnected(); }
      onEvent(ev);
    }, ctrl.signal).then(() => ended(ctrl, null), (e) => ended(ctrl, e));
    // An empty center sends nothing at first: the stream is up once the call is answered.
    setTimeout(() => { if (first && state.stream === ctrl && !ctrl.signal.aborted) { first = false; onConnected(); } }, 1500);
  }

  function onConnected() {
    SB.store.set(STORE_KEY, { key: state.key });
    $('#signin').hidden = true;
    $('#board').hidden = false;
    $('#me').hidden = false;
    $('#conn').textContent = 'Live';
    $('#conn').className = 'conn ok';
    clearInterval(state.waitingTimer);
    refreshWaiting();
    state.waitingTimer = setInterval(refreshWaiting, 2000);
  }

  function ended(ctrl, e) {
    if (ctrl !== state.stream || ctrl.signal.aborted) return;
    state.stream = null;
    clearInterval(state.waitingTimer);
    if (e && (e.code === 16 || e.code === 7)) {
      SB.store.clear(STORE_KEY);
      state.stopped = true;
      return showSignIn(e.code === 16 ? 'That key or token was not accepted: ' + e.message : 'This key may not supervise: ' + e.message);
    }
    $('#conn').textContent = 'Reconnecting' + (e ? ' (' + e.message + ')' : '') + '…';
    $('#conn').className = 'conn bad';
    setTimeout(() => { if (!state.stopped && !state.stream) connect(); }, 2000);
  }

  function onEvent(ev) {
    if (ev.queue) { showQueue(ev.queue); soonWaiting(); }
    if (ev.agent) showAgent(ev.agent);
  }

  // A queue changed: the waiting list follows shortly, not only at its next regular read.
  let soon = null;
  function soonWaiting() {
    if (soon) return;
    soon = setTimeout(() => { soon = null; refreshWaiting(); }, 250);
  }

  // ------------------------------------------------------------------ queues

  function showQueue(f) {
    let q = state.queues.get(f.queue);
    if (!q) {
      q = { history: [] };
      q.node = el('article', { class: 'card queue-tile', 'data-queue': f.queue, 'aria-label': 'Queue ' + f.queue });
      state.queues.set(f.queue, q);
      const tiles = [...$('#queues').children];
      const after = tiles.find((t) => t.dataset.queue > f.queue);
      $('#queues').insertBefore(q.node, after || null);
    }
    q.figures = f;
    q.seenAt = Date.now();
    const sl = f.serviceLevelPercent;
    q.history.push({ at: Date.now(), waiting: f.waiting, sl: sl === undefined ? null : sl });
    while (q.history.length && q.history[0].at < Date.now() - HOUR) q.history.shift();
    paintQueue(q);
  }

  function paintQueue(q) {
    const f = q.figures;
    const cfg = state.boot.config;
    const sl = f.serviceLevelPercent;
    const longest = f.longestWaitMs + (f.waiting ? Date.now() - q.seenAt : 0);
    const breaches = [];
    if (sl !== undefined && sl < cfg.serviceLevelTargetPercent) breaches.push('service level below ' + cfg.serviceLevelTargetPercent + '%');
    if (cfg.waitingAlert && f.waiting > cfg.waitingAlert) breaches.push('more than ' + cfg.waitingAlert + ' waiting');
    if (cfg.longestWaitAlertSecs && f.waiting && longest > cfg.longestWaitAlertSecs * 1000) breaches.push('waiting over ' + duration(cfg.longestWaitAlertSecs * 1000));
    const ended = f.accepted + f.abandoned;
    const abandonRate = ended ? Math.round((100 * f.abandoned) / ended) + '%' : '-';
    const byPresence = Object.entries(f.agentsByPresence || {}).filter(([, n]) => n > 0).map(([s, n]) => n + ' ' + s.replace('_', ' ')).join(' · ') || 'no agents';
    const fig = (label, value, cls) => el('div', { class: 'fig ' + (cls || '') }, el('span', { class: 'label' }, label), el('span', { class: 'value' }, value));
    q.node.classList.toggle('breach', breaches.length > 0);
    // Opening hours: said in words, with when that changes.
    let hours = null;
    if (f.open !== undefined) {
      const next = SB.ms(f.nextChange);
      const when = next ? (next - Date.now() < 86400000 ? SB.clock(next) : SB.dateTime(next)) : null;
      hours = el('span', { class: 'hours ' + (f.open ? 'open' : 'closed') }, f.open ? 'Open' + (when ? ' · closes ' + when : '') : 'Closed' + (when ? ' · opens ' + when : ''));
    }
    q.node.classList.toggle('closed', f.open === false);
    q.node.replaceChildren(
      el('h3', {}, f.queue, breaches.length ? el('span', { class: 'breach-text' }, ' · ' + breaches.join(', ')) : null),
      hours,
      el('div', { class: 'figs' },
        fig('Waiting', String(f.waiting), 'waiting'),
        fig('Longest wait', f.waiting ? duration(longest) : '-', 'longest'),
        fig('Service level', sl === undefined ? '-' : sl.toFixed(0) + '%', 'sl'),
        fig('ASA', f.accepted ? duration(f.averageSpeedOfAnswerSecs * 1000) : '-'),
        fig('AHT', f.averageHandleTimeSecs ? duration(f.averageHandleTimeSecs * 1000) : '-'),
        fig('Abandoned', abandonRate),
        fig('Offered', String(f.offered)),
        fig('Accepted', String(f.accepted)),
        fig('Missed', String(f.missed)),
        // Callbacks: shown once a queue has any.
        f.callbacksRequested || f.callbacksConnected || f.callbacksFailed
          ? fig('Callbacks', (f.callbacksRequested || 0) + ' asked · ' + (f.callbacksConnected || 0) + ' reached · ' + (f.callbacksFailed || 0) + ' failed', 'callbacks')
          : null),
      el('p', { class: 'agents-line' }, 'Agents: ' + byPresence + ' · occupancy ' + Math.round(f.occupancyPercent) + '%'),
      chart(q.history),
      el('p', { class: 'muted window' }, 'Counts over the last ' + duration(f.windowSecs * 1000)));
  }

  // The last hour (since the page opened, at most): waiting as bars' line, service level dashed.
  function chart(history) {
    const W = 300, H = 60, now = Date.now();
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('class', 'chart');
    svg.setAttribute('role', 'img');
    // The latest figures hold until the next: drawn on to now.
    if (history.length) history = history.concat([{ ...history[history.length - 1], at: now }]);
    const maxWaiting = Math.max(1, ...history.map((h) => h.waiting));
    // The span grows with what the page has seen, from 5 minutes up to the hour.
    const span = Math.min(HOUR, Math.max(5 * 60 * 1000, history.length ? now - history[0].at : 0));
    const x = (at) => W - ((now - at) / span) * W;
    const line = (points, cls) => {
      if (points.length < 1) return;
      const p = document.createElementNS(ns, 'polyline');
      p.setAttribute('points', points.map(([a, b]) => a.toFixed(1) + ',' + b.toFixed(1)).join(' '));
      p.setAttribute('class', cls);
      svg.append(p);
    };
    line(history.map((h) => [x(h.at), H - 2 - (h.waiting / maxWaiting) * (H - 4)]), 'waiting-line');
    line(history.filter((h) => h.sl !== null).map((h) => [x(h.at), H - 2 - (h.sl / 100) * (H - 4)]), 'sl-line');
    const last = history[history.length - 1];
    svg.setAttribute('aria-label', 'Last hour: waiting up to ' + maxWaiting + (last && last.sl !== null ? ', service level now ' + last.sl.toFixed(0) + '%' : ''));
    return el('figure', { class: 'chart-box' }, svg, el('figcaption', {}, el('span', { class: 'key-waiting' }, 'waiting'), ' ', el('span', { class: 'key-sl' }, 'service level'), ' · last ' + Math.round(span / 60000) + ' min'));
  }

  // ------------------------------------------------------------------ agents

  function showAgent(a) {
    let r = state.agents.get(a.agentId);
    if (!r) {
      r = { row: el('tr', { 'data-agent': a.agentId }) };
      state.agents.set(a.agentId, r);
      const rows = [...$('#agents tbody').children];
      const after = rows.find((t) => t.dataset.agent > a.agentId);
      $('#agents tbody').insertBefore(r.row, after || null);
    }
    r.agent = a;
    paintAgent(r);
  }

  function paintAgent(r) {
    const a = r.agent;
    if (!r.cells) {
      // Built once; later changes update the cells, so the buttons keep the focus.
      const btn = (text, f) => el('button', { type: 'button', onclick: () => f(r.agent), 'aria-label': text + ': ' + a.agentId }, text);
      r.cells = { who: el('th', { scope: 'row' }), state: el('td'), since: el('td', { class: 'since' }), work: el('td') };
      r.ready = btn('Ready', (ag) => force(ag, { state: 'PRESENCE_STATE_READY' }));
      r.notReady = btn('Not ready', (ag) => force(ag, null));
      r.logout = btn('Log out', logout);
      r.row.replaceChildren(r.cells.who, r.cells.state, r.cells.since, r.cells.work, el('td', { class: 'actions' }, r.ready, r.notReady, r.logout));
    }
    const since = SB.ms(a.presenceSince);
    const work = Object.keys(a.capacity || {}).sort().filter((c) => (a.capacity[c] || 0) > 0 || (a.load || {})[c])
      .map((c) => c + ' ' + ((a.load || {})[c] || 0) + '/' + (a.capacity[c] || 0)).join(' · ');
    const offline = a.presence && a.presence.state === 'PRESENCE_STATE_OFFLINE';
    r.cells.who.textContent = a.name && a.name !== a.agentId ? a.name + ' (' + a.agentId + ')' : a.agentId;
    r.cells.state.replaceChildren(el('span', { class: 'badge ' + SB.presenceClass(a.presence) }, SB.presence(a.presence)), a.connected || offline ? '' : ' · disconnected');
    r.cells.since.textContent = since ? duration(Date.now() - since) : '-';
    r.cells.work.textContent = work || '-';
    r.ready.disabled = !a.connected;
    r.notReady.disabled = offline;
    r.logout.disabled = offline;
  }

  async function force(a, presence) {
    let p = presence;
    if (!p) {
      const reason = await ask('Set ' + a.agentId + ' not ready?', 'Their offers go back to the queue; current work stays with them.', 'Reason', 'supervisor');
      if (reason === null) return;
      p = { state: 'PRESENCE_STATE_NOT_READY', reason };
    } else if ((await ask('Set ' + a.agentId + ' ready?', 'They will be offered work at once.')) === null) return;
    call('ForcePresence', { agentId: a.agentId, presence: p }, (st) => showAgent(st));
  }

  async function logout(a) {
    if ((await ask('Log ' + a.agentId + ' out?', 'Their desktop closes and their offers go back to the queue.')) === null) return;
    call('LogoutAgent', { agentId: a.agentId }, (st) => showAgent(st));
  }

  // ------------------------------------------------------------------ waiting list

  async function refreshWaiting() {
    try {
      const res = await state.api.unary(SUP + 'ListWaiting', { limit: 50 });
      paintWaiting(res.interactions);
    } catch (e) {
      if (e.code !== 14) SB.alert('Waiting list: ' + SB.reason(e));
    }
  }

  // Rows are kept by interaction and updated in place: a refresh never pulls a button from
  // under the pointer or the focus from the keyboard.
  const waitingRows = new Map();
  function paintWaiting(list) {
    const body = $('#waiting tbody');
    const seen = new Set();
    const rows = list.map((ix) => {
      seen.add(ix.id);
      let r = waitingRows.get(ix.id);
      if (!r) {
        const btn = (text, f) => el('button', { type: 'button', onclick: () => f(r.ix), 'aria-label': text + ': ' + ix.customerAddress }, text);
        r = { cells: { queue: el('td'), since: el('td', { class: 'since' }), priority: el('td') } };
        r.row = el('tr', { 'data-id': ix.id },
          r.cells.queue,
          el('td', {}, SB.channel(ix.channel)),
          el('th', { scope: 'row' }, ix.customerAddress || '-', ix.subject ? el('span', { class: 'muted' }, ' · ' + ix.subject) : null),
          r.cells.since,
          r.cells.priority,
          el('td', { class: 'actions' }, btn('Move', move), btn('Priority', reprioritize), btn('Withdraw', withdraw)));
        waitingRows.set(ix.id, r);
      }
      r.ix = ix;
      const enq = SB.ms(ix.enqueuedAt);
      r.row.dataset.enqueued = enq || '';
      r.cells.queue.textContent = ix.queue;
      r.cells.since.textContent = enq ? duration(Date.now() - enq) : '-';
      r.cells.priority.textContent = String(ix.priority);
      return r.row;
    });
    for (const [id, r] of waitingRows) if (!seen.has(id)) { r.row.remove(); waitingRows.delete(id); }
    // Re-appending a row already in place moves nothing; only the order changes.
    rows.forEach((row, i) => { if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null); });
    $('#waiting-none').hidden = list.length > 0;
    $('#waiting').hidden = list.length === 0;
  }

  async function move(ix) {
    const queue = await ask('Move this interaction?', 'It keeps its age in the new queue.', 'To queue', ix.queue);
    if (queue === null) return;
    call('MoveInteraction', { interactionId: ix.id, queue: queue.trim() }, refreshWaiting);
  }

  async function reprioritize(ix) {
    const v = await ask('Change its priority?', 'Higher is offered first (0 to 1000).', 'Priority', String(ix.priority));
    if (v === null) return;
    const priority = Number(v);
    if (!Number.isInteger(priority)) { SB.alert('Priority: ' + JSON.stringify(v) + ' is not a whole number.'); return; }
    call('ReprioritizeInteraction', { interactionId: ix.id, priority }, refreshWaiting);
  }

  async function withdraw(ix) {
    const reason = await ask('Withdraw this interaction?', 'It leaves the queue and ends as abandoned. This cannot be undone.', 'Reason', 'supervisor');
    if (reason === null) return;
    call('WithdrawInteraction', { interactionId: ix.id, reason }, refreshWaiting);
  }

  async function call(method, request, done) {
    try {
      const res = await state.api.unary(SUP + method, request);
      SB.clearAlert();
      if (done) done(res);
    } catch (e) {
      SB.alert(SB.reason(e));
    }
  }

  // The confirmation dialog: resolves to the field's value ('' without a field), or null.
  function ask(title, text, label, value) {
    const d = $('#confirm');
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-field').hidden = !label;
    $('#confirm-label').textContent = label || '';
    $('#confirm-input').value = value || '';
    return new Promise((resolve) => {
      d.addEventListener('close', () => resolve(d.returnValue === 'cancel' || d.returnValue === '' ? null : (label ? $('#confirm-input').value : '')), { once: true });
      d.returnValue = '';
      d.showModal();
      (label ? $('#confirm-input') : $('#confirm-ok')).focus();
    });
  }
  $('#confirm-form').addEventListener('submit', (ev) => { ev.preventDefault(); $('#confirm').close('ok'); });

  function tick() {
    for (const q of state.queues.values()) if (q.figures && q.figures.waiting) paintQueue(q);
    for (const r of state.agents.values()) {
      const since = SB.ms(r.agent.presenceSince);
      const cell = r.row.querySelector('.since');
      if (cell && since) cell.textContent = duration(Date.now() - since);
    }
    for (const tr of document.querySelectorAll('#waiting tbody tr')) {
      const enq = Number(tr.dataset.enqueued);
      const cell = tr.querySelector('.since');
      if (cell && enq) cell.textContent = duration(Date.now() - enq);
    }
  }

  SB.supervisor = { state };
  start();
})();
