"""A self-contained HTML page of search results: thumbnails inlined as data URIs, scores, labels, captions."""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.imageio import load_rgb

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;background:#f6f7f9;color:#1b1f24}
h1{font-size:22px;margin:0 0 4px} .meta{color:#59636e;font-size:13px;margin-bottom:20px}
section{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:14px 16px;margin-bottom:18px}
h2{font-size:16px;margin:0 0 10px} .q{color:#59636e;font-weight:normal;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}
figure{margin:0;border:1px solid #e5e8eb;border-radius:6px;overflow:hidden;background:#fafbfc}
figure img{width:100%;aspect-ratio:1/1;object-fit:cover;display:block}
figcaption{padding:6px 8px;font-size:12px;line-height:1.35}
.score{font-weight:600} .label{display:inline-block;background:#ddf4ff;color:#0969da;border-radius:10px;
padding:0 7px;margin-left:4px} .cap{color:#59636e;display:block;margin-top:3px}
.answer{white-space:pre-wrap;font-size:13px;color:#1b1f24;background:#f6f8fa;padding:8px;border-radius:6px}
"""


def _thumb(uri: str | None, size: int) -> str:
    if not uri:
        return ""
    try:
        img = load_rgb(uri)
    except OSError:
        return ""
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _hit_html(hit: dict[str, Any], size: int) -> str:
    label = f'<span class="label">{html.escape(hit["label"])}</span>' if hit.get("label") else ""
    caption = hit["captions"][0] if hit.get("captions") else ""
    src = _thumb(hit.get("uri"), size)
    alt = html.escape(caption or hit.get("label") or hit["image_id"][:12])
    return (f'<figure><img src="{src}" alt="{alt}" loading="lazy"><figcaption>#{hit["rank"]} '
            f'<span class="score">{hit["score"]:.3f}</span>{label}'
            f'<span class="cap">{html.escape(caption)}</span></figcaption></figure>')


def write_results_page(sections: Sequence[dict[str, Any]], path: Path, *, title: str = "SkyScout results",
                       thumb_size: int = 192) -> Path:
    """Write one page; each section is ``{"title", "query", "hits": [hit dicts], "answer"?}``."""
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
             f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><div class=meta>generated {time.strftime('%Y-%m-%d %H:%M:%S')}"
             "</div>"]
    for sec in sections:
        parts.append(f'<section><h2>{html.escape(sec["title"])} '
                     f'<span class="q">{html.escape(str(sec.get("query", "")))}</span></h2>')
        if sec.get("answer"):
            parts.append(f'<div class="answer">{html.escape(sec["answer"])}</div>')
        if sec.get("hits"):
            parts.append('<div class="grid">' + "".join(_hit_html(h, thumb_size) for h in sec["hits"]) + "</div>")
        parts.append("</section>")
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts), encoding="utf-8")
    return path
