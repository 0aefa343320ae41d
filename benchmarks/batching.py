"""Benchmarks of loopline's batching: padding cost, padding efficiency, sampler cost.

Run ``python benchmarks/batching.py`` (about 20 s) or ``--quick`` (about 5 s). Tables are
printed and written to ``benchmarks/out/batching.md``.

1. ``pad_collate`` against plain PyTorch (``pad_sequence(batch_first=True)`` plus a
   hand-made bool mask and lengths tensor), microseconds per batch of 32 samples.
2. Padding efficiency, sum(lengths) / sum(len(batch) * max_len_in_batch), of random,
   bucketed and fully sorted batches of 20,000 lengths uniform in [1, 512]; "order
   corr." is the Spearman correlation of batch position and batch max length (near 0:
   the batch order is shuffled).
3. Time to build one epoch of batches: ``BucketSampler`` against ``BatchSampler``.

Timing: ``time.perf_counter``, one thread, a warm-up, then rounds in which the variants
being compared run in turn (alternating which goes first); each figure is the median.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import publish, settings, table
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import BatchSampler, RandomSampler

from loopline import BucketSampler, bucket, pad_collate

OUT = Path(__file__).resolve().parent / "out" / "batching.md"
BATCH = 32


def timed(variants: dict[str, Callable[[], Any]], rounds: int, calls: int) -> dict[str, float]:
    """Median seconds per call of each variant, the variants interleaved round by round."""
    for fn in variants.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        names = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in names:
            start = time.perf_counter()
            for _ in range(calls):
                variants[name]()
            times[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(values) for name, values in times.items()}


def cycling(collate: Callable[[Any], Any], pool: list[Any]) -> Callable[[], Any]:
    """A call that collates the next batch of `pool`, round and round."""
    batches = itertools.cycle(pool)
    return lambda: collate(next(batches))


def plain_pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    data = pad_sequence(seqs, batch_first=True)
    lengths = torch.tensor([len(s) for s in seqs])
    mask = torch.arange(data.shape[1])[None] < lengths[:, None]
    return data, mask, lengths


def plain_dict_collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "text": plain_pad([s["text"] for s in samples]),
        "image": torch.stack([s["image"] for s in samples]),
        "label": torch.tensor([s["label"] for s in samples]),
    }


def collate_figure(rng: np.random.Generator, rounds: int, calls: int) -> str:
    def tokens(max_len: int) -> torch.Tensor:
        return torch.randint(0, 30_000, (int(rng.integers(1, max_len + 1)),))

    def features() -> torch.Tensor:
        return torch.randn(int(rng.integers(1, 129)), 64)

    def record() -> dict[str, Any]:
        image = torch.randn(3, 32, 32)
        return {"text": tokens(512), "image": image, "label": int(rng.integers(10))}

    cases = [  # name, make one sample, plain-PyTorch collate
        ("int64 tokens, T in [1, 512]", lambda: tokens(512), plain_pad),
        ("float32 [T, 64], T in [1, 128]", features, plain_pad),
        ("dict text + image + label", record, plain_dict_collate),
    ]
    rows = []
    for name, make, plain in cases:
        pool = [[make() for _ in range(BATCH)] for _ in range(16)]  # cycle through 16 batches
        loop_out, plain_out = pad_collate(pool[0]), plain(pool[0])
        loop_text = loop_out["text"] if isinstance(loop_out, dict) else loop_out
        plain_text = plain_out["text"] if isinstance(plain_out, dict) else plain_out
        assert all(torch.equal(a, b) for a, b in zip(loop_text, plain_text, strict=True))
        variants = {"loopline": cycling(pad_collate, pool), "plain": cycling(plain, pool)}
        per_call = timed(variants, rounds, calls)
        loop_us, plain_us = per_call["loopline"] * 1e6, per_call["plain"] * 1e6
        rows.append([name, f"{loop_us:.0f}", f"{plain_us:.0f}", f"{loop_us / plain_us:.2f}"])
    headers = ["batch of 32", "pad_collate (µs)", "plain PyTorch (µs)", "loopline / plain"]
    return (
        "### 1. pad_collate vs pad_sequence + mask + lengths\n\n"
        + table(headers, rows)
        + "\n\nGoal: loopline / plain <= 1.0 (dict: plain = pad_sequence, mask, stack, tensor)."
    )


def order_corr(batch_max: list[int]) -> float:
    """Spearman correlation of batch position and batch max length (ties ranked by order)."""
    ranks = np.argsort(np.argsort(batch_max, kind="stable"))
    return float(np.corrcoef(np.arange(len(batch_max)), ranks)[0, 1])


def efficiency_figure(lengths: np.ndarray, rng: np.random.Generator, max_tokens: int) -> str:
    def index_batches(index_lists: Any) -> list[list[int]]:
        return [lengths[b].tolist() for b in index_lists]

    n = lengths.size
    perm, by_length = rng.permutation(n), np.argsort(lengths, kind="stable")
    items = [torch.empty(int(k), dtype=torch.int8) for k in lengths]
    variants = {
        "random (shuffled DataLoader)": index_batches(np.split(perm, range(BATCH, n, BATCH))),
        "BucketSampler(batch_size=32)": index_batches(BucketSampler(lengths, BATCH, seed=0)),
        f"BucketSampler(max_tokens={max_tokens})": index_batches(
            BucketSampler(lengths, None, max_tokens=max_tokens, seed=0)
        ),
        "bucket(buffer_size=128*32)": [
            [len(x) for x in b]
            for b in bucket(items, length=len, batch_size=BATCH, buffer_size=128 * BATCH)
        ],
        "fully sorted (upper bound)": index_batches(np.split(by_length, range(BATCH, n, BATCH))),
    }
    rows = []
    for name, batches in variants.items():
        assert sorted(k for b in batches for k in b) == sorted(lengths.tolist()), name
        real = sum(sum(b) for b in batches)
        padded = sum(len(b) * max(b) for b in batches)
        maxes = [max(b) for b in batches]
        rows.append([name, len(batches), f"{real / padded:.3f}", f"{order_corr(maxes):+.2f}"])
    headers = ["batching", "batches", "padding efficiency", "order corr."]
    return (
        f"### 2. Padding efficiency, {n:,} lengths uniform in [1, 512], batch size 32\n\n"
        + table(headers, rows)
        + f"\n\nmax_tokens={max_tokens} (32 samples of mean length) gives about as many "
        "batches as batch_size=32. Goal: bucketing >= 0.99 with |order corr.| near 0 "
        f"(noise: about ±{2 / len(variants['random (shuffled DataLoader)']) ** 0.5:.2f})."
    )


def epoch_figure(lengths: np.ndarray, rounds: int) -> str:
    sampler = BucketSampler(lengths, BATCH, seed=0)
    plain = BatchSampler(RandomSampler(range(lengths.size)), BATCH, drop_last=False)
    epochs = itertools.count(1)

    def bucket_epoch() -> None:
        sampler.set_epoch(next(epochs))  # a new epoch each call: no cached batch list
        list(sampler)

    per_epoch = timed({"bucket": bucket_epoch, "plain": lambda: list(plain)}, rounds, 1)
    rows = [
        ["BucketSampler(lengths, 32)", f"{per_epoch['bucket'] * 1e3:.1f}"],
        ["BatchSampler(RandomSampler, 32)", f"{per_epoch['plain'] * 1e3:.1f}"],
    ]
    return (
        f"### 3. Batch indices of one epoch, {lengths.size:,} samples\n\n"
        + table(["sampler", "ms per epoch"], rows)
        + f"\n\nBucketSampler / BatchSampler: {per_epoch['bucket'] / per_epoch['plain']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about 5 s)")
    quick = parser.parse_args().quick
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 513, size=20_000)
    max_tokens = BATCH * 256  # 32 samples of mean length: about as many batches as 32 each
    start = time.perf_counter()
    sections = [
        settings(quick),
        collate_figure(rng, rounds=7 if quick else 31, calls=20 if quick else 100),
        efficiency_figure(lengths, rng, max_tokens),
        epoch_figure(lengths, rounds=11 if quick else 51),
    ]
    publish("loopline batching benchmarks", sections, OUT, start)


if __name__ == "__main__":
    main()
