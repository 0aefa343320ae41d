"""How can a generator be used to create a PyTorch DataLoader, when samples differ in length?

Wrap the generator *function* with `loopline.from_generator`, group samples of similar
length with `loopline.bucket`, and let `loopline.pad_collate` pad each batch and return a
mask. This example generates token sequences of random length in code (nothing is
downloaded), serves them with 2 workers for 2 epochs under `loopline.forever`, and trains a
tiny classifier (embedding, masked mean, linear). It prints each epoch's sample counts
("each sample once: True"), the padding efficiency (real / padded elements) of bucketed
and plain batches of the same data, and then shows a generator that yields whole batches
(`batched=True`, `batch_size=None`) and what `forever` says when it would batch them again.

Everything that goes to the workers (generator functions, the bucketing key) is a
module-level function, so it pickles under the spawn start method too.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

import loopline

# Text always comes back Padded, with its mask, even when a batch is equally long.
COLLATE = functools.partial(loopline.pad_collate, pad_keys={"tokens"})

SAMPLES = 480
MAX_LEN = 48
VOCAB = 64  # token 0 is padding; class 0 favours tokens below 32, class 1 those above
BATCH = 16
BUFFER = 160  # samples sorted together by length: 10 batches' worth
DIM = 16
SEED = 0


class Sample(NamedTuple):
    tokens: torch.Tensor  # [T_i] int64, 1 <= T_i <= MAX_LEN
    label: int
    index: int  # position in the stream, kept to check that each sample arrives once


# ------------------------------------------------------ generators and the bucketing key


def shard_rng() -> np.random.Generator:
    """A generator seeded by the dataset's (seed, epoch): the same stream on every shard."""
    shard = loopline.current_shard()
    return np.random.default_rng([shard.seed, shard.epoch])


def draw_tokens(rng: np.random.Generator, length: int, label: int) -> np.ndarray:
    """`length` tokens, 80% from the label's half of the vocabulary, the rest anywhere."""
    half = VOCAB // 2
    own = rng.integers(1, half, size=length) + label * (half - 1)
    anywhere = rng.integers(1, VOCAB, size=length)
    return np.where(rng.random(length) < 0.8, own, anywhere).astype(np.int64)


def make_samples(n: int, max_len: int):
    """Samples with random lengths in [1, max_len]; a new draw every epoch."""
    rng = shard_rng()
    for index in range(n):
        length, label = int(rng.integers(1, max_len + 1)), int(rng.integers(2))
        yield Sample(torch.from_numpy(draw_tokens(rng, length, label)), label, index)


def token_count(sample: Sample) -> int:
    """The bucketing key. A def, not a lambda: spawned workers must be able to pickle it."""
    return len(sample.tokens)


def make_batches(num_batches: int, batch_size: int, max_len: int):
    """Whole batches (tokens [B, T], labels [B]); all rows of a batch share one length."""
    rng = shard_rng()
    for _ in range(num_batches):
        length = int(rng.integers(1, max_len + 1))
        labels = rng.integers(2, size=batch_size)
        tokens = np.stack([draw_tokens(rng, length, int(label)) for label in labels])
        yield torch.from_numpy(tokens), torch.from_numpy(labels)


# ------------------------------------------------------------------------- the model


class BagOfTokens(nn.Module):
    """Embedding, mean over the real tokens only, linear head."""

    def __init__(self, vocab: int, dim: int, classes: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens: loopline.Padded) -> torch.Tensor:
        data, mask, lengths = tokens
        x = self.embed(data)  # x: [B, T, D]
        x = x * mask[..., None]  # padding positions contribute zero
        pooled = x.sum(dim=1) / lengths[:, None]  # pooled: [B, D]
        return self.head(pooled)  # [B, classes]


# ------------------------------------------------------------------------ the parts


def efficiency(batches: list[loopline.Padded]) -> float:
    """Real elements over padded elements, summed over the batches."""
    real = sum(int(p.lengths.sum()) for p in batches)
    return real / sum(p.data.numel() for p in batches)


def train_bucketed() -> list[loopline.Padded | torch.Tensor]:
    """Train for 2 epochs on bucketed batches; return epoch 0's token batches."""
    print(f"bucketed: from_generator -> bucket -> pad_collate, 2 workers, {BATCH} a batch:")
    stage = loopline.bucket(
        loopline.from_generator(make_samples, SAMPLES, MAX_LEN),
        length=token_count,
        batch_size=BATCH,
        buffer_size=BUFFER,
        seed=SEED,
    )
    # The stage yields lists of samples, so the DataLoader must not batch again.
    loader = DataLoader(stage, batch_size=None, collate_fn=COLLATE, num_workers=2)

    torch.manual_seed(SEED)
    model = BagOfTokens(VOCAB, DIM)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    seen: list[Counter] = [Counter(), Counter()]
    losses: list[list[float]] = [[], []]
    first_epoch = []
    stream = loopline.forever(loader, epochs=2)
    for batch in stream:  # batch: Sample(tokens=Padded [B, T], label [B], index [B])
        loss = nn.functional.cross_entropy(model(batch.tokens), batch.label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen[stream.epoch].update(batch.index.tolist())
        losses[stream.epoch].append(loss.item())
        if stream.epoch == 0:
            first_epoch.append(batch.tokens)

    once = True
    for epoch, counts in enumerate(seen):
        once = once and sorted(counts) == list(range(SAMPLES)) and set(counts.values()) == {1}
        print(
            f"    epoch {epoch}: {len(losses[epoch])} steps, {sum(counts.values())} samples, "
            f"{len(counts)} distinct, mean loss {np.mean(losses[epoch]):.3f}"
        )
    print(f"each sample once: {once}")
    return first_epoch


def plain_batches() -> list[loopline.Padded | torch.Tensor]:
    """Epoch 0's samples again, batched in arrival order, as a plain DataLoader does."""
    dataset = loopline.from_generator(make_samples, SAMPLES, MAX_LEN)
    loader = DataLoader(dataset, batch_size=BATCH, collate_fn=COLLATE, num_workers=2)
    return [batch.tokens for batch in loader]


def compare_padding(bucketed: list[loopline.Padded | torch.Tensor]) -> None:
    plain = plain_batches()
    print("padding efficiency (real / padded tokens), epoch 0, the same samples:")
    print(f"    plain batches:    {efficiency(plain):.2f}")
    print(f"    bucketed batches: {efficiency(bucketed):.2f}")
    print(f"bucketing pads less: {efficiency(bucketed) > efficiency(plain)}")


def whole_batches() -> None:
    print("a generator of whole batches: from_generator(..., batched=True), batch_size=None:")
    dataset = loopline.from_generator(make_batches, 6, 32, MAX_LEN, batched=True)
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    shapes = [tuple(tokens.shape) for tokens, _ in loopline.forever(loader, epochs=1)]
    print(f"    {len(shapes)} batches, tokens {shapes}")
    try:
        loopline.forever(DataLoader(dataset, batch_size=32))
    except ValueError as error:
        print(f"    batch_size=32 on top: ValueError: {str(error).splitlines()[0]}")


def main() -> None:
    bucketed = train_bucketed()
    compare_padding(bucketed)
    whole_batches()


if __name__ == "__main__":
    main()
