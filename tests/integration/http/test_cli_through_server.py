"""`skyscout search` goes through a running server of the same home instead of loading the model again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import main
from service.commands import remote
from service.settings import Settings
from tests.integration.http.conftest import TOKEN, LiveServer


def _cli_env(monkeypatch: pytest.MonkeyPatch, server: LiveServer) -> None:
    monkeypatch.setenv("SKYSCOUT_HOME", str(server.settings.home))
    monkeypatch.setenv("SKYSCOUT_DATA_ROOTS", server.settings.data_roots)
    monkeypatch.setenv("SKYSCOUT_API_TOKENS", f"operate:{TOKEN}")


def test_search_is_served_by_the_running_server(server: LiveServer, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _cli_env(monkeypatch, server)
    monkeypatch.setattr(remote, "DEFAULT_URL", server.url)  # as if it listened on the default port
    capsys.readouterr()

    assert main(["search", "harbor", "-k", "3", "--json"]) == 0

    doc = json.loads(capsys.readouterr().out)
    assert doc["served_by"] == server.url and len(doc["hits"]) == 3


def test_a_server_of_another_home_is_not_used(server: LiveServer, tmp_path: Path) -> None:
    other = Settings(home=tmp_path / "other", data_roots=str(tmp_path))
    remote_default = remote.DEFAULT_URL
    try:
        remote.DEFAULT_URL = server.url
        assert remote.find_server(other) is None  # answers, but serves another SkyScout home
        assert remote.find_server(server.settings) is not None
    finally:
        remote.DEFAULT_URL = remote_default
    with pytest.raises(ConnectionError, match="does not answer"):
        remote.find_server(Settings(home=tmp_path / "x", server_url="http://127.0.0.1:9"))
