// The status panel: the active model and the candidates with their metrics (GET /v1/models), index versions
// (GET /v1/indexes), running jobs with their progress (GET /v1/jobs), and the planner's decision log with
// reasons and evidence (GET /v1/decisions). Refreshed every few seconds while it is open.

import { get } from "./api.js";
import { el, esc, fmt, showError, when } from "./util.js";

const $ = (id) => document.getElementById(id);
let timer = null;

function metrics(evaluations) {
  const parts = [];
  for (const [key, e] of Object.entries(evaluations || {})) {
    const m = Object.entries(e.metrics || {}).filter(([, v]) => typeof v === "number")
      .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : fmt(v)}`).join(", ");
    parts.push(`${key}: ${m}`);
  }
  return parts.join(" · ") || "not evaluated";
}

function modelsSection(doc) {
  const rows = doc.models.slice(0, 12).map((m) => el("tr", { class: m.status },
    el("td", { text: m.id }), el("td", { text: m.status }), el("td", { text: metrics(m.evaluations) })));
  return el("section", { id: "status-models" },
    el("h3", { text: "Models" }),
    el("p", {}, "active: ", el("b", { text: doc.active || "none" })),
    rows.length ? el("table", {}, el("tr", {}, el("th", { text: "version" }), el("th", { text: "status" }),
      el("th", { text: "latest metrics" })), rows) : el("p", { class: "muted", text: "no trained versions yet" }));
}

function indexesSection(doc) {
  return el("section", { id: "status-indexes" },
    el("h3", { text: "Indexes" }),
    el("ul", {}, doc.indexes.slice(0, 8).map((i) => el("li", { class: i.name === doc.active ? "active" : "" },
      `${i.name} · ${i.state} · ${i.count} vectors · ${i.model}${i.name === doc.active ? " (answers searches)" : ""}`))));
}

function jobsSection(jobs) {
  const running = jobs.filter((j) => j.state === "running");
  const recent = jobs.filter((j) => j.state !== "running").slice(0, 5);
  const bar = (j) => el("progress", { max: j.total || 1, value: j.total ? j.done : 0 });
  return el("section", { id: "status-jobs" },
    el("h3", { text: `Jobs (${running.length} running)` }),
    el("ul", {}, running.map((j) => el("li", {}, `${j.kind} ${j.id} `, bar(j), ` ${j.done}/${j.total ?? "?"}`)),
      recent.map((j) => el("li", { class: "muted" }, `${j.kind} ${j.state}${j.error ? `: ${j.error}` : ""}`))));
}

function decisionsSection(decisions) {
  return el("section", { id: "status-decisions" },
    el("h3", { text: "Planner decisions" }),
    el("ol", { class: "decisions" }, decisions.map((d) => {
      const item = el("li", { "data-id": d.id });
      item.innerHTML = `<div><b>#${esc(d.id)} ${esc(d.action)}</b> <span class="muted">${esc(d.actor)} · ${
        esc(when(d.created_at))}</span></div><div class="reason">${esc(d.reason)}</div>${
        d.outcome ? `<div class="outcome">→ ${esc(d.outcome)}</div>` : ""}`;
      const evidence = el("details", {}, el("summary", { text: "evidence" }),
        el("pre", { text: JSON.stringify(d.evidence, null, 2) }));
      item.append(evidence);
      return item;
    })));
}

export async function refreshStatus() {
  const box = $("status");
  try {
    const [status, models, indexes, jobs, decisions] = await Promise.all([
      get("/v1/status"), get("/v1/models"), get("/v1/indexes"), get("/v1/jobs?limit=20"),
      get("/v1/decisions?limit=20")]);
    box.replaceChildren(
      el("p", { id: "status-summary" }, `${status.images} images · ${status.labels} labels · ${
        status.uncaptioned} without captions`),
      modelsSection(models), indexesSection(indexes), jobsSection(jobs), decisionsSection(decisions));
    $("status-time").textContent = `updated ${new Date().toLocaleTimeString()}`;
    $("summary").textContent = `${status.images} images · model ${status.active_model || "none"}`;
  } catch (error) {
    showError(box, error);
  }
}

export function initStatus() {
  $("status-refresh").addEventListener("click", refreshStatus);
  const tab = document.querySelector('#right .tab[data-tab="status"]');
  timer = setInterval(() => { if (!tab.hidden) refreshStatus(); }, 5000);
  return timer;
}
