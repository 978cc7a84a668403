"""CLI reads through a running ``skyscout serve``: the server has the model loaded, the CLI would load it again.

``SKYSCOUT_SERVER_URL`` names the server; unset, the CLI asks ``http://127.0.0.1:8000/healthz`` (briefly)
and uses the server only when it serves the same SkyScout home (the ``instance`` id of ``/healthz``). The
token is ``SKYSCOUT_SERVER_TOKEN``, else the first of ``SKYSCOUT_API_TOKENS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from service.context import instance_id
from service.settings import Settings
from tools.search import Query

DEFAULT_URL = "http://127.0.0.1:8000"
#: how long the CLI waits for a server that may not be there
PROBE_TIMEOUT_S = 0.3


@dataclass(frozen=True)
class Server:
    """A running server of this home."""

    url: str
    token: str | None

    def search(self, query: Query) -> dict[str, Any]:
        body: dict[str, Any] = {"text": query.texts[0] if query.texts else None, "k": query.k,
                                "negative_texts": query.negative_texts, "filters": query.filter or {},
                                "min_score": query.min_score}
        if query.images:
            body["image_id"] = query.images[0]
        body["negative_image_ids"] = query.negative_images
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        reply = httpx.post(f"{self.url}/v1/search", json={k: v for k, v in body.items() if v is not None},
                           headers=headers, timeout=120)
        if reply.status_code >= 400:
            message = reply.json().get("error", reply.text) if reply.headers.get("content-type", "").startswith(
                "application/json") else reply.text
            raise (LookupError if reply.status_code in (404, 409) else ValueError)(f"server {self.url}: {message}")
        return dict(reply.json())


def find_server(settings: Settings) -> Server | None:
    """The running server of this home, or None (then the CLI does the work itself)."""
    url = (settings.server_url or DEFAULT_URL).rstrip("/")
    try:
        health = httpx.get(f"{url}/healthz", timeout=PROBE_TIMEOUT_S).json()
    except (httpx.HTTPError, ValueError):
        if settings.server_url:
            raise ConnectionError(f"SKYSCOUT_SERVER_URL={settings.server_url} does not answer") from None
        return None
    if not settings.server_url and health.get("instance") != instance_id(settings):
        return None  # a server, but of another home
    token = settings.server_token or (settings.tokens[0] if settings.tokens else None)
    return Server(url, token)


def remote_query(query: Query) -> bool:
    """Whether the server can take this query as given (its API wants whole image ids, one example image)."""
    full = all(len(i) == 64 for i in [*query.images, *query.negative_images])
    return full and len(query.images) <= 1 and len(query.texts) <= 1 and not (query.aoi or query.scenes)


__all__ = ["Server", "find_server", "remote_query"]
