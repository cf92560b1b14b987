/*
 * canaryctl dashboard: the page. Polls the JSON endpoints every few seconds and draws with
 * uPlot. Every string from the server goes into the page as text (textContent), never as HTML:
 * a rollout's name may hold anything.
 */
"use strict";

const POLL_MS = 3000;
const charts = new Map(); // card id -> {u, key}

// ---- small DOM helpers -------------------------------------------------------------------------

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "href") e.setAttribute("href", v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) {
    if (k === null || k === undefined) continue;
    e.appendChild(typeof k === "string" || typeof k === "number" ? document.createTextNode(String(k)) : k);
  }
  return e;
}

function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.001 || a >= 1e6)) return v.toExponential(2);
  return String(Number(v.toFixed(digits === undefined ? 4 : digits)));
}

function stateBadge(s) {
  return el("span", { class: "state state-" + String(s).replace(/[^a-z_]/g, "") }, s);
}

function time(s) {
  return s ? String(s).replace("T", " ").replace(/\.\d+Z$/, "Z") : "–";
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json().catch(() => ({ error: "bad JSON from " + url }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function showError(main, e) {
  main.replaceChildren(el("p", { class: "error" }, "cannot read the dashboard's data: " + e.message));
}

// ---- the list of rollouts ----------------------------------------------------------------------

function renderList(main, data) {
  const rows = data.rollouts.map((r) => {
    const d = r.last_decision;
    const link = el("a", { href: "/rollout?id=" + encodeURIComponent(r.id) }, r.id);
    return el("tr", {},
      el("td", {}, link), el("td", {}, r.service), el("td", {}, r.version),
      el("td", {}, r.stage), el("td", {}, stateBadge(r.state)),
      el("td", { class: "num" }, fmt(r.exposure_percent, 3) + "%"),
      el("td", {}, d ? [time(d.time), " ", d.action, d.rule ? " [" + d.rule + "]" : "", " ", d.reason].join("") : "–"));
  });
  const table = el("table", { id: "rollouts" },
    el("thead", {}, el("tr", {}, ...["rollout", "service", "version", "stage", "state", "exposure", "last decision"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
  main.replaceChildren(el("h2", {}, "Rollouts"), rows.length ? table : el("p", {}, "No rollouts yet (canaryd creates one on rollout.requested)."));
}

// ---- series ------------------------------------------------------------------------------------

// series(list, kind, name, stat, variant): the points of that series over every cohort, as a
// Map from time (s) to value (a later cohort's point wins: the rollout moved on).
function points(data, pred) {
  const m = new Map();
  const matching = data.series.filter(pred).sort((a, b) => a.cohort - b.cohort);
  for (const s of matching) for (let i = 0; i < s.t.length; i++) m.set(s.t[i] / 1000, s.v[i]);
  return m;
}

function metric(data, name, stat, variant, kinds) {
  return points(data, (s) => (kinds || ["metric"]).includes(s.kind) && s.name === name && s.stat === stat && s.variant === variant);
}

// Several maps over one time axis, for uPlot: [xs, ys1, ys2, ...] with null for gaps.
function align(maps) {
  const xs = [...new Set(maps.flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
  return [xs, ...maps.map((m) => xs.map((x) => (m.has(x) ? m.get(x) : null)))];
}

function ratio(num, den) {
  const m = new Map();
  for (const [t, d] of den) if (d > 0) m.set(t, (num.get(t) || 0) / d);
  return m;
}

function constant(ref, value) {
  const m = new Map();
  for (const t of ref.keys()) m.set(t, value);
  return m;
}

const COLORS = ["#d9480f", "#1c7ed6", "#e8590c", "#1971c2", "#f08c00", "#1864ab", "#c2255c", "#2b8a3e"];

// A chart card: labels[i] names maps[i]; dashed: indexes drawn as limits.
function chart(grid, id, title, labels, maps, opts) {
  opts = opts || {};
  let card = document.getElementById(id);
  if (!card) {
    card = el("div", { class: "card", id: id }, el("h3", {}, title), el("div", { class: "plot" }));
    grid.appendChild(card);
  }
  const plot = card.querySelector(".plot");
  const data = align(maps);
  if (data[0].length === 0) {
    charts.delete(id);
    plot.replaceChildren(el("div", { class: "empty" }, "no data recorded yet"));
    return;
  }
  const single = data[0].length === 1; // one point: a span around it, not uPlot's guess of years
  const key = labels.join("|") + (single ? "#1" : "");
  const have = charts.get(id);
  if (have && have.key === key) {
    have.u.setData(data);
    return;
  }
  plot.replaceChildren();
  const series = [{}].concat(labels.map((l, i) => ({
    label: l,
    stroke: opts.limits && opts.limits.includes(i) ? "#868e96" : COLORS[i % COLORS.length],
    dash: opts.limits && opts.limits.includes(i) ? [6, 4] : undefined,
    width: 1.5,
    spanGaps: false,
    value: (u, v) => fmt(v),
  })));
  const x0 = data[0][0];
  const x = single ? { time: true, auto: false, range: () => [x0 - 60, x0 + 60] } : { time: true };
  const u = new uPlot({ width: 620, height: 220, series: series, scales: { x: x },
    axes: [{}, { size: 60, values: (u, vs) => vs.map((v) => fmt(v)) }] }, data, plot);
  charts.set(id, { u: u, key: key });
}

// ---- the rollout page --------------------------------------------------------------------------

function section(main, id, title) {
  let s = document.getElementById(id);
  if (!s) {
    s = el("section", { id: id }, el("h2", {}, title), el("div", { class: "body" }));
    main.appendChild(s);
  }
  return s.querySelector(".body");
}

function summary(r) {
  return el("p", { class: "summary" },
    el("span", {}, "service ", el("b", {}, r.service)),
    el("span", {}, "version ", el("b", {}, r.version), " (baseline ", r.baseline_version || "–", ")"),
    el("span", {}, "stage ", el("b", {}, r.stage), " (" + r.stage_number + " of " + r.stages + ")"),
    el("span", {}, "state ", stateBadge(r.state)),
    el("span", {}, "exposure ", el("b", {}, fmt(r.exposure_percent, 3) + "%")),
    el("span", {}, "stage started ", time(r.stage_started)));
}

function evidence(ev) {
  return el("div", { class: "evidence" }, ...Object.entries(ev || {}).map(([k, v]) => el("span", {}, k + ": " + fmt(v))));
}

function timeline(body, decisions) {
  const rows = decisions.slice().reverse().map((d) =>
    el("tr", { class: d.action === "halt" || d.action === "rollback" ? "halt" : "" },
      el("td", { class: "time" }, time(d.time)), el("td", {}, d.action),
      el("td", {}, d.from_stage && d.to_stage && d.from_stage !== d.to_stage ? d.from_stage + " → " + d.to_stage : d.to_stage || d.from_stage || "–"),
      el("td", {}, stateBadge(d.state)), el("td", {}, d.rule || ""),
      el("td", {}, d.reason, evidence(d.evidence))));
  body.replaceChildren(el("table", { id: "timeline" },
    el("thead", {}, el("tr", {}, ...["time", "action", "stage", "state", "rule", "reason and evidence"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows)));
}

function gates(body, r) {
  const blocks = (r.gates || []).map((g) => {
    const role = g.waiting ? " (waiting)" : g.next ? " (next stage)" : "";
    const rows = g.criteria.map((c) => {
      const x = c.reading;
      return el("tr", {},
        el("td", {}, c.text || c.name),
        el("td", { class: c.result.replace(" ", "-") }, c.result),
        el("td", {}, x ? "canary " + fmt(x.canary) + ", baseline " + fmt(x.baseline) + ", threshold " + fmt(x.threshold) : c.detail));
    });
    return el("div", { class: "gate" },
      el("h3", {}, g.stage + " " + g.gate + " gate" + role + ": ", el("span", { class: g.passed ? "pass" : "fail" }, g.passed ? "passed" : "not passed")),
      el("table", {}, el("tbody", {}, ...rows)));
  });
  body.replaceChildren(...(blocks.length ? blocks : [el("p", {}, "no gates to show")]));
}

function rules(grid, data) {
  const names = [...new Set(data.series.filter((s) => s.kind === "rule").map((s) => s.name))].sort();
  for (const n of names) {
    const v = points(data, (s) => s.kind === "rule" && s.name === n && s.stat === "value");
    const b = points(data, (s) => s.kind === "rule" && s.name === n && s.stat === "baseline");
    const t = points(data, (s) => s.kind === "rule" && s.name === n && s.stat === "threshold");
    const live = (data.rollout.halt_rules || []).find((x) => x.name === n);
    const title = "halt rule " + n + (live ? " — " + live.state + ", " + live.truth : "");
    chart(grid, "rule-" + n.replace(/[^A-Za-z0-9_-]/g, "_"), title, ["canary", "baseline", "limit"], [v, b, t], { limits: [2] });
  }
}

function renderRollout(main, data) {
  const r = data.rollout;
  document.getElementById("title").textContent = r.id;
  document.title = "canaryd: " + r.id;
  let head = document.getElementById("summary");
  if (!head) {
    head = el("div", { id: "summary" });
    main.replaceChildren(head);
  }
  head.replaceChildren(summary(r));
  timeline(section(main, "decisions", "Decisions (newest first)"), data.decisions);
  gates(section(main, "gates", "Gates of this stage and the next"), r);

  const g = section(main, "metrics", "Measured, per " + data.plan.step_ms / 1000 + " s of event time");
  if (!g.classList.contains("grid")) g.classList.add("grid");
  const C = "canary", B = "baseline";
  const req = (v) => metric(data, "requests", "sum", v);
  const err = (v) => metric(data, "errors", "sum", v);
  // traffic split: the published exposure and the canary's measured share of requests
  const exposure = points(data, (s) => s.kind === "split" && s.stat === "exposure");
  const share = new Map();
  for (const [t, c] of req(C)) { const b = req(B).get(t) || 0; if (c + b > 0) share.set(t, 100 * c / (c + b)); }
  chart(g, "split", "traffic split: canary % (published exposure, dashed, vs measured share of requests)", ["exposure %", "canary share of requests %"], [exposure, share], { limits: [0] });
  chart(g, "errors", "error rate (errors / requests)", ["canary", "baseline"], [ratio(err(C), req(C)), ratio(err(B), req(B))]);
  chart(g, "requests", "requests per step", ["canary", "baseline"], [req(C), req(B)]);
  const qs = ["p50", "p75", "p95", "p99"];
  chart(g, "latency", "latency_ms p50/p75/p95/p99", qs.flatMap((q) => [q + " canary", q + " baseline"]),
    qs.flatMap((q) => [metric(data, "latency_ms", q, C), metric(data, "latency_ms", q, B)]));
  const lim = data.plan.limits || {};
  const vitals = [["webvitals_lcp_ms", "p75", "lcp_p75_ms", "LCP p75 (ms)"], ["webvitals_inp_ms", "p75", "inp_p75_ms", "INP p75 (ms)"], ["webvitals_cls", "p95", "cls_p95", "CLS p95"]];
  for (const [name, q, limit, title] of vitals) {
    const c = metric(data, name, q, C), b = metric(data, name, q, B);
    const maps = [c, b], labels = ["canary", "baseline"];
    if (lim[limit] !== undefined) { maps.push(constant(new Map([...c, ...b]), lim[limit])); labels.push("limit " + fmt(lim[limit])); }
    chart(g, "vital-" + name, title + " against its limit", labels, maps, { limits: [2] });
  }
  for (const name of data.plan.dashboard_counters || [])
    chart(g, "business-" + name.replace(/[^A-Za-z0-9_-]/g, "_"), "business: " + name + " per step", ["canary", "baseline"],
      [metric(data, name, "sum", C, ["business"]), metric(data, name, "sum", B, ["business"])]);
  const gauges = [...new Set(data.series.filter((s) => s.kind === "metric" && s.stat === "avg").map((s) => s.name))].sort();
  for (const name of gauges)
    chart(g, "gauge-" + name.replace(/[^A-Za-z0-9_-]/g, "_"), "resource: " + name + " (average, max)", ["canary avg", "baseline avg", "canary max"],
      [metric(data, name, "avg", C), metric(data, name, "avg", B), metric(data, name, "max", C)]);

  const rg = section(main, "rules", "Halt rules: each reading over time, with its limit");
  if (!rg.classList.contains("grid")) rg.classList.add("grid");
  rules(rg, data);
}

// ---- polling -----------------------------------------------------------------------------------

async function poll() {
  const main = document.getElementById("main");
  const id = new URLSearchParams(location.search).get("id");
  try {
    if (location.pathname === "/rollout" && id) renderRollout(main, await getJSON("/api/rollout?id=" + encodeURIComponent(id)));
    else renderList(main, await getJSON("/api/rollouts"));
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString() + " (every " + POLL_MS / 1000 + " s)";
  } catch (e) {
    showError(main, e);
    charts.clear();
  }
  setTimeout(poll, POLL_MS);
}

poll();
