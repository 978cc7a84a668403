"""Checksums, downloads (file:// URLs and HTTP servers on the loopback, never the network), zip members."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tools.models import ChecksumError, DownloadError
from tools.models.download import (
    HUB_STAGING_DIR,
    HubFile,
    checksum_record_path,
    download_file,
    downloads_allowed,
    extract_checkpoint,
    find_checkpoint_member,
    hub_file,
    verify_checksum,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Served:
    """What the local server holds: path -> bytes, plus what it should lie about and what it was asked."""

    files: dict[str, bytes] = field(default_factory=dict)
    #: path -> the ETag the server reports (default: the sha256 of the bytes, as the Hub does for LFS files)
    etags: dict[str, str] = field(default_factory=dict)
    #: paths whose GET announces the full length but stops halfway
    truncated: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[tuple[str, Served]]:
    """An HTTP server on 127.0.0.1 answering like the Hub's ``resolve`` endpoint (and like any file host)."""
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def _head(self) -> bytes | None:
            served.requests.append((self.command, self.path))
            body = served.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", '"' + served.etags.get(self.path, hashlib.sha256(body).hexdigest()) + '"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.end_headers()
            return body

        def do_HEAD(self) -> None:  # noqa: N802
            self._head()

        def do_GET(self) -> None:  # noqa: N802
            body = self._head()
            if body is not None:
                self.wfile.write(body[: len(body) // 2] if self.path in served.truncated else body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let huggingface_hub make requests (to the loopback server): the conftest sets HF_HUB_OFFLINE."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_downloads_allowed_follows_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("SKYSCOUT_OFFLINE", raising=False)
    assert downloads_allowed() is True
    assert downloads_allowed(False) is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert downloads_allowed() is False
    assert downloads_allowed(True) is True
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("SKYSCOUT_OFFLINE", "true")
    assert downloads_allowed() is False


def test_checksum_is_recorded_on_first_use_and_checked_after(tmp_path: Path) -> None:
    f = tmp_path / "weights.pt"
    f.write_bytes(b"abc" * 1000)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    assert verify_checksum(f) == digest
    record = json.loads(checksum_record_path(f).read_text())
    assert record["sha256"] == digest and record["size"] == 3000
    assert verify_checksum(f) == digest  # unchanged: trusted without re-hashing
    f.write_bytes(b"abd" * 1000)  # same size, new content, new mtime
    os.utime(f, ns=(record["mtime_ns"] + 10**9, record["mtime_ns"] + 10**9))
    with pytest.raises(ChecksumError, match="was recorded"):
        verify_checksum(f)


def test_known_hash_mismatch_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "weights.pt"
    f.write_bytes(b"hello")
    with pytest.raises(ChecksumError, match="known hash"):
        verify_checksum(f, "0" * 64)
    assert verify_checksum(f, hashlib.sha256(b"hello").hexdigest())


def test_download_file_from_a_file_url(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "model.bin"
    assert download_file(src.as_uri(), dest, expected_sha256=digest, progress=False) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert json.loads(checksum_record_path(dest).read_text())["sha256"] == digest
    assert not dest.with_name("model.bin.part").exists()
    with pytest.raises(ChecksumError):
        download_file(src.as_uri(), tmp_path / "cache" / "bad.bin", expected_sha256="f" * 64, progress=False)
    assert not (tmp_path / "cache" / "bad.bin").exists()


def test_find_checkpoint_member() -> None:
    names = ["SkyCLIP/", "SkyCLIP/epoch_2.pt", "SkyCLIP/epoch_20.pt", "SkyCLIP/epoch_3.pt", "SkyCLIP/out.log"]
    assert find_checkpoint_member(names) == "SkyCLIP/epoch_20.pt"
    assert find_checkpoint_member(names, preferred="SkyCLIP/epoch_3.pt") == "SkyCLIP/epoch_3.pt"
    assert find_checkpoint_member(["a/epoch_latest.pt", "a/notes.txt"]) == "a/epoch_latest.pt"
    assert find_checkpoint_member(["RemoteCLIP-ViT-B-32.pt", "README.md"]) == "RemoteCLIP-ViT-B-32.pt"
    with pytest.raises(FileNotFoundError, match="README.md"):
        find_checkpoint_member(["README.md", "a.pt", "b.pt"])


def test_extract_checkpoint_keeps_the_archive_layout(tmp_path: Path) -> None:
    archive = tmp_path / "Run.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Run/epoch_1.pt", b"one")
        zf.writestr("Run/epoch_20.pt", b"twenty")
    out = extract_checkpoint(archive, tmp_path / "cache")
    assert out == (tmp_path / "cache" / "Run" / "epoch_20.pt").resolve()
    assert out.read_bytes() == b"twenty"
    assert (
        json.loads(checksum_record_path(out).read_text())["sha256"] == hashlib.sha256(b"twenty").hexdigest()
    )
    assert extract_checkpoint(archive, tmp_path / "cache") == out  # reused


def test_extract_refuses_to_leave_the_target(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../epoch_1.pt", b"x")
    with pytest.raises(ValueError, match="refusing"):
        extract_checkpoint(archive, tmp_path / "cache")


def test_damaged_archive_is_reported_and_leaves_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "Run.zip"
    payload = b"checkpoint-bytes" * 1000
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("Run/epoch_20.pt", payload)
    data = bytearray(archive.read_bytes())
    at = data.index(payload) + 100
    data[at] ^= 0xFF  # flip one byte inside the stored member
    archive.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="damaged"):
        extract_checkpoint(archive, tmp_path / "cache")
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_hub_urls_are_recognised() -> None:
    assert hub_file("https://huggingface.co/chendelong/RemoteCLIP/resolve/main/RemoteCLIP-ViT-B-32.pt") == HubFile(
        "chendelong/RemoteCLIP", "main", "RemoteCLIP-ViT-B-32.pt", None
    )
    assert hub_file("http://127.0.0.1:9/org/repo/resolve/abc/sub/w.bin") == HubFile(
        "org/repo", "abc", "sub/w.bin", "http://127.0.0.1:9"
    )
    assert hub_file("https://opendatasharing.s3.us-west-2.amazonaws.com/SkyScript/ckpt/SkyCLIP.zip") is None


def test_download_from_a_hub_repository(server: tuple[str, Served], hub_online: None, tmp_path: Path) -> None:
    base, served = server
    payload = os.urandom(1 << 20)
    served.files["/org/RemoteCLIP/resolve/main/RemoteCLIP-ViT-B-32.pt"] = payload
    dest = tmp_path / "cache" / "RemoteCLIP-ViT-B-32.pt"

    url = f"{base}/org/RemoteCLIP/resolve/main/RemoteCLIP-ViT-B-32.pt"
    assert download_file(url, dest, progress=False) == dest

    assert dest.read_bytes() == payload
    record = json.loads(checksum_record_path(dest).read_text())
    assert record["sha256"] == hashlib.sha256(payload).hexdigest() and url in record["source"]
    assert not (tmp_path / "cache" / HUB_STAGING_DIR / dest.name).exists(), "the staged file was moved into place"
    assert ("GET", "/org/RemoteCLIP/resolve/main/RemoteCLIP-ViT-B-32.pt") in served.requests


def test_hub_download_is_checked_against_the_hubs_sha256(
    server: tuple[str, Served], hub_online: None, tmp_path: Path
) -> None:
    base, served = server
    path = "/org/repo/resolve/main/w.pt"
    served.files[path] = b"weights" * 1000
    served.etags[path] = "e" * 64  # an LFS sha256 that the bytes do not have
    dest = tmp_path / "w.pt"
    with pytest.raises(ChecksumError, match="e" * 64):
        download_file(base + path, dest, progress=False)
    assert not dest.exists() and not (tmp_path / HUB_STAGING_DIR / "w.pt").exists()
    with pytest.raises(ChecksumError, match="f" * 64):  # a known hash is checked too
        download_file(base + path, dest, expected_sha256="f" * 64, progress=False)


def test_hub_failures_are_download_errors(server: tuple[str, Served], hub_online: None, tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match="org/repo"):
        download_file(f"{base}/org/repo/resolve/main/missing.pt", tmp_path / "missing.pt", progress=False)
    assert not (tmp_path / "missing.pt").exists()


def test_plain_http_download_and_a_truncated_transfer(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    payload = os.urandom(300_000)
    served.files["/ckpt/Run.zip"] = payload
    served.files["/ckpt/Cut.zip"] = payload
    served.truncated.add("/ckpt/Cut.zip")

    dest = download_file(f"{base}/ckpt/Run.zip", tmp_path / "Run.zip", progress=False)
    assert dest.read_bytes() == payload
    assert json.loads(checksum_record_path(dest).read_text())["sha256"] == hashlib.sha256(payload).hexdigest()

    with pytest.raises(DownloadError, match=f"stopped at {len(payload) // 2} of {len(payload)} bytes"):
        download_file(f"{base}/ckpt/Cut.zip", tmp_path / "Cut.zip", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Run.zip", "Run.zip.sha256.json"]
    with pytest.raises(DownloadError, match="404"):
        download_file(f"{base}/ckpt/nope.zip", tmp_path / "nope.zip", progress=False)
