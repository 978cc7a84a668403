// The app's entry: tabs, the token, then each panel. Panels talk through the small event bus in util.js.

import { ensureToken, forgetToken, ui } from "./api.js";
import { initChat } from "./chat.js";
import { initDetect } from "./detect.js";
import { initMap, showOnly } from "./map.js";
import { initMarks } from "./marks.js";
import { initSearch } from "./search.js";
import { initStatus, refreshStatus } from "./status.js";

function tabs() {
  for (const nav of document.querySelectorAll("nav.tabs")) {
    const panel = nav.parentElement;
    nav.addEventListener("click", (event) => {
      const name = event.target.dataset.tab;
      if (!name) return;
      for (const b of nav.querySelectorAll("button")) b.classList.toggle("active", b.dataset.tab === name);
      for (const t of panel.querySelectorAll(":scope > .tab")) t.hidden = t.dataset.tab !== name;
      if (name === "status") refreshStatus();
      if (name === "search" || name === "detect") showOnly(name);
    });
  }
}

async function start() {
  tabs();
  document.getElementById("forget-token").addEventListener("click", () => {
    forgetToken();
    location.reload();
  });
  await ensureToken(); // asked once, kept for the tab
  await ui();
  initSearch();
  initMarks();
  initDetect();
  initChat();
  initStatus();
  await initMap();
  await refreshStatus();
  document.body.dataset.ready = "1";
}

start().catch((error) => {
  const info = document.getElementById("search-info");
  info.textContent = `could not start: ${error.message}`;
  info.classList.add("error");
});
