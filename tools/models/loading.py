"""Turning a model spec into a ready model: build the open_clip architecture, fetch and load weights strictly.

``load_model("skyscout-tiny", cache_dir=...)`` builds the offline default (pretrained MiniLM text tower,
seeded random image tower). A preset name or ``openclip:ARCH/TAG`` finds its weight file in the cache
(downloading it when allowed), and ``path:FILE`` reads a local checkpoint: SkyScout's own format (which
names its architecture), an open_clip training checkpoint, a zip in SkyScript's layout, or a bare
state_dict with ``path:FILE#ARCH``. :func:`save_checkpoint` writes SkyScout's format.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tools.models.checkpoint import (
    SKYSCOUT_FORMAT,
    SKYSCOUT_FORMAT_VERSION,
    RawCheckpoint,
    load_state_dict_strict,
    read_checkpoint,
)
from tools.models.download import (
    OFFLINE_ENV_VARS,
    DownloadError,
    checksum_record_path,
    download_file,
    downloads_allowed,
    extract_checkpoint,
    verify_checksum,
)
from tools.models.errors import ModelNotAvailableError, UnknownModelError
from tools.models.registry import (
    ModelSpec,
    Preset,
    arch_config,
    openclip_tag_config,
    openclip_weight_candidates,
    parse_spec,
)
from tools.models.rotation import pool_rotations
from tools.models.tiny import (
    TINY_ARCH,
    init_text_projection_identity,
    raw_tiny_config,
    register_config,
    register_tiny_config,
    resolve_config,
    skyscout_options,
)

log = logging.getLogger(__name__)

#: sub-folders of the model cache
CONFIG_SUBDIR = "configs"
EXTRACTED_SUBDIR = "extracted"
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
_QUIET_MESSAGES = ("No pretrained weights loaded for model", "initialized partially")


@dataclass
class LoadedModel:
    """A model ready for encoding or training, with its transforms and tokenizer."""

    name: str  # the spec it was loaded from, e.g. "skyscout-tiny" or "path:/x.pt"
    arch: str  # open_clip architecture name
    model: torch.nn.Module  # open_clip CLIP / CustomTextCLIP, in eval mode
    preprocess_train: Callable[..., Any]  # PIL -> tensor (open_clip's train transform)
    preprocess_val: Callable[..., Any]  # PIL -> tensor
    tokenizer: Callable[..., torch.Tensor]  # list[str] -> LongTensor
    embed_dim: int
    image_size: int
    #: tokens per text (texts are padded/truncated to it)
    context_length: int = 77
    #: where the weights came from: a file path, "built" (skyscout-tiny fresh init) or "random"
    weights: str = "random"
    #: the checkpoint's top-level fields (epoch, name, extra, ...), empty for built models
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        """The device the model's parameters are on."""
        return next(self.model.parameters()).device


class _DropOpenClipNoise(logging.Filter):
    """Hide open_clip's 'no pretrained weights' warnings: we load the weights ourselves right after."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(m in message for m in _QUIET_MESSAGES)


@contextlib.contextmanager
def _quiet_model_build() -> Iterator[None]:
    import transformers

    root = logging.getLogger()
    noise = _DropOpenClipNoise()
    root.addFilter(noise)
    verbosity = transformers.logging.get_verbosity()
    progress_bars = transformers.utils.logging.is_progress_bar_enabled()
    # the MiniLM load report lists the unused BERT pooler, expected since the tower mean-pools
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if progress_bars:
            transformers.utils.logging.enable_progress_bar()
        transformers.logging.set_verbosity(verbosity)
        root.removeFilter(noise)


def _ensure_arch(arch: str, cache_dir: Path, checkpoint: RawCheckpoint | None = None) -> dict[str, Any]:
    """Make open_clip know ``arch``: register skyscout-tiny, or a custom config carried by a checkpoint.

    Returns the config's SkyScout-only options (e.g. rotation pooling), which open_clip does not see.
    """
    import open_clip

    if arch == TINY_ARCH:
        register_tiny_config(cache_dir / CONFIG_SUBDIR)
        return skyscout_options(raw_tiny_config())
    if arch in open_clip.list_models():
        return {}
    carried = checkpoint.meta.get("model_config") if checkpoint is not None else None
    if isinstance(carried, Mapping) and {"embed_dim", "vision_cfg", "text_cfg"} <= set(carried):
        register_config(arch, resolve_config(dict(carried)), cache_dir / CONFIG_SUBDIR)
        return skyscout_options(dict(carried))
    raise UnknownModelError(
        f"open_clip has no architecture {arch!r} and the checkpoint carries no model config for it. Use an "
        f"architecture from open_clip.list_models() (e.g. ViT-B-32, ViT-L-14-quickgelu) or {TINY_ARCH!r}."
    )


def _create(
    arch: str,
    *,
    cache_dir: Path,
    seed: int,
    pretrained_text: bool,
    force_quick_gelu: bool = False,
    preprocess: Mapping[str, Any] | None = None,
    checkpoint: RawCheckpoint | None = None,
) -> tuple[nn.Module, Callable[..., Any], Callable[..., Any]]:
    """Build ``arch`` on the CPU with a seeded init (the global RNG is left as it was)."""
    import open_clip

    options = _ensure_arch(arch, cache_dir, checkpoint)
    pp = dict(preprocess or {})
    with torch.random.fork_rng(devices=[]), _quiet_model_build():
        torch.manual_seed(seed)
        model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
            arch,
            pretrained=None,
            device="cpu",
            pretrained_text=pretrained_text,
            force_quick_gelu=force_quick_gelu,
            image_mean=pp.get("mean"),
            image_std=pp.get("std"),
            image_interpolation=pp.get("interpolation"),
            image_resize_mode=pp.get("resize_mode"),
        )
    if options.get("rotation_pooling"):
        pool_rotations(model.visual)
    return model, preprocess_train, preprocess_val


def _finish(
    *,
    name: str,
    arch: str,
    model: nn.Module,
    preprocess_train: Callable[..., Any],
    preprocess_val: Callable[..., Any],
    device: str | torch.device,
    weights: str,
    meta: dict[str, Any] | None = None,
) -> LoadedModel:
    import open_clip

    model = model.to(device).eval()
    cfg = open_clip.get_model_config(arch) or {}
    size = open_clip.get_model_preprocess_cfg(model).get(
        "size", cfg.get("vision_cfg", {}).get("image_size", 224)
    )
    image_size = int(size[0] if isinstance(size, list | tuple) else size)
    tokenizer = open_clip.get_tokenizer(arch)
    context_length = int(
        getattr(tokenizer, "context_length", None) or cfg.get("text_cfg", {}).get("context_length", 77)
    )
    return LoadedModel(
        name=name,
        arch=arch,
        model=model,
        preprocess_train=preprocess_train,
        preprocess_val=preprocess_val,
        tokenizer=tokenizer,
        embed_dim=int(cfg["embed_dim"]),
        image_size=image_size,
        context_length=context_length,
        weights=weights,
        meta=meta or {},
    )


def _offline_reason(allow_download: bool | None) -> str:
    if allow_download is False:
        return "allow_download=False"
    return (
        " and ".join(f"{var}={os.environ[var]}" for var in OFFLINE_ENV_VARS if os.environ.get(var))
        or "offline"
    )


def _missing(
    what: str,
    targets: list[tuple[Path, str]],
    *,
    alt: Path | None,
    cause: Exception | None,
    allow_download: bool | None,
) -> str:
    path, url = targets[0]
    why = (
        f"could not be downloaded ({cause})"
        if cause is not None
        else f"are not in the model cache and downloads are off ({_offline_reason(allow_download)})"
    )
    lines = [
        f"Weights for {what} {why}.",
        f"Place the file {path.name} at: {path}",
        f"(download it from {url} on a machine with internet access).",
    ]
    if alt is not None:
        lines.append(f"Alternatively unzip it into {path.parent} so that {alt} exists.")
    for other_path, other_url in targets[1:]:
        lines.append(f"Or place {other_path.name} (from {other_url}) at: {other_path}")
    lines.append("See docs/models.md for the list of presets and files.")
    return "\n".join(lines)


def _fetch(
    what: str,
    targets: list[tuple[Path, str]],
    *,
    sha256: str | None,
    allow_download: bool | None,
    progress: bool,
    alt: Path | None = None,
    hash_on_first_use: bool = True,
) -> Path:
    """Return the first present target (checksum verified), else download the targets in order.

    With ``hash_on_first_use=False`` a file placed by hand is hashed only when a known or recorded hash
    exists to compare with (zips: their members' CRCs are checked on extraction, and the extracted
    checkpoint's hash is recorded then).
    """
    for path, _url in targets:
        if path.is_file():
            if hash_on_first_use or sha256 or checksum_record_path(path).is_file():
                verify_checksum(path, sha256)
            return path
    if not downloads_allowed(allow_download):
        raise ModelNotAvailableError(
            _missing(what, targets, alt=alt, cause=None, allow_download=allow_download),
            expected_path=str(targets[0][0]),
            url=targets[0][1],
        )
    cause: Exception | None = None
    for path, url in targets:
        try:
            log.info("downloading %s to %s", url, path)
            return download_file(url, path, expected_sha256=sha256, progress=progress)
        except DownloadError as exc:
            cause = exc
    raise ModelNotAvailableError(
        _missing(what, targets, alt=alt, cause=cause, allow_download=allow_download),
        expected_path=str(targets[0][0]),
        url=targets[0][1],
    ) from cause


def resolve_preset_weights(
    preset: Preset, cache_dir: Path, *, allow_download: bool | None = None, progress: bool = True
) -> Path:
    """The checkpoint file of a preset in the cache (extracted when it ships as a zip), fetched if needed."""
    if preset.url is None or preset.filename is None:
        raise ValueError(f"preset {preset.name!r} has no weight file (it is built locally)")
    extracted = preset.extracted_path(cache_dir)
    if extracted is not None and extracted.is_file():
        verify_checksum(extracted)
        return extracted
    target = cache_dir / preset.filename
    path = _fetch(
        f"preset {preset.name!r}",
        [(target, preset.url)],
        sha256=preset.sha256,
        allow_download=allow_download,
        progress=progress,
        alt=extracted,
        hash_on_first_use=preset.weights != "zip",
    )
    if preset.weights == "zip":
        return extract_checkpoint(path, cache_dir, preferred=preset.archive_member)
    return path


def _extract_user_zip(path: Path, cache_dir: Path) -> Path:
    real = path.resolve()
    key = hashlib.sha1(str(real).encode()).hexdigest()[:8]
    return extract_checkpoint(real, cache_dir / EXTRACTED_SUBDIR / f"{real.stem}-{key}")


def _load_into(
    spec: ModelSpec,
    arch: str,
    raw: RawCheckpoint,
    *,
    cache_dir: Path,
    device: str | torch.device,
    seed: int,
    force_quick_gelu: bool = False,
    preprocess: Mapping[str, Any] | None = None,
) -> LoadedModel:
    model, pt, pv = _create(
        arch,
        cache_dir=cache_dir,
        seed=seed,
        pretrained_text=False,  # every tensor comes from the checkpoint
        force_quick_gelu=force_quick_gelu,
        preprocess=preprocess,
        checkpoint=raw,
    )
    load_state_dict_strict(model, raw.state_dict, source=str(raw.path), arch=arch)
    return _finish(
        name=spec.text,
        arch=arch,
        model=model,
        preprocess_train=pt,
        preprocess_val=pv,
        device=device,
        weights=str(raw.path),
        meta=raw.meta,
    )


def build_tiny(
    *, cache_dir: Path, device: str | torch.device = "cpu", seed: int = 0, name: str = TINY_ARCH
) -> LoadedModel:
    """A fresh ``skyscout-tiny``: pretrained MiniLM text tower (identity projection), seeded image tower."""
    model, pt, pv = _create(TINY_ARCH, cache_dir=cache_dir, seed=seed, pretrained_text=True)
    init_text_projection_identity(model)
    return _finish(
        name=name,
        arch=TINY_ARCH,
        model=model,
        preprocess_train=pt,
        preprocess_val=pv,
        device=device,
        weights="built",
    )


def load_model(
    spec: str,
    *,
    cache_dir: Path,
    device: str | torch.device = "cpu",
    seed: int = 0,
    arch: str | None = None,
    allow_download: bool | None = None,
    progress: bool = True,
) -> LoadedModel:
    """Load a model from a spec: a preset name, ``openclip:ARCH/TAG`` or ``path:FILE`` (``path:FILE#ARCH``).

    ``cache_dir`` holds downloaded weights (and the generated open_clip configs). ``seed`` fixes every
    random initialisation (skyscout-tiny's image tower; ``openclip:ARCH`` without a tag). ``arch`` names
    the architecture of a bare state_dict given with ``path:``. Downloads happen only when
    ``allow_download`` is true, or when it is None and neither SKYSCOUT_OFFLINE nor HF_HUB_OFFLINE is set;
    otherwise a missing file raises :class:`ModelNotAvailableError` naming the file and where to put it.
    A checkpoint that does not fit its architecture raises :class:`CheckpointMismatchError`.
    """
    parsed = parse_spec(spec, arch=arch)
    cache_dir = Path(cache_dir).expanduser()
    if parsed.kind == "preset":
        assert parsed.preset is not None
        preset = parsed.preset
        if preset.weights == "built":
            return build_tiny(cache_dir=cache_dir, device=device, seed=seed, name=parsed.text)
        path = resolve_preset_weights(preset, cache_dir, allow_download=allow_download, progress=progress)
        return _load_into(
            parsed, preset.arch, read_checkpoint(path), cache_dir=cache_dir, device=device, seed=seed
        )

    if parsed.kind == "openclip":
        assert parsed.arch is not None
        if parsed.tag is None:  # random init of a known architecture (tests, benchmarks)
            model, pt, pv = _create(parsed.arch, cache_dir=cache_dir, seed=seed, pretrained_text=False)
            return _finish(
                name=parsed.text,
                arch=parsed.arch,
                model=model,
                preprocess_train=pt,
                preprocess_val=pv,
                device=device,
                weights="random",
            )
        targets = openclip_weight_candidates(parsed.arch, parsed.tag, cache_dir)
        tag_cfg = openclip_tag_config(parsed.arch, parsed.tag)
        path = _fetch(
            f"open_clip {parsed.arch}/{parsed.tag}",
            targets,
            sha256=None,
            allow_download=allow_download,
            progress=progress,
        )
        quick_gelu = bool(tag_cfg.get("quick_gelu")) and not (arch_config(parsed.arch) or {}).get(
            "quick_gelu"
        )
        return _load_into(
            parsed,
            parsed.arch,
            read_checkpoint(path),
            cache_dir=cache_dir,
            device=device,
            seed=seed,
            force_quick_gelu=quick_gelu,
            preprocess={k: tag_cfg[k] for k in _PREPROCESS_KEYS if k in tag_cfg},
        )

    assert parsed.path is not None
    path = parsed.path
    if not path.is_file():
        raise ModelNotAvailableError(
            f"Checkpoint {path} (from spec {spec!r}) does not exist.", expected_path=str(path)
        )
    if path.suffix.lower() == ".zip":
        path = _extract_user_zip(path, cache_dir)
    raw = read_checkpoint(path)
    stored_arch = raw.meta.get("arch") if raw.is_skyscout else None
    chosen = parsed.arch or stored_arch
    if chosen is None:
        raise UnknownModelError(
            f"{path} is a checkpoint without an architecture name (fields: {sorted(raw.meta) or 'none'}). "
            f"Say which open_clip architecture it is: 'path:{parsed.path}#ViT-B-32' (or arch='ViT-B-32')."
        )
    if stored_arch is not None and parsed.arch is not None and parsed.arch != stored_arch:
        log.warning("%s says its arch is %r; loading it as %r as requested", path, stored_arch, parsed.arch)
    return _load_into(parsed, str(chosen), raw, cache_dir=cache_dir, device=device, seed=seed)


def _check_plain(value: Any, where: str) -> None:
    """Refuse values that ``torch.load(weights_only=True)`` could not read back."""
    # exact types: subclasses such as torch's TorchVersion (a str) do not unpickle with weights_only=True
    if value is None or type(value) in (str, int, float, bool) or isinstance(value, torch.Tensor):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if type(k) not in (str, int):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str keys")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoint metadata may hold only str, int, float, bool, "
        "None, tensors, and lists/dicts of them (so that it loads with weights_only=True)"
    )


def _unwrap(model: nn.Module) -> nn.Module:
    if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    orig = getattr(model, "_orig_mod", None)  # torch.compile wrapper
    return orig if isinstance(orig, nn.Module) else model


def save_checkpoint(
    path: Path,
    loaded: LoadedModel | nn.Module,
    *,
    arch: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write SkyScout's checkpoint format, reloadable with ``load_model("path:<path>")``.

    The file is a dict: ``format``, ``format_version``, ``arch``, ``model_config`` (the open_clip config,
    with skyscout-tiny's MiniLM folder left as its ``pkg:`` reference), ``embed_dim``, ``state_dict``
    (CPU tensors, no ``module.`` prefix), versions, ``saved_at``, ``source`` and ``extra`` (plain values
    only). ``arch`` defaults to ``loaded.arch``; it is required for a bare module. The write is atomic.
    """
    import open_clip

    if isinstance(loaded, LoadedModel):
        if arch is not None and arch != loaded.arch:
            raise ValueError(f"arch={arch!r} differs from the loaded model's arch {loaded.arch!r}")
        arch, module, source = loaded.arch, loaded.model, loaded.name
    else:
        if arch is None:
            raise ValueError("save_checkpoint needs arch=... when given a bare module")
        module, source = loaded, None
    module = _unwrap(module)
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    config = arch_config(arch)
    payload: dict[str, Any] = {
        "format": SKYSCOUT_FORMAT,
        "format_version": SKYSCOUT_FORMAT_VERSION,
        "arch": arch,
        "model_config": config,
        "embed_dim": config.get("embed_dim") if config else None,
        "state_dict": {k: v.detach().to("cpu") for k, v in module.state_dict().items()},
        "open_clip_version": str(open_clip.__version__),
        "torch_version": str(torch.__version__),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
        "extra": extra,
    }
    _check_plain({k: v for k, v in payload.items() if k != "state_dict"}, "checkpoint")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
