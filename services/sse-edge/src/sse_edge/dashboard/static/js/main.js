// The dashboard tab: joins the browser's one event stream (a SharedWorker), keeps its own copy of
// the farm, and redraws what changed once per animation frame.

import { Farm } from "./farm.js";
import { NodeCards, Pipelines, TABLE_ROWS, el, eventRow, renderAlerts } from "./views.js";

const SAVED = "eh.dashboard.v1";
const $ = (selector) => document.querySelector(selector);

// Everything a test (or a curious operator in the console) may want to look at.
// latencies: event time to the frame that drew it; arrivals: event time to this tab receiving it.
const probe = (window.__eh = { latencies: [], arrivals: [], rendered: 0, frames: 0, status: null, farm: null });

const token = takeToken();
let farm = new Farm();
const dirty = { nodes: new Set(), pipelines: new Set(), alerts: false, containers: false, table: [], all: true };
let status = { state: "connecting", notices: [] };
const views = {
  nodes: new NodeCards($("#nodes"), $("#node-count"), (id) => {
    dirty.nodes.add(id);
    schedule();
  }),
  pipelines: new Pipelines($("#pipelines")),
};
const table = { paused: false, mode: "live", type: "", resource: "", body: $("#events tbody"), lastAppend: 0, timer: null };
const TABLE_INTERVAL_MS = 200;
let eventsThisSecond = 0;
let scheduled = false;

function takeToken() {
  // A token given in the page's URL (?access_token=…) is kept for this tab and removed from the
  // address bar; a token in a cookie needs nothing here (same-origin requests carry it).
  const url = new URL(location.href);
  const given = url.searchParams.get("access_token");
  if (given) {
    sessionStorage.setItem("eh.token", given);
    url.searchParams.delete("access_token");
    history.replaceState(null, "", url);
  }
  return given || sessionStorage.getItem("eh.token");
}

function connect() {
  const streamUrl = new URL("api/v1/events", document.baseURI).href;
  const hello = { type: "hello", url: streamUrl, token, saved: loadSaved() };
  const workerUrl = new URL("dashboard/js/stream-worker.js", document.baseURI);
  if (typeof SharedWorker === "function") {
    const worker = new SharedWorker(workerUrl, { type: "module", name: "event-handler-stream" });
    worker.port.onmessage = (message) => receive(message.data);
    worker.port.start();
    worker.port.postMessage(hello);
    addEventListener("pagehide", () => worker.port.postMessage({ type: "bye" }));
  } else {
    const worker = new Worker(workerUrl, { type: "module" });
    worker.onmessage = (message) => receive(message.data);
    worker.postMessage(hello);
  }
}

function receive(message) {
  if (message.type === "init") {
    farm = Farm.from(message.farm);
    probe.farm = farm;
    setStatus(message.status);
    markAll();
  } else if (message.type === "batch") {
    const now = Date.now();
    for (const [seq, event, live] of message.events) {
      farm.apply(seq, event, live === 1);
      if (live && event.event === "node_metrics" && probe.arrivals.length < 50000) {
        probe.arrivals.push(now - Date.parse(event.timestamp));
      }
      touch(event);
      if (live) {
        dirty.table.push({ seq, event, arrived: now });
        eventsThisSecond += 1;
      }
    }
    schedule();
  } else if (message.type === "status") {
    setStatus(message.status);
  }
}

function touch(event) {
  const type = event.event;
  if (type === "node_metrics" || type === "node_status") dirty.nodes.add(event.resource_id);
  else if (type === "pipeline_status" || type === "pipeline_progress") dirty.pipelines.add(event.resource_id);
  else if (type === "system_alert") dirty.alerts = true;
  else if (type === "container_status") dirty.containers = true;
}

function markAll() {
  dirty.all = true;
  schedule();
}

function schedule() {
  if (!scheduled) {
    scheduled = true;
    requestAnimationFrame(render);
  }
}

// -- rendering, once per frame -----------------------------------------------------------------

function render() {
  scheduled = false;
  const now = Date.now();
  probe.frames += 1;
  if (dirty.all) {
    for (const { event } of farm.of("node_status")) dirty.nodes.add(event.resource_id);
    for (const { event } of farm.of("node_metrics")) dirty.nodes.add(event.resource_id);
    for (const { event } of farm.of("pipeline_status")) dirty.pipelines.add(event.resource_id);
    for (const { event } of farm.of("pipeline_progress")) dirty.pipelines.add(event.resource_id);
    dirty.alerts = dirty.containers = true;
    rebuildTable();
    dirty.all = false;
  }
  for (const id of dirty.nodes) {
    if (!views.nodes.wants(id)) continue;
    views.nodes.update(farm, id, now);
    const metrics = farm.get("node_metrics", id);
    // Event-to-screen: the event's own time (set by its producer) to the frame that shows it.
    if (metrics && !metrics.measured) {
      metrics.measured = true;
      probe.latencies.push(now - Date.parse(metrics.event.timestamp));
      if (probe.latencies.length > 50000) probe.latencies.splice(0, 10000);
    }
  }
  if (dirty.nodes.size) views.nodes.count();
  dirty.nodes.clear();
  for (const id of dirty.pipelines) views.pipelines.update(farm, id);
  $("#pipeline-count").textContent = String(views.pipelines.rows.size);
  dirty.pipelines.clear();
  if (dirty.containers) {
    const byNode = new Map();
    for (const item of farm.of("container_status")) {
      const node = item.event.data.node_id;
      if (!node || item.event.data.new_state === "removed") continue;
      if (!byNode.has(node)) byNode.set(node, []);
      byNode.get(node).push(item);
    }
    for (const id of views.nodes.cards.keys()) byNode.has(id) || byNode.set(id, []);
    for (const [id, containers] of byNode) views.nodes.updateContainers(id, containers);
    views.nodes.count();
    dirty.containers = false;
  }
  if (dirty.alerts) {
    renderAlerts($("#alerts"), $("#alert-count"), farm, now);
    dirty.alerts = false;
  }
  // The table takes new rows a few times a second: at a thousand events a second, nobody reads
  // faster, and rebuilding rows every frame would hold the frame up for the cards.
  if (dirty.table.length && now - table.lastAppend >= TABLE_INTERVAL_MS) {
    if (table.mode === "live" && !table.paused) appendRows(dirty.table.slice(-TABLE_ROWS));
    dirty.table = [];
    table.lastAppend = now;
  } else if (dirty.table.length && !table.timer) {
    table.timer = setTimeout(() => {
      table.timer = null;
      schedule();
    }, TABLE_INTERVAL_MS);
  }
  probe.visibleNodes = views.nodes.visible.size;
  probe.rendered += 1;
}

function matches({ event }) {
  return (!table.type || event.event === table.type) && (!table.resource || event.resource_id.includes(table.resource));
}

function appendRows(items) {
  const rows = items.filter(matches).slice(-TABLE_ROWS).map(eventRow);
  if (!rows.length) return;
  table.body.prepend(...rows.reverse());
  while (table.body.childElementCount > TABLE_ROWS) table.body.lastElementChild.remove();
  $("#events-empty").hidden = true;
}

function rebuildTable() {
  table.body.replaceChildren();
  appendRows(farm.recent);
  $("#events-empty").hidden = table.body.childElementCount > 0;
}

// -- connection state --------------------------------------------------------------------------

const STATE_TEXT = {
  connecting: "Connecting…",
  replaying: "Replaying",
  live: "Live",
  reconnecting: "Reconnecting…",
  unauthorized: "Not authorized",
  error: "Error",
};

let noticesSeen = null;

function setStatus(next) {
  // A gap or an overflow also leaves a mark in the live table, where the missing events would be
  // (those from before this tab opened are in the notices above only).
  const newest = next.notices.length ? next.notices[next.notices.length - 1].id : 0;
  for (const n of noticesSeen === null ? [] : next.notices) {
    if (n.id <= noticesSeen || (n.kind !== "gap" && n.kind !== "overflow")) continue;
    const row = el("tr", "marker");
    const text =
      n.kind === "gap"
        ? `${n.last_missing - n.first_missing + 1} events expired here (${n.first_missing}–${n.last_missing})`
        : "the stream fell behind here and was resumed";
    const cell = el("td", "", text);
    cell.colSpan = 5;
    row.append(cell);
    table.body.prepend(row);
  }
  noticesSeen = newest;
  status = next;
  probe.status = next;
  const badge = $("#connection");
  const noticesShown = next.notices.filter((n) => n.kind === "gap" || n.kind === "overflow" || n.kind === "reset");
  badge.dataset.state = next.state;
  $("#connection-text").textContent = STATE_TEXT[next.state] || next.state;
  const detail = [];
  const lastId = farm.lastEventId ?? next.lastEventId;
  if (lastId !== null && lastId !== undefined) detail.push(`#${lastId}`);
  if (next.state === "reconnecting" && next.retryInMs) detail.push(`retry in ${(next.retryInMs / 1000).toFixed(1)}s`);
  if (next.error && next.state !== "live") detail.push(next.error);
  $("#connection-detail").textContent = detail.join(" · ");
  const list = $("#notices");
  list.replaceChildren(
    ...noticesShown.slice(-3).map((n) => {
      const text =
        n.kind === "gap"
          ? `Gap: events ${n.first_missing}–${n.last_missing} expired before they could be replayed`
          : n.kind === "overflow"
            ? "Overflow: the stream fell behind and was resumed"
            : "The event store was reset; the picture was reloaded";
      const item = el("li", `notice ${n.kind}`, `${text} (${n.at.slice(11, 19)} UTC)`);
      return item;
    }),
  );
}

// -- saving for a reload -----------------------------------------------------------------------

function loadSaved() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SAVED) || "null");
    return saved && saved.lastEventId !== null ? saved : null;
  } catch {
    return null;
  }
}

function save() {
  try {
    sessionStorage.setItem(SAVED, JSON.stringify(farm.dump()));
  } catch {
    sessionStorage.removeItem(SAVED); // too big to keep: a reload starts from a snapshot
  }
}

addEventListener("pagehide", save);
addEventListener("visibilitychange", () => document.visibilityState === "hidden" && save());

// -- event table controls and the history view -------------------------------------------------

function setupTable() {
  const typeSelect = $("#filter-type");
  const resourceInput = $("#filter-resource");
  typeSelect.onchange = () => {
    table.type = typeSelect.value;
    table.mode === "live" ? rebuildTable() : loadHistory();
  };
  resourceInput.oninput = () => {
    table.resource = resourceInput.value.trim();
    if (table.mode === "live") rebuildTable();
  };
  $("#pause").onclick = () => {
    table.paused = !table.paused;
    $("#pause").textContent = table.paused ? "Resume" : "Pause";
    $("#pause").classList.toggle("active", table.paused);
    if (!table.paused) rebuildTable();
  };
  const range = $("#range");
  range.onchange = () => {
    const custom = range.value === "custom";
    $("#custom-range").hidden = !custom;
    if (range.value === "live") {
      table.mode = "live";
      $("#events-title").textContent = "Live events";
      rebuildTable();
    } else if (!custom) {
      loadHistory();
    }
  };
  $("#load-history").onclick = () => loadHistory();
}

async function loadHistory() {
  const range = $("#range").value;
  if (range === "live") return;
  let start;
  let end;
  if (range === "custom") {
    start = $("#from").value ? new Date($("#from").value) : null;
    end = $("#to").value ? new Date($("#to").value) : null;
  } else {
    start = new Date(Date.now() - Number(range) * 1000);
  }
  table.mode = "history";
  const url = new URL("api/v1/events/history", document.baseURI);
  url.searchParams.set("order", "desc");
  url.searchParams.set("limit", String(TABLE_ROWS));
  if (start) url.searchParams.set("start_time", start.toISOString());
  if (end) url.searchParams.set("end_time", end.toISOString());
  if (table.type) url.searchParams.set("type", table.type);
  if (table.resource && /^[A-Za-z0-9_:-]+$/.test(table.resource)) url.searchParams.set("resource_id", table.resource);
  $("#events-title").textContent = "History";
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  try {
    const response = await fetch(url, { headers, credentials: "same-origin" });
    const body = await response.json();
    if (!response.ok) throw new Error(JSON.stringify(body.detail));
    const rows = body.events.map(({ seq, ...event }) => eventRow({ seq, event }));
    table.body.replaceChildren(...rows);
    $("#events-empty").hidden = rows.length > 0;
    $("#events-title").textContent = `History · ${rows.length}${body.next ? "+" : ""} events`;
  } catch (error) {
    table.body.replaceChildren();
    $("#events-empty").hidden = false;
    $("#events-title").textContent = `History: ${error.message}`;
  }
}

// -- clocks: relative times and the event rate ---------------------------------------------------

setInterval(() => {
  $("#rate").textContent = `${eventsThisSecond} ev/s`;
  eventsThisSecond = 0;
  dirty.alerts = true; // "since 3m ago" moves on
  setStatus(status); // and the last event id beside the connection state
  schedule();
}, 1000);

setupTable();
connect();
