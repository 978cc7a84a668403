"""``skyscout chat``: a real agent runner over a real catalog, driven through its input stream."""

from __future__ import annotations

import io
from pathlib import Path

from service.commands.chat import chat_loop
from service.context import Services
from service.settings import Settings
from tools.ingest import ingest_manifest

PROJECT = Path(__file__).resolve().parents[2]


def test_chat_streams_steps_and_keeps_the_thread(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", data_roots=str(PROJECT / "data"))
    services = Services(settings)
    ingest_manifest(services.app.catalog, PROJECT / "data" / "ucm_sample" / "val.jsonl", allowed_roots=settings.roots,
                    progress=False)
    runner = services.runner()
    stdin = io.StringIO("how many images do we have?\n\n/thread\nwhy did you retrain?\n/quit\nnever read\n")
    out = io.StringIO()
    chat_loop(runner, "chat-test-1", stdin, out)
    text = out.getvalue()
    assert text.count("skyscout> ") == 2 and "never read" not in text
    assert "80" in text.split("skyscout> ")[1]
    assert "-> s1 planner/status" in text.split("skyscout> ")[0]  # the step was announced before the answer
    assert text.count("thread chat-test-1") == 2
    history = runner.graph.get_state(runner.config("chat-test-1")).values
    assert history["request"] == "why did you retrain?"
