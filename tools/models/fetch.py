"""Finding a model's weight files in the cache, fetching them when allowed, or saying where to put them."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from tools.models.download import (
    OFFLINE_ENV_VARS,
    DownloadError,
    checksum_record_path,
    download_file,
    downloads_allowed,
    extract_checkpoint,
    verify_checksum,
)
from tools.models.errors import ModelNotAvailableError
from tools.models.registry import Preset

log = logging.getLogger(__name__)

#: sub-folder of the model cache where zips given with ``path:`` are extracted
EXTRACTED_SUBDIR = "extracted"


def _offline_reason(allow_download: bool | None) -> str:
    if allow_download is False:
        return "allow_download=False"
    return (
        " and ".join(f"{var}={os.environ[var]}" for var in OFFLINE_ENV_VARS if os.environ.get(var))
        or "offline"
    )


def _missing(
    what: str,
    targets: list[tuple[Path, str]],
    *,
    alt: Path | None,
    cause: Exception | None,
    allow_download: bool | None,
) -> str:
    path, url = targets[0]
    why = (
        f"could not be downloaded ({cause})"
        if cause is not None
        else f"are not in the model cache and downloads are off ({_offline_reason(allow_download)})"
    )
    lines = [
        f"Weights for {what} {why}.",
        f"Place the file {path.name} at: {path}",
        f"(download it from {url} on a machine with internet access).",
    ]
    if alt is not None:
        lines.append(f"Alternatively unzip it into {path.parent} so that {alt} exists.")
    for other_path, other_url in targets[1:]:
        lines.append(f"Or place {other_path.name} (from {other_url}) at: {other_path}")
    lines.append("See docs/models.md for the list of presets and files.")
    return "\n".join(lines)


def fetch_weights(
    what: str,
    targets: list[tuple[Path, str]],
    *,
    sha256: str | None,
    allow_download: bool | None,
    progress: bool,
    alt: Path | None = None,
    hash_on_first_use: bool = True,
) -> Path:
    """Return the first present target (checksum verified), else download the targets in order.

    With ``hash_on_first_use=False`` a file placed by hand is hashed only when a known or recorded hash
    exists to compare with (zips: their members' CRCs are checked on extraction, and the extracted
    checkpoint's hash is recorded then).
    """
    for path, _url in targets:
        if path.is_file():
            if hash_on_first_use or sha256 or checksum_record_path(path).is_file():
                verify_checksum(path, sha256)
            return path
    if not downloads_allowed(allow_download):
        raise ModelNotAvailableError(
            _missing(what, targets, alt=alt, cause=None, allow_download=allow_download),
            expected_path=str(targets[0][0]),
            url=targets[0][1],
        )
    cause: Exception | None = None
    for path, url in targets:
        try:
            log.info("downloading %s to %s", url, path)
            return download_file(url, path, expected_sha256=sha256, progress=progress)
        except DownloadError as exc:
            cause = exc
    raise ModelNotAvailableError(
        _missing(what, targets, alt=alt, cause=cause, allow_download=allow_download),
        expected_path=str(targets[0][0]),
        url=targets[0][1],
    ) from cause


def resolve_preset_weights(
    preset: Preset, cache_dir: Path, *, allow_download: bool | None = None, progress: bool = True
) -> Path:
    """The checkpoint file of a preset in the cache (extracted when it ships as a zip), fetched if needed."""
    if preset.url is None or preset.filename is None:
        raise ValueError(f"preset {preset.name!r} has no weight file (it is built locally)")
    extracted = preset.extracted_path(cache_dir)
    if extracted is not None and extracted.is_file():
        verify_checksum(extracted)
        return extracted
    target = cache_dir / preset.filename
    path = fetch_weights(
        f"preset {preset.name!r}",
        [(target, preset.url)],
        sha256=preset.sha256,
        allow_download=allow_download,
        progress=progress,
        alt=extracted,
        hash_on_first_use=preset.weights != "zip",
    )
    if preset.weights == "zip":
        return extract_checkpoint(path, cache_dir, preferred=preset.archive_member)
    return path


def extract_user_zip(path: Path, cache_dir: Path) -> Path:
    real = path.resolve()
    key = hashlib.sha1(str(real).encode()).hexdigest()[:8]
    return extract_checkpoint(real, cache_dir / EXTRACTED_SUBDIR / f"{real.stem}-{key}")
