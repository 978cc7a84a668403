"""Template and tags captioners, and the resumable captioning job."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.captioning.base import CaptionInput
from tools.captioning.factory import create_captioner
from tools.captioning.rules import TagsCaptioner, TemplateCaptioner
from tools.captioning.run import caption_images
from tools.captioning.text import humanize_label
from tools.catalog import Catalog, ImageRecord


def test_humanize_label() -> None:
    assert humanize_label("AnnualCrop") == "annual crop land"
    assert humanize_label("parkinglot") == "a parking lot"
    assert humanize_label("Highway", "Highway or Road") == "highway or road"
    assert humanize_label("solar_farm") == "solar farm"


def test_template_captions_are_varied_and_stable() -> None:
    cap = TemplateCaptioner(per_image=3)
    batch = [CaptionInput(image_id=f"{i:064x}", uri="", label="River") for i in range(20)]
    first = cap.caption(batch)
    assert first == cap.caption(batch)
    assert all(len(set(c)) == 3 and all("river" in t.lower() for t in c) for c in first)
    assert len({c[0] for c in first}) >= 4, "every image got the same sentence"
    assert cap.caption([CaptionInput(image_id="x", uri="")]) == [[]]
    folder = cap.caption([CaptionInput(image_id="x", uri="", folder="vineyard")])[0]
    assert all("vineyard" in t.lower() for t in folder)


def test_tags_captions_read_osm_style_tags() -> None:
    out = TagsCaptioner().caption([CaptionInput(
        image_id="a", uri="", tags={"landuse": "vineyard", "waterway": "river", "building": "yes"})])[0]
    assert out and all("vineyard, river and building" in t for t in out)


def test_unknown_captioner_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="template, tags, blip, blip2"):
        create_captioner("gpt")


class _Crashing(TemplateCaptioner):
    """The real template captioner, made to fail on its second batch (a crash mid-job)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def caption(self, batch: list[CaptionInput]) -> list[list[str]]:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("power cut")
        return super().caption(batch)


def test_caption_job_resumes_after_a_crash_without_duplicates(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.add_images([ImageRecord(id=f"{i:064x}", uri=f"/x/{i}.jpg", width=1, height=1, bands=3, format="JPEG",
                                mode="RGB", source="s", status="ok", labels=["forest"]) for i in range(25)])
    with pytest.raises(RuntimeError, match="power cut"):
        caption_images(cat, _Crashing(), batch_size=10, progress=False)
    assert len(cat.images_without_caption("template")) == 15
    failed = cat.list_jobs(kind="caption")[0]
    assert failed.state == "failed" and "power cut" in (failed.error or "")
    report = caption_images(cat, TemplateCaptioner(), batch_size=10, progress=False)
    assert report.images == 15 and report.captioned == 15
    assert cat.images_without_caption("template") == []
    assert cat.caption_counts() == {"template": 25 * 3}
    again = caption_images(cat, TemplateCaptioner(), progress=False)
    assert again.images == 0
