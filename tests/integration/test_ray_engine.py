"""The Ray engine on a local two-CPU Ray cluster and 500 real UC Merced tiles: the same vectors and captions
as the local path, exactly one vector / caption set per image, and jobs that finish when a worker is killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.ray_jobs import KillerThread, slow_template
from tools.captioning.factory import create_captioner
from tools.captioning.run import caption_images
from tools.catalog import Catalog
from tools.distributed.ray_caption import caption_images_ray
from tools.distributed.ray_common import RayOptions
from tools.distributed.ray_index import passthrough, ray_reader
from tools.embedding import build_index
from tools.ingest import ingest_manifest
from tools.models import load_model
from tools.paths import resolve_roots
from tools.stores.factory import index_registry

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]
ROOT = Path(__file__).resolve().parents[2]
N_TILES = 500


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    # Ray workers import the project (and tests.support) like the driver does.
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), before or ""]).rstrip(os.pathsep)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning",
             object_store_memory=512 * 2**20)
    yield ray
    ray.shutdown()
    if before is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = before


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """500 distinct UC Merced train tiles (by content: one tile of the set is a byte copy of another)."""
    src = ROOT.parent / "shared" / "data" / "ucm_captions"
    if not (src / "train.jsonl").is_file():
        pytest.skip(f"real data not found at {src}")
    rows, seen = [], set()
    for line in (src / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        path = src / row["image"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            rows.append({**row, "image": str(path)})
        if len(rows) == N_TILES:
            break
    out = tmp_path_factory.mktemp("manifest") / "tiles.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def new_catalog(path: Path, manifest: Path) -> Catalog:
    catalog = Catalog(path / "catalog.db")
    ingest_manifest(catalog, manifest, allowed_roots=resolve_roots([manifest.parent, ROOT.parent / "shared"]),
                    progress=False)
    assert catalog.count_images() == N_TILES
    return catalog


def test_ray_index_matches_local_and_survives_a_killed_actor(ray_cluster: Any, manifest: Path,
                                                              tmp_path: Path) -> None:
    tiny = load_model("skyscout-tiny", cache_dir=tmp_path / "cache")
    catalog = new_catalog(tmp_path, manifest)
    common: dict[str, Any] = dict(model_key="skyscout-tiny", model=tiny.model, transform=tiny.preprocess_val,
                                  dim=tiny.embed_dim, batch_size=25, progress=False, activate=False)
    local = build_index(catalog, index_registry("lancedb", path=tmp_path / "local"), num_workers=0, **common)

    pids: set[int] = set()
    written = threading.Event()
    killer = KillerThread("MapBatches(Embedder)", written.is_set)
    killer.start()

    def make_reader(failed: list[str]) -> Any:
        return ray_reader(tiny.model, tiny.preprocess_val, dim=tiny.embed_dim, device="cpu",
                          options=RayOptions(batch_size=25), min_size=64, failed=failed, pids=pids)

    registry = index_registry("lancedb", path=tmp_path / "ray")
    report = build_index(catalog, registry, make_reader=make_reader, embedder=passthrough,
                         on_progress=lambda done, total: written.set(), **common)
    killer.join(timeout=5)
    assert killer.killed is not None, "no embedder actor was found to kill"
    assert pids - {killer.killed}, "no batch came from a restarted actor"
    assert report.embedded == report.count == N_TILES and report.failed == []
    a = index_registry("lancedb", path=tmp_path / "local").open(local.index, tiny.embed_dim, create=False)
    b = registry.open(report.index, tiny.embed_dim, create=False)
    ids = sorted(catalog.image_ids())
    assert b.ids() == set(ids) and b.count() == N_TILES
    va, vb = a.get(ids), b.get(ids)
    cosines = np.array([float(np.dot(va[i][0], vb[i][0])) for i in ids])
    print(f"\nray vs local: cosine min {cosines.min():.7f} over {len(ids)} images; killed actor {killer.killed}, "
          f"actors that embedded {sorted(pids)}")
    assert cosines.min() >= 0.9999


def test_ray_caption_template_survives_a_killed_actor(ray_cluster: Any, manifest: Path, tmp_path: Path) -> None:
    local_catalog = new_catalog(tmp_path / "local", manifest)
    # the tiles come with human captions: also_captioned asks for template captions all the same
    caption_images(local_catalog, create_captioner("template"), batch_size=25, progress=False, also_captioned=True)
    catalog = new_catalog(tmp_path / "ray", manifest)
    pids: set[int] = set()
    killer = KillerThread("MapBatches(CaptionActor)",
                          lambda: 0 < len(catalog.images_without_caption("template")) < N_TILES)
    killer.start()
    report = caption_images_ray(catalog, create_captioner("template"), slow_template,
                                options=RayOptions(batch_size=25), progress=False, pids=pids, also_captioned=True)
    killer.join(timeout=5)
    assert killer.killed is not None and pids - {killer.killed}
    assert catalog.images_without_caption("template") == []
    ids = sorted(catalog.image_ids())
    assert catalog.captions_for(ids, ["template"]) == local_catalog.captions_for(ids, ["template"])
    assert report.captions_added == 3 * N_TILES
    again = caption_images_ray(catalog, create_captioner("template"), slow_template,
                               options=RayOptions(batch_size=25), progress=False, also_captioned=True)
    assert again.images == 0 and again.captions_added == 0  # a rerun finds nothing left to do


def test_ray_caption_tiny_blip_matches_local(ray_cluster: Any, manifest: Path, tmp_path: Path) -> None:
    from functools import partial

    from tools.captioning.tiny_models import build_tiny_blip

    blip_dir = build_tiny_blip(tmp_path / "tiny-blip")
    make = partial(create_captioner, "blip", model=str(blip_dir), device="cpu", batch_size=25)
    local_catalog = new_catalog(tmp_path / "local", manifest)
    local = caption_images(local_catalog, make(), batch_size=25, progress=False, also_captioned=True)
    catalog = new_catalog(tmp_path / "ray", manifest)
    report = caption_images_ray(catalog, make(), make, options=RayOptions(batch_size=25), progress=False,
                                also_captioned=True)
    ids = sorted(catalog.image_ids())
    ours, theirs = catalog.captions_for(ids, ["blip"]), local_catalog.captions_for(ids, ["blip"])
    same = sum(ours.get(i) == theirs.get(i) for i in ids)
    print(f"\ntiny BLIP: {same} of {len(ids)} images captioned alike by the Ray and local paths")
    assert report.images == local.images == N_TILES and report.failed == []
    assert report.captions_added == local.captions_added
    assert same == len(ids)


def test_ray_index_with_device_preprocessing_matches_the_host_path(ray_cluster: Any, manifest: Path,
                                                                   tmp_path: Path) -> None:
    """uint8 pixels from the decoding tasks, resized and normalised on the actors' device (here the CPU)."""
    small = tmp_path / "small.jsonl"
    small.write_text("".join(manifest.read_text().splitlines(keepends=True)[:60]))
    tiny = load_model("skyscout-tiny", cache_dir=tmp_path / "cache")
    catalog = Catalog(tmp_path / "catalog.db")
    ingest_manifest(catalog, small, allowed_roots=resolve_roots([small.parent, ROOT.parent / "shared"]),
                    progress=False)
    common: dict[str, Any] = dict(model_key="skyscout-tiny", model=tiny.model, transform=tiny.preprocess_val,
                                  dim=tiny.embed_dim, batch_size=20, progress=False, activate=False)
    local = build_index(catalog, index_registry("lancedb", path=tmp_path / "local"), num_workers=0, **common)

    def make_reader(failed: list[str]) -> Any:
        return ray_reader(tiny.model, tiny.preprocess_val, dim=tiny.embed_dim, device="cpu",
                          options=RayOptions(batch_size=20), min_size=64, failed=failed, device_preprocess=True)

    registry = index_registry("lancedb", path=tmp_path / "ray")
    report = build_index(catalog, registry, make_reader=make_reader, embedder=passthrough, **common)
    assert report.count == local.count == 60
    a = index_registry("lancedb", path=tmp_path / "local").open(local.index, tiny.embed_dim, create=False)
    ids = sorted(catalog.image_ids())
    va, vb = a.get(ids), registry.open(report.index, tiny.embed_dim, create=False).get(ids)
    assert min(float(np.dot(va[i][0], vb[i][0])) for i in ids) >= 0.9999
