"""Item 5: thumbnails are decoded at most once at a time per large image (memory stays bounded under parallel
requests), never from a file whose bytes changed since ingestion (a swapped bomb header included)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.hardening.conftest import OPERATE, PROJECT, catalog_rows, cli_env, skyscout

MEASURE = """
import json, resource, sys, threading
from pathlib import Path
from fastapi.testclient import TestClient
from service.settings import Settings
from tests.hardening.conftest import create_app, catalog_rows
home, data = Path(sys.argv[1]), sys.argv[2]
(image_id,), = catalog_rows(home, "SELECT id FROM images WHERE status = 'ok'")
settings = Settings(home=home, data_roots=data, api_tokens="t")
with TestClient(create_app(settings), raise_server_exceptions=False) as client:
    client.get("/v1/status", headers={"Authorization": "Bearer t"})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    codes = []
    def get(size):
        r = client.get(f"/v1/images/{image_id}/thumbnail?size={size}", headers={"Authorization": "Bearer t"})
        codes.append(r.status_code)
    threads = [threading.Thread(target=get, args=(64 + 16 * i,)) for i in range(12)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"codes": codes, "grew_mb": (after - before) / 1024}))
"""


@pytest.mark.slow
def test_twelve_parallel_thumbnails_of_a_9000px_png_stay_in_bounded_memory(tmp_path: Path) -> None:
    data, home = tmp_path / "data", tmp_path / "home"
    data.mkdir()
    subprocess.run([sys.executable, "-c", "import sys; from PIL import Image; "
                    "Image.new('RGB', (9000, 9000), (30, 120, 40)).save(sys.argv[1], optimize=True)",
                    str(data / "huge.png")], check=True)
    assert (data / "huge.png").stat().st_size < 1_000_000  # a small file, 81 million pixels
    skyscout("ingest", str(data), "--json", "--no-progress", env=cli_env(home, str(data)), check=True)
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(home), str(data)], cwd=PROJECT, text=True,
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n12 parallel thumbnails of a 9000x9000 PNG: peak memory grew {doc['grew_mb']:.0f} MB")
    assert doc["codes"] == [200] * 12
    assert doc["grew_mb"] < 700, f"peak memory grew {doc['grew_mb']:.0f} MB (one decode is 243 MB)"


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 180, 120)).save(buf, "PNG")
    return buf.getvalue()


def _bomb_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (the data is a 64 x 64 image's)."""
    data = bytearray(_png((64, 64)))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4:ihdr + 13])) & 0xFFFFFFFF)
    return bytes(data)


def _thumbnail_of_swapped(indexed_home: Path, tmp_path: Path, cli: Any, api: Any, swapped: bytes) -> Any:
    tile = tmp_path / "tiles" / "small.png"
    tile.parent.mkdir()
    tile.write_bytes(_png((64, 64)))
    assert cli("ingest", str(tile.parent))[0] == 0
    (image_id,), = catalog_rows(indexed_home, "SELECT id FROM images WHERE uri = ?", (str(tile.resolve()),))
    assert api(OPERATE).get(f"/v1/images/{image_id}/thumbnail?size=32").status_code == 200
    tile.write_bytes(swapped)
    return api(OPERATE).get(f"/v1/images/{image_id}/thumbnail?size=48")


def test_a_file_swapped_for_a_bomb_header_is_refused_not_a_500(indexed_home: Path, tmp_path: Path, cli: Any,
                                                               api: Any) -> None:
    r = _thumbnail_of_swapped(indexed_home, tmp_path, cli, api, _bomb_header(100_000, 100_000))
    assert r.status_code == 409 and "changed since it was ingested" in r.json()["error"], r.text


def test_a_file_whose_content_changed_is_not_served(indexed_home: Path, tmp_path: Path, cli: Any, api: Any) -> None:
    r = _thumbnail_of_swapped(indexed_home, tmp_path, cli, api, _png((80, 80)))
    assert r.status_code == 409, (r.status_code, r.headers.get("content-type"))
