// The pilot dashboard: a single page over the server's REST API (man 7 pilot-api).
// Plain JS, no framework and no build step: every byte the browser runs is this file.
// Text from the server goes into the page only through textContent, never as HTML.
'use strict';

const TOKEN_KEY = 'pilot-token';
const STATES = ['queued', 'waiting', 'running', 'canceling', 'succeeded', 'failed', 'canceled', 'skipped'];

function $(sel, root) { return (root || document).querySelector(sel); }

// el('a', {href: '#/runs'}, 'text', child...): attributes are set as attributes,
// strings become text nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
  return e;
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

// `pilot dashboard` and links hand the token over in the fragment, which never
// reaches a server; it is moved into this tab's storage and out of the address.
function takeTokenFromFragment() {
  const m = /^#token=(pilot_[0-9a-f]+)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, m[1]);
  history.replaceState(null, '', location.pathname + location.search + '#/runs');
}

class AuthError extends Error {}

async function api(path, opts) {
  const o = Object.assign({}, opts || {});
  o.headers = Object.assign({ Authorization: 'Bearer ' + token() }, o.headers || {});
  const r = await fetch(path, o);
  if (r.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new AuthError('the server refused the token');
  }
  return r;
}

async function apiJSON(path, opts) {
  const r = await api(path, opts);
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error(body && body.error ? body.error.message : 'HTTP ' + r.status);
  return body;
}

function fmtTime(ms) {
  if (!ms) return '-';
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function stateCell(state) { return el('span', { class: 'state state-' + state }, state); }

function setConn(text) { $('#conn').textContent = text; }

// Server-Sent Events over fetch (EventSource cannot send the token in a header):
// onEvent(type, data) for each event, reconnecting with Last-Event-ID after a
// failure; a stream the server ends (a run's, once the run ended) is over when once.
function followEvents(path, onEvent, once) {
  const ctl = new AbortController();
  let last = null;
  let stopped = false;
  (async () => {
    while (!stopped) {
      try {
        const headers = { Accept: 'text/event-stream' };
        if (last !== null) headers['Last-Event-ID'] = last;
        const r = await api(path, { headers, signal: ctl.signal });
        if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
        setConn('live');
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) {
            if (once) return;
            break;
          }
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let type = 'message', data = '', id = null;
            for (const line of block.split('\n')) {
              if (line.startsWith('id:')) id = line.slice(3).trim();
              else if (line.startsWith('event:')) type = line.slice(6).trim();
              else if (line.startsWith('data:')) data += line.slice(5).trim();
            }
            if (id !== null) last = id;
            if (data) onEvent(type, data);
          }
        }
      } catch (e) {
        if (stopped) return;
        if (e instanceof AuthError) { route(); return; }
        setConn('reconnecting');
      }
      if (!stopped) await new Promise((res) => setTimeout(res, 1000));
    }
  })();
  return { stop() { stopped = true; ctl.abort(); } };
}

// ---- runs list ----

function runsView() {
  const main = $('#main');
  const stateSel = el('select', { id: 'f-state' }, el('option', { value: '' }, 'any state'),
    ...STATES.map((s) => el('option', { value: s }, s)));
  const nameIn = el('input', { id: 'f-name', placeholder: 'name', type: 'search' });
  const tbody = el('tbody');
  const more = el('button', { type: 'button', id: 'more', hidden: true }, 'More');
  const compare = el('button', { type: 'button', id: 'compare', disabled: true }, 'Compare');
  const picked = new Set();
  const note = el('p', { class: 'muted', id: 'runs-note' });
  main.replaceChildren(el('h1', {}, 'Runs'), el('div', { class: 'filters' }, stateSel, nameIn, compare),
    el('table', { id: 'runs' }, el('thead', {}, el('tr', {}, el('th', {}),
      ...['Run', 'Name', 'State', 'Attempts', 'Agent', 'Submitted'].map((h) => el('th', {}, h)))), tbody),
    note, more);
  let stopped = false, next = null, shown = 50, timer = null;

  function query(after, limit) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (stateSel.value) q.set('state', stateSel.value);
    if (nameIn.value.trim()) q.set('name', nameIn.value.trim());
    if (after) q.set('after', after);
    return '/v1/runs?' + q.toString();
  }

  function row(r) {
    const box = el('input', { type: 'checkbox', 'data-pick': r.id, checked: picked.has(r.id), title: 'compare' });
    box.addEventListener('change', () => {
      if (box.checked) picked.add(r.id); else picked.delete(r.id);
      compare.disabled = picked.size < 2;
    });
    return el('tr', { 'data-run': r.id }, el('td', {}, box),
      el('td', {}, el('a', { href: '#/runs/' + r.id }, r.id)),
      el('td', { class: 'name' }, r.name || ''),
      el('td', {}, stateCell(r.state)),
      el('td', {}, String(r.attempt_count || 0)),
      el('td', {}, r.agent || '-'),
      el('td', {}, fmtTime(r.created_ms)));
  }

  // The first pages again, as many rows as are shown (live updates keep the place).
  async function load() {
    try {
      const l = await apiJSON(query(null, shown));
      if (stopped) return;
      tbody.replaceChildren(...l.runs.map(row));
      next = l.next_after;
      more.hidden = !next;
      note.textContent = l.runs.length ? '' : 'No runs' + (stateSel.value || nameIn.value ? ' match.' : ' yet.');
    } catch (e) {
      if (e instanceof AuthError) return route();
      note.textContent = 'Cannot list runs: ' + e.message;
    }
  }

  async function loadMore() {
    const l = await apiJSON(query(next, 50));
    tbody.append(...l.runs.map(row));
    shown += l.runs.length;
    next = l.next_after;
    more.hidden = !next;
  }

  function soon() {
    if (timer) return;
    timer = setTimeout(() => { timer = null; if (!stopped) load(); }, 200);
  }

  compare.addEventListener('click', () => { location.hash = '#/compare/' + [...picked].join(','); });
  stateSel.addEventListener('change', () => { shown = 50; load(); });
  nameIn.addEventListener('change', () => { shown = 50; load(); });
  more.addEventListener('click', () => loadMore().catch((e) => { note.textContent = e.message; }));
  load();
  const events = followEvents('/v1/events', soon);
  return { stop() { stopped = true; events.stop(); clearTimeout(timer); } };
}

// ---- charts ----

const SVGNS = 'http://www.w3.org/2000/svg';
const COLOURS = ['#0969da', '#cf222e', '#1a7f37', '#9a6700', '#8250df', '#bf3989', '#1b7c83', '#57606a'];

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function fmtNum(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}

// The x of a metrics point: its "step" value, else its index.
function stepOf(p) { return typeof (p.values || {}).step === 'number' ? p.values.step : p.index; }

// The metric names of points, "step" aside, in first-seen order.
function metricKeys(points) {
  const keys = [];
  for (const p of points)
    for (const [k, v] of Object.entries(p.values || {}))
      if (k !== 'step' && typeof v === 'number' && !keys.includes(k)) keys.push(k);
  return keys;
}

// A line chart of series [{key, points: [[x, y], ...]}], each its own colour.
function lineChart(series) {
  series = series.filter((s) => s.points.length);
  if (!series.length) return el('p', { class: 'muted' }, 'No metrics.');
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const ys = series.flatMap((s) => s.points.map(([, y]) => y));
  const W = 800, H = 260, L = 60, R = 160, T = 10, B = 30;
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img' },
    svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' }),
    svg('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }),
    svg('text', { class: 'tick', x: L - 6, y: T + 10, 'text-anchor': 'end' }, fmtNum(y1)),
    svg('text', { class: 'tick', x: L - 6, y: H - B, 'text-anchor': 'end' }, fmtNum(y0)),
    svg('text', { class: 'tick', x: L, y: H - 8 }, fmtNum(x0)),
    svg('text', { class: 'tick', x: W - R, y: H - 8, 'text-anchor': 'end' }, fmtNum(x1)));
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const line = svg('g', { 'data-key': s.key, stroke: colour, fill: colour },
      svg('polyline', { points: s.points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(' '), fill: 'none' }),
      ...s.points.map(([x, y]) => svg('circle', { cx: sx(x), cy: sy(y), r: 2.5 },
        svg('title', {}, `${s.key} = ${fmtNum(y)} at ${fmtNum(x)}`))));
    g.append(line, svg('text', { x: W - R + 10, y: T + 14 + i * 16, fill: colour }, s.key));
  });
  return g;
}

// One run's metrics: a line per metric.
function metricsChart(points) {
  return lineChart(metricKeys(points).map((k) => ({
    key: k,
    points: points.filter((p) => typeof p.values[k] === 'number').map((p) => [stepOf(p), p.values[k]]),
  })));
}

// ---- one run ----

// A log view: text appended in chunks, its ANSI colours (SGR: the 16 colours, bold)
// drawn as classes, other escapes dropped, and lines that look like errors marked so
// that the reader can jump to them. State (colour, a split escape) carries across chunks.
const ERROR_LINE = /\b(error|errors|exception|traceback|fatal|panic|failed)\b/i;

function logAppender(target) {
  let fg = null, bold = false, carry = '';
  return (text) => {
    text = carry + text;
    carry = '';
    const partial = /\x1b(\[[0-9;?]*)?$/.exec(text);
    if (partial) {
      carry = partial[0];
      text = text.slice(0, partial.index);
    }
    const frag = document.createDocumentFragment();
    for (const line of text.match(/[^\n]*\n|[^\n]+/g) || []) {
      const visible = line.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
      const box = ERROR_LINE.test(visible) ? el('span', { class: 'log-error' }) : frag;
      const re = /\x1b\[([0-9;?]*)([A-Za-z])/g;
      let last = 0, m;
      const put = (s) => {
        s = s.replace(/\x1b/g, '');
        if (!s) return;
        if (fg === null && !bold) { box.append(s); return; }
        const sp = el('span', { class: (fg !== null ? 'ansi-' + fg : '') + (bold ? ' ansi-bold' : '') }, s);
        box.append(sp);
      };
      while ((m = re.exec(line))) {
        put(line.slice(last, m.index));
        last = re.lastIndex;
        if (m[2] !== 'm') continue;
        for (const c of (m[1] === '' ? [0] : m[1].split(';').map(Number))) {
          if (c === 0) { fg = null; bold = false; }
          else if (c === 1) bold = true;
          else if (c === 22) bold = false;
          else if (c >= 30 && c <= 37) fg = c - 30;
          else if (c >= 90 && c <= 97) fg = c - 90 + 8;
          else if (c === 39) fg = null;
        }
      }
      put(line.slice(last));
      if (box !== frag) frag.append(box);
    }
    target.append(frag);
  };
}

function runView(id) {
  const main = $('#main');
  const head = el('h1', {}, 'Run ', el('span', { id: 'run-id' }, id));
  const facts = el('dl', { class: 'kv', id: 'run-facts' });
  const cancel = el('button', { type: 'button', class: 'danger', id: 'cancel' }, 'Cancel');
  const attempts = el('tbody');
  const log = el('pre', { class: 'log', id: 'log' });
  const nextError = el('button', { type: 'button', id: 'next-error' }, 'Next error');
  const metrics = el('div', { id: 'metrics' });
  const events = el('tbody');
  const note = el('p', { class: 'error', id: 'run-note' });
  main.replaceChildren(head, note, facts, el('p', {}, cancel),
    el('h2', {}, 'Attempts'), el('table', {}, el('thead', {}, el('tr', {},
      ...['#', 'State', 'Agent', 'Started', 'Ended', 'Exit'].map((h) => el('th', {}, h)))), attempts),
    el('h2', {}, 'Metrics'), metrics,
    el('h2', {}, 'Log ', nextError), log,
    el('h2', {}, 'Events'), el('table', {}, el('thead', {}, el('tr', {},
      ...['Time', 'Type', 'By', 'Message'].map((h) => el('th', {}, h)))), events));
  let stopped = false, fullId = id;
  const terminal = (s) => ['succeeded', 'failed', 'canceled', 'skipped'].includes(s);

  function showRun(r) {
    fullId = r.id;
    $('#run-id').textContent = r.id;
    const kv = [['Name', r.name || '-'], ['State', stateCell(r.state)], ['Reason', r.reason || '-'],
      ['Message', r.message || '-'], ['Submitted', fmtTime(r.created_ms)], ['Started', fmtTime(r.started_ms)],
      ['Ended', fmtTime(r.finished_ms)], ['Priority', String(r.priority || 0)]];
    if (r.array) {
      const what = r.array.id.startsWith('p') ? 'Pipeline' : 'Array';
      kv.push([what, el('a', { href: '#/groups/' + r.array.id, id: 'run-group' }, r.array.id),
        r.array.id.startsWith('p') ? '' : ` (index ${r.array.index})`]);
    }
    facts.replaceChildren(...kv.flatMap(([k, ...v]) => [el('dt', {}, k), el('dd', {}, ...v)]));
    cancel.disabled = terminal(r.state) || r.state === 'canceling';
    attempts.replaceChildren(...(r.attempts || []).map((a) => el('tr', {},
      el('td', {}, String(a.number)), el('td', {}, stateCell(a.state)), el('td', {}, a.agent || '-'),
      el('td', {}, fmtTime(a.started_ms)), el('td', {}, fmtTime(a.finished_ms)),
      el('td', {}, a.exit_code == null ? '-' : String(a.exit_code)))));
  }

  async function refresh() {
    try {
      const r = await apiJSON('/v1/runs/' + encodeURIComponent(id));
      showRun(r);
      const m = await apiJSON('/v1/runs/' + encodeURIComponent(r.id) + '/metrics');
      const latest = r.attempts && r.attempts.length ? r.attempts[r.attempts.length - 1].number : 0;
      metrics.replaceChildren(metricsChart((m.metrics || []).filter((p) => p.attempt === latest)));
    } catch (e) {
      if (e instanceof AuthError) return route();
      note.textContent = e.message;
    }
  }

  // Each click shows the next line that looks like an error, round again at the end.
  nextError.addEventListener('click', () => {
    const all = [...log.querySelectorAll('.log-error')];
    if (!all.length) return;
    const at = all.findIndex((e) => e.classList.contains('current'));
    if (at >= 0) all[at].classList.remove('current');
    const next = all[(at + 1) % all.length];
    next.classList.add('current');
    log.scrollTop = next.offsetTop - log.offsetTop - 20;
  });

  // The log of the latest attempt, followed with long-polls from the last offset.
  async function followLog() {
    let attempt = 0, offset = 0;
    const dec = new TextDecoder();
    let append = logAppender(log);
    const restart = () => { log.textContent = ''; append = logAppender(log); };
    while (!stopped) {
      try {
        const q = new URLSearchParams({ offset: String(offset), wait: '20' });
        if (attempt) q.set('attempt', String(attempt));
        const r = await api('/v1/runs/' + encodeURIComponent(fullId) + '/logs?' + q.toString());
        if (r.status === 404) { await new Promise((res) => setTimeout(res, 1000)); continue; }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        const got = Number(r.headers.get('Pilot-Attempt') || 0);
        const latest = Number(r.headers.get('Pilot-Latest-Attempt') || got);
        if (attempt && got !== attempt) restart();
        attempt = got;
        const text = dec.decode(await r.arrayBuffer(), { stream: true });
        if (text) {
          const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
          append(text);
          if (atEnd) log.scrollTop = log.scrollHeight;
        }
        offset = Number(r.headers.get('Pilot-Next-Offset') || offset);
        if (r.headers.get('Pilot-Complete') === 'true') {
          if (latest > attempt) { attempt = latest; offset = 0; restart(); continue; }
          if (terminal(r.headers.get('Pilot-Run-State') || '')) return;
          await new Promise((res) => setTimeout(res, 1000));
        }
      } catch (e) {
        if (stopped) return;
        if (e instanceof AuthError) return route();
        await new Promise((res) => setTimeout(res, 1000));
      }
    }
  }

  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      await apiJSON('/v1/runs/' + encodeURIComponent(fullId) + '/cancel', { method: 'POST' });
    } catch (e) {
      note.textContent = 'Cannot cancel: ' + e.message;
      cancel.disabled = false;
    }
    refresh();
  });

  let stream = null;
  // Metrics come without events: look again while the run runs.
  const poll = setInterval(() => { if (!cancel.disabled) refresh(); }, 2000);
  refresh().then(() => {
    if (stopped) return;
    followLog();
    stream = followEvents('/v1/runs/' + encodeURIComponent(fullId) + '/events?after=0', (type, data) => {
      let ev;
      try { ev = JSON.parse(data); } catch (e) { return; }
      events.append(el('tr', {}, el('td', {}, fmtTime(ev.time_ms)), el('td', {}, ev.type || type),
        el('td', {}, ev.actor || '-'), el('td', { class: 'name' }, ev.message || '')));
      refresh();
    }, true);
  });
  return { stop() { stopped = true; clearInterval(poll); if (stream) stream.stop(); } };
}

// ---- comparing runs ----

// A run's params in force: its spec's, with the ones given at submission over them.
function paramsOf(run) {
  const parse = (s) => { try { return JSON.parse(s || '{}') || {}; } catch (e) { return {}; } };
  return Object.assign({}, parse(run.spec_json).params || {}, parse(run.params_json));
}

// The latest attempt's metrics of a run.
async function latestMetrics(run) {
  const m = await apiJSON('/v1/runs/' + encodeURIComponent(run.id) + '/metrics');
  const latest = run.attempts && run.attempts.length ? run.attempts[run.attempts.length - 1].number : 0;
  return (m.metrics || []).filter((p) => p.attempt === latest);
}

function compareView(ids) {
  const main = $('#main');
  const note = el('p', { class: 'error', id: 'compare-note' });
  const params = el('tbody');
  const charts = el('div', { id: 'compare-charts' });
  main.replaceChildren(el('h1', {}, 'Compare ', String(ids.length), ' runs'), note,
    el('h2', {}, 'Params'), el('table', { id: 'compare-params' }, el('thead', {}, el('tr', { id: 'compare-head' })), params),
    el('h2', {}, 'Metrics'), charts);
  (async () => {
    try {
      const runs = await Promise.all(ids.map((id) => apiJSON('/v1/runs/' + encodeURIComponent(id))));
      const points = await Promise.all(runs.map(latestMetrics));
      $('#compare-head').replaceChildren(el('th', {}, 'Param'),
        ...runs.map((r) => el('th', {}, el('a', { href: '#/runs/' + r.id }, r.id), ' ', r.name || '')));
      const ps = runs.map(paramsOf);
      const names = [...new Set(ps.flatMap((p) => Object.keys(p)))].sort();
      params.replaceChildren(...names.map((k) => {
        const vals = ps.map((p) => (!(k in p) ? '-' : typeof p[k] === 'string' ? p[k] : JSON.stringify(p[k])));
        const differs = new Set(vals).size > 1;
        return el('tr', { class: differs ? 'differs' : '', 'data-param': k }, el('td', {}, k),
          ...vals.map((v) => el('td', { class: 'name' }, v)));
      }));
      if (!names.length) params.replaceChildren(el('tr', {}, el('td', { class: 'muted' }, 'No params.')));
      // A chart per metric, a line per run.
      const keys = [...new Set(points.flatMap(metricKeys))];
      charts.replaceChildren(...keys.flatMap((k) => [el('h3', {}, k), el('div', { 'data-metric': k },
        lineChart(runs.map((r, i) => ({
          key: r.id,
          points: points[i].filter((p) => typeof p.values[k] === 'number').map((p) => [stepOf(p), p.values[k]]),
        }))))]));
      if (!keys.length) charts.replaceChildren(el('p', { class: 'muted' }, 'No metrics.'));
    } catch (e) {
      if (e instanceof AuthError) return route();
      note.textContent = e.message;
    }
  })();
  return { stop() {} };
}

// ---- arrays and pipelines ----

// An array (x...) as a grid of its elements, a pipeline (p...) as the graph of its jobs
// (a column per depth of needs); the latest run of each index, live.
function groupView(id) {
  const main = $('#main');
  const title = el('h1', {}, id.startsWith('p') ? 'Pipeline ' : 'Array ', el('span', { id: 'group-id' }, id));
  const counts = el('p', { class: 'muted', id: 'group-counts' });
  const body = el('div', { id: 'group' });
  const note = el('p', { class: 'error' });
  main.replaceChildren(title, counts, note, body);
  let stopped = false, timer = null;
  const kind = id.startsWith('p') ? 'pipelines' : 'arrays';

  function latestByIndex(runs) {
    const by = new Map();
    for (const r of runs) by.set(r.array ? r.array.index : by.size, r);
    return [...by.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r);
  }

  function grid(runs) {
    return el('div', { class: 'grid' }, ...runs.map((r) => el('a', {
      href: '#/runs/' + r.id, class: 'cell state-bg-' + r.state, 'data-index': r.array ? r.array.index : '',
      'data-state': r.state, title: `${r.array ? r.array.index : ''} ${r.name || ''}: ${r.state}`,
    }, String(r.array ? r.array.index : ''))));
  }

  function graph(all, runs) {
    // A need names a run, maybe an older one of a retried job: count it as its job.
    const nodeOf = new Map();
    for (const r of all) nodeOf.set(r.id, runs.find((x) => x.array && r.array && x.array.index === r.array.index));
    const depth = new Map();
    const depthOf = (r, seen) => {
      if (depth.has(r.id)) return depth.get(r.id);
      if (seen.has(r.id)) return 0;
      seen.add(r.id);
      const ds = (r.needs || []).map((n) => nodeOf.get(n.run)).filter(Boolean).map((n) => depthOf(n, seen) + 1);
      const d = ds.length ? Math.max(...ds) : 0;
      depth.set(r.id, d);
      return d;
    };
    const cols = [];
    for (const r of runs) (cols[depthOf(r, new Set())] ||= []).push(r);
    const BW = 170, BH = 44, GX = 60, GY = 20;
    const pos = new Map();
    cols.forEach((col, c) => col.forEach((r, i) => pos.set(r.id, [20 + c * (BW + GX), 20 + i * (BH + GY)])));
    const W = 40 + cols.length * (BW + GX), H = 40 + Math.max(...cols.map((c) => c.length)) * (BH + GY);
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'dag', width: W, height: H });
    for (const r of runs)
      for (const n of r.needs || []) {
        const from = nodeOf.get(n.run);
        if (!from || !pos.has(from.id)) continue;
        const [x1, y1] = pos.get(from.id), [x2, y2] = pos.get(r.id);
        g.append(svg('line', { x1: x1 + BW, y1: y1 + BH / 2, x2, y2: y2 + BH / 2, class: 'edge' }));
      }
    for (const r of runs) {
      const [x, y] = pos.get(r.id);
      g.append(svg('a', { href: '#/runs/' + r.id, 'data-job': r.name || '', 'data-state': r.state },
        svg('rect', { x, y, width: BW, height: BH, rx: 4, class: 'node state-bg-' + r.state }),
        svg('text', { x: x + 8, y: y + 18, class: 'node-name' }, r.name || r.id),
        svg('text', { x: x + 8, y: y + 35, class: 'node-state' }, r.state)));
    }
    return g;
  }

  async function load() {
    try {
      const a = await apiJSON('/v1/' + kind + '/' + encodeURIComponent(id));
      const l = await apiJSON('/v1/runs?limit=1000&array=' + encodeURIComponent(a.id));
      // Oldest first, so that the latest run of an index is the one kept; a pipeline's
      // runs one by one, for their needs.
      let all = (l.runs || []).sort((x, y) => x.created_ms - y.created_ms || (x.id < y.id ? -1 : 1));
      if (kind === 'pipelines') all = await Promise.all(all.map((r) => apiJSON('/v1/runs/' + encodeURIComponent(r.id))));
      if (stopped) return;
      $('#group-id').textContent = a.id + (a.name ? ' ' + a.name : '');
      const runs = latestByIndex(all);
      const by = {};
      for (const r of runs) by[r.state] = (by[r.state] || 0) + 1;
      counts.textContent = `${runs.length} runs: ` + Object.entries(by).map(([s, n]) => `${n} ${s}`).join(', ');
      body.replaceChildren(kind === 'pipelines' ? graph(all, runs) : grid(runs));
    } catch (e) {
      if (e instanceof AuthError) return route();
      note.textContent = e.message;
    }
  }

  load();
  const events = followEvents('/v1/events', () => {
    if (!timer) timer = setTimeout(() => { timer = null; if (!stopped) load(); }, 200);
  });
  return { stop() { stopped = true; events.stop(); clearTimeout(timer); } };
}

// ---- agents ----

function agentsView() {
  const main = $('#main');
  const tbody = el('tbody');
  const note = el('p', { class: 'muted', id: 'agents-note' });
  main.replaceChildren(el('h1', {}, 'Agents'),
    el('table', { id: 'agents' }, el('thead', {}, el('tr', {},
      ...['Name', 'State', 'Runs', 'Labels', 'Slots', 'Version', 'Last seen', 'Told'].map((h) => el('th', {}, h)))),
    tbody), note);
  let stopped = false;

  function labels(l) {
    const kv = Object.entries(l || {});
    return kv.length ? kv.map(([k, v]) => k + '=' + v).join(', ') : '-';
  }

  async function load() {
    try {
      const l = await apiJSON('/v1/agents');
      if (stopped) return;
      tbody.replaceChildren(...l.agents.map((a) => el('tr', { 'data-agent': a.name },
        el('td', { class: 'name' }, a.name),
        el('td', {}, el('span', { class: 'state agent-' + a.state }, a.state)),
        el('td', {}, ...(a.runs && a.runs.length
          ? a.runs.flatMap((r, i) => [i ? ', ' : '', el('a', { href: '#/runs/' + r }, r)]) : ['-'])),
        el('td', { class: 'name' }, labels(a.labels)),
        el('td', {}, `${(a.runs || []).length}/${a.capacity || 1}`),
        el('td', {}, a.version || '-'),
        el('td', {}, fmtTime(a.last_seen_ms)),
        el('td', {}, a.control ? `${a.control} by ${a.control_by || '?'}` : '-'))));
      note.textContent = l.agents.length ? '' : 'No agents yet.';
    } catch (e) {
      if (e instanceof AuthError) return route();
      note.textContent = 'Cannot list agents: ' + e.message;
    }
  }

  // Agents change without events (a heartbeat, a claim): look every few seconds.
  load();
  const timer = setInterval(load, 3000);
  return { stop() { stopped = true; clearInterval(timer); } };
}

// ---- login and routing ----

function showLogin(message) {
  $('#logout').hidden = true;
  setConn('');
  const main = $('#main');
  main.replaceChildren($('#login-view').content.cloneNode(true));
  $('#login-error').textContent = message || '';
  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = $('#login-token').value.trim();
    sessionStorage.setItem(TOKEN_KEY, t);
    try {
      await apiJSON('/v1/whoami');
      location.hash = '#/runs';
      route();
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      $('#login-error').textContent = e.message;
    }
  });
}

let view = null;

function route() {
  if (view && view.stop) view.stop();
  view = null;
  if (!token()) return showLogin();
  $('#logout').hidden = false;
  setConn('');
  const m = /^#\/runs\/([A-Za-z0-9]+)$/.exec(location.hash);
  const c = /^#\/compare\/([A-Za-z0-9]+(,[A-Za-z0-9]+)+)$/.exec(location.hash);
  let g;
  if (m) view = runView(m[1]);
  else if (c) view = compareView(c[1].split(','));
  else if ((g = /^#\/groups\/([A-Za-z0-9]+)$/.exec(location.hash))) view = groupView(g[1]);
  else if (location.hash === '#/agents') view = agentsView();
  else view = runsView();
}

document.addEventListener('DOMContentLoaded', () => {
  takeTokenFromFragment();
  $('#logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
  window.addEventListener('hashchange', route);
  route();
});
