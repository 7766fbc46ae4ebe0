// The DOM of the dashboard: each view keeps its elements by key and only touches what changed.

import { HISTORY_POINTS } from "./farm.js";
import { ago, clock, fmt, summary } from "./summary.js";

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

function sparkline(className) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${HISTORY_POINTS - 1} 100`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", `spark ${className}`);
  const area = document.createElementNS(SVG, "path");
  area.setAttribute("class", "area");
  const line = document.createElementNS(SVG, "path");
  line.setAttribute("class", "line");
  svg.append(area, line);
  return { svg, area, line };
}

function drawSpark(spark, values) {
  const points = [];
  const offset = HISTORY_POINTS - values.length;
  values.forEach((value, i) => {
    if (value !== null) points.push(`${i + offset},${(100 - Math.min(100, Math.max(0, value))).toFixed(1)}`);
  });
  if (!points.length) {
    spark.line.setAttribute("d", "");
    spark.area.setAttribute("d", "");
    return;
  }
  const path = "M" + points.join("L");
  spark.line.setAttribute("d", path);
  const first = points[0].split(",")[0];
  const last = points[points.length - 1].split(",")[0];
  spark.area.setAttribute("d", `${path}L${last},100L${first},100Z`);
}

function level(value) {
  return value === null || value === undefined ? "" : value >= 90 ? "crit" : value >= 75 ? "warn" : "ok";
}

// -- node cards ------------------------------------------------------------------------------

export class NodeCards {
  // Cards off screen are not redrawn: they are marked stale and redrawn when they scroll into view,
  // so a farm of thousands of nodes costs what the visible cards cost.
  constructor(root, counter, onVisible) {
    this.root = root;
    this.counter = counter;
    this.cards = new Map();
    this.visible = new Set();
    this.stale = new Set();
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        const id = entry.target.dataset.node;
        if (entry.isIntersecting) {
          this.visible.add(id);
          if (this.stale.delete(id)) onVisible(id);
        } else {
          this.visible.delete(id);
        }
      }
    });
  }

  // Redraw now if on screen (true), or remember to when it comes into view (false).
  wants(id) {
    if (!this.cards.has(id) || this.visible.has(id)) return true;
    this.stale.add(id);
    return false;
  }

  card(id) {
    let card = this.cards.get(id);
    if (card) return card;
    const root = el("article", "node");
    root.dataset.node = id;
    const head = el("header");
    const name = el("h3", "", id);
    const state = el("span", "pill", "unknown");
    head.append(name, state);
    const meta = el("div", "meta");
    const metrics = el("div", "metrics");
    const rows = {};
    const charts = el("div", "history");
    for (const [key, label] of [["cpu", "CPU"], ["mem", "Memory"], ["disk", "Disk"], ["gpu", "GPU"]]) {
      const row = el("div", "metric");
      const title = el("span", "label", label);
      const bar = el("div", "bar");
      const fill = el("i");
      bar.append(fill);
      const value = el("span", "value", "–");
      row.append(title, bar, value);
      metrics.append(row);
      let spark = null;
      let chart = null;
      if (key === "cpu" || key === "gpu") {
        spark = sparkline(key);
        chart = el("figure");
        chart.append(spark.svg, el("figcaption", "", `${label} · last ${HISTORY_POINTS} samples`));
        charts.append(chart);
      }
      rows[key] = { row, fill, value, spark, chart };
    }
    const containers = el("div", "containers");
    root.append(head, meta, metrics, charts, containers);
    card = { root, state, meta, rows, containers, chips: new Map(), order: id };
    this.cards.set(id, card);
    this.insert(card);
    this.observer.observe(root);
    return card;
  }

  insert(card) {
    // Sorted by id, so that a card keeps its place as the farm grows.
    let before = null;
    for (const [id, other] of this.cards) if (id > card.order && (!before || id < before.order)) before = other;
    this.root.insertBefore(card.root, before ? before.root : null);
  }

  update(farm, id, now) {
    const card = this.card(id);
    const status = farm.get("node_status", id);
    const metrics = farm.get("node_metrics", id);
    const state = status ? status.event.data.new_state : metrics ? "reporting" : "unknown";
    card.state.textContent = state;
    card.state.className = `pill state-${state}`;
    card.root.classList.toggle("offline", state === "offline");
    const details = status?.event.data.details || {};
    const parts = [];
    if (details.ip) parts.push(details.ip);
    const cores = metrics?.event.data.cpu?.cores;
    if (cores) parts.push(`${cores} cores`);
    if (metrics) parts.push(`updated ${ago(metrics.event.timestamp, now)}`);
    else if (status) parts.push(`${state} ${ago(status.event.timestamp, now)}`);
    card.meta.textContent = parts.join(" · ");
    const series = farm.metrics.get(id);
    const latest = (name) => (series && series[name].length ? series[name][series[name].length - 1] : null);
    const data = metrics?.event.data || {};
    const values = {
      cpu: [latest("cpu"), `${fmt(data.cpu?.usage)}%` + (data.cpu?.temperature != null ? ` · ${fmt(data.cpu.temperature, 0)}°` : "")],
      mem: [latest("mem"), data.memory ? `${gib(data.memory.used)} / ${gib(data.memory.total)}` : "–"],
      disk: [latest("disk"), data.disk ? `${gib(data.disk.used)} / ${gib(data.disk.total)}` : "–"],
      gpu: [latest("gpu"), data.gpu ? `${fmt(data.gpu.usage)}%` + (data.gpu.temperature != null ? ` · ${fmt(data.gpu.temperature, 0)}°` : "") : "–"],
    };
    for (const [key, [value, text]] of Object.entries(values)) {
      const row = card.rows[key];
      row.row.hidden = key === "gpu" && !data.gpu;
      if (row.chart) row.chart.hidden = row.row.hidden;
      row.fill.style.transform = `scaleX(${value === null ? 0 : Math.min(100, Math.max(0, value)) / 100})`;
      row.fill.className = level(value);
      row.value.textContent = text;
      if (row.spark && series) drawSpark(row.spark, series[key]);
    }
  }

  updateContainers(id, containers) {
    const card = this.card(id);
    const seen = new Set();
    for (const { event } of containers) {
      const cid = event.resource_id;
      seen.add(cid);
      let chip = card.chips.get(cid);
      if (!chip) {
        chip = el("span", "chip");
        card.chips.set(cid, chip);
        card.containers.append(chip);
      }
      const state = event.data.new_state;
      chip.textContent = cid;
      chip.title = `${cid}: ${state}${event.data.pipeline_id ? ` (pipeline ${event.data.pipeline_id})` : ""}`;
      chip.className = `chip state-${state}`;
    }
    for (const [cid, chip] of card.chips) {
      if (!seen.has(cid)) {
        chip.remove();
        card.chips.delete(cid);
      }
    }
  }

  count() {
    if (this.counter) this.counter.textContent = String(this.cards.size);
  }
}

function gib(mib) {
  if (typeof mib !== "number") return "–";
  return mib >= 1024 ? `${(mib / 1024).toFixed(mib >= 10240 ? 0 : 1)} GiB` : `${Math.round(mib)} MiB`;
}

// -- pipelines -------------------------------------------------------------------------------

export class Pipelines {
  constructor(root) {
    this.root = root;
    this.rows = new Map();
  }

  update(farm, id) {
    let row = this.rows.get(id);
    if (!row) {
      const root = el("li", "pipeline");
      root.dataset.pipeline = id;
      const head = el("div", "head");
      const name = el("span", "name", id);
      const status = el("span", "pill");
      head.append(name, status);
      const step = el("div", "step");
      const bar = el("div", "progress");
      const fill = el("i");
      bar.append(fill);
      root.append(head, step, bar);
      row = { root, status, step, fill };
      this.rows.set(id, row);
      this.root.prepend(root);
    }
    const status = farm.get("pipeline_status", id)?.event.data;
    const progress = farm.get("pipeline_progress", id)?.event.data;
    const state = status?.new_status || (progress ? "running" : "unknown");
    row.status.textContent = state;
    row.status.className = `pill state-${state}`;
    const parts = [];
    if (progress) parts.push(`step ${progress.current_step}/${progress.total_steps}`);
    if (progress?.step_status?.name) parts.push(`${progress.step_status.name} ${progress.step_status.status || ""}`.trim());
    if (status?.node_id) parts.push(`on ${status.node_id}`);
    if (status?.error) parts.push(`error: ${status.error}`);
    row.step.textContent = parts.join(" · ") || "–";
    const done = state === "completed" || state === "success" ? 100 : progress?.progress ?? 0;
    row.fill.style.transform = `scaleX(${Math.max(0, Math.min(100, done)) / 100})`;
    row.fill.className = state === "failed" ? "crit" : state === "completed" ? "done" : "";
  }
}

// -- alerts ----------------------------------------------------------------------------------

const LEVELS = { critical: 0, error: 1, warning: 2, info: 3 };

export function renderAlerts(root, counter, farm, now) {
  const alerts = farm.of("system_alert").map(({ seq, event }) => ({ seq, event, data: event.data }));
  const firing = alerts.filter((a) => a.data.state !== "resolved");
  const resolved = alerts.filter((a) => a.data.state === "resolved");
  firing.sort((a, b) => (LEVELS[a.data.level] ?? 9) - (LEVELS[b.data.level] ?? 9) || b.seq - a.seq);
  resolved.sort((a, b) => b.seq - a.seq);
  counter.textContent = String(firing.length);
  counter.className = firing.length ? "count alarm" : "count";
  root.replaceChildren();
  if (!alerts.length) root.append(el("li", "empty", "No alerts. All quiet."));
  for (const alert of [...firing, ...resolved.slice(0, 15)]) {
    const d = alert.data;
    const state = d.state || "raised";
    const item = el("li", `alert level-${d.level} ${state}`);
    item.dataset.alert = alert.event.resource_id;
    const head = el("div", "head");
    head.append(el("span", `pill level-${d.level}`, d.level), el("span", "title", d.title), el("span", `pill state-${state}`, state));
    const since = d.started_at || alert.event.timestamp;
    const when = state === "resolved" ? `resolved ${ago(alert.event.timestamp, now)} · started ${clock(since)}` : `since ${ago(since, now)} · ${clock(since)}`;
    item.append(head, el("div", "message", d.message), el("div", "when", `${when}${d.source ? " · " + d.source : ""}`));
    root.append(item);
  }
}

// -- event table -----------------------------------------------------------------------------

export const TABLE_ROWS = 150;

export function eventRow({ seq, event }) {
  const row = el("tr");
  row.dataset.seq = String(seq);
  row.append(
    el("td", "time", clock(event.timestamp)),
    el("td", "seq", String(seq)),
    el("td", `type t-${event.event}`, event.event),
    el("td", "resource", event.resource_id),
    el("td", "summary", summary(event)),
  );
  return row;
}
