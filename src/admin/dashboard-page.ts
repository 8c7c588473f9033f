/**
 * The live dashboard served at `/` of the admin listener: one self-contained page (no
 * external script, style or font), polling `GET /api/pools` once a second. It shows each
 * pool's backends (health, state, weights, active requests, requests/s, error rate, latency
 * EWMA, p50, p99), charts of requests/s and p99 latency per backend over the last minute,
 * the share of traffic each backend gets, and drain / disable / enable buttons.
 *
 * With `admin.token` set, open `/#token=<token>`: the fragment never leaves the browser; the
 * page sends it as a bearer token.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>anubis dashboard</title>
<style>
  :root { --bg:#0f1216; --panel:#171b21; --line:#2a3039; --text:#dde3ea; --dim:#8a96a3;
          --ok:#3fb950; --bad:#f85149; --warn:#d29922; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; gap:16px; align-items:baseline; padding:12px 20px; border-bottom:1px solid var(--line); }
  header h1 { font-size:18px; margin:0; }
  header span { color:var(--dim); }
  #error { color:var(--bad); }
  main { padding:16px 20px; display:grid; gap:20px; }
  section.pool { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:14px; }
  section.pool h2 { font-size:16px; margin:0 0 10px; }
  section.pool h2 small { color:var(--dim); font-weight:normal; margin-left:8px; }
  table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
  th, td { text-align:right; padding:4px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th:first-child, td:first-child, td.state, th.state { text-align:left; }
  th { color:var(--dim); font-weight:normal; }
  .dot { display:inline-block; width:9px; height:9px; border-radius:50%; margin-right:6px; }
  .up { background:var(--ok); } .down { background:var(--bad); }
  .badge { padding:1px 6px; border-radius:4px; font-size:12px; border:1px solid var(--line); }
  .draining { color:var(--warn); border-color:var(--warn); } .disabled { color:var(--bad); border-color:var(--bad); }
  .share { display:inline-block; height:8px; background:#58a6ff; border-radius:2px; vertical-align:middle; }
  button { background:#21262d; color:var(--text); border:1px solid var(--line); border-radius:4px; padding:2px 8px; cursor:pointer; }
  button:hover { border-color:var(--dim); }
  .charts { display:grid; grid-template-columns:repeat(auto-fit, minmax(320px, 1fr)); gap:14px; margin-top:12px; }
  .chart h3 { font-size:13px; color:var(--dim); font-weight:normal; margin:0 0 4px; }
  canvas { width:100%; height:150px; background:#0b0e12; border-radius:4px; }
  .legend { font-size:12px; color:var(--dim); margin-top:4px; }
  .legend i { display:inline-block; width:10px; height:3px; margin:0 4px 2px 10px; vertical-align:middle; }
</style>
</head>
<body>
<header><h1>anubis</h1><span id="meta">connecting…</span><span id="error"></span></header>
<main id="pools"></main>
<script>
(function () {
  'use strict';
  var COLORS = ['#58a6ff', '#3fb950', '#d29922', '#f778ba', '#a371f7', '#ff7b72', '#79c0ff', '#56d364'];
  var HISTORY = 60;
  var token = (/(?:^|[#&])token=([^&]+)/.exec(location.hash) || [])[1];
  var headers = token ? { authorization: 'Bearer ' + decodeURIComponent(token) } : {};
  var history = {}; // pool -> backend -> { rps: [], p99: [] }
  var built = {};   // pool -> true once its section exists

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var key in attrs || {}) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fmt(value, digits) {
    return value === null || value === undefined ? '–' : Number(value).toFixed(digits);
  }
  function pct(value) { return value === null || value === undefined ? '–' : (value * 100).toFixed(1) + '%'; }

  function act(pool, backend, action) {
    var url = '/api/pools/' + encodeURIComponent(pool) + '/backends/' + encodeURIComponent(backend) + '/' + action;
    fetch(url, { method: 'POST', headers: headers }).then(function (res) {
      if (!res.ok) return res.json().then(function (body) { showError(body.error ? body.error.message : res.status); });
      return refresh();
    }, function (err) { showError(String(err)); });
  }
  function showError(text) { document.getElementById('error').textContent = text || ''; }

  function buildPool(pool) {
    var section = el('section', { class: 'pool', 'data-pool': pool.name });
    var title = el('h2', {}, pool.name);
    title.appendChild(el('small', { 'data-field': 'pool-meta' }));
    section.appendChild(title);
    var table = el('table');
    var head = el('tr');
    ['backend', 'health', 'state', 'weight', 'eff.', 'active', 'req/s', 'errors', 'share', 'ewma ms', 'p50 ms', 'p99 ms', ''].forEach(function (h, i) {
      head.appendChild(el('th', i === 2 ? { class: 'state' } : {}, h));
    });
    table.appendChild(head);
    table.appendChild(el('tbody'));
    section.appendChild(table);
    var charts = el('div', { class: 'charts' });
    [['rps', 'requests/s per backend'], ['p99', 'p99 latency (ms) per backend'], ['share', 'share of traffic (stacked)']].forEach(function (c) {
      var box = el('div', { class: 'chart' });
      box.appendChild(el('h3', {}, c[1]));
      box.appendChild(el('canvas', { 'data-chart': c[0], width: '600', height: '150' }));
      box.appendChild(el('div', { class: 'legend', 'data-legend': c[0] }));
      charts.appendChild(box);
    });
    section.appendChild(charts);
    document.getElementById('pools').appendChild(section);
    return section;
  }

  function row(pool, b, index) {
    var tr = el('tr', { 'data-backend': pool.name + '/' + b.id });
    var name = el('td', { title: b.url });
    name.appendChild(el('i', { class: 'dot', style: 'background:' + COLORS[index % COLORS.length] }));
    name.appendChild(document.createTextNode(b.id + (b.backup ? ' (backup)' : '')));
    name.title = b.url + ' · retries ' + b.retries + ' · ejections ' + b.ejections;
    tr.appendChild(name);
    var health = el('td', { 'data-field': 'health' });
    health.appendChild(el('span', { class: 'dot ' + (b.healthy ? 'up' : 'down') }));
    health.appendChild(document.createTextNode(b.healthy ? 'up' : 'down'));
    if (b.workers > 1) health.appendChild(document.createTextNode(' ' + b.healthyWorkers + '/' + b.workers));
    tr.appendChild(health);
    var state = el('td', { class: 'state', 'data-field': 'state' });
    state.appendChild(el('span', { class: 'badge ' + b.state }, b.state));
    tr.appendChild(state);
    tr.appendChild(el('td', { 'data-field': 'weight' }, String(b.weight)));
    tr.appendChild(el('td', { 'data-field': 'effectiveWeight' }, fmt(b.effectiveWeight, 1)));
    tr.appendChild(el('td', { 'data-field': 'active' }, String(b.active)));
    tr.appendChild(el('td', { 'data-field': 'rps' }, fmt(b.requestsPerSecond, 1)));
    tr.appendChild(el('td', { 'data-field': 'errorRate' }, pct(b.errorRate)));
    var share = el('td', { 'data-field': 'share' });
    share.appendChild(el('span', { class: 'share', style: 'width:' + Math.round((b.share || 0) * 60) + 'px' }));
    share.appendChild(document.createTextNode(' ' + pct(b.share)));
    tr.appendChild(share);
    tr.appendChild(el('td', { 'data-field': 'ewma' }, fmt(b.latency.ewmaMs, 2)));
    tr.appendChild(el('td', { 'data-field': 'p50' }, fmt(b.latency.p50Ms, 2)));
    tr.appendChild(el('td', { 'data-field': 'p99' }, fmt(b.latency.p99Ms, 2)));
    var buttons = el('td');
    var actions = b.state === 'enabled' ? ['drain', 'disable'] : ['enable'];
    actions.forEach(function (action) {
      var button = el('button', { 'data-action': action }, action);
      button.addEventListener('click', function () { act(pool.name, b.id, action); });
      buttons.appendChild(button);
    });
    tr.appendChild(buttons);
    return tr;
  }

  function drawLines(canvas, series, colors) {
    var ctx = canvas.getContext('2d');
    var w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    var max = 0;
    series.forEach(function (s) { s.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    if (max <= 0) max = 1;
    ctx.strokeStyle = '#2a3039'; ctx.fillStyle = '#8a96a3'; ctx.font = '11px system-ui';
    ctx.beginPath(); ctx.moveTo(0, h - 0.5); ctx.lineTo(w, h - 0.5); ctx.stroke();
    ctx.fillText(max.toFixed(max < 10 ? 1 : 0), 4, 12);
    series.forEach(function (s, i) {
      ctx.strokeStyle = colors[i]; ctx.lineWidth = 2; ctx.beginPath();
      var started = false;
      s.forEach(function (v, x) {
        if (v === null) { started = false; return; }
        var px = (x + HISTORY - s.length) * (w / (HISTORY - 1));
        var py = h - 4 - (v / max) * (h - 20);
        if (started) ctx.lineTo(px, py); else { ctx.moveTo(px, py); started = true; }
      });
      ctx.stroke();
    });
  }

  // Stacked areas: at each sample, the backends' shares of the pool's requests, bottom up.
  function drawShare(canvas, series, colors) {
    var ctx = canvas.getContext('2d');
    var w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    var length = 0;
    series.forEach(function (s) { if (s.length > length) length = s.length; });
    var step = w / (HISTORY - 1), offset = HISTORY - length;
    var base = [];
    for (var x = 0; x < length; x++) base.push(0);
    var any = false;
    series.forEach(function (s, i) {
      // A backend added later has a shorter history: align it on the right edge.
      var shift = length - s.length;
      var top = base.map(function (b, x) { return b + (s[x - shift] || 0); });
      ctx.fillStyle = colors[i];
      ctx.beginPath();
      for (var x = 0; x < length; x++) ctx.lineTo((x + offset) * step, h - top[x] * h);
      for (var y = length - 1; y >= 0; y--) ctx.lineTo((y + offset) * step, h - base[y] * h);
      ctx.closePath();
      ctx.fill();
      if (top.some(function (v) { return v > 0; })) any = true;
      base = top;
    });
    if (!any) { ctx.fillStyle = '#8a96a3'; ctx.font = '12px system-ui'; ctx.fillText('no traffic in the window', 8, h / 2); }
  }

  function render(view) {
    document.getElementById('meta').textContent =
      view.workers + ' worker(s) · rates over ' + view.windowSeconds.toFixed(1) + ' s · ' + new Date(view.at).toLocaleTimeString();
    view.pools.forEach(function (pool) {
      var section = document.querySelector('section[data-pool="' + CSS.escape(pool.name) + '"]') || buildPool(pool);
      built[pool.name] = true;
      section.querySelector('[data-field="pool-meta"]').textContent =
        pool.strategy + ' · ' + pool.mode + ' · ' + fmt(pool.requestsPerSecond, 1) + ' req/s' +
        (pool.queueLength ? ' · ' + pool.queueLength + ' queued' : '') +
        (pool.unrouted ? ' · ' + pool.unrouted + ' unrouted' : '');
      var body = section.querySelector('tbody');
      body.replaceChildren.apply(body, pool.backends.map(function (b, i) { return row(pool, b, i); }));
      var perPool = history[pool.name] = history[pool.name] || {};
      var colors = [], rps = [], p99 = [], shares = [];
      var legend = [];
      pool.backends.forEach(function (b, i) {
        var h = perPool[b.id] = perPool[b.id] || { rps: [], p99: [], share: [] };
        h.rps.push(b.requestsPerSecond); h.p99.push(b.latency.p99Ms); h.share.push(b.share);
        if (h.rps.length > HISTORY) { h.rps.shift(); h.p99.shift(); h.share.shift(); }
        colors.push(COLORS[i % COLORS.length]); rps.push(h.rps); p99.push(h.p99); shares.push(h.share);
        legend.push(b.id);
      });
      drawLines(section.querySelector('[data-chart="rps"]'), rps, colors);
      drawLines(section.querySelector('[data-chart="p99"]'), p99, colors);
      drawShare(section.querySelector('[data-chart="share"]'), shares, colors);
      section.querySelectorAll('.legend').forEach(function (node) {
        node.replaceChildren();
        legend.forEach(function (id, i) {
          node.appendChild(el('i', { style: 'background:' + colors[i] }));
          node.appendChild(document.createTextNode(id));
        });
      });
    });
  }

  var inFlight = false;
  function refresh() {
    if (inFlight) return Promise.resolve();
    inFlight = true;
    return fetch('/api/pools', { headers: headers }).then(function (res) {
      return res.json().then(function (body) {
        if (!res.ok) throw new Error(body.error ? body.error.message : 'HTTP ' + res.status);
        showError('');
        render(body);
      });
    }).catch(function (err) { showError(String(err.message || err)); })
      .then(function () { inFlight = false; });
  }
  refresh();
  setInterval(refresh, 1000);
})();
</script>
</body>
</html>
`;
