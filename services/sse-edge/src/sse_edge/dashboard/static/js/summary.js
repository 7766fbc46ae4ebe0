// A few words per event, for the event table.

export function summary(event) {
  const d = event.data || {};
  switch (event.event) {
    case "node_metrics":
      return [
        `cpu ${fmt(d.cpu?.usage)}%`,
        `mem ${pct(d.memory?.used, d.memory?.total)}`,
        `disk ${pct(d.disk?.used, d.disk?.total)}`,
        d.gpu ? `gpu ${fmt(d.gpu.usage)}%` : "",
      ].filter(Boolean).join(" · ");
    case "node_status":
    case "container_status":
      return [`${d.old_state || "?"} → ${d.new_state}`, d.reason, d.node_id && event.event !== "node_status" ? `on ${d.node_id}` : "", d.exit_code != null ? `exit ${d.exit_code}` : ""]
        .filter(Boolean)
        .join(" · ");
    case "pipeline_status":
      return [`${d.old_status || "?"} → ${d.new_status}`, d.node_id ? `on ${d.node_id}` : "", d.error || ""].filter(Boolean).join(" · ");
    case "pipeline_progress":
      return `step ${d.current_step}/${d.total_steps} · ${fmt(d.progress)}% · ${d.step_status?.name || ""} ${d.step_status?.status || ""}`;
    case "container_metrics":
      return `cpu ${fmt(d.cpu?.usage)}% · mem ${pct(d.memory?.usage, d.memory?.limit)}`;
    case "system_alert":
      return `${d.state ? d.state + " · " : ""}${d.title}: ${d.message}`;
    case "system_log":
      return `${d.component}: ${d.message}`;
    default:
      return JSON.stringify(d).slice(0, 120);
  }
}

export function fmt(value, digits = 1) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits).replace(/\.0$/, "") : "–";
}

function pct(used, total) {
  return typeof used === "number" && typeof total === "number" && total > 0 ? `${Math.round((100 * used) / total)}%` : "–";
}

export function ago(timestamp, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(timestamp)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

export function clock(timestamp) {
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? "?" : date.toISOString().slice(11, 23);
}
