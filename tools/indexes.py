"""Which index answers searches: the ``active_index:<store>`` alias and the catalog record it names.

Light on purpose (the catalog only): asking which index is live loads no model and opens no store.
"""

from __future__ import annotations

from typing import Any

from tools.catalog import Catalog


def alias_name(store_kind: str) -> str:
    """The catalog alias naming the live index of a store backend."""
    return f"active_index:{store_kind}"


class NoIndexError(LookupError):
    """No complete index is active for a store yet."""


def active_index(catalog: Catalog, store_kind: str) -> dict[str, Any]:
    """The catalog record of the index searches use for ``store_kind`` (it names the model that built it)."""
    name = catalog.get_alias(alias_name(store_kind))
    record = catalog.get_index(name) if name else None
    if record is None or record["state"] != "complete":
        raise NoIndexError(
            f"no complete {store_kind} index is active yet; run `skyscout index` (after ingesting images)"
        )
    return record


__all__ = ["NoIndexError", "active_index", "alias_name"]
