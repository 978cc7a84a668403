"""Fetching weight files into the model cache: downloads with a progress bar, checksums, zip extraction.

Every file lands in a cache directory chosen by the caller. Hugging Face Hub files are fetched with
``huggingface_hub.hf_hub_download`` (staged in ``<dir>/.hub-download/``), other URLs with
``torch.hub.download_url_to_file`` (staged as ``<file>.part``); a file is moved to its place only when
complete and verified, so an interrupted download never looks finished. The sha256 of each weight file is
recorded beside it (``<file>.sha256.json``) after the first download or first use, and checked against a
known hash when the registry has one; later loads re-hash only when the file's size or mtime changed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

#: environment variables that switch downloads off when set to a true value
OFFLINE_ENV_VARS = ("SKYSCOUT_OFFLINE", "HF_HUB_OFFLINE")
_CHUNK = 1 << 20
_TRUE = {"1", "true", "yes", "on"}
_EPOCH_RE = re.compile(r"(?:^|/)epoch_(\d+)\.pt$")
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_USER_AGENT = "skyscout-model-download"
#: ``https://HOST/ORG/REPO/resolve/REVISION/FILE``: a file of a Hugging Face Hub repository
_HUB_URL_RE = re.compile(
    r"^(?P<endpoint>https?://[^/]+)/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>[^?#]+)$"
)
_HUB_DEFAULT_ENDPOINT = "https://huggingface.co"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
#: where Hub downloads are staged (and resumed) inside the destination folder
HUB_STAGING_DIR = ".hub-download"


class ChecksumError(RuntimeError):
    """A weight file's sha256 differs from the known or recorded one (a corrupt or substituted file)."""


class DownloadError(RuntimeError):
    """A download failed (network, HTTP status, interrupted transfer)."""


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """Whether weights may be fetched: ``allow_download`` if given, else unless an offline variable is set."""
    if allow_download is not None:
        return allow_download
    return not any(os.environ.get(var, "").strip().lower() in _TRUE for var in OFFLINE_ENV_VARS)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_record_path(path: Path) -> Path:
    """Where the recorded sha256 of ``path`` is kept."""
    return path.with_name(path.name + ".sha256.json")


@dataclass(frozen=True)
class ChecksumRecord:
    """The recorded sha256 of a weight file, with the size and mtime it had when hashed."""

    sha256: str
    size: int
    mtime_ns: int
    source: str


def _read_record(path: Path) -> ChecksumRecord | None:
    record_path = checksum_record_path(path)
    try:
        data = json.loads(record_path.read_text(encoding="utf-8"))
        return ChecksumRecord(
            str(data["sha256"]), int(data["size"]), int(data["mtime_ns"]), str(data["source"])
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable checksum record %s (%s)", record_path, exc)
        return None


def record_checksum(path: Path, sha256: str, *, source: str) -> ChecksumRecord:
    """Write ``<file>.sha256.json`` for ``path`` (hash, size, mtime, where the file came from)."""
    st = path.stat()
    record = ChecksumRecord(sha256, st.st_size, st.st_mtime_ns, source)
    checksum_record_path(path).write_text(json.dumps(record.__dict__, indent=2) + "\n", encoding="utf-8")
    return record


def verify_checksum(path: Path, expected_sha256: str | None = None, *, source: str = "first use") -> str:
    """Check ``path`` against the known hash and the recorded one; record it on first use. Return the hash.

    Raises :class:`ChecksumError` naming both hashes and what to do when they differ.
    """
    record = _read_record(path)
    st = path.stat()
    if record is not None and record.size == st.st_size and record.mtime_ns == st.st_mtime_ns:
        actual = record.sha256  # unchanged since it was hashed
    else:
        log.info("computing sha256 of %s (%.1f MB)", path, st.st_size / 1e6)
        actual = sha256_file(path)
    if expected_sha256 and actual.lower() != expected_sha256.lower():
        raise ChecksumError(
            f"{path} has sha256 {actual}, but the known hash of this file is {expected_sha256}. The file is "
            f"corrupt or is not the published one: delete it and download it again."
        )
    if record is not None and actual != record.sha256:
        raise ChecksumError(
            f"{path} has sha256 {actual}, but {record.sha256} was recorded at {record.source} in "
            f"{checksum_record_path(path)}. The file changed since: if you replaced it on purpose, delete "
            "that record; otherwise delete the file and download it again."
        )
    if record is None or record.size != st.st_size or record.mtime_ns != st.st_mtime_ns:
        record_checksum(path, actual, source=source)
    return actual


@dataclass(frozen=True)
class HubFile:
    """A file of a Hugging Face Hub repository, as a ``.../ORG/REPO/resolve/REVISION/FILE`` URL names it."""

    repo_id: str
    revision: str
    filename: str
    #: the Hub's address; None for huggingface.co, so that ``HF_ENDPOINT`` (a mirror) still applies
    endpoint: str | None


def hub_file(url: str) -> HubFile | None:
    """The Hub file a ``resolve`` URL points to (huggingface.co or any Hub-compatible endpoint), else None."""
    m = _HUB_URL_RE.match(url)
    if m is None:
        return None
    endpoint = m["endpoint"]
    return HubFile(
        repo_id=m["repo"],
        revision=m["revision"],
        filename=m["filename"],
        endpoint=None if endpoint == _HUB_DEFAULT_ENDPOINT else endpoint,
    )


class _QuietTqdm(tqdm):
    """A progress bar that never shows (for ``progress=False``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def _from_hub(hub: HubFile, dest: Path, *, progress: bool, timeout: float) -> tuple[Path, str | None]:
    """Download a Hub file into ``<dest dir>/.hub-download/`` with huggingface_hub; returns it and its sha256.

    The sha256 is the Hub's ETag of an LFS file (None for small files kept in git, whose ETag is a git hash).
    huggingface_hub resumes interrupted transfers from that folder and checks the size; the caller checks
    the hash and moves the file into place.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    staging = dest.parent / HUB_STAGING_DIR
    try:
        url = hf_hub_url(hub.repo_id, hub.filename, revision=hub.revision, endpoint=hub.endpoint)
        etag = (get_hf_file_metadata(url, timeout=timeout, endpoint=hub.endpoint).etag or "").strip('"').lower()
        path = hf_hub_download(
            hub.repo_id,
            hub.filename,
            revision=hub.revision,
            local_dir=staging,
            endpoint=hub.endpoint,
            etag_timeout=timeout,
            tqdm_class=None if progress else _QuietTqdm,
        )
    except Exception as exc:  # any failure of the Hub client: HTTP status, connection, offline mode, no such file
        raise DownloadError(f"could not download {hub.filename} from the Hub repository {hub.repo_id}: {exc}") from exc
    return Path(str(path)), (etag if _SHA256_RE.fullmatch(etag) else None)


def _remote_size(url: str, timeout: float) -> int | None:
    """The size a server announces for ``url`` (None if it does not say); fails fast when it is unreachable."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"could not download {url}: {exc}") from exc
    return int(length) if length else None


def _from_url(url: str, dest: Path, *, expected_sha256: str | None, progress: bool, timeout: float) -> Path:
    """Download a plain URL to ``<dest>.part`` with ``torch.hub.download_url_to_file``; returns that file."""
    from torch.hub import download_url_to_file

    part = dest.with_name(dest.name + ".part")
    size = _remote_size(url, timeout)
    try:
        download_url_to_file(
            url, str(part), hash_prefix=expected_sha256.lower() if expected_sha256 else None, progress=progress
        )
    except RuntimeError as exc:
        if "invalid hash value" not in str(exc):
            raise DownloadError(f"could not download {url}: {exc}") from exc
        # torch's hash check; it has removed the bytes already
        raise ChecksumError(f"{url} downloaded with the wrong sha256 ({exc}); nothing was kept.") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise DownloadError(f"could not download {url}: {exc}") from exc
    if size is not None and part.stat().st_size != size:
        got = part.stat().st_size
        part.unlink(missing_ok=True)
        raise DownloadError(f"download of {url} stopped at {got} of {size} bytes")
    return part


def download_file(
    url: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, verify and record its sha256, return ``dest``.

    Hugging Face Hub files (``.../resolve/REVISION/FILE`` URLs) go through ``huggingface_hub.hf_hub_download``
    and are checked against the Hub's sha256 (the ETag of LFS files) as well; other URLs go through
    ``torch.hub.download_url_to_file``. Either way ``dest`` only appears once the transfer is complete and
    the hash (when known) matches. ``timeout`` bounds connecting and the first response, not the transfer.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    hub = hub_file(url)
    if hub is not None:
        fetched, hub_sha256 = _from_hub(hub, dest, progress=progress, timeout=timeout)
        known = [h.lower() for h in (expected_sha256, hub_sha256) if h]
    else:
        fetched = _from_url(url, dest, expected_sha256=expected_sha256, progress=progress, timeout=timeout)
        known = [expected_sha256.lower()] if expected_sha256 else []
    actual = sha256_file(fetched)
    if any(actual != h for h in known):
        fetched.unlink(missing_ok=True)
        raise ChecksumError(f"{url} downloaded with sha256 {actual}, expected {known[0]}; nothing was kept.")
    fetched.replace(dest)
    record_checksum(
        dest, actual, source=f"download of {url} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
    )
    return dest


def find_checkpoint_member(names: list[str], preferred: str | None = None) -> str:
    """Choose the checkpoint inside a zip: ``preferred`` if present, else the highest ``epoch_N.pt``.

    Falls back to ``epoch_latest.pt`` and then to the only weight file in the archive; raises
    ``FileNotFoundError`` listing the members when none of these exists.
    """
    files = [n for n in names if not n.endswith("/") and not n.startswith("__MACOSX/")]
    if preferred is not None and preferred in files:
        return preferred
    epochs = [(int(m.group(1)), n) for n in files if (m := _EPOCH_RE.search(n))]
    if epochs:
        return max(epochs)[1]
    latest = [n for n in files if n.endswith("epoch_latest.pt")]
    if len(latest) == 1:
        return latest[0]
    weights = [n for n in files if n.endswith(_WEIGHT_SUFFIXES)]
    if len(weights) == 1:
        return weights[0]
    shown = ", ".join(files[:20]) + (" ..." if len(files) > 20 else "")
    raise FileNotFoundError(
        f"no checkpoint (epoch_N.pt, or a single .pt/.pth/.bin/.safetensors file) found in the archive; "
        f"it holds: {shown or '(nothing)'}"
    )


def _copy_hashing(src: IO[bytes], dst: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := src.read(_CHUNK):
        dst.write(chunk)
        digest.update(chunk)
    return digest.hexdigest()


def extract_checkpoint(archive: Path, dest_dir: Path, *, preferred: str | None = None) -> Path:
    """Extract the checkpoint member of a zip (SkyScript layout: ``NAME/epoch_20.pt``) under ``dest_dir``.

    The member keeps its path inside the archive, as ``unzip -d dest_dir`` would place it. An existing
    extracted file of the right size is reused. Its sha256 is recorded while it is written.
    """
    with zipfile.ZipFile(archive) as zf:
        member = find_checkpoint_member(zf.namelist(), preferred)
        info = zf.getinfo(member)
        target = (dest_dir / member).resolve()
        if not target.is_relative_to(dest_dir.resolve()):
            raise ValueError(f"refusing to extract {member!r} from {archive}: it would leave {dest_dir}")
        if target.is_file() and target.stat().st_size == info.file_size:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        log.info("extracting %s from %s", member, archive)
        try:
            with zf.open(info) as src, part.open("wb") as dst:
                actual = _copy_hashing(src, dst)
        except zipfile.BadZipFile as exc:  # a CRC mismatch: the archive is damaged
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"{archive} is damaged ({exc} in {member}): delete it and download it again."
            ) from exc
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(target)
    record_checksum(target, actual, source=f"extracted from {archive}")
    return target
