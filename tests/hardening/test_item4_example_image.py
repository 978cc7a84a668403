"""Item 4: a search by an example image that is not in the index reads its file only inside the data roots,
only if its bytes are still the ingested ones, and answers a clear error (never a 500) when it is unreadable."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.conftest import OPERATE, catalog_rows, copy_tiles


@pytest.fixture
def unindexed(indexed_home: Path, tmp_path: Path, cli: Any) -> tuple[str, Path]:
    """An image ingested after the index was built (so a search by it reads its file), and its path."""
    tile, = copy_tiles(tmp_path / "late", 1, start=5)
    assert cli("ingest", str(tmp_path / "late"))[0] == 0
    (image_id,), = catalog_rows(indexed_home, "SELECT id FROM images WHERE uri = ?", (str(tile.resolve()),))
    return image_id, tile


def _search(api: Any, image_id: str) -> Any:
    return api(OPERATE).post("/v1/search", json={"image_id": image_id, "k": 3})


def test_an_unindexed_example_image_is_searched_by_its_file(unindexed: tuple[str, Path], api: Any) -> None:
    r = _search(api, unindexed[0])
    assert r.status_code == 200 and len(r.json()["hits"]) == 3, r.text


def test_a_file_swapped_for_a_symlink_out_of_the_roots_is_not_read(unindexed: tuple[str, Path], tmp_path: Path,
                                                                     api: Any) -> None:
    image_id, tile = unindexed
    outside = tmp_path.parent / f"outside-{tmp_path.name}"
    outside.mkdir()
    secret = outside / "secret.jpg"
    shutil.copyfile(tile, secret)  # the same bytes, so only the roots check can refuse it
    tile.unlink()
    tile.symlink_to(secret)
    r = _search(api, image_id)
    assert r.status_code == 403, r.text
    assert "outside" in r.json()["error"] and str(outside) not in r.text and str(tmp_path) not in r.text


def test_a_symlink_to_an_unreadable_file_is_a_clear_error(unindexed: tuple[str, Path], tmp_path: Path,
                                                          api: Any) -> None:
    image_id, tile = unindexed
    (tmp_path / "a_folder").mkdir()
    tile.unlink()
    tile.symlink_to(tmp_path / "a_folder")  # inside the roots, but not a readable file
    r = _search(api, image_id)
    assert r.status_code == 404 and "can no longer be read" in r.json()["error"], r.text


def test_an_example_file_whose_content_changed_is_not_used(unindexed: tuple[str, Path], api: Any) -> None:
    image_id, tile = unindexed
    other, = copy_tiles(tile.parent / "other", 1, start=40)
    shutil.copyfile(other, tile)
    r = _search(api, image_id)
    assert r.status_code == 409 and "changed since it was ingested" in r.json()["error"], r.text
