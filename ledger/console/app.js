// app.js — the ledger console: two views over the admin API (/v1/...).
//
// The admin token is kept in sessionStorage (gone when the tab closes) and
// sent as "Authorization: Bearer"; the pages themselves need no login.
// Everything shown is put in the page with textContent, never as HTML:
// transcoding types and node names come from the farm.
'use strict';

const TOKEN_KEY = 'ffmeter.ledger.token';
const US_PER_MIN = 60000000;

const $ = (sel) => document.querySelector(sel);

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

function say(text, kind) {
  const m = $('#message');
  if (!text) { m.hidden = true; return; }
  m.textContent = text;
  m.className = 'message ' + (kind || 'info');
  m.hidden = false;
}

// Minutes with 3 decimals, truncated, from exact integer microseconds
// (the API also sends *_min strings computed the same way by the server).
function minutes(us) {
  if (us === null || us === undefined) return '—';
  const neg = us < 0;
  const a = Math.abs(us);
  const whole = Math.floor(a / US_PER_MIN);
  const milli = Math.floor((a % US_PER_MIN) / 60000);
  return (neg ? '-' : '') + whole + '.' + String(milli).padStart(3, '0');
}

function when(ms) {
  if (!ms) return '—';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '').replace(/Z$/, '');
}

async function api(method, path, body) {
  const opts = { method, headers: { 'Authorization': 'Bearer ' + token() } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new Error('the ledger did not answer (' + e.message + ')');
  }
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const msg = data && data.error ? data.error.message : 'HTTP ' + res.status;
    if (res.status === 401) throw new Error('token refused: ' + msg);
    throw new Error(msg);
  }
  return data;
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function emptyRow(tbody, text) {
  tbody.replaceChildren();
  const tr = document.createElement('tr');
  const td = cell(tr, text, 'empty');
  td.colSpan = 9;
  tbody.appendChild(tr);
}

function query(form, names) {
  const q = new URLSearchParams();
  for (const n of names) {
    const v = form.elements[n].value.trim();
    if (v) q.set(n, v);
  }
  return q;
}

// ----------------------------------------------------------- packs view --

const TYPE_NAMES = { general: 'General', tsc: 'TSC' };

function actionButton(td, label, handler, enabled, title) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'link';
  b.textContent = label;
  b.disabled = !enabled;
  if (title) b.title = title;
  b.addEventListener('click', handler);
  td.appendChild(b);
}

async function packAction(p, action) {
  const verbs = { refund: 'Refund', freeze: 'Freeze', unfreeze: 'Unfreeze' };
  if (!confirm(verbs[action] + ' pack ' + p.id + '?')) return;
  try {
    await api('POST', '/v1/packs/' + encodeURIComponent(p.id) + '/' + action, {});
    say(verbs[action] + ': pack ' + p.id + ' done.', 'ok');
    loadPacks();
  } catch (e) {
    say(verbs[action] + ' refused: ' + e.message, 'error');
  }
}

async function assignPack(p) {
  const node = prompt('Assign pack ' + p.id + ' to node:', p.node || '');
  if (!node) return;
  try {
    await api('POST', '/v1/packs/' + encodeURIComponent(p.id) + '/assign', { node: node.trim() });
    say('Pack ' + p.id + ' assigned to ' + node.trim() + '.', 'ok');
    loadPacks();
  } catch (e) {
    say('Assign refused: ' + e.message, 'error');
  }
}

async function loadPacks() {
  const tbody = $('#packs-body');
  if (!token()) { emptyRow(tbody, 'Enter the admin token to see the packs.'); return; }
  const q = query($('#packs-filter'), ['id', 'status', 'type', 'node']);
  let data;
  try {
    data = await api('GET', '/v1/packs' + (q.toString() ? '?' + q : ''));
  } catch (e) {
    emptyRow(tbody, 'Could not load packs.');
    say(e.message, 'error');
    return;
  }
  if (!data.packs.length) { emptyRow(tbody, 'No pack matches.'); return; }
  tbody.replaceChildren();
  for (const p of data.packs) {
    const tr = document.createElement('tr');
    cell(tr, p.id, 'mono');
    cell(tr, p.status, 'status status-' + p.status);
    cell(tr, TYPE_NAMES[p.type] || p.type);
    cell(tr, p.node || '—', 'mono');
    cell(tr, p.total_min || minutes(p.total_us), 'num');
    cell(tr, p.remaining_min || minutes(p.remaining_us), 'num');
    cell(tr, when(p.start_ms));
    cell(tr, when(p.end_ms));
    const td = cell(tr, '', 'actions');
    const unused = p.deductions === 0 && p.used_us === 0;
    const refundable = unused && !p.refunded_ms;
    actionButton(td, 'Refund', () => packAction(p, 'refund'), refundable,
                 refundable ? 'within 5 days of the start, only if unused' : 'used or refunded');
    if (p.frozen) actionButton(td, 'Unfreeze', () => packAction(p, 'unfreeze'), !p.refunded_ms);
    else actionButton(td, 'Freeze', () => packAction(p, 'freeze'), !p.refunded_ms);
    actionButton(td, 'Assign', () => assignPack(p), unused && !p.refunded_ms,
                 unused ? 'assign to a node' : 'a used pack stays with its node');
    tbody.appendChild(tr);
  }
}

async function buyPack(ev) {
  ev.preventDefault();
  const f = ev.target.elements;
  const body = { type: f.type.value, minutes: parseInt(f.minutes.value, 10) };
  if (f.node.value.trim()) body.node = f.node.value.trim();
  if (f.id.value.trim()) body.id = f.id.value.trim();
  try {
    const p = await api('POST', '/v1/packs', body);
    say('Bought pack ' + p.id + ' (' + p.total_min + ' minutes).', 'ok');
    ev.target.reset();
    loadPacks();
  } catch (e) {
    say('Purchase refused: ' + e.message, 'error');
  }
}

// ----------------------------------------------------------- usage view --

// "YYYY-MM-DD" from a date input → epoch ms at 00:00 UTC.
function dayMs(v) { return v ? Date.parse(v + 'T00:00:00Z') : null; }

async function loadUsage() {
  const tbody = $('#usage-body');
  if (!token()) { emptyRow(tbody, 'Enter the admin token to see usage.'); return; }
  const form = $('#usage-filter');
  const q = query(form, ['pack', 'type', 'ttype', 'node']);
  const from = dayMs(form.elements.from.value);
  const to = dayMs(form.elements.to.value);
  if (from !== null) q.set('from_ms', String(from));
  if (to !== null) q.set('to_ms', String(to + 86400000));   // the whole "to" day
  let data;
  try {
    data = await api('GET', '/v1/usage/details' + (q.toString() ? '?' + q : ''));
  } catch (e) {
    emptyRow(tbody, 'Could not load usage.');
    say(e.message, 'error');
    return;
  }
  if (!data.rows.length) { emptyRow(tbody, 'No usage matches.'); return; }
  tbody.replaceChildren();
  for (const r of data.rows) {
    const tr = document.createElement('tr');
    const d = cell(tr, r.day);
    d.title = 'first ' + when(r.first_ms) + ', last ' + when(r.last_ms) + ' (UTC)';
    cell(tr, r.pack_id || 'overage', r.pack_id ? 'mono' : 'muted');
    cell(tr, TYPE_NAMES[r.type] || r.type);
    cell(tr, r.ttype, 'mono');
    cell(tr, r.node, 'mono');
    cell(tr, r.used_min || minutes(r.used_us), 'num');
    cell(tr, r.pack_id ? (r.before_min || minutes(r.before_us)) : '—', 'num');
    cell(tr, r.pack_id ? (r.after_min || minutes(r.after_us)) : '—', 'num');
    cell(tr, String(r.count), 'num');
    tbody.appendChild(tr);
  }
}

// ------------------------------------------------------------------ tabs --

function show(tab) {
  for (const t of ['packs', 'usage']) {
    const on = t === tab;
    $('#tab-' + t).classList.toggle('active', on);
    $('#tab-' + t).setAttribute('aria-selected', on ? 'true' : 'false');
    $('#view-' + t).hidden = !on;
  }
  say('');
  (tab === 'packs' ? loadPacks : loadUsage)();
}

function current() { return $('#view-packs').hidden ? 'usage' : 'packs'; }

document.addEventListener('DOMContentLoaded', () => {
  $('#tab-packs').addEventListener('click', () => show('packs'));
  $('#tab-usage').addEventListener('click', () => show('usage'));
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('#token').value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    $('#token').value = '';
    $('#token').placeholder = v ? 'token set for this tab' : $('#token').placeholder;
    show(current());
  });
  $('#token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $('#token').placeholder = 'paste the token from `meter-ledgerd admin add`';
    show(current());
  });
  $('#packs-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadPacks(); });
  $('#usage-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadUsage(); });
  $('#buy-form').addEventListener('submit', buyPack);
  if (token()) $('#token').placeholder = 'token set for this tab';
  show('packs');
});
