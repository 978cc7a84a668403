"""Checksums, downloads (from a file:// URL, never the network), and picking the checkpoint in a zip."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from tools.models import ChecksumError
from tools.models.download import (
    checksum_record_path,
    download_file,
    downloads_allowed,
    extract_checkpoint,
    find_checkpoint_member,
    verify_checksum,
)


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
