// app.js — the ledger console: four views over the admin API (/v1/...):
// accounts, resource packs, usage details and leases.
//
// The admin token is kept in sessionStorage (gone when the tab closes) and
// sent as "Authorization: Bearer"; the pages themselves need no login.
// Everything shown is put in the page with textContent, never as HTML:
// transcoding types and node names come from the farm.
//
// Amounts are exact integer microseconds in the API; they are shown as
// minutes with 3 decimals (truncated) computed with BigInt division and
// remainder, never through floating point.  Integers beyond 2^53 are read
// from the JSON text itself (JSON.parse's source access) so they stay exact.
'use strict';

const TOKEN_KEY = 'ffmeter.ledger.token';
const US_PER_MIN = 60000000n;
const US_PER_MILLI_MIN = 60000n;

const $ = (sel) => document.querySelector(sel);

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

// One line in the message bar (an error message from the ledger may hold
// line breaks: they become spaces).
function say(text, kind) {
  const m = $('#message');
  if (!text) { m.hidden = true; return; }
  m.textContent = String(text).replace(/\s*[\r\n]+\s*/g, ' ').trim();
  m.className = 'message ' + (kind || 'info');
  m.hidden = false;
}

// An exact integer as a BigInt: a BigInt, a safe integer Number or a
// string of digits; null for anything else (a Number past 2^53 that the
// JSON reader could not keep exact is not guessed at).
function exact(v) {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?[0-9]+$/.test(v)) return BigInt(v);
  return null;
}

// Minutes with 3 decimals, truncated toward zero, from exact integer
// microseconds: integer division and remainder (as meter_format_minutes
// does on the server, whose *_min strings are the fallback).
function minutes(us, fallback) {
  const x = exact(us);
  if (x === null) return typeof fallback === 'string' ? fallback : '—';
  const a = x < 0n ? -x : x;
  const whole = a / US_PER_MIN;
  const milli = (a % US_PER_MIN) / US_PER_MILLI_MIN;
  return (x < 0n ? '-' : '') + whole.toString() + '.' + milli.toString().padStart(3, '0');
}

// Σ of exact integers (null when one is not exact).
function sum(values) {
  let t = 0n;
  for (const v of values) {
    const x = exact(v);
    if (x === null) return null;
    t += x;
  }
  return t;
}

// JSON with integers beyond Number's exact range kept as BigInt, where the
// browser gives the reviver the number's source text.
function parseJSON(text) {
  return JSON.parse(text, function (key, value, ctx) {
    if (typeof value === 'number' && !Number.isSafeInteger(value) && ctx &&
        typeof ctx.source === 'string' && /^-?[0-9]+$/.test(ctx.source)) {
      return BigInt(ctx.source);
    }
    return value;
  });
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
  try { data = parseJSON(await res.text()); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const msg = data && data.error && data.error.message ? data.error.message
      : 'HTTP ' + res.status + (res.statusText ? ' ' + res.statusText : '');
    if (res.status === 401) throw new Error('token refused: ' + msg);
    throw new Error(msg + ' (' + method + ' ' + path.split('?')[0] + ', HTTP ' + res.status + ')');
  }
  if (data === null || typeof data !== 'object') {
    throw new Error('the ledger sent no JSON (' + method + ' ' + path.split('?')[0] + ')');
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
  td.colSpan = tbody.closest('table').querySelectorAll('thead th').length;
  tbody.appendChild(tr);
}

// Each view's loads are numbered: an answer that arrives after a newer
// load of the same view began (filters changed meanwhile) is dropped.
const loads = {};
function begin(view) { loads[view] = (loads[view] || 0) + 1; return loads[view]; }
function stale(view, n) { return loads[view] !== n; }

// A list member of an answer; a missing or wrong one is an error.
function list(data, key) {
  if (!Array.isArray(data[key])) throw new Error('the ledger\'s answer has no "' + key + '" list');
  return data[key];
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
  const n = begin('packs');
  if (!token()) { emptyRow(tbody, 'Enter the admin token to see the packs.'); return; }
  const q = query($('#packs-filter'), ['id', 'status', 'type', 'node', 'account']);
  let packs;
  try {
    packs = list(await api('GET', '/v1/packs' + (q.toString() ? '?' + q : '')), 'packs');
  } catch (e) {
    if (stale('packs', n)) return;
    emptyRow(tbody, 'Could not load packs.');
    say('Packs: ' + e.message, 'error');
    return;
  }
  if (stale('packs', n)) return;
  if (!packs.length) { emptyRow(tbody, 'No pack matches.'); return; }
  tbody.replaceChildren();
  for (const p of packs) {
    const tr = document.createElement('tr');
    tr.dataset.pack = p.id;
    cell(tr, p.id, 'mono');
    cell(tr, p.status, 'status status-' + p.status);
    cell(tr, TYPE_NAMES[p.type] || p.type);
    cell(tr, p.account || 'default', 'mono');
    cell(tr, p.node || 'pooled', p.node ? 'mono' : 'muted');
    cell(tr, minutes(p.total_us, p.total_min), 'num total');
    // Remaining = what is left to spend: total − used − reserved by open
    // leases (free_us; a ledger before leases sends remaining_us only).
    cell(tr, p.reserved_us === undefined ? '—' : minutes(p.reserved_us, p.reserved_min), 'num reserved');
    const rem = p.free_us !== undefined ? cell(tr, minutes(p.free_us, p.free_min), 'num remaining')
      : cell(tr, minutes(p.remaining_us, p.remaining_min), 'num remaining');
    rem.title = 'total − used = ' + minutes(p.remaining_us, p.remaining_min) + ' min';
    cell(tr, when(p.start_ms));
    cell(tr, when(p.end_ms));
    const td = cell(tr, '', 'actions');
    const unused = p.deductions === 0 && p.used_us === 0;
    const reserved = exact(p.reserved_us);
    const refundable = unused && !p.refunded_ms && !(reserved !== null && reserved > 0n);
    actionButton(td, 'Refund', () => packAction(p, 'refund'), refundable,
                 refundable ? 'within 5 days of the start, only if unused'
                   : 'used, reserved by a lease, or refunded');
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
  if (f.account.value.trim()) body.account = f.account.value.trim();
  if (f.node.value.trim()) body.node = f.node.value.trim();
  if (f.id.value.trim()) body.id = f.id.value.trim();
  try {
    const p = await api('POST', '/v1/packs', body);
    say('Bought pack ' + p.id + ' (' + minutes(p.total_us, p.total_min) + ' minutes, account ' +
        (p.account || 'default') + ').', 'ok');
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
  const n = begin('usage');
  if (!token()) { emptyRow(tbody, 'Enter the admin token to see usage.'); return; }
  const form = $('#usage-filter');
  const q = query(form, ['pack', 'type', 'ttype', 'node', 'account']);
  const from = dayMs(form.elements.from.value);
  const to = dayMs(form.elements.to.value);
  if (from !== null) q.set('from_ms', String(from));
  if (to !== null) q.set('to_ms', String(to + 86400000));   // the whole "to" day
  let rows;
  try {
    rows = list(await api('GET', '/v1/usage/details' + (q.toString() ? '?' + q : '')), 'rows');
  } catch (e) {
    if (stale('usage', n)) return;
    emptyRow(tbody, 'Could not load usage.');
    say('Usage: ' + e.message, 'error');
    return;
  }
  if (stale('usage', n)) return;
  if (!rows.length) { emptyRow(tbody, 'No usage matches.'); return; }
  tbody.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement('tr');
    const d = cell(tr, r.day);
    d.title = 'first ' + when(r.first_ms) + ', last ' + when(r.last_ms) + ' (UTC)';
    cell(tr, r.pack_id || 'overage', r.pack_id ? 'mono' : 'muted');
    cell(tr, TYPE_NAMES[r.type] || r.type);
    cell(tr, r.ttype, 'mono');
    cell(tr, r.account || 'default', 'mono');
    cell(tr, r.node, 'mono');
    const used = cell(tr, minutes(r.used_us, r.used_min) + (r.overflow ? '+' : ''), 'num');
    if (r.overflow) used.title = 'the sum is beyond int64: shown as the largest value';
    cell(tr, r.pack_id ? minutes(r.before_us, r.before_min) : '—', 'num');
    cell(tr, r.pack_id ? minutes(r.after_us, r.after_min) : '—', 'num');
    cell(tr, String(r.count), 'num');
    tbody.appendChild(tr);
  }
}

// -------------------------------------------------------- accounts view --

const CLASS_ORDER = ['general', 'tsc'];

// GET /v1/accounts → [{name, classes: [{cls, total_us, used_us,
// reserved_us, remaining_us, packs}]}].  Per class figures come as a
// "classes" list ({"class": …}) or object (keyed by class), or as flat
// rows {"account", "class", …}; "packs" is a count (or a list: its length).
function accountList(data) {
  const byName = new Map();
  const entry = (name) => {
    if (!byName.has(name)) byName.set(name, { name, classes: [] });
    return byName.get(name);
  };
  const figures = (c, cls) => ({
    cls,
    total_us: c.total_us, used_us: c.used_us, reserved_us: c.reserved_us,
    remaining_us: c.remaining_us,
    total_min: c.total_min, used_min: c.used_min, reserved_min: c.reserved_min,
    remaining_min: c.remaining_min,
    packs: Array.isArray(c.packs) ? c.packs.length : c.packs,
  });
  for (const a of list(data, 'accounts')) {
    const name = a.name || a.account;
    if (typeof name !== 'string') throw new Error('an account without a name in the ledger\'s answer');
    const e = entry(name);
    // an account row's own "packs": every pack of it, whatever its state
    if (typeof a.packs === 'number' && !(a.class || a.type)) e.packs = a.packs;
    const classes = a.classes || a.by_class;
    if (Array.isArray(classes)) {
      for (const c of classes) e.classes.push(figures(c, c.class || c.type));
    } else if (classes && typeof classes === 'object') {
      for (const k of Object.keys(classes)) e.classes.push(figures(classes[k], k));
    } else if (a.class || a.type) {
      e.classes.push(figures(a, a.class || a.type));
    }
  }
  const rank = (c) => { const i = CLASS_ORDER.indexOf(c); return i < 0 ? CLASS_ORDER.length : i; };
  for (const e of byName.values()) e.classes.sort((x, y) => rank(x.cls) - rank(y.cls));
  return [...byName.values()].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

function fillDatalist(id, names) {
  const dl = $('#' + id);
  dl.replaceChildren();
  for (const n of names) {
    const o = document.createElement('option');
    o.value = n;
    dl.appendChild(o);
  }
}

// Clicking an account: the other tabs show that account only.
function filterByAccount(name) {
  for (const f of ['#packs-filter', '#usage-filter', '#leases-filter']) {
    $(f).elements.account.value = name;
  }
  show('packs');
  say('Showing account ' + name + ' in Resource packs, Usage details and Leases ' +
      '(clear the Account field to see all).', 'info');
}

async function loadAccounts() {
  const tbody = $('#accounts-body');
  const n = begin('accounts');
  if (!token()) { emptyRow(tbody, 'Enter the admin token to see the accounts.'); return; }
  let accounts;
  try {
    accounts = accountList(await api('GET', '/v1/accounts'));
  } catch (e) {
    if (stale('accounts', n)) return;
    emptyRow(tbody, 'Could not load accounts.');
    say('Accounts: ' + e.message, 'error');
    return;
  }
  if (stale('accounts', n)) return;
  fillDatalist('account-names', accounts.map((a) => a.name));
  if (!accounts.length) { emptyRow(tbody, 'No account yet.'); return; }
  tbody.replaceChildren();
  // A class without packs and with nothing used or reserved says nothing:
  // not shown (the ledger may list both classes of every account).
  const empty = (c) => [c.total_us, c.used_us, c.reserved_us, c.remaining_us]
    .every((v) => exact(v) === 0n) && String(c.packs) === '0';
  for (const a of accounts) {
    const shown = a.classes.filter((c) => !empty(c));
    const rows = shown.length ? shown : [null];
    rows.forEach((c, i) => {
      const tr = document.createElement('tr');
      tr.dataset.account = a.name;
      tr.dataset.class = c ? c.cls : '';
      if (i === 0) {
        const td = document.createElement('td');
        td.rowSpan = rows.length;
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'link mono account-link';
        b.textContent = a.name;
        b.title = 'show the packs, usage and leases of ' + a.name +
          (a.packs !== undefined ? ' (' + a.packs + ' packs in every state)' : '');
        b.addEventListener('click', () => filterByAccount(a.name));
        td.appendChild(b);
        tr.appendChild(td);
      }
      if (!c) {
        cell(tr, 'no packs', 'muted');
        for (let k = 0; k < 5; k++) cell(tr, '—', 'num');
      } else {
        cell(tr, TYPE_NAMES[c.cls] || c.cls, 'class');
        cell(tr, c.packs === undefined || c.packs === null ? '—' : String(c.packs), 'num packs');
        cell(tr, minutes(c.total_us, c.total_min), 'num total');
        cell(tr, minutes(c.used_us, c.used_min), 'num used');
        cell(tr, minutes(c.reserved_us, c.reserved_min), 'num reserved');
        cell(tr, minutes(c.remaining_us, c.remaining_min), 'num remaining');
      }
      tbody.appendChild(tr);
    });
  }
}

async function createAccount(ev) {
  ev.preventDefault();
  const name = ev.target.elements.name.value.trim();
  try {
    await api('POST', '/v1/accounts', { name });
    say('Account ' + name + ' created.', 'ok');
    ev.target.reset();
    loadAccounts();
  } catch (e) {
    say('Account refused: ' + e.message, 'error');
  }
}

// ---------------------------------------------------------- leases view --

// "in N min" / "N min ago" (whole minutes, truncated) for an expiry, by the
// ledger's clock when the answer tells it: now_ms on the list, else an open
// lease's ttl_ms (expires_ms − the ledger's now when it answered; 0 once
// resolved, so it tells nothing then), else this browser's clock.
function relative(expiresMs, nowMs) {
  const d = expiresMs - nowMs;
  const m = Math.trunc(Math.abs(d) / 60000);
  if (d >= 0) return m === 0 ? 'in <1 min' : 'in ' + m + ' min';
  return m === 0 ? '<1 min ago' : m + ' min ago';
}

function ledgerNow(data, leases) {
  if (Number.isSafeInteger(data.now_ms)) return data.now_ms;
  const l = leases.find((x) => x.state === 'open' && Number.isSafeInteger(x.ttl_ms) &&
                              x.ttl_ms > 0 && Number.isSafeInteger(x.expires_ms));
  return l ? l.expires_ms - l.ttl_ms : Date.now();
}

async function loadLeases() {
  const tbody = $('#leases-body');
  const n = begin('leases');
  if (!token()) { emptyRow(tbody, 'Enter the admin token to see the leases.'); return; }
  const form = $('#leases-filter');
  const q = query(form, ['node', 'account', 'state']);
  let data, leases;
  try {
    data = await api('GET', '/v1/leases' + (q.toString() ? '?' + q : ''));
    leases = list(data, 'leases').slice();
  } catch (e) {
    if (stale('leases', n)) return;
    emptyRow(tbody, 'Could not load leases.');
    say('Leases: ' + e.message, 'error');
    return;
  }
  if (stale('leases', n)) return;
  if (!leases.length) {
    emptyRow(tbody, form.elements.state.value === 'open' ? 'No open lease matches.' : 'No lease matches.');
    return;
  }
  // by node, then soonest expiry first
  leases.sort((x, y) => (x.node < y.node ? -1 : x.node > y.node ? 1 : (x.expires_ms || 0) - (y.expires_ms || 0)));
  const now = ledgerNow(data, leases);
  tbody.replaceChildren();
  let last = null;
  for (const l of leases) {
    const tr = document.createElement('tr');
    tr.dataset.lease = l.id;
    if (l.node !== last) tr.className = 'group-start';
    cell(tr, l.node === last ? '' : l.node, 'mono node');
    last = l.node;
    cell(tr, l.id, 'mono');
    cell(tr, l.account || 'default', 'mono account');
    cell(tr, TYPE_NAMES[l.class] || l.class, 'class');
    cell(tr, minutes(l.granted_us, l.granted_min), 'num granted');
    const posted = l.posted_us !== undefined ? l.posted_us
      : Array.isArray(l.slices) ? sum(l.slices.map((s) => s.posted_us)) : null;
    cell(tr, minutes(posted, l.posted_min), 'num posted');
    cell(tr, when(l.expires_ms), 'expires');
    // open: when it expires; resolved: when it was released or expired
    let rel = '—';
    if (l.state === 'open' && Number.isSafeInteger(l.expires_ms)) rel = relative(l.expires_ms, now);
    else if (Number.isSafeInteger(l.resolved_ms)) rel = l.state + ' ' + relative(l.resolved_ms, now);
    const r = cell(tr, rel, 'relative');
    if (l.resolved_ms) r.title = l.state + ' at ' + when(l.resolved_ms) + ' (UTC)';
    cell(tr, l.state, 'status lease-' + l.state);
    tbody.appendChild(tr);
  }
}

// Node names for the filters' suggestions (best effort: the views say
// their own errors).
async function loadNodeNames() {
  try {
    const nodes = list(await api('GET', '/v1/nodes'), 'nodes');
    fillDatalist('node-names', nodes.map((n) => n.name).filter((n) => typeof n === 'string'));
  } catch (e) {
    say('Nodes: ' + e.message, 'error');
  }
}

async function loadAccountNames() {
  try {
    fillDatalist('account-names', accountList(await api('GET', '/v1/accounts')).map((a) => a.name));
  } catch (e) {
    say('Accounts: ' + e.message, 'error');
  }
}

// ------------------------------------------------------------------ tabs --

const VIEWS = { accounts: loadAccounts, packs: loadPacks, usage: loadUsage, leases: loadLeases };

function show(tab) {
  for (const t of Object.keys(VIEWS)) {
    const on = t === tab;
    $('#tab-' + t).classList.toggle('active', on);
    $('#tab-' + t).setAttribute('aria-selected', on ? 'true' : 'false');
    $('#view-' + t).hidden = !on;
  }
  say('');
  return VIEWS[tab]();
}

function current() {
  return Object.keys(VIEWS).find((t) => !$('#view-' + t).hidden) || 'packs';
}

function suggestions() {
  if (!token()) return;
  loadNodeNames();
  if (current() !== 'accounts') loadAccountNames();
}

document.addEventListener('DOMContentLoaded', () => {
  for (const t of Object.keys(VIEWS)) $('#tab-' + t).addEventListener('click', () => show(t));
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('#token').value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    $('#token').value = '';
    $('#token').placeholder = v ? 'token set for this tab' : $('#token').placeholder;
    show(current());
    suggestions();
  });
  $('#token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $('#token').placeholder = 'paste the token from `meter-ledgerd admin add`';
    show(current());
  });
  $('#packs-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadPacks(); });
  $('#usage-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadUsage(); });
  $('#leases-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadLeases(); });
  $('#leases-filter').elements.state.addEventListener('change', () => loadLeases());
  $('#buy-form').addEventListener('submit', buyPack);
  $('#account-form').addEventListener('submit', createAccount);
  if (token()) $('#token').placeholder = 'token set for this tab';
  show('packs');
  suggestions();
});
