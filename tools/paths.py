"""Allowed-roots checks: every file SkyScout reads must lie under a configured data root."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class PathNotAllowedError(PermissionError):
    """A path lies outside every configured data root (or a symlink inside one escapes it)."""


def resolve_roots(roots: Sequence[str | Path]) -> list[Path]:
    """Absolute, symlink-free forms of the configured roots (missing roots are kept; they match nothing)."""
    return [Path(os.path.expanduser(str(r))).resolve() for r in roots if str(r).strip()]


def check_allowed(path: str | Path, roots: Sequence[Path]) -> Path:
    """Return the real path of ``path`` if it lies under one of ``roots``; raise otherwise.

    The check runs on the fully resolved path, so ``..`` segments and symlinks that point outside every
    root are refused even when the path as written looks as if it were inside one.
    """
    given = Path(os.path.expanduser(str(path)))
    real = given.resolve()
    for root in roots:
        if real == root or real.is_relative_to(root):
            return real
    shown = ", ".join(str(r) for r in roots) or "(none)"
    if given.is_symlink() or real != given.absolute():
        raise PathNotAllowedError(
            f"{path} resolves to {real}, which is outside the allowed data roots ({shown}); "
            "symlinks and '..' may not leave a root. Add the directory to SKYSCOUT_DATA_ROOTS to allow it."
        )
    raise PathNotAllowedError(
        f"{path} is outside the allowed data roots ({shown}). "
        "Add its directory to SKYSCOUT_DATA_ROOTS (separated by ':') to allow it."
    )
