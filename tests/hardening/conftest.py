"""Fixtures of the hardening tests (issue 11): a home with the bundled sample indexed, HTTP clients, the CLI.

The tests drive SkyScout through its stable ways in (the ``skyscout`` CLI in-process or as a subprocess,
the HTTP API), so that each one also runs against the code before the fixes and fails there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.homes import indexed_sample_home

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT / "data" / "ucm_sample"
SHARED = PROJECT.parent / "shared" / "data"
READ, OPERATE = "read-token-0123456789", "operate-token-0123456789"


def cli_env(home: Path, roots: str, **extra: str) -> dict[str, str]:
    # the caller's SKYSCOUT_ settings are dropped, except the suite's base model (tests/conftest.py)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYSCOUT_") or k == "SKYSCOUT_BASE_MODEL"}
    return {**env, "SKYSCOUT_HOME": str(home), "SKYSCOUT_DATA_ROOTS": roots, "HF_HUB_OFFLINE": "1", **extra}


def skyscout(*args: str, env: dict[str, str], timeout: float = 600, check: bool = False
             ) -> subprocess.CompletedProcess[str]:
    """``skyscout ARGS`` in a subprocess (the same interpreter), with ``env``."""
    proc = subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, cwd=PROJECT, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"skyscout {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return proc


def spawn(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=env, cwd=PROJECT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the sample's 80 validation tiles ingested and indexed by skyscout-tiny (built once)."""
    return indexed_sample_home(tmp_path_factory.mktemp("sample") / "home")


@pytest.fixture
def roots(tmp_path: Path) -> str:
    """The data roots of a test: its own tmp folder, the project's data, the shared data."""
    return f"{tmp_path}:{PROJECT / 'data'}:{SHARED}"


@pytest.fixture
def indexed_home(sample_home: Path, tmp_path: Path, roots: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of :func:`sample_home`, set as SKYSCOUT_HOME (and the data roots) for the test."""
    home = tmp_path / "home"
    shutil.copytree(sample_home, home)
    monkeypatch.setenv("SKYSCOUT_HOME", str(home))
    monkeypatch.setenv("SKYSCOUT_DATA_ROOTS", roots)
    monkeypatch.delenv("SKYSCOUT_SETTINGS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def create_app(settings: Any) -> Any:
    try:
        from service.api import create_app as make
    except ImportError:  # before the service/api package
        from service.app import create_app as make  # type: ignore[no-redef]
    return make(settings, warm=False)


@pytest.fixture
def api(indexed_home: Path, roots: str) -> Iterator[Callable[..., Any]]:
    """``api(token)``: a TestClient of the HTTP API over the indexed home (tokens: a read and an operate one)."""
    from fastapi.testclient import TestClient

    from service.settings import Settings

    # the operate token is a bare one (operate by default), which the API took before scopes too
    settings = Settings(home=indexed_home, data_roots=roots, api_tokens=f"read:{READ},{OPERATE}",
                        max_body_bytes=4096)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        def with_token(token: str | None = OPERATE) -> Any:
            client.headers.clear()
            if token:
                client.headers["Authorization"] = f"Bearer {token}"
            return client

        yield with_token


@pytest.fixture
def cli(indexed_home: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, Any]]:
    """Run ``skyscout ARGS... --json`` in-process; (exit code, parsed JSON or the raw output)."""
    from service.cli import main

    def run(*args: str) -> tuple[int, Any]:
        capsys.readouterr()
        code = main([*args, "--json", "--no-progress"])
        out = capsys.readouterr().out
        try:
            return code, json.loads(out) if out.strip() else None
        except json.JSONDecodeError:
            return code, out

    return run


def catalog_rows(home: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query on the catalog, read with plain sqlite3 (no SkyScout code involved)."""
    import sqlite3

    conn = sqlite3.connect(home / "catalog.db")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def copy_tiles(dest: Path, n: int, *, start: int = 0) -> list[Path]:
    """``n`` sample tiles of the train split (not in :func:`sample_home`) copied into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    train = [json.loads(line)["image"] for line in (SAMPLE / "train.jsonl").read_text().splitlines() if line]
    tiles = [SAMPLE / t for t in sorted(train)][start:start + n]
    out = []
    for i, tile in enumerate(tiles):
        target = dest / f"{tile.parent.name}_{i:03d}.jpg"
        shutil.copyfile(tile, target)
        out.append(target)
    return out
