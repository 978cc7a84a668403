"""Decisions a user can trust, seen from the user's side: CLI calls and what they printed or stored.

Real catalog, real LanceDB, the real ``skyscout-tiny`` model and the offline router; nothing is faked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.cli import main
from tests.unit.graph.support import write_tiles
from tools.catalog import Catalog
from tools.datasets import create_dataset, split_items

RunCli = Callable[..., tuple[int, Any]]


def ingest_tiles(tmp_path: Path, run_cli: RunCli, counts: dict[str, int] | None = None) -> Path:
    tiles = tmp_path / "tiles"
    write_tiles(tiles, counts or {"SeaLake": 6, "Forest": 6})
    code, doc = run_cli("ingest", str(tiles), "--labels-from-folders")
    assert code == 0 and doc["added"] == sum((counts or {"a": 12}).values())
    return tiles


def test_images_by_prefix_or_path_and_labels_without_case(tmp_path: Path, home: Path, run_cli: RunCli) -> None:
    tiles = ingest_tiles(tmp_path, run_cli)
    assert run_cli("index", "--model", "skyscout-tiny")[0] == 0
    code, found = run_cli("search", "lake", "--filter", "label=sealake", "-k", "3")
    assert code == 0 and [h["label"] for h in found["hits"]] == ["SeaLake"] * 3  # the user typed it lower case
    code, err = run_cli("search", "lake", "--filter", "label=sealakes")
    assert code == 2 and "no image is labelled 'sealakes'; did you mean SeaLake?" in err["error"]
    first = found["hits"][0]["image_id"]
    code, by_prefix = run_cli("search", "--image", first[:10], "-k", "2")
    assert code == 0 and first not in [h["image_id"] for h in by_prefix["hits"]]  # "more like this", not itself
    code, by_path = run_cli("search", "--image", str(tiles / "Forest" / "Forest_000.png"), "-k", "2")
    assert code == 0 and len(by_path["hits"]) == 2
    code, err = run_cli("feedback", found["query_id"], first[:3], "--relevant")
    assert code == 2 and "names no image" in err["error"]  # too short to be a prefix
    code, marked = run_cli("feedback", found["query_id"], first[:8], "--relevant")
    assert code == 0 and marked["feedback_id"] >= 1


def test_an_ambiguous_prefix_lists_the_candidates(tmp_path: Path) -> None:
    from app.images import AmbiguousImageError, resolve_image
    from tests.unit.graph.support import make_app
    from tools.catalog import ImageRecord

    app = make_app(tmp_path / "home", [tmp_path])
    app.catalog.add_images([ImageRecord(id=f"abcdef{i:058x}", uri=f"/x/{i}.png", width=8, height=8, bands=3,
                                        format="PNG", mode="RGB", source="s", status="ok") for i in range(3)])
    with pytest.raises(AmbiguousImageError, match="'abcdef' matches several images .*abcdef00000000"):
        resolve_image(app, "abcdef")
    assert resolve_image(app, "abcdef" + "0" * 57 + "2") == f"abcdef{2:058x}"
    with pytest.raises(LookupError, match="no image id starts with 'aaaaaa'"):
        resolve_image(app, "aaaaaa")


def test_template_captions_leave_human_captions_alone_and_folders_only_when_asked(
    tmp_path: Path, home: Path, run_cli: RunCli
) -> None:
    labelled = tmp_path / "labelled"
    write_tiles(labelled, {"beach": 3})
    batch = tmp_path / "new batch b"
    write_tiles(batch, {"x": 2}, seed=5)
    manifest = tmp_path / "m.jsonl"
    lines = [{"path": str(p), "label": "beach", "captions": ["a sandy beach next to the sea"]}
             for p in sorted((labelled / "beach").glob("*.png"))]
    manifest.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert run_cli("ingest", "--manifest", str(manifest))[0] == 0
    assert run_cli("ingest", str(batch))[0] == 0  # no labels: only the folder names say anything

    code, doc = run_cli("caption", "--captioner", "template")

    assert code == 0 and doc["captioned"] == 0  # human-captioned images are left alone; no folder captions
    catalog = Catalog(home / "catalog.db")
    assert catalog.caption_counts() == {"human": 3}
    code, doc = run_cli("caption", "--captioner", "template", "--from-folders")
    assert code == 0 and doc["captioned"] == 2
    folder_caption = catalog.query("SELECT text, model FROM captions WHERE source = 'template'")[0]
    assert "x" in folder_caption["text"].lower() and folder_caption["model"] == "template-folder-v1"
    code, doc = run_cli("caption", "--captioner", "template", "--also-captioned")
    assert code == 0 and doc["captioned"] == 3  # asked: the human-captioned ones get template captions too
    ds = create_dataset(catalog, val_frac=0.0, test_frac=0.0)
    items = {it.image_id: it.captions for it in split_items(catalog, ds["id"], "train")}
    beach = [c for i, c in items.items() if catalog.get_image(i).labels == ["beach"]]
    assert beach and all(c == ["a sandy beach next to the sea"] for c in beach)  # the best captions only


def test_why_answers_from_the_log_including_manual_actions(tmp_path: Path, home: Path, run_cli: RunCli,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    ingest_tiles(tmp_path, run_cli, {"beach": 8, "forest": 8, "river": 8})
    catalog = Catalog(home / "catalog.db")
    assert run_cli("caption", "--captioner", "template")[0] == 0
    create_dataset(catalog, val_frac=0.5, test_frac=0.0)
    code, evaluated = run_cli("eval")
    assert code == 0 and "confusion" in evaluated["zeroshot"] and "zeroshot_transductive" not in evaluated
    code, both = run_cli("eval", "--transductive")  # the same split classified as a collection, beside the plain
    assert code == 0 and both["zeroshot"]["top1"] == evaluated["zeroshot"]["top1"]
    transductive = both["zeroshot_transductive"]
    assert transductive["n"] == both["zeroshot"]["n"] and 0 <= transductive["top1"] <= 1
    code, confused = run_cli("ask", "which classes does the model confuse most?")
    assert code == 0 and "The active model skyscout-tiny, on ds-" in confused["results"][0]["summary"]
    assert "confuses most" in confused["results"][0]["summary"] and confused["results"][0]["data"]["confusions"]
    mv = catalog.add_model_version(arch="skyscout-tiny", base="skyscout-tiny", dataset_id=None, params={},
                                   checkpoint=str(tmp_path / "m.pt"))
    assert run_cli("promote", mv)[0] == 0

    code, why = run_cli("ask", "why did you promote that model?")

    assert code == 0
    answer = why["results"][0]["summary"]
    assert answer.startswith("#") and "promote (user): done by hand: `skyscout promote " + mv in answer


def test_a_failed_request_exits_non_zero_and_each_step_prints_once(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()

    code = main(["ask", f"ingest {tmp_path / 'nowhere'}"])

    out, err = capsys.readouterr()
    assert code == 1 and "(done)" in out  # the run finished; the request failed, so the exit code is 1
    assert (out + err).count("[data/ingest_images]") == 1 and "[data/ingest_images] failed" in out  # once
    assert err.count("-> s1 data/ingest_images") == 1  # announced once as it started


def test_policy_is_read_from_the_settings_file(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "skyscout.toml"
    settings.write_text("[policy]\nmin_negative_feedback = 5\nmin_eval_images = 100\n")
    monkeypatch.setenv("SKYSCOUT_SETTINGS_FILE", str(settings))
    capsys.readouterr()

    assert main(["policy", "--json"]) == 0

    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"]["min_negative_feedback"] == 5 and doc["policy"]["min_eval_images"] == 100
    assert doc["set_in_settings"] == ["min_eval_images", "min_negative_feedback"]
    assert doc["round_training"]["max_steps"] == 300
