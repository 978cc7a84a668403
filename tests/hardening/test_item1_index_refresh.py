"""Item 1: refreshing the active model's index (new images) keeps search answering; a killed refresh leaves
the last complete state searchable. Under load: 16 clients over real HTTP while 600 images are indexed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hardening.conftest import OPERATE, PROJECT, SHARED, catalog_rows, cli_env, copy_tiles, skyscout, spawn
from tests.support.live import free_port


def _index_job_running(home: Path) -> bool:
    return bool(catalog_rows(home, "SELECT 1 FROM jobs WHERE kind = 'index' AND state = 'running'"))


def test_refreshing_the_active_index_keeps_search_answering(indexed_home: Path, tmp_path: Path, roots: str,
                                                             api: Any, cli: Any) -> None:
    from service.cli import main

    copy_tiles(tmp_path / "new", 16)
    assert cli("ingest", str(tmp_path / "new"))[0] == 0
    images = catalog_rows(indexed_home, "SELECT COUNT(*) FROM images WHERE status = 'ok'")[0][0]
    client = api(OPERATE)
    assert client.post("/v1/search", json={"text": "beach", "k": 5}).status_code == 200
    outcome: list[int] = []
    refresh = threading.Thread(target=lambda: outcome.append(main(["index", "--batch-size", "2", "--num-workers",
                                                                   "0", "--json", "--no-progress"])))
    refresh.start()
    codes: list[int] = []
    during = 0
    while refresh.is_alive():
        running = _index_job_running(indexed_home)
        codes.append(client.post("/v1/search", json={"text": "harbor", "k": 5}).status_code)
        during += running
    assert outcome == [0]
    assert during >= 3, f"only {during} searches ran while the refresh ran"
    assert set(codes) == {200}, f"{codes.count(409)} of {len(codes)} searches failed during the refresh"
    assert catalog_rows(indexed_home, "SELECT count, state FROM indexes")[0] == (images, "complete")
    assert images > 80


@pytest.mark.slow
def test_a_killed_refresh_leaves_the_last_complete_index_searchable(indexed_home: Path, tmp_path: Path, roots: str,
                                                                      api: Any, cli: Any) -> None:
    copy_tiles(tmp_path / "new", 16)
    env = cli_env(indexed_home, roots)
    assert cli("ingest", str(tmp_path / "new"))[0] == 0
    images = catalog_rows(indexed_home, "SELECT COUNT(*) FROM images WHERE status = 'ok'")[0][0]
    refresh = spawn("index", "--batch-size", "2", "--num-workers", "0", "--json", "--no-progress", env=env)
    deadline = time.time() + 300
    while not catalog_rows(indexed_home, "SELECT 1 FROM jobs WHERE kind = 'index' AND state = 'running' "
                                         "AND done > 84"):
        assert refresh.poll() is None and time.time() < deadline, "the refresh ended before it could be killed"
        time.sleep(0.05)
    refresh.send_signal(signal.SIGKILL)
    refresh.wait()

    r = api(OPERATE).post("/v1/search", json={"text": "harbor", "k": 5})
    assert r.status_code == 200, r.text
    assert len(r.json()["hits"]) == 5
    # the next refresh finishes what the killed one left
    done = json.loads(skyscout("index", "--json", "--no-progress", "--num-workers", "0", env=env, check=True).stdout)
    assert done["count"] == images and done["skipped_existing"] > 84


@pytest.mark.slow
def test_16_clients_search_while_600_images_are_indexed(indexed_home: Path, tmp_path: Path, roots: str) -> None:
    """Real uvicorn, 16 client threads searching back to back while `skyscout index` adds 600 EuroSAT tiles to
    the active model's index: every request answers 200."""
    if not (SHARED / "eurosat" / "val.jsonl").is_file():
        pytest.skip(f"real data not found at {SHARED}")
    rows = [json.loads(line) for line in (SHARED / "eurosat" / "val.jsonl").read_text().splitlines()[:600]]
    manifest = tmp_path / "eurosat600.jsonl"
    manifest.write_text("".join(json.dumps({**r, "image": str(SHARED / "eurosat" / r["image"])}) + "\n" for r in rows))
    env = cli_env(indexed_home, roots, SKYSCOUT_API_TOKENS=OPERATE)  # a bare token: operate
    skyscout("ingest", "--manifest", str(manifest), "--json", "--no-progress", env=env, check=True)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")  # not a pipe: nobody reads it, and a full pipe would stall the server
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env,
                              cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.time() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.3)
        refresh = spawn("index", "--num-workers", "0", "--json", "--no-progress", env=env)
        results: list[int] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {OPERATE}"}) as c:
                while refresh.poll() is None:
                    try:
                        code = c.post("/v1/search", json={"text": f"forest {n}", "k": 10}).status_code
                    except httpx.HTTPError:
                        code = -1
                    with lock:
                        results.append(code)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out, err = refresh.communicate()
        elapsed = time.time() - started
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    assert refresh.returncode == 0, err[-2000:]
    report = json.loads(out)
    failed = [c for c in results if c != 200]
    print(f"\n{len(results)} searches by 16 clients in {elapsed:.0f} s while {report['embedded']} images were "
          f"indexed ({report['count']} in the index): {len(failed)} failed")
    assert report["embedded"] == 600 and report["count"] == 680
    assert len(results) >= 50 and failed == [], f"{len(failed)} of {len(results)} requests failed: {set(failed)}"
    assert os.path.exists(indexed_home / "catalog.db")
