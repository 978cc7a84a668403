"""Importing a model file: a ``model.pt`` trained elsewhere (or an open_clip checkpoint) becomes a model version.

The file is loaded first (``path:FILE``: the architecture is read from the checkpoint or inferred from its
weights), so a file that does not load is refused before anything is recorded. The same file imported twice
gives the same version. Promotion, when asked, goes through :func:`app.status.promote` and is recorded in
the decision log like a promotion by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.context import AppContext


def import_model(ctx: AppContext, checkpoint: str | Path, *, dataset: str | None = None, promote: bool = False,
                 note: str | None = None) -> dict[str, Any]:
    """Register ``checkpoint`` as a model version (or find the one it already is), trained on ``dataset`` when
    that is known (a dataset version id or ``latest``); with ``promote`` make it the active model. Returns the
    version id, whether it was new, its architecture and the active model."""
    from app.status import promote as promote_version
    from tools.datasets import resolve_dataset

    path = Path(checkpoint).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    known = [v for v in ctx.catalog.list_model_versions() if v["checkpoint"] == str(path)]
    if known:
        mv, arch, created = known[0]["id"], known[0]["arch"], False
    else:
        try:
            _, loaded = ctx.load_model(f"path:{path}")
        except Exception as exc:  # noqa: BLE001 - any loading failure means the same thing to the user
            raise ValueError(f"{path} is not a model file SkyScout can load: {exc}") from exc
        arch = loaded.arch
        base = str(loaded.meta.get("source") or arch)
        dataset_id = resolve_dataset(ctx.catalog, dataset)["id"] if dataset else None
        mv = ctx.catalog.add_model_version(arch=arch, base=base, checkpoint=str(path), dataset_id=dataset_id,
                                           params={"imported": str(path), **({"note": note} if note else {})})
        created = True
    active = ctx.catalog.get_alias("active_model")
    if promote and active != mv:
        active = promote_version(ctx, mv)["active"]
    return {"model_version": mv, "created": created, "arch": arch, "checkpoint": str(path), "active": active}


__all__ = ["import_model"]
