// picket's dashboard. Everything shown comes from the JSON API next to this
// page (/api/v1/...): there is no second source of truth. Every string the
// API returns may have been chosen by whoever runs a process (a command
// name, a user name, a rule's name), so text reaches the page through
// textContent and DOM properties only: no string is ever parsed as HTML.

import { authFetch } from './auth.js';

// CONFIG is how the page behaves.
const CONFIG = {
  refreshMs: 5000,
  journalLimit: 200,
  journalRows: 50,
  tableRows: 25, // rows of the groups and holders tables (a filter finds the rest)
  // The snapshot's heaviest rows of each table asked for (?top=): a
  // filter searches these, not the megabytes of every process on a busy host.
  snapshotTop: 500,
  kernelRows: 20, // the kernel's latest messages of a kind picket knows
  kernelPerKind: 3,
  plotGroups: 6, // groups drawn on the processes plot: the heaviest now
  plotHolders: 6,
  plotForecasts: 6, // limits drawn on the exhaustion plot: the soonest
  // Windows of the plots; step keeps each plot near 360 points.
  // secs is the window's width: the x axis spans it, ending now, however
  // few samples there are.
  windows: [
    { label: '1h', since: '1h', step: '10s', secs: 3600 },
    { label: '6h', since: '6h', step: '1m', secs: 6 * 3600 },
    { label: '24h', since: '24h', step: '5m', secs: 24 * 3600 },
    { label: '7d', since: '7d', step: '30m', secs: 7 * 24 * 3600 },
  ],
};

// SERIES names the history series the plots read, as the daemon's store
// names them (internal/history/series.go). Change them here only.
const SERIES = {
  groupPrefix: 'group/',
  // A user × command group's process count. A user name that is empty or
  // holds a "/" is replaced by the uid.
  group: (g) => `group/${g.user && !g.user.includes('/') ? g.user : g.uid}/${g.comm}/count`,
  holderPrefix: 'holder/',
  // A socket holder's socket count; start is the process's start time in
  // Unix seconds (null when unknown).
  holder: (h, start) => `holder/${h.pid}${start == null ? '' : '@' + start}/${h.comm}/total`,
  kernelPrefix: 'kernel.',
  orphans: 'kernel.sockstat.tcp.orphan',
  maxOrphans: 'kernel.tcp_max_orphans',
  tcpMemPages: 'kernel.sockstat.tcp.mem_pages',
  tcpMemHigh: 'kernel.tcp_mem_pages.high',
  psiPrefix: 'memory.psi.',
  psi: [
    ['memory.psi.memory.some_avg10', 'memory some'],
    ['memory.psi.memory.full_avg10', 'memory full'],
    ['memory.psi.cpu.some_avg10', 'cpu some'],
    ['memory.psi.io.some_avg10', 'io some'],
    ['memory.psi.io.full_avg10', 'io full'],
  ],
};

const SEVERITY_RANK = { critical: 3, warning: 2, unknown: 1, ok: 0 };
const PALETTE = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#0891b2', '#db2777', '#65a30d', '#92400e'];
const LIMIT_COLOR = '#dc2626';
// JSON numbers above this lost precision: the kernel's "no limit" values
// (LONG_MAX and friends) land here.
const UNLIMITED = 2 ** 53;

// ---- DOM helpers: text only -------------------------------------------

const $ = (sel) => document.querySelector(sel);

// el builds an element. props are DOM properties (className, title...) or,
// under "data", dataset entries; children are nodes or strings, strings
// become text nodes.
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k === 'data') Object.assign(e.dataset, v);
      else e[k] = v;
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function setText(node, s) {
  node.textContent = s;
}

// ---- formatting --------------------------------------------------------

const numFmt = new Intl.NumberFormat('en-US');
function fmtInt(n) {
  if (typeof n !== 'number' || !isFinite(n)) return '—';
  return numFmt.format(Math.round(n));
}

function fmtNum(n) {
  if (typeof n !== 'number' || !isFinite(n)) return '—';
  if (Number.isInteger(n)) return numFmt.format(n);
  return numFmt.format(Math.round(n * 100) / 100);
}

function fmtCompact(n) {
  if (n == null || !isFinite(n)) return '';
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e3) return (n / 1e3).toFixed(a >= 1e4 ? 0 : 1) + 'k';
  return fmtNum(n);
}

function fmtBytes(n) {
  if (typeof n !== 'number' || !isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? String(Math.round(v)) : v.toFixed(v >= 100 ? 0 : 1)) + ' ' + units[i];
}

function fmtPct(r) {
  if (!isFinite(r)) return '';
  const p = r * 100;
  return (p >= 10 || p === 0 ? Math.round(p) : p.toFixed(1)) + '%';
}

function fmtDelta(d) {
  if (!d) return '';
  return (d > 0 ? '+' : '−') + fmtInt(Math.abs(d));
}

function pad2(n) {
  return String(n).padStart(2, '0');
}

function fmtTime(iso) {
  const t = new Date(iso);
  if (isNaN(t)) return '';
  const now = new Date();
  const hms = `${pad2(t.getHours())}:${pad2(t.getMinutes())}:${pad2(t.getSeconds())}`;
  if (t.toDateString() === now.toDateString()) return hms;
  return `${t.getFullYear()}-${pad2(t.getMonth() + 1)}-${pad2(t.getDate())} ${hms}`;
}

function fmtAgo(seconds) {
  const s = Math.round(Math.abs(seconds));
  if (s < 90) return s + 's';
  if (s < 90 * 60) return Math.round(s / 60) + 'm';
  if (s < 36 * 3600) return Math.round(s / 3600) + 'h';
  return Math.round(s / 86400) + 'd';
}

// visible shows a name a process or user chose as term.Escape does in
// picket's terminal output: control, format and bidi characters as \x1b,
// \n, \u202e (they would hide or reorder what is around them), and a
// backslash doubled so an escape cannot be forged. Text the API already
// escaped (findings' titles, explanations and fixes) is shown as it is.
const NOT_VISIBLE = /[\\\p{C}\p{Zl}\p{Zp}]/gu;
function visible(s) {
  if (s === null || s === undefined) return '';
  return String(s).replace(NOT_VISIBLE, (c) => {
    const named = { '\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r' }[c];
    if (named) return named;
    const cp = c.codePointAt(0);
    if (cp < 0x20 || cp === 0x7f) return '\\x' + cp.toString(16).padStart(2, '0');
    return cp > 0xffff ? '\\U' + cp.toString(16).padStart(8, '0') : '\\u' + cp.toString(16).padStart(4, '0');
  });
}

// kernelText shows a message as the kernel wrote it to /dev/kmsg: it
// escaped every byte outside printable ASCII as \xNN itself, so its
// backslashes are kept as they are and only what is still not visible
// (a snapshot from elsewhere) is escaped.
const KERNEL_NOT_VISIBLE = /[\p{C}\p{Zl}\p{Zp}]/gu;
function kernelText(s) {
  if (s === null || s === undefined) return '';
  return String(s).replace(KERNEL_NOT_VISIBLE, (c) => visible(c));
}

function humanKey(k) {
  return String(k).replace(/_/g, ' ');
}

// limitOf is a kernel limit as a number, or null when unset or unlimited.
function limitOf(v) {
  return typeof v === 'number' && v > 0 && v < UNLIMITED ? v : null;
}

// ---- the API -----------------------------------------------------------

class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function getJSON(path) {
  const r = await authFetch(path, { cache: 'no-store', headers: { Accept: 'application/json' } });
  let body = null;
  try {
    body = await r.json();
  } catch {
    // not JSON: reported below by status
  }
  if (!r.ok) {
    const msg = body && typeof body.error === 'string' ? body.error : `HTTP ${r.status}`;
    throw new APIError(r.status, msg);
  }
  return body;
}

// ---- state -------------------------------------------------------------

const state = {
  snap: null,
  prevSnap: null, // the snapshot before snap, for the change columns
  window: CONFIG.windows[0],
  historyMissing: false,
  plots: new Map(), // id -> {wrap, chart, legend, empty, u, key}
  plotsBusy: false,
  plotsAgain: false,
  plotTimer: 0,
};

// ---- header ------------------------------------------------------------

function renderHeader(snap, report, error) {
  const status = $('#status');
  const sev = report ? report.status : 'unknown';
  status.dataset.severity = sev;
  setText(status, report ? sev : 'no data');
  if (snap) {
    setText($('#host'), visible(snap.host));
    document.title = `picket · ${visible(snap.host)} · ${sev}`;
    const age = (Date.now() - Date.parse(snap.time)) / 1000;
    setText($('#updated'), `collected ${fmtTime(snap.time)} (${fmtAgo(age)} ago, took ${fmtNum(snap.duration_seconds)}s)`);
  }
  const conn = $('#conn');
  conn.hidden = !error;
  if (error) setText(conn, error);
  const errs = $('#snapshot-errors');
  const list = (snap && snap.errors) || [];
  errs.hidden = list.length === 0;
  setText(errs, list.length ? 'partial collection: ' + list.map(visible).join('; ') : '');
}

// ---- findings ----------------------------------------------------------

function renderValue(v) {
  if (v === null || v === undefined) return document.createTextNode('—');
  if (Array.isArray(v)) {
    if (v.length === 0) return document.createTextNode('none');
    if (v.every((x) => x && typeof x === 'object' && !Array.isArray(x))) return objectTable(v);
    return document.createTextNode(v.map((x) => visible(typeof x === 'object' ? JSON.stringify(x) : x)).join(', '));
  }
  if (typeof v === 'object') return evidenceList(v);
  if (typeof v === 'number') return document.createTextNode(fmtNum(v));
  if (typeof v === 'boolean') return document.createTextNode(v ? 'yes' : 'no');
  return document.createTextNode(visible(v));
}

function evidenceList(obj) {
  const dl = el('dl', { className: 'evidence' });
  for (const [k, v] of Object.entries(obj)) {
    dl.append(el('dt', null, humanKey(k)), el('dd', null, renderValue(v)));
  }
  return dl;
}

function objectTable(rows) {
  const maxRows = 10;
  const cols = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const thead = el('thead', null, el('tr', null, cols.map((c) => el('th', null, humanKey(c)))));
  const tbody = el('tbody');
  for (const r of rows.slice(0, maxRows)) {
    tbody.append(el('tr', null, cols.map((c) => el('td', { className: typeof r[c] === 'number' ? 'num' : '' }, renderValue(r[c])))));
  }
  const wrap = el('div', { className: 'table-wrap' }, el('table', { className: 'mini' }, thead, tbody));
  if (rows.length > maxRows) wrap.append(el('p', { className: 'muted' }, `and ${rows.length - maxRows} more`));
  return wrap;
}

function renderFindings(report, error) {
  const box = $('#findings');
  const okBox = $('#ok-findings');
  if (!report) {
    box.replaceChildren(el('p', { className: 'muted' }, error || 'no findings yet'));
    okBox.hidden = true;
    return;
  }
  const fs = [...(report.findings || [])];
  fs.sort((a, b) => (SEVERITY_RANK[b.severity] ?? 1) - (SEVERITY_RANK[a.severity] ?? 1));
  const bad = fs.filter((f) => f.severity !== 'ok');
  const ok = fs.filter((f) => f.severity === 'ok');
  if (bad.length === 0) {
    box.replaceChildren(el('p', { className: 'all-ok' }, 'Nothing is wrong: every check is ok.'));
  } else {
    box.replaceChildren(...bad.map(findingCard));
  }
  okBox.hidden = ok.length === 0;
  setText(okBox.querySelector('summary'), `${ok.length} ${ok.length === 1 ? 'check is' : 'checks are'} ok`);
  okBox.querySelector('ul').replaceChildren(...ok.map((f) => el('li', null, el('code', null, f.id), ' ', f.title)));
}

function findingCard(f) {
  const card = el('article', { className: 'finding', data: { severity: f.severity, id: f.id } });
  card.append(
    el('header', null, el('span', { className: 'badge', data: { severity: f.severity } }, f.severity), ' ', el('h3', null, f.title), ' ', el('code', { className: 'muted' }, f.id)),
  );
  if (f.evidence && Object.keys(f.evidence).length) {
    card.append(el('details', { className: 'evidence-box' }, el('summary', null, 'evidence'), evidenceList(f.evidence)));
  }
  if (f.explanation) {
    const why = el('details', { className: 'why' }, el('summary', null, 'why'));
    for (const para of String(f.explanation).split(/\n\s*\n/)) why.append(el('p', null, para));
    card.append(why);
  }
  if (f.fix && f.fix.length) {
    const pre = el('pre', { className: 'fix' });
    for (const line of f.fix) {
      pre.append(el('span', { className: line.startsWith('#') ? 'comment' : 'cmd' }, line), '\n');
    }
    card.append(el('div', { className: 'fix-head' }, 'fix'), pre);
  }
  return card;
}

function renderAlarms(alarms) {
  const box = $('#alarms');
  const list = (alarms || []).filter((a) => a.status === 'firing');
  if (list.length === 0) {
    box.replaceChildren();
    return;
  }
  const rows = list.map((a) =>
    el('tr', null, el('td', null, el('span', { className: 'badge', data: { severity: alarmSeverity(a.level) } }, a.level)), el('td', null, visible(a.rule)), el('td', null, visible(a.case)), el('td', null, visible(a.key)), el('td', null, visible(a.message)), el('td', null, fmtTime(a.starts_at))),
  );
  box.replaceChildren(
    el('h3', null, `Firing alarms (${list.length})`),
    el('div', { className: 'table-wrap' }, el('table', null, el('thead', null, el('tr', null, ['level', 'rule', 'case', 'row', 'message', 'since'].map((h) => el('th', null, h)))), el('tbody', null, rows))),
  );
}

function alarmSeverity(level) {
  return ['emerg', 'alert', 'crit', 'critical', 'err', 'error'].includes(level) ? 'critical' : level === 'warning' ? 'warning' : 'unknown';
}

// ---- gauges ------------------------------------------------------------

// gauge is one limit as a bar; marks are [value, title] ticks on it.
function gauge({ id, label, used, limit, fmt = fmtInt, marks = [], note }) {
  const ratio = used / limit;
  const sev = ratio >= 0.9 ? 'critical' : ratio >= 0.7 ? 'warning' : 'ok';
  const fill = el('div', { className: 'fill' });
  fill.style.width = Math.min(100, Math.max(0, ratio * 100)).toFixed(2) + '%';
  const bar = el('div', { className: 'bar', role: 'meter', ariaValueNow: String(used), ariaValueMin: '0', ariaValueMax: String(limit), ariaLabel: label }, fill);
  for (const [at, title] of marks) {
    if (!(at > 0 && at < limit)) continue;
    const m = el('div', { className: 'mark', title });
    m.style.left = ((at / limit) * 100).toFixed(2) + '%';
    bar.append(m);
  }
  return el(
    'div',
    { className: 'gauge', data: { severity: sev, gauge: id } },
    el('div', { className: 'gauge-head' }, el('span', { className: 'gauge-label' }, label), el('span', { className: 'gauge-pct' }, fmtPct(ratio))),
    bar,
    el('div', { className: 'gauge-nums muted' }, `${fmt(used)} of ${fmt(limit)}`, note ? ` · ${note}` : ''),
  );
}

function renderGauges(snap) {
  const box = $('#gauges');
  if (!snap) return;
  const k = snap.kernel || {};
  const p = snap.processes || {};
  const g = [];
  const st = k.sockstat;
  const maxOrph = limitOf(k.tcp_max_orphans);
  if (st && maxOrph) {
    // tcp_too_many_orphans() counts a socket's orphans twice or four times
    // when it is being penalized (retransmits, soft errors): the marks are
    // where those sockets already hit the limit.
    const x4 = (st.tcp.orphan * 4) / maxOrph;
    g.push(gauge({ id: 'orphans', label: 'TCP orphans (tcp_max_orphans)', used: st.tcp.orphan, limit: maxOrph, marks: [[maxOrph / 4, 'penalized ×4 sockets hit the limit'], [maxOrph / 2, 'penalized ×2 sockets hit the limit']], note: x4 >= 1 ? `×4 penalty: ${fmtPct(x4)}` : '' }));
  }
  const tcpMem = k.tcp_mem_pages || [];
  if (st && tcpMem.length === 3 && limitOf(tcpMem[2])) {
    const ps = k.page_size || 4096;
    g.push(gauge({ id: 'tcp-mem', label: 'TCP memory (tcp_mem high)', used: st.tcp.mem_pages * ps, limit: tcpMem[2] * ps, fmt: fmtBytes, marks: [[tcpMem[1] * ps, 'tcp_mem pressure']], note: `pressure at ${fmtBytes(tcpMem[1] * ps)}` }));
  }
  if (k.file_nr && limitOf(k.file_nr.max)) g.push(gauge({ id: 'file-nr', label: 'Open files (file-max)', used: k.file_nr.allocated, limit: k.file_nr.max }));
  if (p.threads && limitOf(k.pid_max)) g.push(gauge({ id: 'pid-max', label: 'Tasks (pid_max)', used: p.threads, limit: k.pid_max, note: `${fmtInt(p.total)} processes` }));
  if (p.threads && limitOf(k.threads_max)) g.push(gauge({ id: 'threads-max', label: 'Threads (threads-max)', used: p.threads, limit: k.threads_max }));
  if (k.conntrack && limitOf(k.conntrack.max)) g.push(gauge({ id: 'conntrack', label: 'Conntrack entries (nf_conntrack_max)', used: k.conntrack.count, limit: k.conntrack.max }));
  // The user closest to its RLIMIT_NPROC (which counts the user's threads).
  let worst = null;
  for (const u of p.users || []) {
    const lim = limitOf(u.nproc_limit);
    if (lim && (!worst || u.threads / lim > worst.threads / worst.lim)) worst = { ...u, lim };
  }
  if (worst) g.push(gauge({ id: 'nproc', label: `Threads of ${visible(worst.user || worst.uid)} (RLIMIT_NPROC)`, used: worst.threads, limit: worst.lim }));
  const m = snap.memory || {};
  // An old kernel (before 3.14) has no MemAvailable: picket estimates it
  // (mem_available_source says how), or cannot, and then there is no
  // gauge rather than one that shows 100 % in use.
  const memSource = m.mem_available_source || '';
  if (m.mem_total_bytes && memSource !== 'unknown') g.push(gauge({ id: 'memory', label: memSource ? `Memory in use (MemTotal − MemAvailable ${memSource})` : 'Memory in use (MemTotal − MemAvailable)', used: m.mem_total_bytes - m.mem_available_bytes, limit: m.mem_total_bytes, fmt: fmtBytes }));
  if (m.swap_total_bytes) g.push(gauge({ id: 'swap', label: 'Swap in use', used: m.swap_total_bytes - m.swap_free_bytes, limit: m.swap_total_bytes, fmt: fmtBytes }));
  box.replaceChildren(...g);

  // Beancounters (OpenVZ): the rows nearest their barrier, and any that
  // refused an allocation.
  const rows = (snap.beancounters || [])
    // vmguarpages and oomguarpages are guarantees, not limits: held above
    // the barrier is the container's right, not a shortage.
    .filter((b) => b.resource !== 'dummy' && b.resource !== 'oomguarpages' && b.resource !== 'vmguarpages' && limitOf(b.barrier))
    .map((b) => ({ ...b, ratio: b.held / b.barrier }))
    .filter((b) => b.ratio >= 0.5 || b.failcnt > 0)
    .sort((a, b) => (b.failcnt > 0) - (a.failcnt > 0) || b.ratio - a.ratio)
    .slice(0, 8);
  $('#beancounters-h').hidden = rows.length === 0;
  $('#beancounters').replaceChildren(
    ...rows.map((b) => gauge({ id: `bc-${b.uid}-${b.resource}`, label: `${visible(b.uid)} ${visible(b.resource)}`, used: b.held, limit: b.barrier, note: b.failcnt ? `failcnt ${fmtInt(b.failcnt)}` : `max held ${fmtInt(b.maxheld)}` })),
  );
}

// ---- the kernel's log -----------------------------------------------------

// renderKernel lists the kernel's latest messages of the kinds picket
// knows, newest first, with what they name (the OOM victim, the cgroup).
function renderKernel(snap) {
  const l = snap && snap.kernel_log;
  const summary = $('#kernel-summary');
  const tbody = $('#kernel tbody');
  if (!l) {
    setText(summary, 'no kernel log was read');
    tbody.replaceChildren();
    return;
  }
  if (!l.available) {
    setText(summary, kernelText(l.error || 'the kernel log is not readable'));
    tbody.replaceChildren();
    return;
  }
  const kinds = (l.kinds || []).filter((k) => k.count > 0);
  const parts = kinds.map((k) => `${k.kind} ×${fmtInt(k.count)}` + (k.last_hour ? ` (${fmtInt(k.last_hour)} in the last hour)` : ''));
  let text = parts.length ? parts.join(' · ') : 'nothing picket knows since boot';
  text += ` — ${fmtInt(l.records)} records read`;
  if (l.lost) text += `, ${fmtInt(l.lost)} overwritten before picket read them`;
  if (l.user && l.user.count) text += `, ${fmtInt(l.user.count)} written from userspace (not counted)`;
  setText(summary, text);
  const msgs = [];
  // The newest few of each kind: a kernel repeating one line does not
  // push the others out.
  for (const k of kinds) msgs.push(...(k.recent || []).slice(-CONFIG.kernelPerKind));
  msgs.sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || b.seq - a.seq);
  tbody.replaceChildren(
    ...msgs.slice(0, CONFIG.kernelRows).map((m) => {
      const f = m.fields || {};
      const proc = f.pid ? `${f.pid} ${visible(f.comm || '')}`.trim() + (f.uid != null ? ` (uid ${f.uid})` : '') : f.port ? `port ${f.port}` : '';
      return el(
        'tr',
        { data: { kind: m.kind, seq: String(m.seq) } },
        el('td', { className: 'nowrap' }, fmtTime(m.time)),
        el('td', { className: 'nowrap' }, m.kind),
        el('td', { className: 'comm kmsg' }, kernelText(m.text)),
        el('td', { className: 'comm' }, proc),
        el('td', { className: 'comm' }, visible(f.cgroup || '')),
      );
    }),
  );
}

// ---- tables ------------------------------------------------------------

// limitCell is a usage against a limit as a bar with its numbers; "-"
// without a limit (the kernel's "max" is absent from the JSON).
function limitCell(used, limit, fmt) {
  if (!limitOf(limit) || used == null) return el('td', { className: 'muted' }, '-');
  const ratio = used / limit;
  const sev = ratio >= 0.95 ? 'critical' : ratio >= 0.8 ? 'warning' : 'ok';
  const fill = el('div', { className: 'fill' });
  fill.style.width = Math.min(100, Math.max(0, ratio * 100)).toFixed(2) + '%';
  return el(
    'td',
    null,
    el('div', { className: 'cell-bar', data: { severity: sev } },
      el('div', { className: 'bar', role: 'meter', ariaValueNow: String(used), ariaValueMin: '0', ariaValueMax: String(limit) }, fill),
      el('span', { className: 'nums' }, `${fmt(used)} / ${fmt(limit)} · ${fmtPct(ratio)}`)),
  );
}

// workingSet is memory.current less inactive file cache (what the
// cgroup-limits check grades).
function workingSet(c) {
  const cur = c.memory_current;
  const inact = (c.memory_stat || {}).inactive_file || 0;
  return cur != null && inact < cur ? cur - inact : cur;
}

function renderCgroups() {
  const snap = state.snap;
  if (!snap) return;
  const prev = new Map();
  for (const c of (state.prevSnap && state.prevSnap.cgroups) || []) prev.set(c.path, c);
  const near = (c) => {
    const p = limitOf(c.pids_max) ? (c.pids_current || 0) / c.pids_max : 0;
    const lim = c.memory_max ?? c.memory_high;
    const m = limitOf(lim) ? (workingSet(c) || 0) / lim : 0;
    return Math.max(p, m);
  };
  const all = (snap.cgroups || []).filter((c) => c.path !== '/' && (c.pids_max != null || c.memory_max != null || c.memory_high != null));
  all.sort((a, b) => near(b) - near(a));
  const shown = all.slice(0, CONFIG.tableRows);
  $('#cgroups-section').hidden = all.length === 0;
  const refused = (now, before) => {
    const d = before != null && now != null ? now - before : null;
    const text = fmtInt(now || 0) + (d ? ` (${fmtDelta(d)})` : '');
    return el('td', { className: 'num' + (d > 0 ? ' refused' : '') }, text);
  };
  $('#cgroups tbody').replaceChildren(
    ...shown.map((c) => {
      const p = prev.get(c.path);
      const own = c.unit && c.path.endsWith('/' + c.unit);
      return el(
        'tr',
        { data: { path: c.path } },
        el('td', { className: 'comm', title: visible(c.path) }, visible(own ? c.unit : c.path)),
        limitCell(c.pids_current, c.pids_max, fmtInt),
        limitCell(workingSet(c), c.memory_max ?? c.memory_high, fmtBytes),
        refused(c.pids_events_max, p && p.pids_events_max),
        refused(c.oom_kill, p && p.oom_kill),
        el('td', { className: 'num' }, fmtInt(c.processes)),
      );
    }),
  );
  const layout = snap.cgroup_layout || {};
  setText($('#cgroups-more'), `${fmtInt(shown.length)} of ${fmtInt(all.length)} cgroups with a limit (${fmtInt((snap.cgroups || []).length)} read, ${visible(layout.mode || '')} layout${layout.partial ? '; a light look: only those with a limit' : ''})`);
}

function matches(filter, ...fields) {
  if (!filter) return true;
  const f = filter.toLowerCase();
  return fields.some((x) => String(x ?? '').toLowerCase().includes(f) || visible(x).toLowerCase().includes(f));
}

function deltaCell(d) {
  return el('td', { className: 'num delta ' + (d > 0 ? 'up' : d < 0 ? 'down' : '') }, fmtDelta(d));
}

function groupKey(g) {
  return `${g.uid}\u0000${g.comm}`;
}

// lonelyKernel is a group of one kernel thread (cpuhp/0, kauditd,
// kworker/…): hidden unless "kernel threads" is ticked, as htop hides
// them, so they do not crowd a storm off the table.
function lonelyKernel(g) {
  return g.kernel_thread && g.count <= 1 && !$('#group-kernel').checked;
}

function renderGroups() {
  const snap = state.snap;
  if (!snap) return;
  const prev = new Map();
  for (const g of (state.prevSnap && state.prevSnap.processes.groups) || []) prev.set(groupKey(g), g.count);
  const filter = $('#group-filter').value.trim();
  const all = (snap.processes.groups || []).filter((g) => matches(filter, g.user, g.uid, g.comm) && !lonelyKernel(g));
  const shown = all.slice(0, CONFIG.tableRows);
  $('#groups tbody').replaceChildren(
    ...shown.map((g) =>
      el(
        'tr',
        { data: { user: g.user, comm: g.comm } },
        el('td', null, visible(g.user || g.uid)),
        el('td', { className: 'comm' }, visible(g.comm)),
        el('td', { className: 'num' }, fmtInt(g.count)),
        deltaCell(state.prevSnap ? g.count - (prev.get(groupKey(g)) || 0) : 0),
        el('td', { className: 'num' }, fmtInt(g.threads)),
        el('td', { className: 'num' }, fmtBytes(g.rss_bytes)),
      ),
    ),
  );
  const sel = snap.selection;
  const total = sel ? sel.groups : (snap.processes.groups || []).length;
  const hidden = (snap.processes.groups || []).filter((g) => matches(filter, g.user, g.uid, g.comm) && lonelyKernel(g)).length;
  setText(
    $('#groups-more'),
    `${fmtInt(shown.length)} of ${fmtInt(all.length)}${filter ? ' matching' : ''} groups shown (${fmtInt(total)} in all, ${fmtInt(snap.processes.total)} processes${hidden ? `; ${fmtInt(hidden)} kernel thread${hidden === 1 ? '' : 's'} hidden` : ''})`,
  );
}

function renderHolders() {
  const snap = state.snap;
  if (!snap) return;
  const prev = new Map();
  for (const h of (state.prevSnap && state.prevSnap.sockets.processes) || []) prev.set(h.pid, h.total);
  const filter = $('#holder-filter').value.trim();
  const all = (snap.sockets.processes || []).filter((h) => matches(filter, h.user, h.uid, h.comm, h.pid));
  const shown = all.slice(0, CONFIG.tableRows);
  $('#holders tbody').replaceChildren(
    ...shown.map((h) =>
      el(
        'tr',
        { data: { pid: String(h.pid), comm: h.comm } },
        el('td', { className: 'num' }, String(h.pid)),
        el('td', null, visible(h.user || h.uid)),
        el('td', { className: 'comm' }, visible(h.comm)),
        el('td', { className: 'num' }, fmtInt(h.tcp)),
        el('td', { className: 'num' }, fmtInt(h.udp)),
        el('td', { className: 'num' }, fmtInt(h.unix)),
        el('td', { className: 'num' }, fmtInt(h.raw + h.netlink + h.packet + h.other)),
        el('td', { className: 'num' }, fmtInt(h.total)),
        deltaCell(state.prevSnap ? h.total - (prev.get(h.pid) || 0) : 0),
        el('td', { className: 'num' }, `${h.fds >= 0 ? fmtInt(h.fds) : '?'} / ${h.fd_limit > 0 ? fmtInt(h.fd_limit) : '?'}`),
      ),
    ),
  );
  const t = snap.sockets.totals || {};
  setText(
    $('#holders-more'),
    `${fmtInt(shown.length)} of ${fmtInt(all.length)}${filter ? ' matching' : ''} holders shown · kernel tables: ${fmtInt(t.tcp)} tcp, ${fmtInt(t.udp)} udp, ${fmtInt(t.unix)} unix`,
  );
}

// ---- actions -----------------------------------------------------------

// foldActions is act.Actions for the actions that end by themselves: one
// action per id from its journal entries (intent, result, revert,
// refused), oldest first. Which kinds those are is the server's knowledge,
// not the page's: an intent journals an until exactly when its kind is
// timed (a throttle, a freeze), so a timed action with its undo is active
// until that time. Other actions end up done, failed, refused or reverted.
function foldActions(entries, now) {
  const byId = new Map();
  // The API lists newest first; an intent and its result can share a time,
  // so reverse to the journal's own order before the (stable) sort.
  const ordered = [...entries].reverse().sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  for (const e of ordered) {
    let a = byId.get(e.id);
    if (!a) {
      a = { id: e.id, time: e.time, type: e.type, rule: e.rule, case: e.case, state: '' };
      byId.set(e.id, a);
    }
    switch (e.phase) {
      case 'intent':
        Object.assign(a, { targets: e.targets, undo: e.undo, until: e.until, state: 'in flight' });
        break;
      case 'result':
        Object.assign(a, { result: e.result, error: e.error, state: 'done' });
        if (e.targets) a.targets = e.targets;
        break;
      case 'revert':
        a.reverted = e.time;
        break;
      case 'refused':
        Object.assign(a, { result: e.result, error: e.error, state: 'refused' });
        break;
    }
  }
  for (const a of byId.values()) {
    if (a.state === 'refused') continue;
    if (a.reverted) a.state = 'reverted';
    else if (a.state === 'in flight') continue;
    else if (a.error) a.state = 'failed';
    else if (a.until && a.undo) {
      a.state = Date.parse(a.until) <= now ? 'expired' : 'active';
    }
  }
  return [...byId.values()];
}

function targetsText(ts) {
  if (!Array.isArray(ts) || ts.length === 0) return '';
  const shown = ts.slice(0, 8).map((t) => visible(typeof t === 'object' ? JSON.stringify(t) : t));
  return shown.join(', ') + (ts.length > 8 ? ` and ${ts.length - 8} more` : '');
}

function ruleText(x) {
  return [x.rule, x.case].filter(Boolean).map(visible).join(' / ');
}

function renderActions(journal, error) {
  const entries = (journal && journal.entries) || [];
  const now = state.snap ? Date.parse(state.snap.time) : Date.now();
  const active = foldActions(entries, now).filter((a) => a.until && (a.state === 'active' || a.state === 'in flight'));
  const activeBody = $('#active tbody');
  if (active.length === 0) {
    activeBody.replaceChildren(el('tr', null, el('td', { colSpan: 6, className: 'muted' }, 'none')));
  } else {
    activeBody.replaceChildren(
      ...active.map((a) =>
        el(
          'tr',
          { data: { id: a.id, state: a.state } },
          el('td', null, el('code', null, a.id)),
          el('td', null, a.type, a.state === 'in flight' ? ' (starting)' : ''),
          el('td', null, ruleText(a)),
          el('td', null, targetsText(a.targets)),
          el('td', null, fmtTime(a.time)),
          el('td', null, a.until ? `${fmtTime(a.until)} (in ${fmtAgo((Date.parse(a.until) - now) / 1000)})` : 'until undone'),
        ),
      ),
    );
  }
  const body = $('#journal tbody');
  if (error) {
    body.replaceChildren(el('tr', null, el('td', { colSpan: 7, className: 'muted' }, error)));
    return;
  }
  if (entries.length === 0) {
    body.replaceChildren(el('tr', null, el('td', { colSpan: 7, className: 'muted' }, 'no actions taken')));
    return;
  }
  body.replaceChildren(
    ...entries.slice(0, CONFIG.journalRows).map((e) =>
      el(
        'tr',
        { data: { id: e.id, phase: e.phase } },
        el('td', null, fmtTime(e.time)),
        el('td', null, el('code', null, e.id)),
        el('td', null, e.phase),
        el('td', null, e.type),
        el('td', null, ruleText(e)),
        el('td', null, targetsText(e.targets)),
        el('td', { className: e.error ? 'error' : '' }, [e.result, e.error].filter(Boolean).map(visible).join(': ')),
      ),
    ),
  );
}

// ---- plots -------------------------------------------------------------

const PLOTS = [
  { id: 'groups', title: 'Processes per group', kind: 'groups' },
  { id: 'holders', title: 'Sockets per holder', kind: 'holders' },
  {
    id: 'orphans',
    title: 'TCP orphans vs tcp_max_orphans',
    series: [[SERIES.orphans, 'orphans']],
    limit: [SERIES.maxOrphans, 'tcp_max_orphans', (s) => limitOf(s.kernel.tcp_max_orphans)],
  },
  {
    id: 'tcp-mem',
    title: 'TCP memory vs tcp_mem high',
    series: [[SERIES.tcpMemPages, 'TCP memory']],
    limit: [SERIES.tcpMemHigh, 'tcp_mem high', (s) => limitOf((s.kernel.tcp_mem_pages || [])[2])],
    scale: (s) => s.kernel.page_size || 4096,
    fmt: fmtBytes,
  },
  { id: 'psi', title: 'Pressure stall (PSI avg10, %)', series: SERIES.psi },
  // Every limit with a trend, each as a share of its limit, so a pid
  // count and a cgroup's bytes share one plot: their projections meet
  // the limit at 100 %. Hidden while no limit has a trend.
  { id: 'forecasts', title: 'Limits heading for exhaustion (% of the limit)', kind: 'forecasts', fmt: (v) => fmtNum(Math.round(v * 10) / 10) + '%' },
];

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function setupPlots() {
  const box = $('#plots');
  for (const def of PLOTS) {
    const chart = el('div', { className: 'chart' });
    const empty = el('p', { className: 'muted empty' }, 'no samples yet');
    const legend = el('ul', { className: 'legend' });
    const wrap = el('figure', { className: 'plot', data: { plot: def.id } }, el('figcaption', null, def.title), chart, empty, legend);
    box.append(wrap);
    state.plots.set(def.id, { def, wrap, chart, legend, empty, u: null, key: '' });
  }
  const sel = $('#windows');
  for (const w of CONFIG.windows) {
    const b = el('button', { type: 'button', data: { window: w.label } }, w.label);
    b.addEventListener('click', () => {
      state.window = w;
      history.replaceState(null, '', '#window=' + w.label);
      markWindow();
      refreshPlots();
    });
    sel.append(b);
  }
  const m = /window=([0-9a-z]+)/.exec(location.hash);
  state.window = CONFIG.windows.find((w) => m && w.label === m[1]) || CONFIG.windows[0];
  markWindow();
  new ResizeObserver(() => {
    for (const p of state.plots.values()) if (p.u) p.u.setSize({ width: chartWidth(p), height: chartHeight() });
  }).observe(box);
}

function markWindow() {
  for (const b of document.querySelectorAll('#windows button')) b.ariaPressed = String(b.dataset.window === state.window.label);
}

function chartWidth(p) {
  return Math.max(200, Math.floor(p.chart.clientWidth || p.wrap.clientWidth - 16));
}

function chartHeight() {
  return window.innerWidth < 600 ? 180 : 220;
}

async function listSeries(prefix) {
  const r = await getJSON('api/v1/history/series?prefix=' + encodeURIComponent(prefix));
  return new Set(r.series || []);
}

async function query(name, optional) {
  const w = state.window;
  const q = `api/v1/history?series=${encodeURIComponent(name)}&since=${w.since}&step=${w.step}`;
  try {
    const r = await getJSON(q);
    return r.points || [];
  } catch (e) {
    // A forecast's series the store does not keep (yet) is no line, not
    // a history that is missing.
    if (optional && e instanceof APIError && e.status === 404 && !/^no history/.test(e.message)) return [];
    throw e;
  }
}

// wanted is what a plot draws now: [{name, label}], from the snapshot (the
// heaviest groups and holders, narrowed by their table's filter) or the
// fixed series of its definition, keeping only the series the history has.
function wanted(def, snap, known) {
  if (def.kind === 'groups') {
    const filter = $('#group-filter').value.trim();
    return (snap.processes.groups || [])
      .filter((g) => matches(filter, g.user, g.uid, g.comm) && !lonelyKernel(g))
      .map((g) => ({ name: SERIES.group(g), label: `${visible(g.user || g.uid)} ${visible(g.comm)}` }))
      .filter((s) => known.has(s.name))
      .slice(0, CONFIG.plotGroups);
  }
  if (def.kind === 'holders') {
    const starts = new Map();
    for (const p of snap.processes.list || []) {
      const t = Date.parse(p.start_time);
      if (!isNaN(t) && t > 0) starts.set(p.pid, Math.floor(t / 1000));
    }
    const filter = $('#holder-filter').value.trim();
    return (snap.sockets.processes || [])
      .filter((h) => matches(filter, h.user, h.uid, h.comm, h.pid))
      .map((h) => ({ name: SERIES.holder(h, starts.has(h.pid) ? starts.get(h.pid) : null), label: `${visible(h.comm)} [${h.pid}]` }))
      .filter((s) => known.has(s.name))
      .slice(0, CONFIG.plotHolders);
  }
  if (def.kind === 'forecasts') {
    // The soonest first, as the snapshot lists them; a series two limits
    // share (pid_max and threads-max both count tasks) is drawn once per
    // limit, each against its own.
    return (snap.forecasts || [])
      .filter((f) => f.series && f.max > 0)
      .slice(0, CONFIG.plotForecasts)
      .map((f) => ({ name: f.series, label: limitName(f), scale: 100 / f.max, forecasts: [f], optional: true }));
  }
  return def.series.filter(([name]) => known.has(name)).map(([name, label]) => ({ name, label }));
}

async function refreshPlots() {
  const snap = state.snap;
  if (!snap || state.historyMissing) return;
  if (state.plotsBusy) {
    state.plotsAgain = true; // a window or filter changed meanwhile
    return;
  }
  state.plotsBusy = true;
  state.plotsAgain = false;
  const note = $('#plots-note');
  try {
    const prefixes = [SERIES.groupPrefix, SERIES.holderPrefix, SERIES.kernelPrefix, SERIES.psiPrefix];
    const sets = await Promise.all(prefixes.map(listSeries));
    const known = new Set(sets.flatMap((s) => [...s]));
    await Promise.all(PLOTS.map((def) => drawPlot(state.plots.get(def.id), snap, known)));
    note.hidden = true;
  } catch (e) {
    if (e instanceof APIError && e.status === 404) {
      state.historyMissing = true;
      note.hidden = false;
      setText(note, 'No history: ' + e.message);
      $('#plots').hidden = true;
    } else {
      note.hidden = false;
      setText(note, 'history: ' + e.message);
    }
  } finally {
    state.plotsBusy = false;
  }
  if (state.plotsAgain) await refreshPlots();
}

async function drawPlot(p, snap, known) {
  const def = p.def;
  const want = wanted(def, snap, known);
  const lines = await Promise.all(want.map((s) => query(s.name, s.optional)));
  let limitPts = null;
  let limitLabel = null;
  if (def.limit) {
    const [name, label, current] = def.limit;
    limitLabel = label;
    if (known.has(name)) limitPts = await query(name);
    if (!limitPts || limitPts.length === 0) {
      // The store has no samples of the limit: draw today's value flat.
      const v = current(snap);
      limitPts = v ? [{ constant: v }] : null;
    }
  }
  const scale = def.scale ? def.scale(snap) : 1;
  // Join every series on the union of their times (uPlot wants one x array).
  const xsSet = new Set();
  for (const pts of lines) for (const pt of pts) xsSet.add(Date.parse(pt.time) / 1000);
  if (limitPts && !limitPts[0].constant) for (const pt of limitPts) xsSet.add(Date.parse(pt.time) / 1000);
  const xs = [...xsSet].sort((a, b) => a - b);
  const idx = new Map(xs.map((x, i) => [x, i]));
  const column = (pts, k = scale) => {
    const ys = new Array(xs.length).fill(null);
    for (const pt of pts) ys[idx.get(Date.parse(pt.time) / 1000)] = pt.value * k;
    return ys;
  };
  const data = [xs, ...lines.map((pts, i) => column(pts, want[i].scale ?? scale))];
  const series = want.map((s, i) => ({ ...s, color: PALETTE[i % PALETTE.length], last: lastValue(lines[i]) * (s.scale ?? scale) }));
  // The projections of the series drawn: each forecast of a series with
  // samples in the window, scaled as its series is.
  p.proj = [];
  series.forEach((s, i) => {
    if (lines[i].length === 0) return;
    for (const f of s.forecasts || forecastsOf(snap, s.name)) {
      const pr = projection(f, s.scale ?? scale, s.color);
      if (pr) p.proj.push(pr);
    }
  });
  if (def.kind === 'forecasts') {
    // No limit with a trend: no plot at all, rather than an empty one.
    p.wrap.hidden = want.length === 0;
  }
  if (limitPts) {
    const ys = limitPts[0].constant ? xs.map(() => limitPts[0].constant * scale) : column(limitPts);
    data.push(ys);
    const lastLimit = limitPts[0].constant ? limitPts[0].constant : lastValue(limitPts);
    series.push({ name: def.limit[0], label: limitLabel, color: LIMIT_COLOR, limit: true, last: lastLimit * scale });
  }
  renderLegend(p, series, def.fmt || fmtNum);
  const hasData = xs.length > 0 && series.some((s) => !s.limit);
  p.empty.hidden = hasData || p.wrap.hidden;
  p.chart.hidden = !hasData;
  if (!hasData) {
    setText(p.empty, want.length === 0 && !def.limit ? 'nothing recorded yet' : 'no samples in this window');
    if (p.u) {
      p.u.destroy();
      p.u = null;
      p.key = '';
    }
    delete p.wrap.dataset.xMin;
    delete p.wrap.dataset.xMax;
    delete p.wrap.dataset.projections;
    return;
  }
  const key = series.map((s) => s.name).join('\u0000');
  if (p.u && p.key === key) {
    // setData rescales x to the window ending now, through xWindow.
    p.u.setData(data);
    return;
  }
  if (p.u) p.u.destroy();
  p.key = key;
  p.u = new uPlot(plotOptions(p, series, def.fmt), data, p.chart);
  // The chart itself, for whoever inspects the page (its tests ask it
  // where a value is drawn: valToPos).
  p.wrap.uplot = p.u;
}

function lastValue(pts) {
  for (let i = pts.length - 1; i >= 0; i--) if (pts[i] && typeof pts[i].value === 'number') return pts[i].value;
  return NaN;
}

// xWindow is the x scale's range in Unix seconds: the window ending now,
// widened to where the plot's projections meet their limits, by at most
// one window more (docs/forecast.md, "On the dashboard").
function xWindow(p) {
  const now = Date.now() / 1000;
  const secs = state.window.secs;
  let ahead = 0;
  for (const pr of p.proj || []) ahead = Math.max(ahead, pr.x1 - now);
  return [now - secs, now + Math.min(secs, ahead)];
}

function plotOptions(p, series, fmt) {
  const fg = cssVar('--muted', '#666');
  const grid = cssVar('--grid', '#e5e7eb');
  const values = (u, ticks) => ticks.map((v) => (fmt ? fmt(v) : fmtCompact(v)));
  return {
    width: chartWidth(p),
    height: chartHeight(),
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    // The x axis is the chosen window ending now, never the samples' own
    // span: uPlot pads one sample (or two seconds apart) into years, and
    // a plot of the first minutes after start read "Mar 2027 … Jun 2029".
    // The y axis reaches the limits the projections meet.
    scales: {
      x: { time: true, range: () => xWindow(p) },
      y: {
        range: (u, min, max) => {
          const top = Math.max(max || 0, ...(p.proj || []).map((pr) => pr.limit));
          return [0, top > 0 ? top * 1.08 : 1];
        },
      },
    },
    // The drawn window, for whoever reads the page (and its tests).
    hooks: {
      draw: [
        (u) => {
          p.wrap.dataset.xMin = String(u.scales.x.min);
          p.wrap.dataset.xMax = String(u.scales.x.max);
          drawProjections(u, p);
        },
      ],
    },
    axes: [
      { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid } },
      { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid }, values, size: 64 },
    ],
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: s.limit ? 1.5 : 2, dash: s.limit ? [6, 4] : undefined, points: { show: false }, spanGaps: false }))],
  };
}

// ---- projections to the limit ----------------------------------------
//
// A forecast is the line picket run fitted (internal/forecast): it reaches
// max at at + eta_seconds, rising rate_per_second. The page draws that line
// and nothing it computed itself: no fit in the browser, so the plot, the
// finding, /metrics and picket top say the same thing.

// forecastsOf is the snapshot's forecasts fitted on the series name.
function forecastsOf(snap, name) {
  return (snap.forecasts || []).filter((f) => f.series === name);
}

// projection is a forecast as the plot draws it, in the plot's units
// (scale): from the fitted level at the look it was fitted at to the limit
// at the ETA. Null when there is no trend to draw.
function projection(f, scale, color) {
  const at = Date.parse(f.at) / 1000;
  const eta = f.eta_seconds;
  const rate = f.rate_per_second;
  if (!isFinite(at) || !(eta >= 0) || !(rate > 0) || !(f.max > 0)) return null;
  // Used is rounded for reading; the line is the limit less the rise
  // still to come, so it meets the limit exactly at the ETA.
  const y0 = (f.max - rate * eta) * scale;
  return { f, at, x1: at + eta, y0, limit: f.max * scale, rate: rate * scale, color, label: `${limitName(f)} full in ${fmtETA(eta)}` };
}

// limitName says which limit a forecast is about; names a process, user
// or container chose are escaped as everywhere on the page.
function limitName(f) {
  switch (f.limit) {
    case 'RLIMIT_NOFILE':
      return `${visible(f.comm)} [${f.pid}] RLIMIT_NOFILE`;
    case 'RLIMIT_NPROC':
      return `${visible(f.user || f.uid)} RLIMIT_NPROC`;
    case 'pids.max':
    case 'memory.max':
      return `${visible(f.cgroup)} ${f.limit}`;
    case 'beancounter':
      return `beancounter ${visible(f.uid)} ${visible(f.resource)}`;
    case 'tcp_max_orphans':
      // tcp_too_many_orphans(): resets begin at a quarter of the sysctl.
      return 'tcp_max_orphans/4';
  }
  return visible(f.limit);
}

// fmtETA writes an ETA as picket's other outputs do (forecast.FormatETA):
// "~45s", "~12m", "~2h10m", "~3d4h".
function fmtETA(seconds) {
  if (!(seconds >= 0)) return '?';
  if (seconds < 120) return `~${Math.round(seconds)}s`;
  if (seconds < 3600) return `~${Math.round(seconds / 60)}m`;
  if (seconds < 48 * 3600) {
    const m = Math.round(seconds / 60);
    return `~${Math.floor(m / 60)}h${pad2(m % 60)}m`;
  }
  const h = Math.round(seconds / 3600);
  return `~${Math.floor(h / 24)}d${h % 24}h`;
}

function fmtSpan(seconds) {
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m`;
  const m = Math.round(seconds / 60);
  return m % 60 === 0 ? `${m / 60}h` : `${Math.floor(m / 60)}h${pad2(m % 60)}m`;
}

// drawProjections draws, after the series, each projection as a dashed
// line from the fitted level to where it meets its limit (or the right
// edge), the limit as a horizontal line, and the ETA as a label at the
// meeting point. Labels are elements over the canvas, text only.
function drawProjections(u, p) {
  for (const old of u.over.querySelectorAll('.eta')) old.remove();
  const list = p.proj || [];
  if (list.length === 0) {
    delete p.wrap.dataset.projections;
    return;
  }
  const { ctx, bbox } = u;
  const ratio = bbox.width / Math.max(1, u.over.clientWidth);
  const xmax = u.scales.x.max;
  const drawn = [];
  const labels = [];
  ctx.save();
  ctx.beginPath();
  ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
  ctx.clip();
  list.forEach((pr) => {
    const x1 = Math.min(pr.x1, xmax);
    const y1 = pr.y0 + pr.rate * (x1 - pr.at);
    const px = [u.valToPos(pr.at, 'x', true), u.valToPos(pr.y0, 'y', true), u.valToPos(x1, 'x', true), u.valToPos(y1, 'y', true)];
    const ly = u.valToPos(pr.limit, 'y', true);
    ctx.lineWidth = ratio;
    ctx.strokeStyle = LIMIT_COLOR;
    ctx.setLineDash([2 * ratio, 3 * ratio]);
    ctx.beginPath();
    ctx.moveTo(bbox.left, ly);
    ctx.lineTo(bbox.left + bbox.width, ly);
    ctx.stroke();
    ctx.lineWidth = 2 * ratio;
    ctx.strokeStyle = pr.color;
    ctx.setLineDash([6 * ratio, 4 * ratio]);
    ctx.beginPath();
    ctx.moveTo(px[0], px[1]);
    ctx.lineTo(px[2], px[3]);
    ctx.stroke();
    const f = pr.f;
    const ax = u.valToPos(x1, 'x');
    const ay = u.valToPos(y1, 'y');
    const label = el('div', { className: 'eta', title: `${pr.label} at ${fmtNum(f.rate_per_second * 60)}/min (fit over the last ${fmtSpan(f.window_seconds)}, R² ${f.quality})`, data: { series: f.series, limit: f.limit, x: String(ax), y: String(ay) } }, pr.label);
    u.over.append(label);
    labels.push(label);
    drawn.push({ series: f.series, limit: f.limit, label: pr.label, color: pr.color, at: pr.at, eta: f.eta_seconds, x0: pr.at, y0: pr.y0, x1, y1, meets: x1 === pr.x1, limitY: pr.limit, px, limitPx: ly });
  });
  ctx.restore();
  placeLabels(labels, u.over.clientWidth, u.over.clientHeight);
  p.wrap.dataset.projections = JSON.stringify(drawn);
}

// placeLabels puts each label just above and left of its point (below it
// where the top is too near), inside the plot, and moves a label down past
// those placed before it (the soonest ETA keeps its place).
function placeLabels(labels, width, height) {
  const placed = [];
  for (const l of labels) {
    const w = Math.min(l.offsetWidth, width);
    const h = l.offsetHeight;
    const x = Number(l.dataset.x);
    const y = Number(l.dataset.y);
    const box = { left: Math.max(0, x - w), top: y - h - 3 < 0 ? y + 3 : y - h - 3, w, h };
    for (let moved = true, n = 0; moved && n < labels.length; n++) {
      moved = false;
      for (const o of placed) {
        if (box.left < o.left + o.w && o.left < box.left + box.w && box.top < o.top + o.h && o.top < box.top + box.h) {
          box.top = o.top + o.h + 1;
          moved = true;
        }
      }
    }
    box.top = Math.max(0, Math.min(box.top, height - h));
    l.style.left = box.left + 'px';
    l.style.top = box.top + 'px';
    l.style.maxWidth = width + 'px';
    placed.push(box);
  }
}

// renderLegend is the plot's key with each series' latest value: always
// visible, also where there is no hover (a phone).
function renderLegend(p, series, fmt) {
  p.legend.replaceChildren(
    ...series.map((s) => {
      const sw = el('span', { className: 'swatch' + (s.limit ? ' limit' : '') });
      sw.style.borderColor = s.color;
      return el('li', { data: { series: s.name, last: String(s.last) } }, sw, el('span', { className: 'name' }, s.label), ' ', el('span', { className: 'value' }, fmt(s.last)));
    }),
  );
}

// ---- the loop ----------------------------------------------------------

async function tick() {
  const [snap, report, alarms, journal] = await Promise.allSettled([
    getJSON('api/v1/snapshot?top=' + CONFIG.snapshotTop),
    getJSON('api/v1/findings'),
    getJSON('api/v1/alarms'),
    getJSON('api/v1/journal?limit=' + CONFIG.journalLimit),
  ]);
  let error = null;
  if (snap.status === 'fulfilled') {
    if (!state.snap || state.snap.time !== snap.value.time) {
      state.prevSnap = state.snap;
      state.snap = snap.value;
    }
  } else {
    // 503: starting; 401 and 403: private to root and the token holder.
    error = [401, 403, 503].includes(snap.reason.status) ? snap.reason.message : 'cannot reach picket: ' + snap.reason.message;
  }
  renderHeader(state.snap, report.status === 'fulfilled' ? report.value : null, error);
  renderFindings(report.status === 'fulfilled' ? report.value : null, report.status === 'rejected' ? report.reason.message : null);
  renderAlarms(alarms.status === 'fulfilled' ? alarms.value.alarms : []);
  renderKernel(state.snap);
  renderGauges(state.snap);
  renderCgroups();
  renderGroups();
  renderHolders();
  renderActions(journal.status === 'fulfilled' ? journal.value : null, journal.status === 'rejected' ? 'journal: ' + journal.reason.message : null);
  await refreshPlots();
  document.body.dataset.updated = state.snap ? state.snap.time : '';
}

async function loop() {
  if (!document.hidden) {
    try {
      await tick();
    } catch (e) {
      const conn = $('#conn');
      conn.hidden = false;
      setText(conn, 'dashboard error: ' + e.message);
    }
  }
  setTimeout(loop, CONFIG.refreshMs);
}

function start() {
  setupPlots();
  // A filter narrows its table at once and its plot after a pause in typing.
  const replot = () => {
    clearTimeout(state.plotTimer);
    state.plotTimer = setTimeout(refreshPlots, 400);
  };
  $('#group-filter').addEventListener('input', () => {
    renderGroups();
    replot();
  });
  $('#group-kernel').addEventListener('change', () => {
    renderGroups();
    replot();
  });
  $('#holder-filter').addEventListener('input', () => {
    renderHolders();
    replot();
  });
  loop();
}

// uPlot loads as a deferred classic script; modules run after those.
start();
