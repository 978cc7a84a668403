// The map: the ingested scenes as imagery (XYZ tiles the API renders from the scene files), an optional basemap
// from the server's settings, and footprints of search hits and detections coloured by score.

import { get, imageUrl, ui as uiSettings } from "./api.js";
import { colour, emit, esc, fmt, normaliser } from "./util.js";

const L = window.L;
let map;
let hitLayer;
let detectLayer;
const scenes = [];
const legends = { search: [null, []], detect: [null, []] }; // each layer's legend, shown with it

// a tile layer whose tiles are fetched with the bearer token (an <img> cannot send one)
const AuthTileLayer = L.TileLayer.extend({
  createTile(coords, done) {
    const tile = document.createElement("img");
    tile.alt = "";
    imageUrl(this.getTileUrl(coords))
      .then((url) => {
        tile.onload = () => done(null, tile);
        tile.onerror = () => done(new Error("tile"), tile);
        tile.src = url;
      })
      .catch((error) => done(error, tile));
    return tile;
  },
});

export async function initMap() {
  map = L.map("map", { zoomControl: true, worldCopyJump: true, preferCanvas: false }).setView([20, 0], 2);
  const ui = await uiSettings();
  if (ui.basemap_url) {
    L.tileLayer(ui.basemap_url, { attribution: esc(ui.basemap_attribution), maxZoom: 22 }).addTo(map);
  }
  hitLayer = L.featureGroup().addTo(map);
  detectLayer = L.featureGroup().addTo(map);
  await loadScenes();
  return map;
}

export async function loadScenes() {
  const list = await get("/v1/scenes");
  scenes.length = 0;
  const bounds = [];
  for (const scene of list) {
    scenes.push(scene);
    if (!scene.georeferenced || !scene.bbox) continue;
    const tj = await get(`/v1/scenes/${scene.id}/tilejson.json`);
    const [w, s, e, n] = tj.bounds;
    const box = L.latLngBounds([s, w], [n, e]);
    new AuthTileLayer(tj.tiles[0], {
      bounds: box, maxNativeZoom: tj.native_zoom, maxZoom: tj.maxzoom, minZoom: 0, noWrap: true,
      className: "scene-tiles",
    }).addTo(map);
    L.rectangle(box, { color: "#9ab", weight: 1, fill: false, dashArray: "4 4", interactive: false }).addTo(map);
    bounds.push(box);
  }
  if (bounds.length) {
    const all = bounds.reduce((a, b) => a.extend(b), L.latLngBounds(bounds[0].getSouthWest(), bounds[0].getNorthEast()));
    map.fitBounds(all, { padding: [20, 20] });
  }
  emit("scenes", scenes);
  return scenes;
}

export function sceneList() {
  return scenes;
}

function popup(props, label) {
  const div = document.createElement("div");
  div.className = "map-popup";
  div.innerHTML = `<div class="muted">${esc(label)}</div><img alt="" width="160" height="160">
    <div>${esc(props.label || "")} · score ${fmt(props.score)}${Number.isFinite(props.probability)
    ? ` · p ${fmt(props.probability, 2)}` : ""}</div>`;
  imageUrl(`/v1/images/${props.image_id || props.chip_id}/thumbnail?size=256`)
    .then((url) => { div.querySelector("img").src = url; })
    .catch(() => { /* a chip whose scene moved: the popup still says what it is */ });
  return div;
}

function drawFeatures(layer, features, valueOf, label) {
  layer.clearLayers();
  const scale = normaliser(features.map(valueOf));
  for (const f of features) {
    const t = scale(valueOf(f));
    const shape = L.geoJSON(f, {
      style: { color: colour(t), weight: 2, fillColor: colour(t), fillOpacity: 0.25 },
    });
    shape.on("click", () => emit(`${label}:open`, f.properties));
    shape.bindPopup(() => popup(f.properties, label === "hit" ? `#${f.properties.rank}` : "detection"));
    shape.addTo(layer);
  }
}

// search hits with a footprint (chips of scenes); tiles without coordinates are only in the gallery
export function showHits(hits) {
  const features = hits.filter((h) => h.geometry).map((h) => ({
    type: "Feature", geometry: h.geometry, properties: { ...h, geometry: undefined },
  }));
  drawFeatures(hitLayer, features, (f) => f.properties.score, "hit");
  legends.search = [features.length ? "search score" : null, features.map((f) => f.properties.score)];
  legend(...legends.search);
  return features.length;
}

export function showDetections(features) {
  drawFeatures(detectLayer, features, (f) => f.properties.probability ?? f.properties.max_probability, "detection");
  legends.detect = [features.length ? "probability" : null,
    features.map((f) => f.properties.probability ?? f.properties.max_probability)];
  legend(...legends.detect);
}

export function focusFeature(geometry) {
  if (!geometry) return;
  const layer = L.geoJSON(geometry);
  map.fitBounds(layer.getBounds(), { maxZoom: 19, padding: [60, 60] });
}

function legend(title, values) {
  const box = document.getElementById("legend");
  if (!title || !values.length) {
    box.hidden = true;
    return;
  }
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  box.hidden = false;
  box.innerHTML = `<div>${esc(title)}</div><div class="ramp"></div>
    <div class="ends"><span>${fmt(lo, 2)}</span><span>${fmt(hi, 2)}</span></div>`;
}

// the left panel's tab chooses which footprints are on the map: search hits or detections
export function showOnly(which) {
  for (const [name, layer] of [["search", hitLayer], ["detect", detectLayer]]) {
    if (name === which && !map.hasLayer(layer)) layer.addTo(map);
    if (name !== which && map.hasLayer(layer)) map.removeLayer(layer);
  }
  legend(...legends[which]);
}

export function drawnCounts() {
  return { hits: hitLayer.getLayers().length, detections: detectLayer.getLayers().length };
}
