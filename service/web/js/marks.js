// Marks: relevant / not relevant on results, stored as judgments (POST /v1/feedback, with the search's signed
// query id) and, when the server has the concepts API, as labels of a concept for the query; "refine"
// re-ranks with them and "what should I mark next" shows the active-learning picks.

import { call, get, post, ui } from "./api.js";
import { showHits } from "./map.js";
import { render, runSearch, state } from "./search.js";
import { clearError, download, emit, fmt, on, showError } from "./util.js";

export const marks = new Map(); // image id -> true (relevant) / false (not relevant)
let concept = null; // {id, name} of the concept the marks of this query go to, once made
let conceptsApi = null; // whether the server has /v1/concepts (asked once)
let markedQuery = null;

const $ = (id) => document.getElementById(id);

export function resetMarks(query) {
  marks.clear();
  concept = null;
  markedQuery = query;
  $("ask-info").textContent = "";
}

export async function hasConcepts() {
  if (conceptsApi === null) conceptsApi = Boolean((await ui()).features?.concepts);
  return conceptsApi;
}

// the concept the current query's marks went to, if any (detection may score with it)
export function currentConcept() {
  return concept;
}

function conceptName(query) {
  if (query.text) return query.text;
  if (query.image_id) return `like ${query.image_id.slice(0, 10)}`;
  return `images like ${query.upload ? query.upload.name : "an upload"}`;
}

let making = null; // the concept being made (marks in quick succession share it)

async function ensureConcept() {
  if (concept || !(await hasConcepts())) return concept;
  if (!making) making = findOrMake().finally(() => { making = null; });
  return making;
}

async function findOrMake() {
  const query = markedQuery || state.query;
  const name = conceptName(query);
  const known = (await get("/v1/concepts")).find((c) => c.name.toLowerCase() === name.toLowerCase());
  concept = known || await post("/v1/concepts", { name, texts: query.text ? [query.text] : [],
    image_ids: query.image_id ? [query.image_id] : [], negative_texts: query.nots || [] });
  return concept;
}

export async function mark(hit, relevant) {
  const info = $("search-info");
  clearError(info);
  if (relevant === null) {
    marks.delete(hit.image_id);
    emit("marked", { hit, relevant });
    return;
  }
  marks.set(hit.image_id, relevant);
  emit("marked", { hit, relevant });
  try {
    const query = state.query || {};
    await post("/v1/feedback", { query_id: state.queryId, image_id: hit.image_id, relevant,
      query: query.text || undefined });
    const c = await ensureConcept().catch((error) => { console.warn("concept:", error.message); return null; });
    if (c) await post(`/v1/concepts/${c.id}/labels`, { image_id: hit.image_id, relevant });
    const n = [...marks.values()];
    info.textContent = `marked #${hit.rank} ${relevant ? "relevant" : "not relevant"} · ${
      n.filter(Boolean).length} relevant, ${n.filter((v) => !v).length} not relevant${c ? ` · concept ${c.name}` : ""}`;
  } catch (error) {
    showError(info, error);
  }
}

function split() {
  const positives = [...marks].filter(([, v]) => v).map(([id]) => id);
  const negatives = [...marks].filter(([, v]) => !v).map(([id]) => id);
  return { positives, negatives };
}

export async function refine() {
  const { positives, negatives } = split();
  const how = `refined with ${positives.length} relevant, ${negatives.length} not relevant`;
  const c = concept || (marks.size ? await ensureConcept().catch(() => null) : null);
  if (c) {
    const query = state.query;
    const params = new URLSearchParams({ k: String(query.k) });
    if (query.scene) params.set("scene", query.scene);
    const { data } = await call(`/v1/concepts/${c.id}/results?${params}`);
    state.hits = data.hits.map((h, i) => ({ ...h, rank: h.rank ?? i + 1 }));
    state.page = 0;
    state.selected = state.hits.length ? 0 : -1;
    showHits(state.hits);
    render();
    $("search-info").textContent = `${state.hits.length} results · ${how} · concept ${c.name} (${data.stage})`;
    emit("results", state);
    return;
  }
  if (!positives.length && !state.query.text && !state.query.image_id && !state.query.upload) {
    throw new Error("mark at least one result relevant first");
  }
  await runSearch(state.query, { positives, negatives, how, keepMarks: true });
}

// the unmarked results nearest the boundary between what was marked relevant and not relevant
export function uncertain(hits, n = 5) {
  const score = (ids) => hits.filter((h) => ids.includes(h.image_id)).map((h) => h.score);
  const { positives, negatives } = split();
  const pos = score(positives);
  const neg = score(negatives);
  const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
  const sorted = hits.map((h) => h.score).sort((a, b) => a - b);
  let boundary = sorted[Math.floor(sorted.length / 2)];
  if (pos.length && neg.length) boundary = (mean(pos) + mean(neg)) / 2;
  else if (pos.length) boundary = Math.min(...pos);
  else if (neg.length) boundary = Math.max(...neg);
  const picks = hits.filter((h) => !marks.has(h.image_id))
    .sort((a, b) => Math.abs(a.score - boundary) - Math.abs(b.score - boundary)).slice(0, n);
  return { picks, why: `closest to the boundary between what you marked relevant and not (score ≈ ${
    fmt(boundary)}): a mark here teaches the most` };
}

export async function askNext() {
  const c = concept || (marks.size ? await ensureConcept().catch(() => null) : null);
  let picks;
  let why;
  if (c) {
    const { data } = await call(`/v1/concepts/${c.id}/ask?n=5`);
    picks = data.hits;
    why = Array.isArray(data.why) ? data.why.join("; ") : data.why;
  } else {
    ({ picks, why } = uncertain(state.hits));
  }
  const ids = new Set(picks.map((h) => h.image_id));
  const rest = state.hits.filter((h) => !ids.has(h.image_id));
  state.hits = [...picks.map((h) => ({ ...h, pick: true })), ...rest];
  state.page = 0;
  state.selected = 0;
  showHits(state.hits);
  render();
  for (const node of document.querySelectorAll("#gallery .card")) {
    node.classList.toggle("pick", ids.has(node.dataset.id));
  }
  $("ask-info").textContent = `Mark these ${picks.length} next: ${why}`;
}

export function exportHits() {
  const query = state.query || {};
  const features = state.hits.map((h) => ({
    type: "Feature", geometry: h.geometry || null,
    properties: { rank: h.rank, image_id: h.image_id, score: h.score, label: h.label, scene_id: h.scene_id,
      window: h.window, mark: marks.has(h.image_id) ? marks.get(h.image_id) : null, query: query.text || null },
  }));
  download(`skyscout-${(query.text || "results").replace(/\W+/g, "-")}.geojson`,
    { type: "FeatureCollection", features });
}

export function initMarks() {
  on("mark", ({ hit, relevant }) => mark(hit, relevant));
  const guard = (fn) => () => fn().catch((error) => showError($("search-info"), error));
  $("refine").addEventListener("click", guard(refine));
  $("ask-next").addEventListener("click", guard(askNext));
  $("export-hits").addEventListener("click", exportHits);
}
