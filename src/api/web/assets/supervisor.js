// The wallboard: `Supervisor.Watch` streams queue figures (at most once a second per queue) and
// agent states; the waiting list is read every two seconds; interventions ask first; "Explain" shows
// Supervisor.ExplainInteraction / ExplainAgent.
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
    $('#explain-ix-form').addEventListener('submit', (ev) => { ev.preventDefault(); explain({ kind: 'interaction', id: $('#explain-ix').value.trim() }, false); });
    $('#explain-agent-form').addEventListener('submit', (ev) => { ev.preventDefault(); explain({ kind: 'agent', id: $('#explain-agent').value.trim() }, false); });
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
    // The next key may see less: nothing of this one's answers stays on the page.
    clearExplanation();
    $('#explain-ix').value = '';
    $('#explain-agent').value = '';
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
      hours || '',
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
      r.explain = btn('Explain', (ag) => explain({ kind: 'agent', id: ag.agentId }, true));
      r.row.replaceChildren(r.cells.who, r.cells.state, r.cells.since, r.cells.work, el('td', { class: 'actions' }, r.ready, r.notReady, r.logout, r.explain));
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
          el('td', { class: 'actions' }, btn('Move', move), btn('Priority', reprioritize), btn('Withdraw', withdraw),
            btn('Explain', (it) => explain({ kind: 'interaction', id: it.id }, true))));
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

  // ------------------------------------------------------------------ explain

  // The daemon's words come first (its `summary` lines); the details below are the same
  // explanation's fields, labelled for people.
  const VIA = {
    queue: 'Came to its queue; the best available agent got it',
    pull: 'An agent became free and pulled it',
    named: 'It waited for this agent by name',
  };
  const WHY = {
    ranked_lower: 'ranked lower',
    excluded: 'rejected or missed it before',
    transferred_it: 'transferred it away (tried last)',
    lower_priority: 'lower priority',
    waited_less: 'waited less',
  };
  const STANDING = {
    available: 'Available',
    excluded: 'Rejected or missed it before',
    at_capacity: 'At capacity',
    no_capacity: 'Takes none of this channel',
    blocked_by_voice: 'On a call, which holds this channel back',
    phone_not_ready: 'Phone not ready',
    disconnected: 'Ready, but the desktop is not connected',
    not_ready: 'Not ready',
    wrap_up: 'Wrap-up',
    logged_out: 'Logged out',
  };
  const words = (s) => { const w = String(s || '').replace(/_/g, ' '); return w.charAt(0).toUpperCase() + w.slice(1); };
  const standing = (s) => STANDING[s] || words(s);
  const enumWords = (v, prefix) => words(String(v || '').replace(prefix, '').toLowerCase());

  // A time of the routing clock in the viewer's time zone: with seconds today, with the date otherwise.
  function at(ms) {
    if (!ms) return '-';
    const d = new Date(ms);
    if (d.toDateString() === new Date().toDateString()) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    return SB.dateTime(ms);
  }
  // "14:05:10 (3:05 ago)" / "14:15:10 (in 6:55)" against the explanation's own clock.
  function atRel(ms, now) {
    if (!ms) return '-';
    return at(ms) + (ms <= now ? ' (' + duration(now - ms) + ' ago)' : ' (in ' + duration(ms - now) + ')');
  }

  let explainSeq = 0;
  let lastExplained = null;

  function clearExplanation() {
    explainSeq++;
    lastExplained = null;
    $('#explain-said').replaceChildren(el('p', { class: 'muted' }, 'Nothing explained yet.'));
    $('#explain-details').replaceChildren();
  }

  // `what`: {kind: 'interaction' | 'agent', id}. From a row, the focus moves to the answer (far
  // below the row); from the form it stays in the field, and the live region reads the answer.
  async function explain(what, focus) {
    const noun = what.kind === 'interaction' ? 'interaction' : 'agent';
    const said = $('#explain-said');
    const heading = (text) => el('h3', { id: 'explain-heading', tabindex: '-1' }, text);
    if (what.kind === 'interaction') $('#explain-ix').value = what.id; else $('#explain-agent').value = what.id;
    if (!what.id) {
      said.replaceChildren(el('p', { class: 'error explain-error' }, 'Enter an ' + noun + ' id to explain.'));
      $('#explain-details').replaceChildren();
      return;
    }
    const seq = ++explainSeq;
    said.setAttribute('aria-busy', 'true');
    let shown;
    try {
      const x = what.kind === 'interaction'
        ? await state.api.unary(SUP + 'ExplainInteraction', { interactionId: what.id })
        : await state.api.unary(SUP + 'ExplainAgent', { agentId: what.id });
      if (seq !== explainSeq) return;
      shown = what.kind === 'interaction' ? interactionExplanation(x) : agentExplanation(x);
      lastExplained = what;
    } catch (e) {
      if (seq !== explainSeq) return;
      lastExplained = null;
      shown = {
        said: [heading('Cannot explain ' + noun + ' ' + what.id), el('p', { class: 'error explain-error' }, SB.reason(e))],
        details: [],
      };
    } finally {
      if (seq === explainSeq) said.setAttribute('aria-busy', 'false');
    }
    said.replaceChildren(...shown.said);
    $('#explain-details').replaceChildren(...shown.details);
    if (focus) { const h = $('#explain-heading'); if (h) h.focus(); }
  }

  function explainHead(title, summary, nowMs) {
    return [
      el('h3', { id: 'explain-heading', tabindex: '-1' }, title),
      el('ul', { class: 'explain-summary' }, summary.map((line) => el('li', {}, line))),
      el('p', { class: 'muted explain-now' }, 'As of ' + at(nowMs) + '.'),
    ];
  }

  function explainTools() {
    return el('div', { class: 'row explain-tools' },
      el('button', { type: 'button', class: 'explain-again', onclick: () => { if (lastExplained) explain(lastExplained, true); } }, 'Explain again'),
      el('button', { type: 'button', class: 'explain-clear', onclick: () => { clearExplanation(); $('#explain-ix').focus(); } }, 'Clear'));
  }

  const facts = (pairs) => el('dl', { class: 'facts' }, pairs.filter((p) => p && p[1] !== null && p[1] !== undefined && p[1] !== '')
    .map(([k, v, cls]) => [el('dt', {}, k), el('dd', { class: cls || null }, v)]));

  function table(cls, caption, headers, rows) {
    return el('table', { class: 'grid explain-table ' + cls },
      el('caption', {}, caption),
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows));
  }

  const agentButton = (id) => el('button', { type: 'button', class: 'link', 'aria-label': 'Explain agent ' + id, onclick: () => explain({ kind: 'agent', id }, true) }, id);

  function interactionExplanation(x) {
    const ix = x.interaction || {};
    const now = SB.ms(x.now) || Date.now();
    const enq = SB.ms(ix.enqueuedAt);
    const head = explainHead('Interaction ' + ix.id, x.summary, now);
    const details = [facts([
      ['Queue', ix.queue],
      ['Channel', SB.channel(ix.channel)],
      ['State', enumWords(ix.state, 'INTERACTION_STATE_'), 'ix-state'],
      ['Customer', ix.customerAddress || '-'],
      ['Priority', String(ix.priority)],
      ['Entered the queue', enq ? atRel(enq, now) : null],
      ['Escalation stage', String(ix.escalationStage || 0)],
      ['Agent', ix.agentId || null],
    ])];
    const w = x.waiting;
    if (w) {
      const reqs = Object.entries(w.requirements || {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([s, l]) => s + ' ≥ ' + l).join(', ') || 'none';
      details.push(el('h4', {}, 'While it waits'), facts([
        ['Stage', String(w.stage), 'w-stage'],
        ['Requirements now', reqs, 'w-requirements'],
        ['Ahead of it', String(w.ahead), 'w-ahead'],
        ['Queue', w.queueClosed ? 'Closed' + (SB.ms(w.opens) ? ' · opens ' + atRel(SB.ms(w.opens), now) : ' · no opening in sight') : 'Open'],
        ['Callback not before', SB.ms(w.notBefore) ? atRel(SB.ms(w.notBefore), now) : null],
        ['Waits for agent', w.namedAgentId || null],
      ]));
      details.push(w.candidates.length
        ? table('explain-candidates', 'Agents who meet stage ' + w.stage + ', best standing first', ['Agent', 'Standing now'],
          w.candidates.map((c) => el('tr', { 'data-explain-agent': c.agentId }, el('th', { scope: 'row' }, agentButton(c.agentId)), el('td', { class: 'standing' }, standing(c.standing)))))
        : el('p', { class: 'muted' }, 'No agent meets stage ' + w.stage + '.'));
      details.push(el('h4', {}, 'Next escalation step'), el('p', { class: 'next-step' }, nextStep(w.nextStep, now)));
    }
    details.push(x.decisions.length
      ? table('explain-decisions', 'Routing decisions, oldest first', ['When', 'How', 'Offered to', 'Queue and stage', 'Winner', 'Could take it', 'Passed over'],
        x.decisions.map((d) => decisionRow(d)))
      : el('p', { class: 'muted no-decisions' }, 'Not offered to anyone yet.'));
    details.push(explainTools());
    return { said: head, details };
  }

  function nextStep(n, now) {
    if (!n) return 'None: no further step relaxes what it needs.';
    let what;
    if (n.action === 'drop_skill') what = 'drop the ' + n.skill + ' requirement';
    else if (n.action === 'lower_level') what = 'lower ' + n.skill + ' to level ' + n.minLevel;
    else if (n.action === 'overflow') what = 'move it to queue ' + n.overflowQueue;
    else what = words(n.action);
    const gain = n.eligibleAfter === undefined ? '' : ' — ' + n.eligibleAfter + ' agent' + (n.eligibleAfter === 1 ? '' : 's') + ' eligible then';
    return 'At ' + atRel(SB.ms(n.at), now) + ': ' + what + gain + '.';
  }

  function decisionRow(d) {
    const when = SB.ms(d.at);
    const score = [];
    if (d.strategy) score.push(words(d.strategy));
    if (d.skill !== undefined) score.push('skill ' + d.skill);
    if (d.occupancyPermille !== undefined) score.push(Math.round(d.occupancyPermille / 10) + '% occupied');
    const idle = SB.ms(d.idleSince);
    if (idle && when && idle <= when) score.push('idle ' + duration(when - idle) + ' (since ' + at(idle) + ')');
    const enq = SB.ms(d.enqueued);
    if (d.via === 'pull') {
      score.push('priority ' + d.priority);
      if (enq && when && enq <= when) score.push('waited ' + duration(when - enq));
    }
    let could = '-';
    if (d.via === 'queue') could = d.considered + ' of ' + d.eligible + ' eligible';
    else if (d.via === 'pull') could = 'first of ' + (d.candidates || 1) + ' waiting in ' + d.pools + ' pool' + (d.pools === 1 ? '' : 's');
    const passed = d.passed.length
      ? el('ul', { class: 'passed' }, d.passed.map((p) => {
        const extra = [];
        if (p.skill !== undefined) extra.push('skill ' + p.skill);
        if (p.occupancyPermille !== undefined) extra.push(Math.round(p.occupancyPermille / 10) + '% occupied');
        if (p.interactionId && p.queue) extra.push(p.queue + ' stage ' + p.stage + ', priority ' + p.priority);
        return el('li', {}, (p.agentId || p.interactionId) + ' — ' + (WHY[p.why] || words(p.why)) + (extra.length ? ' (' + extra.join(', ') + ')' : ''));
      }))
      : 'nobody';
    return el('tr', { class: 'decision' },
      el('td', {}, at(when)),
      el('td', { class: 'via' }, VIA[d.via] || words(d.via)),
      el('th', { scope: 'row', class: 'to' }, d.agentId),
      el('td', { class: 'pool' }, d.queue ? d.queue + ', stage ' + d.stage : '-'),
      el('td', { class: 'score' }, score.join(' · ') || '-'),
      el('td', { class: 'could' }, could),
      el('td', {}, passed));
  }

  function agentExplanation(x) {
    const now = SB.ms(x.now) || Date.now();
    const head = explainHead('Agent ' + x.agentId, x.summary, now);
    const details = [facts([
      ['Presence', SB.presence({ state: x.presence, reason: x.presenceReason }), 'a-presence'],
      ['Desktop', x.connected ? 'Connected' : 'Not connected', 'a-desktop'],
      ['Phone', x.phone ? words(x.phone) : 'Not reported', 'a-phone'],
    ])];
    details.push(x.channels.length
      ? table('explain-channels', 'Work per channel', ['Channel', 'In use / capacity', 'Standing'],
        x.channels.map((c) => el('tr', { 'data-explain-channel': c.channel },
          el('th', { scope: 'row' }, SB.channel(c.channel)),
          el('td', { class: 'load' }, c.load + ' / ' + c.capacity),
          el('td', { class: 'standing' }, standing(c.standing)))))
      : el('p', { class: 'muted' }, 'No channel.'));
    details.push(x.queues.length
      ? table('explain-queues', 'Queues: where this agent is eligible, or what the agent lacks', ['Queue', 'Eligible', 'Lacks', 'Per channel'],
        x.queues.map((q) => el('tr', { 'data-explain-queue': q.queue },
          el('th', { scope: 'row' }, q.queue),
          el('td', { class: 'eligible' }, (q.stage === undefined ? 'At no stage' : q.stage === 0 ? 'From the start' : 'From stage ' + q.stage) + (q.closed ? ' (closed now)' : '')),
          el('td', { class: 'lacks' }, q.lacks.length ? q.lacks.join(', ') : '-'),
          el('td', { class: 'per-channel' }, q.stage === undefined || !q.channels.length ? '-'
            : el('ul', { class: 'passed' }, q.channels.map((c) => el('li', {}, SB.channel(c.channel) + ': ' + c.waiting + ' waiting, ' + standing(c.standing).toLowerCase())))))))
      : el('p', { class: 'muted' }, 'No queue to show.'));
    details.push(explainTools());
    return { said: head, details };
  }

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
