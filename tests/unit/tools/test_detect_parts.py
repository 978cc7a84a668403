"""The part check's pieces (tools.detect.parts): quadrant windows, their log-odds, and how they temper a chip."""

from __future__ import annotations

import numpy as np
import pytest

from tools.detect.parts import QUADRANTS, combine, embed_parts, part_logits, quadrant_uris
from tools.detect.scoring import score_chips
from tools.scenes.chips import chip_uri, parse_chip_uri


def test_quadrants_tile_the_chip_at_half_its_size_with_its_bands_and_stretch() -> None:
    uri = chip_uri("/data/s.tif", 128, 256, 256, 256, size=256, bands=(3, 2, 1), stretch="10:900,12:800,9:700")
    refs = [parse_chip_uri(u) for u in quadrant_uris(uri)]
    assert [(r.x, r.y) for r in refs] == [(128, 256), (256, 256), (128, 384), (256, 384)]
    assert {(r.w, r.h, r.size, r.bands, r.stretch, r.path) for r in refs} == {
        (128, 128, 128, (3, 2, 1), "10:900,12:800,9:700", "/data/s.tif")}
    covered = np.zeros((512, 512), dtype=int)
    for r in refs:
        covered[r.y:r.y + r.h, r.x:r.x + r.w] += 1
    assert covered[256:512, 128:384].min() == 1 == covered.max()  # every pixel of the chip, once


def test_part_logits_are_the_chip_log_odds_of_each_quadrant() -> None:
    rng = np.random.default_rng(0)
    parts = rng.normal(size=(5, 4, 8)).astype(np.float32)
    parts /= np.linalg.norm(parts, axis=-1, keepdims=True)
    q, bg = parts[0, 0], parts[1:3, 1]
    got = part_logits(parts, q, bg, temperature=30.0)
    want = score_chips(parts.reshape(20, 8), q, bg, temperature=30.0).logits.reshape(5, 4)
    assert got.shape == (5, 4) and np.allclose(got, want, atol=1e-4)


def test_a_chip_is_pulled_down_by_its_weakest_quadrant_only() -> None:
    own = np.array([4.0, 4.0, -1.0])
    parts = np.array([[4.0, 4.0, 4.0, 4.0], [4.0, 4.0, -6.0, -6.0], [-1.0, 3.0, 3.0, 3.0]])
    assert combine(own, parts, weight=1.0).tolist() == [4.0, -1.0, -1.0]
    assert np.allclose(combine(own, parts, weight=0.5), [4.0, 2.0 / 3.0, -1.0])
    # a chip full of the thing now outranks one that only half holds it, even at the same own score
    assert np.argsort(-combine(own, parts))[0] == 0


def test_embed_parts_asks_for_every_quadrant_in_order_and_reports_progress() -> None:
    uris = [chip_uri("/s.tif", 256 * i, 0, 256, 256, size=256, bands=(1, 2, 3), stretch="none") for i in range(3)]
    asked: list[str] = []
    seen: list[int] = []

    def embed(batch: list[str]) -> np.ndarray:
        asked.extend(batch)
        return np.array([[parse_chip_uri(u).x, parse_chip_uri(u).y] for u in batch], dtype=np.float32)

    out = embed_parts(uris, embed, batch=5, progress=seen.append)
    assert out.shape == (3, len(QUADRANTS), 2)
    assert asked == [q for u in uris for q in quadrant_uris(u)]
    assert out[2, 3].tolist() == [512 + 128, 128]
    assert seen[-1] == 3 and seen == sorted(seen)


def test_a_plain_file_is_not_a_chip() -> None:
    from tools.scenes.chips import ChipError

    with pytest.raises(ChipError, match="not a chip URI"):
        quadrant_uris("/data/tile.jpg")
