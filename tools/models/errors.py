"""The errors raised by the model layer, each saying what to do about it."""

from __future__ import annotations

from collections.abc import Sequence


class ModelNotAvailableError(RuntimeError):
    """A preset's weights are not on this machine and cannot (or may not) be downloaded.

    The message names the file to place and the exact path where it is expected; ``expected_path`` and
    ``url`` carry the same facts for callers that want to show them differently.
    """

    def __init__(self, message: str, *, expected_path: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.expected_path = expected_path
        self.url = url


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's tensors do not match the architecture it is loaded into.

    The message lists the missing keys, the unexpected keys and the shape mismatches (the first few of
    each, with counts); the full lists are kept on the exception.
    """

    def __init__(
        self,
        message: str,
        *,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        shape_mismatches: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
    ) -> None:
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        #: ``(key, shape in checkpoint, shape in model)`` for each mismatch
        self.shape_mismatches = list(shape_mismatches)


class UnknownModelError(ValueError):
    """A model spec names no preset, no open_clip architecture/tag, or has a malformed form."""
