// The farm as a dashboard sees it, built from events: the latest event of every (type, resource),
// a short metrics history per node for the sparklines, and the most recent events for the table.
// The same code runs in the shared worker (which owns the stream) and in every tab.

export const HISTORY_POINTS = 60;
export const RECENT_EVENTS = 400;

export class Farm {
  constructor() {
    this.latest = new Map(); // "type.resource" -> {seq, event}
    this.metrics = new Map(); // node id -> {t: [], cpu: [], mem: [], disk: [], gpu: []}
    this.recent = []; // newest last: {seq, event}
    this.lastEventId = null;
  }

  // `live`: an event as it happens (or missed and replayed), not a snapshot's picture of the past.
  apply(seq, event, live = true) {
    const key = `${event.event}.${event.resource_id}`;
    const known = this.latest.get(key);
    if (!known || known.seq < seq) this.latest.set(key, { seq, event });
    if (event.event === "node_metrics") this.sample(event);
    if (live) this.recent.push({ seq, event });
    if (this.recent.length > RECENT_EVENTS * 1.25) this.recent.splice(0, this.recent.length - RECENT_EVENTS);
    if (this.lastEventId === null || seq > this.lastEventId) this.lastEventId = seq;
  }

  sample(event) {
    const data = event.data || {};
    let series = this.metrics.get(event.resource_id);
    if (!series) {
      series = { t: [], cpu: [], mem: [], disk: [], gpu: [] };
      this.metrics.set(event.resource_id, series);
    }
    series.t.push(Date.parse(event.timestamp));
    series.cpu.push(num(data.cpu?.usage));
    series.mem.push(percent(data.memory?.used, data.memory?.total));
    series.disk.push(percent(data.disk?.used, data.disk?.total));
    series.gpu.push(data.gpu ? num(data.gpu.usage) : null);
    if (series.t.length > HISTORY_POINTS) for (const name in series) series[name].shift();
  }

  of(type) {
    const found = [];
    for (const [key, value] of this.latest) if (key.startsWith(type + ".")) found.push(value);
    return found;
  }

  get(type, resource) {
    return this.latest.get(`${type}.${resource}`);
  }

  dump() {
    return {
      latest: [...this.latest.values()],
      metrics: [...this.metrics.entries()],
      recent: this.recent.slice(-RECENT_EVENTS),
      lastEventId: this.lastEventId,
    };
  }

  static from(dump) {
    const farm = new Farm();
    if (!dump) return farm;
    for (const item of dump.latest || []) farm.latest.set(`${item.event.event}.${item.event.resource_id}`, item);
    farm.metrics = new Map(dump.metrics || []);
    farm.recent = dump.recent || [];
    farm.lastEventId = dump.lastEventId ?? null;
    return farm;
  }
}

function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function percent(used, total) {
  return typeof used === "number" && typeof total === "number" && total > 0 ? (100 * used) / total : null;
}
