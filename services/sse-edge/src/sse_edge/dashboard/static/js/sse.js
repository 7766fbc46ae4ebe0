// Server-Sent Events over fetch(): the same parsing as EventSource, but with control over the
// request (Last-Event-ID on every reconnection, an Authorization header) and over reconnection.

export class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.event = "";
    this.data = [];
    this.id = null;
    this.retry = null;
  }

  push(text) {
    this.buffer += text;
    let start = 0;
    for (;;) {
      const end = this.buffer.indexOf("\n", start);
      if (end < 0) break;
      let line = this.buffer.slice(start, end);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      this.line(line);
      start = end + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      if (this.data.length || this.retry !== null) {
        this.onMessage({ event: this.event || "message", data: this.data.join("\n"), id: this.id, retry: this.retry });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return; // a heartbeat
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.event = value;
    else if (name === "id") this.id = value;
    else if (name === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }
}
