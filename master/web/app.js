// tock's status page: polls /stats, /varz and /connz and renders them.
// Plain JS, no dependencies; every value is written with textContent.
"use strict";

const REFRESH_MS = 2000;

function $(id) { return document.getElementById(id); }

function setText(id, v) { $(id).textContent = String(v); }

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function since(iso, now) {
  if (!iso) return "–";
  const ms = now - Date.parse(iso);
  if (!isFinite(ms) || ms < 0) return "0.0 s";
  return (ms / 1000).toFixed(1) + " s";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function renderStats(st, now) {
  setText("version", st.version);
  setText("phase", st.phase);
  setText("workers", st.workers + " (" + st.booted_workers + " / " + st.old_workers + ")");
  setText("shards", st.shards);
  setText("connections", st.connections);
  setText("requests", st.requests_count);
  let jobs = 0, pending = 0, inflight = 0;
  const tbody = $("workers-table").tBodies[0];
  tbody.textContent = "";
  for (const w of st.worker_status || []) {
    const ls = w.last_status || {};
    jobs += ls.jobs_total || 0;
    pending += ls.executions_pending || 0;
    inflight += ls.executions_inflight || 0;
    const tr = document.createElement("tr");
    tr.dataset.index = w.index;
    tr.dataset.pid = w.pid;
    const state = w.draining ? "draining" : (w.booted ? "booted" : "booting");
    if (w.draining) tr.className = "draining";
    cell(tr, w.index);
    cell(tr, w.pid, "pid");
    cell(tr, w.phase);
    cell(tr, state, "text state-" + state);
    const age = since(w.last_checkin, now);
    cell(tr, age, parseFloat(age) > 5 ? "stale" : "");
    cell(tr, (w.shards || []).join(" "), "shards");
    cell(tr, ls.jobs_total || 0, "jobs_total");
    cell(tr, ls.jobs_planned || 0);
    cell(tr, ls.jobs_executed || 0);
    cell(tr, ls.jobs_failed || 0);
    cell(tr, ls.executions_pending || 0);
    cell(tr, ls.executions_inflight || 0);
    cell(tr, bytes(ls.rss_bytes || 0));
    cell(tr, w.restarts);
    tbody.appendChild(tr);
  }
  setText("jobs_total", jobs);
  setText("executions", pending + " / " + inflight);

  const pr = st.phased_restart || {};
  $("restart").hidden = !pr.in_progress;
  if (pr.in_progress) {
    const total = (st.worker_status || []).filter(w => !w.draining).length || 1;
    const done = (st.worker_status || []).filter(w => !w.draining && w.phase === st.phase && w.booted).length;
    $("restart-bar").style.width = Math.round(100 * done / total) + "%";
    setText("restart-text", done + " of " + total + " workers on phase " + st.phase + " (started " + pr.started_at + ")");
  }
  $("restart-error").hidden = !pr.last_error;
  if (pr.last_error) setText("restart-error", "last phased restart failed: " + pr.last_error);
}

function renderVarz(v) {
  setText("identity", v.server_name + " · " + v.server_id.slice(0, 12) + "… · " + v.host + ":" + v.port);
  setText("uptime", v.uptime);
  setText("mem", bytes(v.mem));
  setText("cpu", v.cpu.toFixed(1) + " %");
}

function renderClosed(cz) {
  const tbody = $("closed-table").tBodies[0];
  tbody.textContent = "";
  for (const c of cz.connections || []) {
    const tr = document.createElement("tr");
    tr.dataset.cid = c.cid;
    cell(tr, c.cid);
    cell(tr, c.ip + ":" + c.port, "text");
    cell(tr, c.name || "", "text");
    cell(tr, c.stop ? new Date(c.stop).toLocaleTimeString() : "", "text");
    cell(tr, c.uptime);
    cell(tr, c.reason || "", "text reason");
    cell(tr, c.in_msgs);
    cell(tr, c.out_msgs);
    tbody.appendChild(tr);
  }
}

async function refresh() {
  const badge = $("status");
  try {
    const [st, v, cz, hz] = await Promise.all([
      getJSON("stats"), getJSON("varz"),
      getJSON("connz?state=closed&sort=stop&limit=10"),
      fetch("healthz", { cache: "no-store" }).then(r => r.json()),
    ]);
    const now = Date.parse(v.now) || Date.now();
    renderStats(st, now);
    renderVarz(v);
    renderClosed(cz);
    badge.textContent = hz.status === "ok" ? "healthy" : "unavailable: " + hz.error;
    badge.className = "badge " + (hz.status === "ok" ? "ok" : "bad");
    setText("updated", "updated " + new Date().toLocaleTimeString());
    document.body.dataset.loaded = "1";
  } catch (e) {
    badge.textContent = "unreachable: " + e.message;
    badge.className = "badge bad";
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
