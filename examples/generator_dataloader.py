"""How can a generator be used to create a PyTorch DataLoader?

Hand the DataLoader the generator *function* through `loopline.from_generator(fn, *args)`,
not a generator object. The result is an IterableDataset that calls `fn(*args)` afresh on
every `iter()`, so it can be iterated for many epochs, and that splits the samples between
DataLoader workers (and torch.distributed ranks) so each sample arrives exactly once.

This example shows, in order:

  (a) why `DataLoader(make_samples(n))` fails;
  (b) `from_generator(make_samples, n)` with 2 workers for 2 epochs: each sample once,
      where a plain IterableDataset yields each sample once per worker;
  (c) a `sharded=True` generator that produces only its own part (`current_shard()`) and
      shuffles by (seed, epoch), with `set_epoch`;
  (d) a generator that already yields whole batches: `from_generator(..., batched=True)`,
      served with `batch_size=None`;
  (e) variable-length sequences batched by `loopline.pad_collate`, which pads them and
      returns a mask and the lengths (see variable_length_generator.py for bucketing).

The generator functions live at module level so DataLoader workers can pickle them.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

import loopline

N = 96
FEATURES = 4
SEED = 0


# ------------------------------------------------------------- generator functions


def make_samples(n: int):
    """Samples (index, features); the features are a fixed function of the index."""
    for i in range(n):
        yield i, torch.full((FEATURES,), float(i))


class NaiveStream(IterableDataset):
    """What one writes by hand: every worker gets a copy and runs the whole generator."""

    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        return make_samples(self.n)


def make_records(num_files: int, per_file: int):
    """A sharded source: reads only this shard's files, in an order fixed by (seed, epoch).

    Think of each "file" as an expensive read that no other shard should repeat. All shards
    compute the same permutation of the file list and take disjoint slices of it.
    """
    shard = loopline.current_shard()
    files = np.random.default_rng([shard.seed, shard.epoch]).permutation(num_files)
    for f in files[shard.index :: shard.count].tolist():
        for j in range(per_file):
            yield f * per_file + j


def make_batches(num_batches: int, batch_size: int):
    """A source that already yields whole batches: (x of shape [batch, 4], y of shape [batch])."""
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(num_batches):
        x = torch.randn(batch_size, FEATURES, generator=gen)
        yield x, x.sum(dim=1)


def make_sequences(n: int, max_len: int):
    """Sequences of random length 1..max_len (FEATURES values a step), labelled "is long"."""
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(n):
        length = int(torch.randint(1, max_len + 1, (), generator=gen))
        yield torch.randn(length, FEATURES, generator=gen), int(length > max_len // 2)


# ------------------------------------------------------------------------ the parts


def part_a_generator_object() -> None:
    print("(a) DataLoader(make_samples(n)), a generator object:")
    loader = DataLoader(make_samples(N), batch_size=8)  # accepted here, fails when iterated
    try:
        next(iter(loader))
    except TypeError as error:
        print(f"    TypeError: {error}  (a map-style loader needs len() and [i])")


def seen_indices(loader: DataLoader) -> Counter:
    return Counter(i for indices, _ in loader for i in indices.tolist())


def part_b_each_sample_once() -> None:
    print("(b) from_generator(make_samples, n), 2 workers, 2 epochs:")
    naive = seen_indices(DataLoader(NaiveStream(N), batch_size=8, num_workers=2))
    print(f"    plain IterableDataset: {sum(naive.values())} samples for {N} (one copy per worker)")

    dataset = loopline.from_generator(make_samples, N)
    loader = DataLoader(dataset, batch_size=8, num_workers=2, persistent_workers=True)
    once = True
    for epoch in range(2):
        counts = seen_indices(loader)
        ok = sorted(counts) == list(range(N)) and set(counts.values()) == {1}
        print(f"    epoch {epoch}: {sum(counts.values())} samples, {len(counts)} distinct")
        once = once and ok
    print(f"each sample once: {once}")
    assert once


def part_c_sharded_generator() -> None:
    print("(c) sharded=True: each worker reads only its own files, shuffled by (seed, epoch):")
    num_files, per_file = 12, 4
    dataset = loopline.from_generator(make_records, num_files, per_file, sharded=True, seed=SEED)
    loader = DataLoader(dataset, batch_size=per_file, num_workers=2, persistent_workers=True)
    orders = []
    for epoch in range(2):
        dataset.set_epoch(epoch)  # reaches the persistent workers too
        records = [r for batch in loader for r in batch.tolist()]
        assert sorted(records) == list(range(num_files * per_file))
        first_files = [r // per_file for r in records[::per_file]][:6]
        print(f"    epoch {epoch}: {len(records)} records, all once; files begin {first_files}")
        orders.append(records)
    print(f"    new order each epoch: {orders[0] != orders[1]}")


def part_d_whole_batches() -> None:
    print("(d) a generator of whole batches, batched=True and batch_size=None:")
    # batched=True says each item is a whole batch: forever() then refuses a DataLoader
    # that would batch again. Unsharded, each worker runs make_batches and keeps every
    # other batch; when making a batch is expensive, write it with sharded=True as in (c).
    dataset = loopline.from_generator(make_batches, 6, 16, batched=True)
    x, y = next(iter(DataLoader(dataset, batch_size=None, num_workers=2)))
    print(f"    batch x {tuple(x.shape)}, y {tuple(y.shape)}")
    # batch_size=32 (or the default 1) would collate the ready-made batches into a batch of
    # batches, shape [32, 16, 4]: double batching. batch_size=None passes them through. A
    # bare DataLoader does not know about batched=True; forever(loader) would raise here.
    x2, _ = next(iter(DataLoader(dataset, batch_size=2)))
    print(f"    batch_size=2 on top batches twice: x {tuple(x2.shape)}")


def part_e_variable_length() -> None:
    print("(e) variable-length sequences, batched by loopline.pad_collate:")
    dataset = loopline.from_generator(make_sequences, 40, 9)
    loader = DataLoader(dataset, batch_size=8, num_workers=2, collate_fn=loopline.pad_collate)
    # Each sample is (sequence [T_i, 4], label), so each batch is (Padded, labels [8]).
    (padded, mask, lengths), labels = next(iter(loader))
    print(f"    padded {tuple(padded.shape)}, mask {tuple(mask.shape)}, lengths {lengths.tolist()}")
    print(f"    labels {labels.tolist()}")
    # The mask keeps padding out of any reduction over time.
    mean = (padded * mask[..., None]).sum(dim=1) / lengths[:, None]
    print(
        f"    masked mean over time {tuple(mean.shape)}; padding is zero: "
        f"{bool((padded[~mask] == 0).all())}"
    )


def main() -> None:
    part_a_generator_object()
    part_b_each_sample_once()
    part_c_sharded_generator()
    part_d_whole_batches()
    part_e_variable_length()


if __name__ == "__main__":
    main()
