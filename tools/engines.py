"""Which stages an indexing run uses: the local host path, the local device path, or a Ray Data job.

:func:`index_stages` returns what :func:`tools.embedding.build_index` takes (``make_reader``, ``embedder``);
``(None, None)`` keeps its default host path (DataLoader workers run the PIL transform), unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from tools.distributed.ray_common import RayOptions

Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = ("local", "ray")
#: host: the model's PIL transform in the decoding workers; device: uint8 pixels, resized and normalised on
#: the model's device (tools.device_pixels); auto: device on CUDA, host otherwise
Preprocess = Literal["auto", "host", "device"]
PREPROCESS: tuple[str, ...] = ("auto", "host", "device")


def wants_device(preprocess: str, device: str, transform: Any) -> bool:
    """Whether the device path applies: asked for (or ``auto`` on CUDA) and the transform is a plain one."""
    from tools.device_pixels import PixelSpec

    if preprocess == "host" or (preprocess == "auto" and not str(device).startswith("cuda")):
        return False
    if PixelSpec.from_transform(transform) is None:
        if preprocess == "device":
            raise ValueError("this model's image transform is not resize/crop/normalise; use --preprocess host")
        return False
    return True


def index_stages(*, engine: str, model: Any, transform: Any, dim: int, device: str, batch_size: int,
                 num_workers: int, preprocess: str = "auto",
                 ray: RayOptions | None = None, progress: bool = False
                 ) -> tuple[Callable[[list[str]], Any] | None, Any]:
    """``(make_reader, embedder)`` for :func:`tools.embedding.build_index`; ``(None, None)`` is the default."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    from tools.embedding import input_size

    on_device = wants_device(preprocess, device, transform)
    min_size = input_size(model)  # JPEGs decode at a reduced scale down to the model's input size, as locally
    if engine == "ray":
        from tools.distributed.ray_index import passthrough, ray_reader

        options = ray or RayOptions(batch_size=batch_size)

        def make_ray(failed: list[str]) -> Any:
            return ray_reader(model, transform, dim=dim, device=device, options=options, min_size=min_size,
                              failed=failed, device_preprocess=on_device, progress=progress)

        return make_ray, passthrough
    if not on_device:
        return None, None
    from tools.device_pixels import device_path

    embedder: list[Any] = []

    def make_local(failed: list[str]) -> Any:
        stages = device_path(model, transform, device, batch_size=batch_size, num_workers=num_workers,
                             min_size=min_size, failed=failed)
        assert stages is not None
        embedder.append(stages[1])
        return stages[0]

    def embed(pixels: Any) -> Any:
        return embedder[0](pixels)

    return make_local, embed


__all__ = ["ENGINES", "PREPROCESS", "Engine", "Preprocess", "index_stages", "wants_device"]
