"""The demo's HTML results page, rendered by a real headless Chromium and checked on its screenshot.

Skipped where Chromium is not installed (``apt-get install chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.report import write_results_page

PROJECT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _hits(label: str, n: int) -> list[dict]:  # type: ignore[type-arg]
    files = sorted((PROJECT / "data" / "ucm_sample" / "images" / label).glob("*.jpg"))[:n]
    return [{"rank": i + 1, "image_id": f"{i:064x}", "score": 0.5 - i / 100, "uri": str(f), "label": label,
             "captions": [f"caption of {f.name}"]} for i, f in enumerate(files)]


def test_page_is_self_contained(tmp_path: Path) -> None:
    page = write_results_page([{"title": "find beaches", "query": "beach", "hits": _hits("beach", 3)}],
                              tmp_path / "r.html")
    text = page.read_text()
    assert text.count("data:image/jpeg;base64,") == 3 and "file://" not in text and "<script" not in text
    assert "caption of beach" in text and "find beaches" in text


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = write_results_page([
        {"title": "find beaches", "query": "beach", "hits": _hits("beach", 6)},
        {"title": "how good is the model?", "query": "", "hits": [], "answer": "top-1 0.80 on val"},
    ], tmp_path / "r.html")
    shot = tmp_path / "shot.png"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,800",
                    f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert img.shape[:2] == (800, 1000)
    # The thumbnails make the page far from blank: many distinct colours, high variance.
    assert img.std() > 20 and len(np.unique(img.reshape(-1, 3), axis=0)) > 5000
