// The chat panel: a request to the agents on this tab's thread, streamed (POST /v1/chat/stream): each step as
// it starts and ends, progress of long steps, the answer, and Yes / No when the graph asks for approval
// (answered with {"thread_id", "approve": true|false} on the same thread).

import { stream } from "./api.js";
import { esc, el } from "./util.js";

const THREAD_KEY = "skyscout.thread";
const $ = (id) => document.getElementById(id);
let busy = false;

function threadId() {
  let id = sessionStorage.getItem(THREAD_KEY);
  if (!id) {
    id = `web-${Math.random().toString(16).slice(2, 14)}`;
    sessionStorage.setItem(THREAD_KEY, id);
  }
  $("chat-thread").textContent = `thread ${id}`;
  return id;
}

function log(node) {
  const box = $("chat-log");
  box.append(node);
  box.scrollTop = box.scrollHeight;
  return node;
}

function progressText(p) {
  if (p.task === "train") return `training: step ${p.step}/${p.total}, loss ${p.loss}`;
  if (p.task === "index") return `indexing: ${p.done}/${p.total} images`;
  if (p.done !== undefined) return `${p.task || "progress"}: ${p.done}/${p.total ?? "?"}`;
  return `progress: ${JSON.stringify(p)}`;
}

// one line per graph node as it finishes: the plan, a decision, or the step's result
function stepSummary(node, update) {
  if (node === "__interrupt__") return "waiting for your approval";
  if (!update || typeof update !== "object") return node;
  const results = update.results || [];
  const last = results[results.length - 1];
  if (last && last.action) {
    return `${node}: ${last.action} ${last.status || ""}${last.summary ? ` — ${last.summary}` : ""}`;
  }
  const decisions = update.decisions || [];
  if (decisions.length) return `${node}: ${decisions.map((d) => `${d.action}: ${d.reason}`).join("; ")}`;
  if (node === "interpret" && update.plan && update.plan.length) {
    return `plan: ${update.plan.map((s) => `${s.agent}/${s.action}`).join(", ")}`;
  }
  return node;
}

function handler(turn) {
  let progress = null;
  return (name, data) => {
    if (name === "started") {
      progress = null;
      log(el("div", { class: "event started", text: `→ ${data.step || ""} ${data.agent}/${data.action}` }));
    } else if (name === "progress") {
      if (!progress) progress = log(el("div", { class: "event progress" }));
      progress.textContent = progressText(data);
    } else if (name === "step") {
      log(el("div", { class: "event step", text: `✓ ${stepSummary(data.node, data.update)}` }));
    } else if (name === "done") {
      turn.outcome = data;
    } else if (name === "error") {
      log(el("div", { class: "event error", text: `error: ${data.error || data}` }));
    }
  };
}

function answer(outcome) {
  const box = log(el("div", { class: `msg agent ${outcome.status}` }));
  if (outcome.status === "awaiting_approval" && outcome.approval) {
    const a = outcome.approval;
    const ask = el("div", { class: "approval" },
      el("div", { text: `${a.reason || `${a.action} waits for approval`}. Run it?` }),
      el("button", { type: "button", class: "approve-yes", text: "Yes", onclick: () => respond(true, ask) }),
      el("button", { type: "button", class: "approve-no", text: "No", onclick: () => respond(false, ask) }));
    box.append(ask);
    return;
  }
  box.innerHTML = `<pre>${esc(outcome.answer || "(no answer)")}</pre>`;
}

async function run(body) {
  if (busy) return;
  busy = true;
  $("chat-send").disabled = true;
  const turn = { outcome: null };
  try {
    await stream("/v1/chat/stream", { thread_id: threadId(), ...body }, handler(turn));
    if (turn.outcome) answer(turn.outcome);
  } catch (error) {
    log(el("div", { class: "event error", text: `error: ${error.message}` }));
  } finally {
    busy = false;
    $("chat-send").disabled = false;
    document.body.dataset.chatIdle = "1";
  }
}

function respond(approved, box) {
  for (const b of box.querySelectorAll("button")) b.disabled = true;
  log(el("div", { class: "msg user", text: approved ? "Yes" : "No" }));
  return run({ approve: approved });
}

function send(event) {
  event.preventDefault();
  const text = $("chat-text").value.trim();
  if (!text || busy) return;
  $("chat-text").value = "";
  log(el("div", { class: "msg user", text }));
  document.body.dataset.chatIdle = "0";
  run({ message: text });
}

export function initChat() {
  threadId();
  $("chat-form").addEventListener("submit", send);
  $("chat-new").addEventListener("click", () => {
    sessionStorage.removeItem(THREAD_KEY);
    $("chat-log").replaceChildren();
    threadId();
  });
}
