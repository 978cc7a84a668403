"""The data side of training: per-sample seeds, epoch order, caption-cluster batch order, hard-negative partners,
dataset, sampler, collate.

Nothing here reads a global random state: the order of an epoch is a permutation drawn from ``(seed, epoch)``,
and the caption chosen for an image and its augmentation are drawn from a seed derived from
``(seed, epoch, index)``, so a sample is the same whichever worker decodes it, and a resumed run sees exactly
the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from tools.imageio import load_rgb
from tools.training.config import TrainItem

__all__ = [
    "CaptionedImages",
    "batch_partners",
    "Collate",
    "RunBatches",
    "caption_bank",
    "caption_clusters",
    "kmeans_cosine",
    "paste_strip",
    "sample_seed",
    "spread_order",
]

# Domain tags keep the streams derived from one seed apart.
_ORDER_STREAM = 1
_SAMPLE_STREAM = 2
_SPREAD_STREAM = 3
_MIX_STREAM = 4


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The 63-bit seed of item ``index`` in ``epoch`` (caption choice and augmentation)."""
    state = np.random.SeedSequence([seed, _SAMPLE_STREAM, epoch, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, _ORDER_STREAM, epoch])).permutation(n)


def kmeans_cosine(
    x: torch.Tensor, k: int, seed: int, *, restarts: int = 8, iters: int = 30, fit_rows: int = 20_000,
    chunk: int = 65536,
) -> np.ndarray:
    """Cluster unit vectors into ``k`` groups; one group id per row.

    Spherical k-means (centres renormalised, cosine similarity): greedy k-means++ seeding, Lloyd iterations, the
    best of ``restarts`` runs by total similarity (one run often merges two true clusters and splits
    another). It is fitted on at most ``fit_rows`` rows drawn at random, then every row goes to its
    nearest centre, in chunks of ``chunk`` rows. Deterministic for a given ``seed`` on one machine.
    """
    n = x.shape[0]
    k = max(1, min(k, n))
    x = x.float()
    gen = torch.Generator().manual_seed(seed)
    fit = x if n <= fit_rows else x[torch.randperm(n, generator=gen)[:fit_rows]]

    def nearest(rows: torch.Tensor, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sims, ids = [], []
        for lo in range(0, rows.shape[0], chunk):
            best = (rows[lo : lo + chunk] @ centers.T).max(dim=1)
            sims.append(best.values)
            ids.append(best.indices)
        return torch.cat(sims), torch.cat(ids)

    def one_run() -> tuple[float, torch.Tensor]:
        m = fit.shape[0]
        picked = [int(torch.randint(m, (1,), generator=gen))]
        dist = (1 - fit @ fit[picked[0]]).clamp_min(0)
        trials = 2 + int(math.log(k))
        for _ in range(1, k):  # greedy k-means++: of a few candidates drawn by squared distance, keep the best
            weights = dist**2
            if float(weights.sum()) > 0:
                candidates = torch.multinomial(weights, trials, replacement=True, generator=gen)
            else:
                candidates = torch.randint(m, (trials,), generator=gen)
            options = torch.minimum(dist[None, :], (1 - fit[candidates] @ fit.T).clamp_min(0))
            best_candidate = int((options**2).sum(dim=1).argmin())
            picked.append(int(candidates[best_candidate]))
            dist = options[best_candidate]
        centers = fit[picked].clone()
        sims, assign = nearest(fit, centers)
        for _ in range(iters):
            sums = torch.zeros_like(centers).index_add_(0, assign, fit)
            filled = torch.bincount(assign, minlength=k) > 0  # an emptied cluster keeps its old centre
            centers[filled] = torch.nn.functional.normalize(sums[filled], dim=-1)
            sims, new_assign = nearest(fit, centers)
            if torch.equal(new_assign, assign):
                break
            assign = new_assign
        return float(sims.sum()), centers

    best = max((one_run() for _ in range(max(1, restarts))), key=lambda run: run[0])
    return nearest(x, best[1])[1].numpy().astype(np.int64)


def caption_clusters(
    items: Sequence[TrainItem], caption_rows: Mapping[str, int], caption_features: torch.Tensor, k: int, seed: int
) -> np.ndarray:
    """Group id per item: k-means over each item's mean caption embedding (from the starting text tower).

    Images described alike land in one group without reading any label; on UC Merced's human captions,
    16 groups match its 16 scene types for 99% of the training images. :func:`spread_order` then keeps
    each contrastive batch to about one image per group.
    """
    feats = caption_features.detach().float().cpu()
    means = torch.stack([feats[[caption_rows[c] for c in it.captions]].mean(0) for it in items])
    return kmeans_cosine(torch.nn.functional.normalize(means, dim=-1), k, seed)


def spread_order(order: np.ndarray, groups: np.ndarray, seed: int, epoch: int = 0, batch: int = 16) -> np.ndarray:
    """Reorder a permutation so that each run of ``batch`` items mixes the groups (see :func:`caption_clusters`).

    Each batch takes one item from each of the ``batch`` groups with the largest share of their items still
    unused (ties in a random order of the groups, drawn per epoch); only when fewer groups than ``batch`` have
    items left does a group give a second item to one batch. With ``batch`` equal-sized groups every batch
    holds one image of each, so a contrastive batch holds as few alike captions (false negatives) as the
    data allows. Within a group, items keep their order in ``order``, so the epoch's shuffle still decides
    which image comes when. The result is a permutation of ``order``.
    """
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    tie = np.random.default_rng(np.random.SeedSequence([seed, _SPREAD_STREAM, epoch])).random(n_groups)
    members = groups[order]
    queues = [order[members == g] for g in range(n_groups)]
    sizes = np.array([len(q) for q in queues], dtype=np.float64)
    taken = np.zeros(n_groups, dtype=np.int64)
    out: list[int] = []
    while len(out) < len(order):
        slots = min(batch, len(order) - len(out))
        while slots > 0:
            avail = np.flatnonzero(taken < sizes)
            left = (sizes[avail] - taken[avail]) / sizes[avail]
            for g in avail[np.lexsort((tie[avail], -left))][:slots].tolist():
                out.append(int(queues[g][taken[g]]))
                taken[g] += 1
                slots -= 1
    return np.asarray(out, dtype=order.dtype)


def batch_partners(order: np.ndarray, partners: np.ndarray, batch: int, usable: int) -> np.ndarray:
    """``order`` with each item that has a partner (``partners[i] >= 0``, an item index) moved into its
    partner's batch of ``batch`` positions, by swapping it with the first item of that batch that is neither a
    partner nor already placed. Only the first ``usable`` positions form batches (the rest of an epoch is left
    out). Items are placed in index order, so the result depends only on its inputs (exact resume)."""
    out = order.copy()
    pos = np.empty(len(out), dtype=np.int64)
    pos[out] = np.arange(len(out))
    fixed = np.zeros(len(out), dtype=bool)  # by position: partners, and items already placed
    movers = np.flatnonzero(partners >= 0)
    fixed[pos[partners[movers]]] = True
    for i in movers.tolist():
        p = int(partners[i])
        if pos[p] >= usable or fixed[pos[i]]:
            continue  # its partner is not in this epoch's batches, or it is a partner itself
        target = int(pos[p]) // batch
        if int(pos[i]) // batch == target and pos[i] < usable:
            fixed[pos[i]] = True
            continue
        slot = next((q for q in range(target * batch, min((target + 1) * batch, usable)) if not fixed[q]), None)
        if slot is None:
            continue
        j, old = int(out[slot]), int(pos[i])
        out[slot], out[old] = i, j
        pos[i], pos[j] = slot, old
        fixed[slot] = True
    return out


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch (CPU), NumPy and Python RNGs for a block, restoring their states afterwards."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def paste_strip(image: torch.Tensor, other: torch.Tensor, fraction: float, side: int) -> torch.Tensor:
    """``image`` (C, H, W) with a strip of ``other`` along one edge (0 left, 1 right, 2 top, 3 bottom), the strip
    ``fraction`` of the side wide: a chip cut across a boundary between two kinds of ground."""
    out = image.clone()
    width = image.shape[-1] if side < 2 else image.shape[-2]
    k = max(1, min(width - 1, round(fraction * width)))
    cut = [slice(None)] * image.dim()
    axis = -1 if side < 2 else -2
    cut[axis] = slice(0, k) if side in (0, 2) else slice(width - k, width)
    out[tuple(cut)] = other[tuple(cut)]
    return out


class CaptionedImages(torch.utils.data.Dataset[tuple[torch.Tensor, str]]):
    """Item ``(epoch, index)``: augmented image and one caption, both fixed by ``(seed, epoch, index)``.

    With ``mix > 0``, that fraction of the samples gets a strip of another training image (at most ``mix_max`` of
    the side, at least a tenth) along one edge, the caption unchanged. Tiles of a dataset are centred on their
    subject; chips of a scene are cut wherever the grid falls, often across a boundary (a field's edge, a
    shore, two tiles of a mosaic): the strips teach the model that a boundary and a minority of other ground
    do not change what the chip mostly shows.
    """

    def __init__(self, items: Sequence[TrainItem], transform: Callable[[Image.Image], torch.Tensor], seed: int, *,
                 mix: float = 0.0, mix_max: float = 0.4) -> None:
        if not 0.0 <= mix <= 1.0 or not 0.1 <= mix_max < 1.0:
            raise ValueError(f"mix must be in [0, 1] and mix_max in [0.1, 1), got {mix}, {mix_max}")
        self.items = items
        self.transform = transform
        self.seed = seed
        self.mix = mix
        self.mix_max = mix_max

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, index: int) -> Image.Image:
        path = self.items[index].image_path
        try:
            return load_rgb(path)  # a file or a chip of a scene
        except Exception as exc:
            raise RuntimeError(f"cannot read training image {path!r}: {exc}") from exc

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, str]:
        epoch, index = key
        item = self.items[index]
        s = sample_seed(self.seed, epoch, index)
        caption = item.captions[s % len(item.captions)]
        with _seeded(s):
            x = self.transform(self._load(index))
        if self.mix > 0 and len(self.items) > 1:
            rng = np.random.default_rng(np.random.SeedSequence([s, _MIX_STREAM]))
            if rng.random() < self.mix:
                other = (index + 1 + int(rng.integers(len(self.items) - 1))) % len(self.items)
                with _seeded(s ^ 0x5EA):
                    y = self.transform(self._load(other))
                x = paste_strip(x, y, float(rng.uniform(0.1, self.mix_max)), int(rng.integers(4)))
        return x, caption


class RunBatches(torch.utils.data.Sampler[list[tuple[int, int]]]):
    """All remaining micro-batches of a run, epochs chained, starting at micro-batch ``start``."""

    def __init__(self, n_items: int, micro_batch: int, micro_per_epoch: int, start: int, stop: int, seed: int,
                 groups: np.ndarray | None = None, group_batch: int = 0, partners: np.ndarray | None = None):
        self.n_items = n_items
        self.micro_batch = micro_batch
        self.micro_per_epoch = micro_per_epoch
        self.start = start
        self.stop = stop
        self.seed = seed
        self.groups = groups  # caption group per item: when set, each batch mixes the groups
        self.group_batch = group_batch  # the contrastive batch (micro-batch x accumulation steps)
        self.partners = partners  # per item, the item whose contrastive batch it joins (-1: none)

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order: np.ndarray | None = None
        for m in range(self.start, self.stop):
            epoch, pos = divmod(m, self.micro_per_epoch)
            if order is None or pos == 0:
                order = _epoch_order(self.seed, epoch, self.n_items)
                if self.groups is not None:
                    order = spread_order(order, self.groups, self.seed, epoch, self.group_batch)
                if self.partners is not None:
                    order = batch_partners(order, self.partners, self.group_batch or self.micro_batch,
                                           self.micro_per_epoch * self.micro_batch)
            idx = order[pos * self.micro_batch : (pos + 1) * self.micro_batch]
            yield [(epoch, int(i)) for i in idx]


class Collate:
    """Stack images and tokenize the captions (in the worker, so tokenization runs in parallel).

    With ``caption_rows`` (a frozen text tower whose features were computed once), captions become rows of
    that feature bank instead of tokens.
    """

    def __init__(
        self, tokenizer: Callable[[list[str]], torch.Tensor], caption_rows: Mapping[str, int] | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.caption_rows = caption_rows

    def __call__(self, batch: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([b[0] for b in batch])
        if self.caption_rows is not None:
            return images, torch.tensor([self.caption_rows[b[1]] for b in batch], dtype=torch.long)
        return images, self.tokenizer([b[1] for b in batch])


def caption_bank(
    net: Any, tokenizer: Callable[[list[str]], torch.Tensor], items: Sequence[TrainItem], dev: torch.device,
    autocast: contextlib.AbstractContextManager[Any], batch_size: int = 256,
) -> tuple[dict[str, int], torch.Tensor]:
    """Normalised features of every distinct caption, computed once by the (frozen, eval-mode) text tower.

    A frozen tower gives the same features at every step, so computing them once changes no result and
    removes the text forward pass from every training step.
    """
    texts = sorted({c for it in items for c in it.captions})
    rows = {t: i for i, t in enumerate(texts)}
    feats = []
    with torch.no_grad(), autocast:
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(texts[start : start + batch_size]).to(dev)
            feats.append(net.encode_text(tokens, normalize=True).float())
    return rows, torch.cat(feats)
