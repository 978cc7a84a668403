"""Presets, spec parsing, list_presets and the offline error messages (no model is built here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.models import (
    PRESETS,
    ModelNotAvailableError,
    UnknownModelError,
    list_presets,
    load_model,
    parse_spec,
)
from tools.models.registry import SKYSCRIPT_CKPT_URL, openclip_weight_candidates


def test_required_presets_resolve_to_the_published_architectures() -> None:
    assert PRESETS["skyscout-tiny"].arch == "skyscout-tiny"
    assert PRESETS["skyclip-vit-b32"].arch == "ViT-B-32"
    assert PRESETS["skyclip-vit-l14"].arch == "ViT-L-14-quickgelu"
    assert PRESETS["remoteclip-vit-b32"].arch == "ViT-B-32"
    assert PRESETS["remoteclip-vit-l14"].arch == "ViT-L-14"
    b32 = PRESETS["skyclip-vit-b32"]
    assert b32.url == f"{SKYSCRIPT_CKPT_URL}/SkyCLIP_ViT_B32_top50pct.zip"
    assert b32.archive_member == "SkyCLIP_ViT_B32_top50pct/epoch_20.pt"
    assert PRESETS["remoteclip-vit-l14"].url == (
        "https://huggingface.co/chendelong/RemoteCLIP/resolve/main/RemoteCLIP-ViT-L-14.pt"
    )


def test_parse_spec_forms() -> None:
    preset = parse_spec("skyclip-vit-b32")
    assert preset.kind == "preset" and preset.arch == "ViT-B-32"
    oc = parse_spec("openclip:ViT-B-32/laion2b_s34b_b79k")
    assert (oc.kind, oc.arch, oc.tag) == ("openclip", "ViT-B-32", "laion2b_s34b_b79k")
    assert parse_spec("openclip:ViT-B-32").tag is None
    p = parse_spec("path:/x/y/model.pt")
    assert (p.kind, p.path, p.arch) == ("path", Path("/x/y/model.pt"), None)
    pa = parse_spec("path:/x/y/model.pt#ViT-L-14-quickgelu")
    assert (pa.path, pa.arch) == (Path("/x/y/model.pt"), "ViT-L-14-quickgelu")
    assert parse_spec("path:/x/y/model.pt", arch="ViT-B-32").arch == "ViT-B-32"


def test_unknown_preset_lists_the_valid_names() -> None:
    with pytest.raises(UnknownModelError) as info:
        parse_spec("skyclip-vit-h14")
    message = str(info.value)
    for name in PRESETS:
        assert name in message
    assert "openclip:" in message and "path:" in message


def test_catalog_ids_and_conflicting_arch_are_rejected() -> None:
    with pytest.raises(UnknownModelError, match="catalog"):
        parse_spec("mv-1234")
    with pytest.raises(UnknownModelError, match="catalog"):
        parse_spec("active")
    with pytest.raises(UnknownModelError, match="also given"):
        parse_spec("path:/x.pt#ViT-B-32", arch="ViT-L-14")
    with pytest.raises(UnknownModelError):
        parse_spec("   ")


def test_list_presets_reports_dims_and_availability(tmp_path: Path) -> None:
    rows = {r["name"]: r for r in list_presets(tmp_path)}
    assert set(rows) == set(PRESETS)
    assert rows["skyscout-tiny"]["weights_available"] is True
    assert rows["skyscout-tiny"]["embed_dim"] == 384 and rows["skyscout-tiny"]["image_size"] == 64
    assert rows["skyclip-vit-b32"]["embed_dim"] == 512 and rows["skyclip-vit-b32"]["image_size"] == 224
    assert rows["skyclip-vit-l14"]["embed_dim"] == 768
    assert rows["skyclip-vit-b32"]["weights_available"] is False
    assert rows["skyclip-vit-b32"]["weights_path"] == str(tmp_path / "SkyCLIP_ViT_B32_top50pct.zip")
    for row in rows.values():
        assert {"name", "arch", "embed_dim", "weights_available", "source", "url", "description"} <= set(row)
    # an extracted checkpoint counts as available, as does the zip itself
    extracted = tmp_path / "SkyCLIP_ViT_B32_top50pct" / "epoch_20.pt"
    extracted.parent.mkdir()
    extracted.write_bytes(b"x")
    (tmp_path / "RemoteCLIP-ViT-B-32.pt").write_bytes(b"x")
    rows = {r["name"]: r for r in list_presets(tmp_path)}
    assert rows["skyclip-vit-b32"]["weights_available"] is True
    assert rows["remoteclip-vit-b32"]["weights_available"] is True
    assert rows["remoteclip-vit-l14"]["weights_available"] is False


def test_offline_preset_error_names_the_file_and_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError) as info:
        load_model("skyclip-vit-b32", cache_dir=tmp_path, allow_download=False)
    message = str(info.value)
    assert (
        f"Place the file SkyCLIP_ViT_B32_top50pct.zip at: {tmp_path / 'SkyCLIP_ViT_B32_top50pct.zip'}"
        in message
    )
    assert (
        "https://opendatasharing.s3.us-west-2.amazonaws.com/SkyScript/ckpt/SkyCLIP_ViT_B32_top50pct.zip"
        in message
    )
    assert str(tmp_path / "SkyCLIP_ViT_B32_top50pct" / "epoch_20.pt") in message
    assert "allow_download=False" in message
    assert info.value.expected_path == str(tmp_path / "SkyCLIP_ViT_B32_top50pct.zip")
    assert not any(tmp_path.iterdir()), "nothing may be written when the weights are missing"


def test_offline_environment_variable_stops_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("SKYSCOUT_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError) as info:
        load_model("remoteclip-vit-l14", cache_dir=tmp_path)  # allow_download=None: the environment decides
    message = str(info.value)
    assert f"Place the file RemoteCLIP-ViT-L-14.pt at: {tmp_path / 'RemoteCLIP-ViT-L-14.pt'}" in message
    assert "SKYSCOUT_OFFLINE=1" in message
    assert "huggingface.co/chendelong/RemoteCLIP/resolve/main/RemoteCLIP-ViT-L-14.pt" in message


def test_offline_openclip_tag_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError) as info:
        load_model("openclip:ViT-B-32/laion2b_s34b_b79k", cache_dir=tmp_path, allow_download=False)
    expected = tmp_path / "openclip" / "ViT-B-32" / "laion2b_s34b_b79k" / "open_clip_model.safetensors"
    assert str(expected) in str(info.value)
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in str(info.value)


def test_openclip_candidates_and_unknown_tags(tmp_path: Path) -> None:
    candidates = openclip_weight_candidates("ViT-B-32", "laion2b_s34b_b79k", tmp_path)
    assert [p.name for p, _ in candidates] == ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    assert candidates[0][1] == (
        "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/main/open_clip_model.safetensors"
    )
    with pytest.raises(UnknownModelError, match="laion2b_s34b_b79k"):
        openclip_weight_candidates("ViT-B-32", "no-such-tag", tmp_path)
    with pytest.raises(UnknownModelError, match="no architecture"):
        openclip_weight_candidates("ViT-Q-99", "x", tmp_path)


def test_missing_path_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_model(f"path:{tmp_path / 'nope.pt'}", cache_dir=tmp_path)
