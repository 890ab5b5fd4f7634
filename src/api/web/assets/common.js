// What both pages share: building the DOM from text (never from HTML, so whatever a customer
// wrote shows as text), times and durations for people, and the alert line.
'use strict';

(function () {
  const SB = (window.SB = window.SB || {});

  // el('button', {class: 'x', onclick: f, 'aria-label': 'y'}, 'text', child...)
  SB.el = function (tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  };

  SB.$ = (sel, root) => (root || document).querySelector(sel);

  // 75 s → "1:15", 3725 s → "1:02:05".
  SB.duration = function (ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '-';
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (n) => String(n).padStart(2, '0');
    return h ? h + ':' + two(m) + ':' + two(sec) : m + ':' + two(sec);
  };

  SB.clock = (ms) => (ms ? new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '-');
  SB.dateTime = (ms) => (ms ? new Date(ms).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' }) : '-');

  const CHANNELS = { CHANNEL_VOICE: 'Voice', CHANNEL_CHAT: 'Chat', CHANNEL_SMS: 'SMS', CHANNEL_EMAIL: 'Email' };
  SB.channel = (c) => CHANNELS[c] || '-';
  const PRESENCE = { PRESENCE_STATE_OFFLINE: 'Offline', PRESENCE_STATE_READY: 'Ready', PRESENCE_STATE_NOT_READY: 'Not ready', PRESENCE_STATE_WRAP_UP: 'Wrap-up' };
  SB.presence = (p) => {
    if (!p) return '-';
    const name = PRESENCE[p.state] || '-';
    return p.reason && p.state === 'PRESENCE_STATE_NOT_READY' ? name + ' (' + p.reason + ')' : name;
  };
  SB.presenceClass = (p) => (p ? String(p.state).replace('PRESENCE_STATE_', '').toLowerCase().replace('_', '-') : 'offline');

  // The alert line: the server's own words, until dismissed or replaced.
  SB.alert = function (message, kind) {
    const a = document.getElementById('alert');
    a.replaceChildren(
      SB.el('span', { class: 'alert-text' }, message),
      SB.el('button', { type: 'button', class: 'link', onclick: () => { a.hidden = true; }, 'aria-label': 'Dismiss message' }, 'Dismiss'),
    );
    a.className = 'alert ' + (kind || 'error');
    a.hidden = false;
  };
  SB.clearAlert = () => { document.getElementById('alert').hidden = true; };

  // What a refusal says, for people: the server's message, with its code's name for support.
  SB.reason = (e) => (e && e.codeName ? e.message + ' (' + e.codeName.toLowerCase().replace(/_/g, ' ') + ')' : String((e && e.message) || e));

  // Keeps the sign-in for this tab only (sessionStorage), so a reload resumes without asking.
  SB.store = {
    get(key) { try { return JSON.parse(sessionStorage.getItem(key)); } catch (_) { return null; } },
    set(key, v) { sessionStorage.setItem(key, JSON.stringify(v)); },
    clear(key) { sessionStorage.removeItem(key); },
  };

  SB.id = () => Math.random().toString(36).slice(2, 10);
})();
