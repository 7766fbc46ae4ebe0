// The one event stream of this browser: a SharedWorker that every dashboard tab connects to, so
// that any number of tabs hold a single connection to the edge (HTTP/1.1 allows six per origin).
//
// It opens `GET api/v1/events?snapshot=latest` (the latest event of every type and resource,
// then live), keeps the farm's picture, and hands every tab the picture on arrival and then each
// batch of events as it comes off the network. After any drop it reconnects with a jittered
// backoff and resumes with Last-Event-ID after the last event it has, so no event is missed or
// repeated. A tab that reloads brings the picture it saved and where it stood: a worker that has
// just started resumes from there instead of starting over.

import { Farm } from "./farm.js";
import { SseParser } from "./sse.js";

const ports = new Set();
let farm = null;
let config = null;
let started = false;
const status = {
  state: "connecting", // connecting | replaying | live | reconnecting | unauthorized | error
  lastEventId: null,
  notices: [], // gaps and overflows, newest last: shown, never hidden
  connections: 0,
  resumedFrom: null,
  retryInMs: 0,
  error: null,
};

function broadcast(message) {
  for (const port of ports) port.postMessage(message);
}

function setStatus(changes) {
  Object.assign(status, changes, { lastEventId: farm ? farm.lastEventId : null });
  broadcast({ type: "status", status });
}

let noticeCount = 0;

function notice(kind, data) {
  noticeCount += 1;
  status.notices.push({ id: noticeCount, kind, at: new Date().toISOString(), ...data });
  if (status.notices.length > 20) status.notices.shift();
  setStatus({});
}

if (typeof SharedWorkerGlobalScope !== "undefined" && self instanceof SharedWorkerGlobalScope) {
  self.onconnect = (connection) => {
    const port = connection.ports[0];
    ports.add(port);
    port.onmessage = (message) => {
      const data = message.data;
      if (data.type === "hello") hello(port, data);
      else if (data.type === "bye") ports.delete(port);
    };
    port.start();
  };
} else {
  // A dedicated Worker (where SharedWorker is missing): the same protocol, one tab.
  const port = { postMessage: (message) => self.postMessage(message) };
  ports.add(port);
  self.onmessage = (message) => message.data.type === "hello" && hello(port, message.data);
}

function hello(port, data) {
  if (!started) {
    started = true;
    config = { url: data.url, token: data.token || null };
    // A fresh worker: adopt what the reloading tab saw, and resume after it.
    farm = data.saved ? Farm.from(data.saved) : new Farm();
    if (farm.lastEventId !== null) status.resumedFrom = farm.lastEventId;
    run();
  } else if (data.token && !config.token) {
    config.token = data.token;
  }
  port.postMessage({ type: "init", farm: farm.dump(), status: { ...status, lastEventId: farm.lastEventId } });
}

async function run() {
  let attempt = 0;
  let caughtUp = farm.lastEventId !== null; // a resumed picture is complete up to its last id
  for (;;) {
    let retryHint = 0;
    const resuming = farm.lastEventId !== null && caughtUp;
    const url = new URL(config.url);
    const headers = { Accept: "text/event-stream" };
    if (resuming) headers["Last-Event-ID"] = String(farm.lastEventId);
    else url.searchParams.set("snapshot", "latest");
    if (config.token) headers.Authorization = `Bearer ${config.token}`;
    const skipThrough = resuming ? null : farm.lastEventId; // a snapshot asked for again
    setStatus({ state: attempt ? "reconnecting" : "connecting", retryInMs: 0 });
    try {
      const response = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
      if (response.status === 400 && resuming) {
        // The id is not from this stream (a new event store): start over from a snapshot.
        notice("reset", { reason: await response.text() });
        farm = new Farm();
        caughtUp = false;
        broadcast({ type: "init", farm: farm.dump(), status });
        continue;
      }
      if (response.status === 401 || response.status === 403) {
        setStatus({ state: "unauthorized", error: `HTTP ${response.status}: sign in again` });
        throw new Error(`HTTP ${response.status}`);
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      status.connections += 1;
      setStatus({ state: "replaying", error: null });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let batch = [];
      const parser = new SseParser((message) => {
        if (message.retry !== null) retryHint = message.retry;
        if (!message.data) return;
        if (message.id !== null && /^\d+$/.test(message.id)) {
          const seq = Number(message.id);
          if (skipThrough !== null && seq <= skipThrough) return;
          let event;
          try {
            event = JSON.parse(message.data);
          } catch {
            notice("invalid", { seq });
            return;
          }
          farm.apply(seq, event, caughtUp);
          batch.push([seq, event, caughtUp ? 1 : 0]);
          attempt = 0;
          return;
        }
        control(message.event, safeJson(message.data));
      });
      const control = (name, data) => {
        if (name === "stream.caught_up") {
          caughtUp = true;
          if (farm.lastEventId === null && data.last_seq) farm.lastEventId = data.last_seq;
          flush();
          setStatus({ state: "live" });
        } else if (name === "stream.gap") {
          notice("gap", data);
        } else if (name === "stream.overflow") {
          notice("overflow", data);
        } else if (name === "stream.shutdown") {
          retryHint = data.retry_ms || retryHint;
        } else if (name === "stream.ready") {
          setStatus({ state: "replaying" });
        }
      };
      const flush = () => {
        if (batch.length) {
          broadcast({ type: "batch", events: batch, lastEventId: farm.lastEventId });
          batch = [];
        }
      };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
        flush(); // one message per network read: tabs get events as they arrive, batched
      }
      flush();
      throw new Error("the server closed the stream");
    } catch (error) {
      attempt += 1;
      // Full jitter below an exponential ceiling; at least what the server asked for.
      const ceiling = Math.min(15000, 250 * 2 ** Math.min(attempt, 6));
      const delay = Math.max(retryHint, Math.random() * ceiling);
      setStatus({
        state: status.state === "unauthorized" ? "unauthorized" : "reconnecting",
        retryInMs: Math.round(delay),
        error: String(error.message || error),
      });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { text };
  }
}
