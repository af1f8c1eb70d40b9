// Live parts of the console: the campaign funnel and the live-calls table poll the service's
// JSON every 2 s. Text goes in with textContent only (names from orders are never HTML).
"use strict";

function poll(url, every, apply) {
  const tick = () => fetch(url, {credentials: "same-origin", cache: "no-store"})
    .then((r) => (r.ok ? r.json() : null))
    .then((data) => { if (data) apply(data); })
    .catch(() => {})
    .finally(() => setTimeout(tick, every));
  setTimeout(tick, every);
}

function funnel(el) {
  poll(el.dataset.live, 2000, (data) => {
    const f = data.funnel;
    const total = f.contacts || 1;
    for (const key of Object.keys(f)) {
      const v = el.querySelector(`[data-v="${key}"]`);
      const bar = el.querySelector(`[data-k="${key}"]`);
      if (v) v.textContent = String(f[key]);
      if (bar) bar.style.width = `${Math.min(100, (100 * f[key]) / total).toFixed(1)}%`;
    }
    const status = document.getElementById("campaign-status");
    if (status && status.dataset.status !== data.status) {
      status.dataset.status = data.status;
      status.textContent = data.status_label;
      status.className = `status st-${data.status}`;
      // the tables below (states, calls) are rendered by the server: refresh them
      setTimeout(() => window.location.reload(), 300);
    }
    const next = document.getElementById("next-due");
    if (next && data.dialer) next.textContent = `${next.textContent.split(":")[0]}: ${data.dialer.next_due_at || "-"}`;
  });
}

function liveCalls(table) {
  poll(table.dataset.live, 2000, (data) => {
    const body = table.querySelector("tbody");
    const rows = data.live_calls || [];
    if (!rows.length) return;  // keep the "no call" row as rendered
    body.replaceChildren(...rows.map((c) => {
      const tr = document.createElement("tr");
      for (const v of [c.id, c.phone, c.campaign_id || "", c.current_node || "", c.caller_id || "", c.age_s]) {
        const td = document.createElement("td");
        td.textContent = v === null || v === undefined ? "" : String(v);
        tr.appendChild(td);
      }
      return tr;
    }));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const f = document.getElementById("funnel");
  if (f && f.dataset.live) funnel(f);
  const calls = document.getElementById("live-calls");
  if (calls && calls.dataset.live) liveCalls(calls);
});
