"""Property-based API checks: schemathesis generates requests from the app's OpenAPI schema.

The real ``schemathesis`` command runs against the live uvicorn server with every check enabled: no
request may cause a server error, and every response must match the documented status codes, content
types and schemas. The agent routes (``/v1/chat``, ``/v1/improve``, tag ``agents``) are left out: a
generated message could start hours of training. ``schemathesis.toml`` beside this file says which answers
count as accepting a schema-valid request (400 for rules beyond the schema, never 422).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.http.conftest import TOKEN, LiveServer


def test_api_conforms_to_its_schema(server: LiveServer, tmp_path: Path) -> None:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    proc = subprocess.run(
        [exe, "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
         "run", f"{server.url}/openapi.json", "-H", f"Authorization: Bearer {TOKEN}",
         "--exclude-tag", "agents", "--max-examples", "25", "--checks", "all", "--seed", "1",
         "--workers", "1", "--phases", "examples,coverage,fuzzing"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
