// The search panel: text / more-like-this / uploaded-image searches with negatives and filters, the paged
// gallery of thumbnails with scores, and the measured time to the first result.

import { call, imageUrl } from "./api.js";
import { focusFeature, showHits } from "./map.js";
import { marks, resetMarks } from "./marks.js";
import { clearError, el, emit, esc, fmt, on, showError } from "./util.js";

export const PAGE = 12;
export const state = {
  hits: [], queryId: null, query: null, page: 0, selected: -1, upload: null, lastRun: null,
};

const $ = (id) => document.getElementById(id);

function fields() {
  const nots = $("q-not").value.split(",").map((s) => s.trim()).filter(Boolean);
  const label = $("q-label").value.trim();
  const k = Math.max(1, Math.min(100, Number($("q-k").value) || 48));
  return { nots, label, k, scene: $("q-scene").value || null };
}

// the JSON body of POST /v1/search for a query (text and/or example images, negatives, filters, area)
export function searchBody(query, { positives = [], negatives = [] } = {}) {
  const body = { k: query.k, negative_texts: query.nots };
  if (query.text) body.text = query.text;
  if (query.image_id) body.image_id = query.image_id;
  if (positives.length) body.image_ids = positives;
  if (negatives.length) body.negative_image_ids = negatives;
  if (query.label) body.filters = { label: query.label };
  if (query.scene) body.scene_id = query.scene;
  return body;
}

function uploadPath(query, { positives = [], negatives = [] } = {}) {
  const p = new URLSearchParams({ k: String(query.k) });
  if (query.text) p.set("text", query.text);
  for (const t of query.nots) p.append("negative_texts", t);
  for (const id of negatives) p.append("negative_image_ids", id);
  for (const id of positives) p.append("image_ids", id);
  if (query.label) p.append("filter", `label=${query.label}`);
  if (query.scene) p.set("scene_id", query.scene);
  return `/v1/search/image?${p}`;
}

// run a search and show it; `how` says what it was for the info line
export async function runSearch(query, { positives = [], negatives = [], how = "search", keepMarks = false } = {}) {
  const info = $("search-info");
  clearError(info);
  info.textContent = "searching…";
  const started = performance.now();
  try {
    const { data, response } = query.upload
      ? await call(uploadPath(query, { positives, negatives }), {
        method: "POST", body: query.upload, contentType: query.upload.type || "application/octet-stream",
      })
      : await call("/v1/search", { method: "POST", json: searchBody(query, { positives, negatives }) });
    const fetched = performance.now();
    const server = Number((/app;dur=([\d.]+)/.exec(response.headers.get("server-timing") || "") || [])[1]);
    if (!keepMarks) resetMarks(query);
    state.hits = data.hits;
    state.queryId = data.query_id;
    state.query = query;
    state.page = 0;
    state.selected = data.hits.length ? 0 : -1;
    const run = { how, started, fetch_ms: fetched - started, server_ms: Number.isFinite(server) ? server : null };
    state.lastRun = run;
    const onMap = showHits(state.hits);
    render(run);
    info.textContent = `${data.hits.length} results (${onMap} on the map) · ${how} · index ${data.index}`;
    emit("results", state);
  } catch (error) {
    showError(info, error);
    throw error;
  }
}

function timing(run) {
  // time to the first result: from the request to the first thumbnail drawn in the gallery
  const first = performance.now() - run.started;
  const metrics = { how: run.how, page_ms: Math.round(first), fetch_ms: Math.round(run.fetch_ms),
    server_ms: run.server_ms === null ? null : Math.round(run.server_ms) };
  window.skyscoutMetrics = { ...(window.skyscoutMetrics || {}), lastSearch: metrics };
  if (!window.skyscoutMetrics.firstTextSearch && run.how === "text search") {
    window.skyscoutMetrics.firstTextSearch = metrics;
  }
  const line = $("search-timing") || el("div", { id: "search-timing", class: "muted" });
  line.textContent = `first result in ${(first / 1000).toFixed(2)} s (API ${
    metrics.server_ms === null ? "?" : (metrics.server_ms / 1000).toFixed(2)} s)`;
  $("search-info").after(line);
}

function card(hit, index) {
  const img = el("img", { alt: hit.label || "", width: 120, height: 120, loading: "eager" });
  const mark = marks.get(hit.image_id);
  const node = el("figure", {
    class: `card${mark === true ? " relevant" : mark === false ? " not-relevant" : ""}${
      index === state.selected ? " selected" : ""}${hit.geometry ? " mapped" : ""}`,
    "data-id": hit.image_id, "data-rank": hit.rank, tabindex: -1,
    onclick: () => select(index),
    ondblclick: () => openHit(hit),
  },
  img,
  el("figcaption", {},
    el("b", { text: `#${hit.rank}` }), " ", el("span", { class: "score", text: fmt(hit.score) }),
    Number.isFinite(hit.probability) ? el("span", { class: "muted", text: ` p ${fmt(hit.probability, 2)}` }) : null,
    el("div", { class: "label", text: hit.label || (hit.scene_id ? `chip of ${hit.scene_id.slice(0, 8)}` : "") })),
  el("div", { class: "marks" },
    el("button", { type: "button", class: "yes", title: "relevant (y)", text: "✓",
      onclick: (e) => { e.stopPropagation(); emit("mark", { hit, relevant: true }); } }),
    el("button", { type: "button", class: "no", title: "not relevant (n)", text: "✗",
      onclick: (e) => { e.stopPropagation(); emit("mark", { hit, relevant: false }); } }),
    el("button", { type: "button", class: "like", title: "more like this (m)", text: "≈",
      onclick: (e) => { e.stopPropagation(); moreLikeThis(hit); } })));
  imageUrl(hit.thumbnail || `/v1/images/${hit.image_id}/thumbnail`)
    .then((url) => { img.src = url; })
    .catch(() => { img.classList.add("broken"); });
  return { node, img };
}

export function render(run) {
  const gallery = $("gallery");
  gallery.replaceChildren();
  const start = state.page * PAGE;
  const shown = state.hits.slice(start, start + PAGE);
  let firstImg = null;
  shown.forEach((hit, i) => {
    const { node, img } = card(hit, start + i);
    if (!firstImg) firstImg = img;
    gallery.append(node);
  });
  if (run && firstImg) {
    firstImg.addEventListener("load", () => timing(run), { once: true });
  }
  const pages = Math.max(1, Math.ceil(state.hits.length / PAGE));
  $("page-info").textContent = state.hits.length ? `page ${state.page + 1} of ${pages}` : "";
  $("prev-page").disabled = state.page <= 0;
  $("next-page").disabled = state.page >= pages - 1;
  for (const id of ["refine", "ask-next", "export-hits"]) $(id).disabled = !state.hits.length;
}

export function select(index) {
  if (index < 0 || index >= state.hits.length) return;
  state.selected = index;
  const page = Math.floor(index / PAGE);
  if (page !== state.page) {
    state.page = page;
    render();
  }
  for (const node of document.querySelectorAll("#gallery .card")) {
    node.classList.toggle("selected", node.dataset.id === state.hits[index].image_id);
  }
  const node = document.querySelector(`#gallery .card[data-id="${state.hits[index].image_id}"]`);
  if (node) node.scrollIntoView({ block: "nearest" });
}

export function openHit(hit) {
  if (hit.geometry) focusFeature(hit.geometry);
  const box = $("image-detail");
  box.innerHTML = `<img alt="" width="384" height="384"><p><b>#${esc(hit.rank)}</b> ${esc(hit.label || "")}
    · score ${fmt(hit.score)}</p><p class="muted">${esc((hit.captions || [])[0] || "")}</p>
    <p class="muted">${esc(hit.uri || "")}</p>`;
  imageUrl(`/v1/images/${hit.image_id}/thumbnail?size=512`).then((url) => { box.querySelector("img").src = url; })
    .catch(() => {});
  $("image-dialog").showModal();
}

export function moreLikeThis(hit) {
  const f = fields();
  return runSearch({ ...f, text: null, image_id: hit.image_id, upload: null }, { how: "more like this" });
}

function textSearch(event) {
  event.preventDefault();
  const text = $("q-text").value.trim();
  if (!text) return;
  runSearch({ ...fields(), text, image_id: null, upload: null }, { how: "text search" }).catch(() => {});
}

function uploadSearch(file) {
  if (!file) return;
  const text = $("q-text").value.trim() || null;
  runSearch({ ...fields(), text, image_id: null, upload: file }, { how: `image ${file.name}` }).catch(() => {});
}

function keys(event) {
  const target = event.target;
  if (target.closest("input, textarea, select, dialog") || event.ctrlKey || event.metaKey || event.altKey) return;
  if (!state.hits.length) return;
  const hit = state.hits[state.selected];
  const act = {
    j: () => select(state.selected + 1), ArrowRight: () => select(state.selected + 1),
    k: () => select(state.selected - 1), ArrowLeft: () => select(state.selected - 1),
    y: () => hit && emit("mark", { hit, relevant: true }),
    n: () => hit && emit("mark", { hit, relevant: false }),
    u: () => hit && emit("mark", { hit, relevant: null }),
    m: () => hit && moreLikeThis(hit).catch(() => {}),
    Enter: () => hit && openHit(hit),
  }[event.key];
  if (act) {
    event.preventDefault();
    act();
  }
}

export function initSearch() {
  $("search-form").addEventListener("submit", textSearch);
  $("q-file").addEventListener("change", (e) => uploadSearch(e.target.files[0]));
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    uploadSearch(e.dataTransfer.files[0]);
  });
  $("prev-page").addEventListener("click", () => { state.page -= 1; render(); });
  $("next-page").addEventListener("click", () => { state.page += 1; render(); });
  document.addEventListener("keydown", keys);
  on("hit:open", (props) => {
    const index = state.hits.findIndex((h) => h.image_id === props.image_id);
    if (index >= 0) select(index);
  });
  on("marked", () => render());
  on("scenes", (scenes) => {
    for (const id of ["q-scene", "d-scene"]) {
      const menu = $(id);
      const first = menu.options[0];
      menu.replaceChildren(first, ...scenes.map((s) => el("option", {
        value: s.id, text: `${s.id.slice(0, 10)} (${s.width}×${s.height}, ${s.chips} chips)` })));
    }
  });
}
