"""The agent commands (ask, improve, decisions) with the real offline router (MiniLM, loaded once).

The commands are registered on a parser exactly as ``service/cli.py`` registers every command module.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from service.commands import agent
from tests.unit.graph.support import write_tiles

INTENTS = {"ingest", "caption", "train", "evaluate", "index", "search", "status", "improve", "explain",
           "unknown"}


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="skyscout")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true")
    common.add_argument("--no-progress", action="store_true")
    agent.register(parser.add_subparsers(dest="command", required=True), common)
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


def json_out(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert cli(*argv) == 0
    return json.loads(capsys.readouterr().out)


def test_dry_run_prints_the_interpretation_and_the_agent_plan(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json_out(capsys, "ask", "--dry-run", "--json",
                   "ingest /data/ucm/val.jsonl, train a model and find beaches")

    assert doc["intent"] == "ingest"
    assert doc["args"] == {"path": "/data/ucm/val.jsonl", "manifest": True}
    assert [s["intent"] for s in doc["plan"]] == ["ingest", "train", "search"]
    assert doc["plan"][2]["args"]["query"] == "beaches"
    assert [(s["agent"], s["action"]) for s in doc["steps"]] == [
        ("data", "ingest_images"), ("data", "create_dataset_version"), ("training", "train_candidate"),
        ("training", "evaluate_model"), ("planner", "promote"), ("embedding", "build_index"),
        ("query", "search_images")]
    assert doc["steps"][2]["args"] == {"model": "active", "dataset": "$dataset"}
    assert doc["steps"][3]["depends_on"] == doc["steps"][2]["id"]


def test_dry_run_reads_one_request_a_line_from_stdin(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = ["caption the new tiles with blip", "what is the status", "", "find vineyards, top 5",
             "bake me a cake"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    capsys.readouterr()

    assert cli("ask", "--dry-run", "--json", "-") == 0

    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["intent"] for d in docs] == ["caption", "status", "search", "unknown"]
    assert docs[0]["args"] == {"captioner": "blip"} and docs[2]["args"]["k"] == 5
    assert all(set(d) >= {"intent", "args", "plan"} and d["intent"] in INTENTS for d in docs)


def test_ask_runs_a_request_on_a_thread_and_logs_decisions(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_tiles(tmp_path / "tiles", {"beach": 4, "forest": 4})

    done = json_out(capsys, "ask", "--json", "--thread", "chat-1", f"ingest {tmp_path / 'tiles'}")

    assert done["status"] == "done" and done["thread_id"] == "chat-1"
    assert done["results"][0]["data"]["added"] == 8
    status = json_out(capsys, "ask", "--json", "--thread", "chat-1", "what is the status?")
    assert status["results"][0]["action"] == "status" and "8 images" in status["answer"]
    log = json_out(capsys, "decisions", "--json", "--limit", "5")
    assert [d["action"] for d in log] == ["ingest"] and log[0]["reason"].startswith("requested:")
    assert cli("decisions") == 0 and "ingest" in capsys.readouterr().out


def test_improve_on_an_empty_catalog_decides_nothing(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proposals = json_out(capsys, "improve", "--dry-run", "--json")
    assert [d["action"] for d in proposals["decisions"]] == ["nothing"] and proposals["dry_run"]

    done = json_out(capsys, "improve", "--once", "--json")

    assert done["status"] == "done" and [d["action"] for d in done["decisions"]] == ["nothing"]
    assert "nothing to do" in done["decisions"][0]["reason"]
