"""How can DataLoader iteration be sustained indefinitely?

Wrap the DataLoader in `loopline.forever(...)` and count training steps, not epochs:

    stream = loopline.forever(loader)
    for step in range(steps):
        batch = next(stream)

This example trains a tiny regression model on synthetic data made in code and shows:

- one iteration that runs across epoch boundaries (`stream.epoch`, `stream.step`): the
  DataLoader's workers start once and stay busy, instead of being torn down and restarted
  at every epoch as with `iter(loader)` in a `while True` loop or a new DataLoader per epoch;
- checkpointing: `stream.state_dict()` is saved next to the model and optimizer state,
  restored into a fresh loader, and the batches that follow are exactly those of an
  uninterrupted run ("resume exact: True");
- why the loader uses `loopline.EpochSampler` rather than `shuffle=True`.

Run it with `python examples/streams_forever.py` (or `make demo`).
"""

from __future__ import annotations

import io
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import loopline

SAMPLES = 256
FEATURES = 8
BATCH = 32  # 8 batches per epoch
STEPS = 40  # 5 epochs
CHECKPOINT_AT = 20  # mid-epoch, to show that resume lands inside an epoch
PRINT_EVERY = 8
SEED = 0


def make_dataset() -> TensorDataset:
    """A noisy linear regression problem, generated in code (nothing is downloaded)."""
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(SAMPLES, FEATURES, generator=gen)
    w = torch.randn(FEATURES, 1, generator=gen)
    y = x @ w + 0.1 * torch.randn(SAMPLES, 1, generator=gen)
    return TensorDataset(x, y)


def make_loader(dataset: TensorDataset) -> DataLoader:
    # EpochSampler's order is a pure function of (seed, epoch), so a checkpoint only needs
    # the epoch and the position inside it. shuffle=True (a RandomSampler) draws a fresh
    # order from global RNG state and cannot be replayed, so it cannot be resumed exactly.
    sampler = loopline.EpochSampler(dataset, seed=SEED)
    return DataLoader(dataset, batch_size=BATCH, sampler=sampler, num_workers=2)


def make_model() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(SEED)
    model = nn.Linear(FEATURES, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.05)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: list) -> float:
    x, y = batch
    loss = nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def save_checkpoint(stream, model, optimizer) -> bytes:
    """Everything needed to continue: the stream's position is a few plain integers."""
    buffer = io.BytesIO()
    state = {
        "stream": stream.state_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    torch.save(state, buffer)
    return buffer.getvalue()


def run_uninterrupted() -> tuple[bytes, list, list[float]]:
    """Train for STEPS steps; return the checkpoint taken at CHECKPOINT_AT and what follows."""
    model, optimizer = make_model()
    # One DataLoader iteration for the whole run: workers stay alive across epochs.
    stream = loopline.forever(make_loader(make_dataset()))
    checkpoint, after, losses = b"", [], []
    for _ in range(STEPS):
        batch = next(stream)
        loss = train_step(model, optimizer, batch)
        if stream.step > CHECKPOINT_AT:
            after.append(batch)
            losses.append(loss)
        if stream.step % PRINT_EVERY == 0:
            print(f"  epoch {stream.epoch}  step {stream.step:3d}  loss {loss:.4f}")
        if stream.step == CHECKPOINT_AT:
            checkpoint = save_checkpoint(stream, model, optimizer)
            print(f"  -- checkpoint saved at step {stream.step} (epoch {stream.epoch})")
    return checkpoint, after, losses


def run_resumed(checkpoint: bytes) -> tuple[list, list[float], int]:
    """Start from scratch (new model, loader and stream) and continue from the checkpoint."""
    state = torch.load(io.BytesIO(checkpoint))
    model, optimizer = make_model()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    stream = loopline.forever(make_loader(make_dataset()))
    stream.load_state_dict(state["stream"])  # before the first next()
    start = stream.step
    batches, losses = [], []
    for _ in range(STEPS - start):
        batch = next(stream)
        batches.append(batch)
        losses.append(train_step(model, optimizer, batch))
    return batches, losses, start


def same_batches(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        all(torch.equal(u, v) for u, v in zip(p, q, strict=True)) for p, q in zip(a, b, strict=True)
    )


def show_random_sampler_is_not_resumable() -> None:
    stream = loopline.forever(DataLoader(make_dataset(), batch_size=BATCH, shuffle=True))
    try:
        stream.state_dict()
    except loopline.NotResumable:
        print("shuffle=True (RandomSampler): state_dict() raises NotResumable -> use EpochSampler")


def main() -> None:
    started = time.perf_counter()
    per_epoch = SAMPLES // BATCH
    print(f"training {STEPS} steps = {STEPS // per_epoch} epochs of {per_epoch} batches")
    checkpoint, expected, expected_losses = run_uninterrupted()

    print(f"resuming a fresh loader from the step-{CHECKPOINT_AT} checkpoint")
    batches, losses, start = run_resumed(checkpoint)
    print(f"  resumed at step {start}, replayed {len(batches)} steps")
    exact = same_batches(batches, expected) and losses == expected_losses
    print(f"resume exact: {exact}")

    show_random_sampler_is_not_resumable()
    print(f"done in {time.perf_counter() - started:.1f} s")
    if not exact:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
