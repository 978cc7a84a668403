"""Item 8, the smaller findings: one JSON error shape (413 of any body, 422), indexing a candidate activates
nothing, concurrent ingestions count each file once, a second chat on a busy thread gets 409, blank queries and
``k: true`` are refused, the API's description needs a token, no server paths in hits or chat errors, an
unknown device is one line, and the planner's reasons say each thing once."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.conftest import OPERATE, PROJECT, READ, SAMPLE, catalog_rows, cli_env, copy_tiles


def test_any_body_over_the_limit_is_413_with_a_json_error(api: Any) -> None:
    client = api(OPERATE)
    declared = client.post("/v1/search", content=b"{" + b" " * 10_000 + b"}",
                           headers={"content-type": "application/json"})
    chunked = client.post("/v1/search", content=iter([b"{", b" " * 5_000, b" " * 5_000, b"}"]),
                          headers={"content-type": "application/json"})
    for r in (declared, chunked):
        assert r.status_code == 413 and r.headers["content-type"] == "application/json", (r.status_code, r.text)
        assert r.json() == {"error": "request body larger than 4096 bytes"}


def test_invalid_requests_are_422_with_an_error_like_every_other_error(api: Any) -> None:
    client = api(OPERATE)
    for body in ({}, {"text": "   "}, {"text": "beach", "k": True}, {"text": "beach", "k": 0}):
        r = client.post("/v1/search", json=body)
        assert r.status_code == 422, (body, r.text)
        assert "error" in r.json() and "detail" not in r.json(), r.text


def test_the_api_description_needs_a_token(api: Any) -> None:
    for path in ("/openapi.json", "/docs"):
        assert api(None).get(path).status_code == 401, path
    assert api(READ).get("/openapi.json").json()["info"]["title"] == "SkyScout"  # read tokens may see it
    assert api(None).get("/healthz").status_code == 200


def test_hits_and_chat_errors_show_no_server_paths(indexed_home: Path, api: Any) -> None:
    client = api(OPERATE)
    hits = client.post("/v1/search", json={"text": "beach", "k": 3}).json()["hits"]
    assert hits and all(not h["uri"].startswith("/") for h in hits), [h["uri"] for h in hits]
    assert hits[0]["uri"].startswith("ucm_sample/images/")
    r = client.post("/v1/chat", json={"thread_id": "paths-1", "message": "ingest /etc/ssh"})
    shown = json.dumps(r.json())
    assert str(PROJECT) not in shown and str(indexed_home) not in shown, shown[:2000]
    status = json.dumps(client.get("/v1/status").json())
    assert str(indexed_home) not in status


def test_a_second_chat_on_a_busy_thread_gets_409(indexed_home: Path, tmp_path: Path, cli: Any, api: Any) -> None:
    copy_tiles(tmp_path / "new", 16)
    assert cli("ingest", str(tmp_path / "new"))[0] == 0
    client = api(OPERATE)
    first: list[Any] = []
    slow = threading.Thread(target=lambda: first.append(client.post(
        "/v1/chat", json={"thread_id": "busy-1", "message": "rebuild the search index"})))
    slow.start()
    deadline = time.time() + 120
    while not catalog_rows(indexed_home, "SELECT 1 FROM jobs WHERE kind = 'index' AND state = 'running'"):
        assert slow.is_alive() and time.time() < deadline, "the first chat never started indexing"
        time.sleep(0.05)
    second = client.post("/v1/chat", json={"thread_id": "busy-1", "message": "how many images do we have?"})
    slow.join()
    assert second.status_code == 409 and "is running another request" in second.json()["error"], second.text
    assert first[0].status_code == 200 and first[0].json()["status"] == "done"


def test_indexing_a_candidate_activates_nothing(indexed_home: Path, cli: Any) -> None:
    from tools.models import load_model, save_checkpoint

    weights = indexed_home / "models" / "runs" / "run-test" / "model.pt"
    loaded = load_model("skyscout-tiny", cache_dir=indexed_home / "cache", device="cpu")
    save_checkpoint(weights, loaded, arch=loaded.arch)
    conn = sqlite3.connect(indexed_home / "catalog.db")
    conn.execute("INSERT INTO model_versions (id, arch, base, checkpoint, params, status, created_at) "
                 "VALUES ('mv-cand', 'skyscout-tiny', 'skyscout-tiny', ?, '{}', 'candidate', 0)", (str(weights),))
    conn.commit()
    conn.close()
    before = catalog_rows(indexed_home, "SELECT target FROM aliases WHERE name = 'active_index:lancedb'")
    code, report = cli("index", "--model", "mv-cand", "--num-workers", "0")
    assert code == 0 and report["activated"] is False, report
    assert catalog_rows(indexed_home, "SELECT target FROM aliases WHERE name = 'active_index:lancedb'") == before
    status = cli("status")[1]
    assert status["active_model"] == "skyscout-tiny" and status["active_index"] == before[0][0]


def test_concurrent_ingestions_of_the_same_files_count_each_file_once(tmp_path: Path, home: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import tools.ingest
    from service.cli import main

    copy_tiles(tmp_path / "tiles", 12)
    both_examined = threading.Barrier(2, timeout=60)
    original = tools.ingest._examine
    waited: set[int] = set()

    def examine(*args: Any, **kwargs: Any) -> Any:  # both runs have read the catalog before either writes
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            both_examined.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(tools.ingest, "_examine", examine)
    codes: list[int] = []

    def ingest() -> None:
        codes.append(main(["ingest", str(tmp_path / "tiles"), "--workers", "1", "--json", "--no-progress"]))

    runs = [threading.Thread(target=ingest) for _ in range(2)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert codes == [0, 0]
    added = [json.loads(r[0])["added"] for r in catalog_rows(
        home, "SELECT result FROM jobs WHERE kind = 'ingest'", ()) if r[0]]
    images = catalog_rows(home, "SELECT COUNT(*) FROM images")[0][0]
    assert sum(added) == images == 12, (added, images)


def test_an_unknown_device_is_one_line(indexed_home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYSCOUT_DEVICE", "cuda:7")
    code, doc = cli("search", "beach")  # a traceback would raise here
    assert code == 2 and "cuda:7" in doc["error"] and "\n" not in doc["error"], doc


def test_the_reason_to_evaluate_a_candidate_names_its_dataset_once(indexed_home: Path, cli: Any) -> None:
    conn = sqlite3.connect(indexed_home / "catalog.db")
    conn.execute("INSERT INTO datasets (id, name, params, created_at) VALUES ('ds-test', 'test', '{}', 0)")
    conn.execute("INSERT INTO model_versions (id, arch, base, dataset_id, checkpoint, params, status, created_at) "
                 "VALUES ('mv-new', 'skyscout-tiny', 'skyscout-tiny', 'ds-test', '/x/model.pt', '{}', 'candidate', 0)")
    conn.commit()
    conn.close()
    code, doc = cli("improve", "--dry-run")
    reasons = [d["reason"] for d in doc["decisions"] if d["action"] == "evaluate"]
    assert code == 0 and reasons, doc
    assert "its dataset its dataset" not in reasons[0] and "mv-new" in reasons[0]


@pytest.mark.slow
def test_train_resume_takes_the_runs_own_options_and_a_finished_run_keeps_only_its_weights(
        indexed_home: Path, roots: str, cli: Any) -> None:
    assert cli("ingest", "--manifest", str(SAMPLE / "train.jsonl"))[0] == 0
    assert cli("dataset", "create")[0] == 0
    env = cli_env(indexed_home, roots)
    options = ["--batch-size", "8", "--max-steps", "6", "--checkpoint-every", "2", "--num-workers", "0", "--lr",
               "0.0003", "--epochs", "2"]
    from tests.hardening.conftest import spawn

    run = spawn("train", *options, "--json", "--no-progress", env=env)
    deadline = time.time() + 600
    while not catalog_rows(indexed_home, "SELECT 1 FROM jobs WHERE kind = 'train' AND done >= 2"):
        assert run.poll() is None and time.time() < deadline, run.communicate()[1][-2000:]
        time.sleep(0.1)
    run.kill()
    run.wait()
    code, result = cli("train", "--resume")  # no options: the interrupted run's own
    assert code == 0, result
    assert result["steps"] == 6 and result["config"]["batch_size"] == 8 and result["config"]["lr"] == 0.0003
    run_dir = Path(result["run_dir"])
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.pt", "train_log.jsonl"]
    shutil.rmtree(run_dir)
