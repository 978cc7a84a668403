// The detection panel: POST /v1/detect for a text (or the concept the marks built), every scored chip fetched
// once, and a probability slider that chooses which are drawn on the map; export of what is drawn.

import { ApiError, call, ui } from "./api.js";
import { focusFeature, showDetections } from "./map.js";
import { currentConcept } from "./marks.js";
import { state as searchState } from "./search.js";
import { clearError, download, el, fmt, on, showError } from "./util.js";

const $ = (id) => document.getElementById(id);
const state = { features: [], text: "", shown: [] };

function probability(f) {
  return f.properties.probability ?? f.properties.max_probability ?? 0;
}

export function applyThreshold() {
  const threshold = Number($("d-prob").value);
  $("d-prob-out").textContent = threshold.toFixed(2);
  state.shown = state.features.filter((f) => probability(f) >= threshold);
  showDetections(state.shown);
  $("detect-info").textContent = state.features.length
    ? `${state.shown.length} of ${state.features.length} chips with p ≥ ${threshold.toFixed(2)} for “${state.text}”`
    : "";
  const list = $("detections");
  list.replaceChildren(...state.shown.slice(0, 100).map((f) => el("li", {
    onclick: () => focusFeature(f.geometry),
  }, `p ${fmt(probability(f), 2)} · score ${fmt(f.properties.score ?? f.properties.max_score)} · chip ${
    String(f.properties.chip_id || "").slice(0, 10)}`)));
  $("export-detections").disabled = !state.shown.length;
  document.body.dataset.detectionsDrawn = String(state.shown.length);
}

async function detect(event) {
  event.preventDefault();
  const info = $("detect-info");
  clearError(info);
  const text = $("d-text").value.trim();
  if (!text) return;
  const body = { text, threshold: 0, top_k: 2000, negative: $("d-not").value.split(",").map((s) => s.trim())
    .filter(Boolean) };
  if ($("d-scene").value) body.scene_id = $("d-scene").value;
  const concept = currentConcept();
  if (concept && (await ui()).features?.detect_concept && concept.name === text) body.concept = concept.id;
  info.textContent = "scoring chips…";
  try {
    let data;
    try {
      ({ data } = await call("/v1/detect", { method: "POST", json: body }));
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
      throw new Error(`${error.message} (detection needs ingested scenes: skyscout ingest a GeoTIFF)`);
    }
    state.features = data.features || [];
    state.text = text;
    $("d-prob").disabled = !state.features.length;
    applyThreshold();
    if (!state.features.length) info.textContent = `no chips scored for “${text}” (${(data.warnings || []).join("; ")})`;
  } catch (error) {
    showError(info, error);
  }
}

function exportDetections() {
  download(`skyscout-detections-${state.text.replace(/\W+/g, "-")}.geojson`, {
    type: "FeatureCollection", features: state.shown,
    properties: { query: state.text, min_probability: Number($("d-prob").value) },
  });
}

export function initDetect() {
  $("detect-form").addEventListener("submit", detect);
  $("d-prob").addEventListener("input", applyThreshold);
  $("export-detections").addEventListener("click", exportDetections);
  on("detection:open", (props) => {
    const item = [...$("detections").children].find((li) => li.textContent.includes(String(props.chip_id).slice(0, 10)));
    if (item) item.scrollIntoView({ block: "nearest" });
  });
  on("results", () => {
    if (!$("d-text").value && searchState.query && searchState.query.text) $("d-text").value = searchState.query.text;
  });
}
