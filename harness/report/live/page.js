// harness live page: draws the run's events (harness.report.live.feed) as hand-made SVG charts.
// Data comes from /events (Server-Sent Events, same origin) or, in report.html, from the
// JSON inside <script id="harness-events">. Nothing is fetched from anywhere else.
"use strict";
(function () {
  const root = document.getElementById("harness-live");
  if (!root) return;
  // the SVG namespace, taken from a parsed element (no address written in the page)
  const probe = document.createElement("div");
  probe.innerHTML = ["<", "svg></", "svg>"].join("");
  const NS = probe.firstChild.namespaceURI;
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const PCT = ["p50", "p90", "p99", "p99.9", "max"];
  let S;  // the state, rebuilt from the first event on every (re)connection

  function reset(meta) {
    S = {meta: meta || {}, steps: [], recs: {}, finals: {}, rows: [], verdict: null,
         ended: false, conns: {}, bounds: [], xr: [0, 1]};
  }
  reset();

  const css = `body{font:14px system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:18px 0 4px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}
.chart{border:1px solid #ddd;padding:6px} .chart svg{width:100%;height:220px}
table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #ddd;padding:2px 6px;
text-align:right} th{background:#f4f4f4} .scroll{max-height:320px;overflow:auto}
.flag{color:#fff;background:#c0392b;padding:1px 5px;border-radius:3px;margin:0 3px;font-size:11px}
.flag.shared{background:#d68910} #verdict{padding:8px;margin:8px 0;border-radius:4px}
.ok{background:#e8f5e9} .bad{background:#fdecea} .warn{background:#fff4e5}
.legend span{margin-right:10px;font-size:12px} .status{color:#666;font-size:12px}`;
  const style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);
  root.innerHTML = `<h1 id="title">harness</h1><div class="status" id="status"></div>
<div id="verdict"></div><div id="flags"></div><div class="grid" id="charts"></div>
<h2>Steps</h2><div id="steps"></div><h2>Breakdown</h2><div id="breakdown"></div>
<h2>Per second (true percentiles of each second, merged across workers and machines)</h2>
<div class="scroll"><table id="seconds"></table></div>`;
  const $ = (id) => document.getElementById(id);
  const CHARTS = [
    ["throughput", "Throughput per second (msgs/s)"],
    ["latency", "Latency per second: p50 p90 p99 p99.9 max (ms); dashed: step so far p99"],
    ["errors", "Errors per second, by kind (stacked)"],
    ["conns", "Open connections; reconnects per second"],
    ["cpu", "Client CPU per worker (% of a core)"],
    ["server", "Server CPU (%) and RSS (MB), when watched"],
  ];
  for (const [id, title] of CHARTS) {
    const d = document.createElement("div");
    d.className = "chart";
    d.id = "chart-" + id;
    d.innerHTML = `<div><b>${title}</b></div><div class="legend"></div>`;
    $("charts").appendChild(d);
  }

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function timeline() {  // every record in order, with x: seconds since the first step
    const out = [];
    let offset = 0;
    S.bounds = [];
    const steps = Object.keys(S.recs).map(Number).sort((a, b) => a - b);
    for (const k of steps) {
      const recs = S.finals[k] || S.recs[k];
      S.bounds.push([offset, S.conns[k]]);
      for (const r of recs) if (r) out.push(Object.assign({x: offset + r.s}, r));
      offset += recs.length;
    }
    return out;
  }

  function bounds(svg, X, x0, x1, top, bottom) {  // each step's start, with its conns
    for (const [x, conns] of S.bounds || []) {
      if (x < x0 || x > x1) continue;
      el("line", {x1: X(x), y1: top, x2: X(x), y2: bottom, stroke: "#bbb",
                  "stroke-dasharray": "2,3"}, svg);
      el("text", {x: X(x) + 3, y: top + 9, "font-size": 9, fill: "#777"}, svg)
        .textContent = conns === undefined ? "" : `${conns} conns`;
    }
  }

  function draw(id, series, opts) {
    // series: [{name, color, pts: [[x, y]], dash, stacked}] on one y axis (log if opts.log)
    const box = $("chart-" + id);
    const old = box.querySelector("svg");
    if (old) old.remove();
    const W = 560, H = 220, L = 52, R = 8, T = 8, B = 24;
    const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, "data-chart": id}, box);
    const all = series.flatMap((s) => s.pts.filter((p) => p[1] !== null && p[1] !== undefined));
    box.querySelector(".legend").innerHTML = series.map((s) =>
      `<span style="color:${s.color}">&#9632; ${s.name}</span>`).join("");
    if (!all.length) {
      el("text", {x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#999"}, svg)
        .textContent = "no data yet";
      return;
    }
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    // one time axis for every chart: the whole run so far
    const x0 = Math.min(...xs, S.xr[0]), x1 = Math.max(...xs, S.xr[1], x0 + 1);
    const log = opts && opts.log && Math.min(...ys.filter((y) => y > 0)) > 0;
    let y0 = 0, y1 = Math.max(...ys, 1);
    const pos = ys.filter((y) => y > 0);
    if (log && pos.length) { y0 = Math.log10(Math.min(...pos)); y1 = Math.log10(Math.max(...pos)); }
    if (y1 <= y0) y1 = y0 + 1;
    const fy = (y) => log ? Math.log10(Math.max(y, 1e-9)) : y;
    const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
    const Y = (y) => T + (1 - (fy(y) - y0) / (y1 - y0)) * (H - T - B);
    el("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"}, svg);
    el("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"}, svg);
    for (const f of [0, 0.5, 1]) {
      const v = log ? Math.pow(10, y0 + f * (y1 - y0)) : y0 + f * (y1 - y0);
      el("text", {x: L - 4, y: T + (1 - f) * (H - T - B) + 4, "text-anchor": "end",
                  "font-size": 10, fill: "#555"}, svg).textContent = fmt(v);
    }
    el("text", {x: W - R, y: H - 6, "text-anchor": "end", "font-size": 10, fill: "#555"}, svg)
      .textContent = `${x1} s`;
    bounds(svg, X, x0, x1, T, H - B);
    for (const s of series) {
      if (s.bars) {
        for (const p of s.pts) {
          if (!p[1]) continue;
          const w = Math.max((W - L - R) / (x1 - x0 + 1) - 1, 1);
          el("rect", {x: X(p[0]) - w / 2, y: Y(p[2] + p[1]), width: w,
                      height: Math.max(Y(p[2]) - Y(p[2] + p[1]), 1), fill: s.color}, svg);
        }
        continue;
      }
      const pts = s.pts.filter((p) => p[1] !== null && p[1] !== undefined && (!log || p[1] > 0));
      if (!pts.length) continue;
      el("polyline", {points: pts.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`)
        .join(" "), fill: "none", stroke: s.color, "stroke-width": 1.6,
        "stroke-dasharray": s.dash ? "5,3" : "none", "data-points": pts.length}, svg);
    }
  }

  function fmt(v) {
    if (v === null || v === undefined) return "";
    const a = Math.abs(v);
    return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 0.1 ? v.toFixed(3) : v.toPrecision(3);
  }

  function render() {
    const t = timeline();
    S.xr = t.length ? [t[0].x, t[t.length - 1].x] : [0, 1];
    const deliveries = S.meta.delivery === "broadcast";
    draw("throughput", [
      {name: deliveries ? "deliveries/s" : "replies/s", color: COLORS[2],
       pts: t.map((r) => [r.x, r.received])},
      {name: "requests/s", color: COLORS[0], pts: t.map((r) => [r.x, r.sent])}]);
    draw("latency", PCT.map((name, i) => ({name, color: COLORS[i],
      pts: t.map((r) => [r.x, r.p[i]])})).concat([{name: "step p99 so far", color: COLORS[2],
      dash: true, pts: t.map((r) => [r.x, r.cum[2]])}]), {log: true});
    const kinds = [...new Set(t.flatMap((r) => Object.keys(r.kinds || {})))];
    const base = t.map(() => 0);
    draw("errors", (kinds.length ? kinds : ["errors"]).map((k, i) => ({name: k, bars: true,
      color: COLORS[(i + 3) % COLORS.length], pts: t.map((r, j) => {
        const n = kinds.length ? (r.kinds || {})[k] || 0 : r.errors;
        const p = [r.x, n, base[j]];
        base[j] += n;
        return p;
      })})));
    draw("conns", [{name: "open", color: COLORS[0], pts: t.map((r) => [r.x, r.open])},
      {name: "reconnects/s", color: COLORS[1], pts: t.map((r) => [r.x, r.reconnects])}]);
    const workers = [...new Set(t.flatMap((r) => Object.keys(r.cpu || {})))].sort();
    draw("cpu", workers.map((w, i) => ({name: w, color: COLORS[i % COLORS.length],
      pts: t.map((r) => [r.x, r.cpu && r.cpu[w] ? r.cpu[w].cpu : null])})));
    const roles = [...new Set(t.flatMap((r) => Object.keys(r.server || {})))].sort();
    draw("server", roles.flatMap((role, i) => [
      {name: role + " CPU %", color: COLORS[i % COLORS.length],
       pts: t.map((r) => [r.x, r.server && r.server[role] ? r.server[role].cpu : null])},
      {name: role + " RSS MB", color: COLORS[i % COLORS.length], dash: true,
       pts: t.map((r) => [r.x, r.server && r.server[role] ? r.server[role].rss_mb : null])}]));
    flags(t);
    table(t);
    steps();
    verdict();
  }

  function flags(t) {
    const last = t[t.length - 1];
    const seen = {};
    for (const r of t) for (const [w, c] of Object.entries(r.cpu || {}))
      for (const f of c.flags) (seen[f] = seen[f] || new Set()).add(`${w} at ${r.x} s`);
    $("flags").innerHTML = Object.entries(seen).map(([f, where]) =>
      `<span class="flag${f === "SHARED CORE" ? " shared" : ""}">${f}</span>` +
      `<span class="status">${[...where].slice(-3).join(", ")}</span>`).join(" ");
    $("status").textContent = (S.ended ? "run ended" : "running") +
      (last ? `, step ${last.step}, second ${last.s}` : "");
  }

  function table(t) {
    const head = "<tr><th>step</th><th>s</th><th>sent</th><th>received</th><th>errors</th>" +
      PCT.map((p) => `<th>${p} ms</th>`).join("") + "<th>step p99 ms</th><th>open</th></tr>";
    const rows = t.slice().reverse().map((r) =>
      `<tr data-step="${r.step}" data-s="${r.s}"${r.final ? ' class="final"' : ""}>` +
      `<td>${r.step}</td><td>${r.s}</td><td>${r.sent}</td><td>${r.received}</td>` +
      `<td>${r.errors}</td>` + r.p.map((v) => `<td>${v === null ? "" : v}</td>`).join("") +
      `<td>${r.cum[2] === null ? "" : r.cum[2]}</td><td>${r.open ?? ""}</td></tr>`);
    $("seconds").innerHTML = head + rows.join("");
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  function steps() {
    const rows = S.steps.map((s) => {
      const lat = s.latency_ms || {};
      const bound = s.client_bound ? '<span class="flag">CLIENT-BOUND</span>' : "";
      const shared = s.shared_core ? '<span class="flag shared">SHARED CORE</span>' : "";
      return `<tr><td>${esc(s.conns)}</td><td>${fmt(s.throughput_msgs_s)}</td>` +
        `<td>${lat.p50 ?? ""}</td><td>${lat.p99 ?? ""}</td><td>${lat.p999 ?? ""}</td>` +
        `<td>${lat.max ?? ""}</td><td>${esc(errTotal(s))}</td><td>${s.lost ?? 0}</td>` +
        `<td>${s.duplicates ?? 0}</td><td>${fmt(s.client_cpu_pct)}</td><td>${bound}${shared}</td></tr>`;
    });
    $("steps").innerHTML = rows.length ? "<table><tr><th>conns</th><th>msgs/s</th>" +
      "<th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>errors</th>" +
      "<th>lost</th><th>dups</th><th>client CPU %</th><th></th></tr>" + rows.join("") +
      "</table>" : "<span class='status'>no step finished yet</span>";
    const last = S.steps[S.steps.length - 1];
    $("breakdown").innerHTML = last ? breakdown(last) : "";
  }

  function errTotal(s) {
    return Object.values(s.errors || {}).reduce((a, b) => a + b, 0);
  }

  function rowsTable(title, cols, rows) {
    return `<div><b>${esc(title)}</b><table><tr>${cols.map((c) => `<th>${esc(c[0])}</th>`)
      .join("")}</tr>${rows.map((r) => `<tr>${cols.map((c) => `<td>${esc(c[1](r) ?? "")}</td>`)
      .join("")}</tr>`).join("")}</table></div>`;
  }

  function breakdown(s) {
    const parts = [];
    const lat = (r) => r.latency_ms || {};
    if (s.kinds) parts.push(rowsTable(`step ${s.step ?? ""}: per request name`,
      [["name", (r) => r.kind], ["sent", (r) => r.sent], ["received", (r) => r.received],
       ["p50 ms", (r) => lat(r).p50], ["p90 ms", (r) => lat(r).p90],
       ["p99 ms", (r) => lat(r).p99], ["max ms", (r) => lat(r).max]], s.kinds));
    if (s.users) parts.push(rowsTable("per user class",
      [["class", (r) => r[0]], ["connections", (r) => r[1]]], Object.entries(s.users)));
    const nodes = s.per_node || (s.fanout && s.fanout.per_node);
    if (nodes) parts.push(rowsTable("per node (fan-out)",
      [["node", (r) => r.target ?? r.node], ["receivers", (r) => r.receivers],
       ["expected", (r) => r.deliveries_expected], ["delivered", (r) => r.deliveries],
       ["lost", (r) => r.lost], ["duplicates", (r) => r.duplicates],
       ["reordered", (r) => r.reordered]], nodes));
    if (s.machines) parts.push(rowsTable("per machine (cluster)",
      [["machine", (r) => r.machine], ["conns", (r) => r.conns],
       ["workers", (r) => r.workers], ["sent", (r) => r.sent],
       ["received", (r) => r.received], ["msgs/s", (r) => fmt(r.throughput_msgs_s)],
       ["p50 ms", (r) => lat(r).p50], ["p99 ms", (r) => lat(r).p99],
       ["lost", (r) => r.lost ?? r.refused ?? ""]], s.machines));
    return parts.join("") || "<span class='status'>one kind, one node, one machine</span>";
  }

  function verdict() {
    const v = S.verdict;
    const box = $("verdict");
    if (!v) { box.className = ""; box.textContent = ""; return; }
    const d = v.verdict || {};
    box.className = v.exit === 0 ? "ok" : v.exit === 4 ? "warn" : "bad";
    box.textContent = `verdict: exit ${v.exit}` + (v.reason ? ` (${v.reason})` : "") +
      (d.degraded_at !== undefined ? `; degraded at ${d.degraded_at ?? "none"}, last healthy ` +
      `${d.last_healthy ?? "none"}` + (d.rule ? `, rule ${d.rule}` : "") : "");
  }

  const handlers = {
    meta: (d) => { reset(d); $("title").textContent = `harness: ${d.name || ""} → ${d.target || ""}`; },
    step_start: (d) => { S.recs[d.step] = S.recs[d.step] || []; S.conns[d.step] = d.conns; },
    second: (d) => { (S.recs[d.step] = S.recs[d.step] || [])[d.s] = d; },
    final: (d) => { S.recs[d.step] = S.recs[d.step] || []; S.finals[d.step] = d.records; },
    step: (d) => { S.steps.push(d); },
    verdict: (d) => { S.verdict = d; },
    end: () => { S.ended = true; },
  };
  let pending = false;
  function on(kind, data) {
    handlers[kind](data);
    if (!pending) { pending = true; setTimeout(() => { pending = false; render(); }, 50); }
  }
  window.harnessLive = {state: () => S, render: render};

  const inline = document.getElementById("harness-events");
  if (inline) {
    for (const [kind, data] of JSON.parse(inline.textContent)) on(kind, data);
    return;
  }
  const es = new EventSource(root.dataset.source);
  for (const kind of Object.keys(handlers)) {
    es.addEventListener(kind, (e) => {
      on(kind, JSON.parse(e.data));
      if (kind === "end") es.close();
    });
  }
})();
