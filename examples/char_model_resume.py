"""How do I train a GPT-style character model over an endless stream and resume exactly after
a kill?

Serve random slices of the text from a generator function through
`loopline.from_generator`, iterate the DataLoader with `loopline.forever`, and train with
`loopline.unroll(..., whole=True)`, which calls the causal model once on the whole
teacher-forced window and averages the loss of every position:

    stream = loopline.forever(DataLoader(loopline.from_generator(slices, ...), batch_size=16))
    batch = next(stream)                                      # [B, BLOCK + 1] token ids
    inputs, targets = batch[:, :-1].T, batch[:, 1:].T         # [T, B], time first
    out = loopline.unroll(model, None, targets, inputs=inputs, whole=True, loss_fn=...)

To resume, checkpoint `stream.state_dict()` next to the model and optimizer: it is a few
integers (epoch, position), because the generator draws its slices from a generator seeded
by `loopline.current_shard().seed` and `.epoch`, so every epoch can be replayed.

This example makes its text in code (pseudo-random sentences from a small word list), trains
a tiny causal transformer, saves a checkpoint at step CHECKPOINT_AT, goes on to STEPS, then
restores the checkpoint into fresh objects, as after a kill, and shows that the losses from
there on are bitwise those of the uninterrupted run ("resume exact: True").

Run it with `python examples/char_model_resume.py`.
"""

from __future__ import annotations

import io
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

import loopline

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "log", "big", "small"]
WORDS += ["red", "fast", "slowly", "and"]
SENTENCES = 2000
BLOCK = 32  # characters a model input sees
PER_EPOCH = 128  # slices per epoch: 8 batches of 16
BATCH = 16
STEPS = 240  # 30 epochs
CHECKPOINT_AT = 100  # mid-epoch, so resume lands inside one
SEED = 0


def make_text() -> str:
    rng = np.random.default_rng(SEED)
    sentences = (" ".join(rng.choice(WORDS, rng.integers(3, 8))) for _ in range(SENTENCES))
    return ". ".join(sentences) + "."


TEXT = make_text()
VOCAB = sorted(set(TEXT))
TOKENS = torch.tensor([VOCAB.index(c) for c in TEXT])


def slices(tokens: torch.Tensor, block: int, count: int):
    """`count` random windows of `block + 1` tokens: inputs and their next characters."""
    shard = loopline.current_shard()
    # Seeded by (seed, epoch) only, so an epoch's slices are the same whenever it is
    # replayed: that is what lets `forever` resume it. Every worker runs this same sequence
    # and keeps its own share of it (from_generator's default, sharded=False).
    rng = np.random.default_rng([shard.seed, shard.epoch])
    for start in rng.integers(0, len(tokens) - block - 1, count).tolist():
        yield tokens[start : start + block + 1]


def make_stream() -> loopline.Forever:
    dataset = loopline.from_generator(slices, TOKENS, BLOCK, PER_EPOCH, seed=SEED)
    return loopline.forever(DataLoader(dataset, batch_size=BATCH, num_workers=2))


class TinyGPT(nn.Module):
    """Tokens [T, B] -> next-token logits [T, B, V], each position seeing only the past."""

    def __init__(self, vocab: int, d_model: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Parameter(torch.zeros(BLOCK, 1, d_model))
        # dropout=0: nothing random in a step, so a resumed run can match bit for bit.
        layer = nn.TransformerEncoderLayer(d_model, nhead=2, dim_feedforward=64, dropout=0.0)
        self.blocks = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, vocab)
        self.calls = 0  # forward calls, to show unroll(whole=True) makes one per batch

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        steps = len(tokens)
        mask = nn.Transformer.generate_square_subsequent_mask(steps)
        h = self.embed(tokens) + self.position[:steps]  # [T, B, D]
        return self.head(self.blocks(h, mask=mask, is_causal=True))


def make_model() -> tuple[TinyGPT, torch.optim.Optimizer]:
    torch.manual_seed(SEED)
    model = TinyGPT(len(VOCAB))
    return model, torch.optim.Adam(model.parameters(), lr=3e-3)


def train_step(model: TinyGPT, optimizer: torch.optim.Optimizer, batch: torch.Tensor) -> float:
    inputs, targets = batch[:, :-1].T, batch[:, 1:].T  # [T, B]: unroll is time first
    out = loopline.unroll(
        model, None, targets, inputs=inputs, whole=True, loss_fn=nn.CrossEntropyLoss()
    )
    optimizer.zero_grad()
    out.loss.backward()  # the mean of the BLOCK positions' losses
    optimizer.step()
    return out.loss.item()


def save_checkpoint(stream: loopline.Forever, model: TinyGPT, optimizer) -> bytes:
    buffer = io.BytesIO()
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "stream": stream.state_dict(),  # epoch and position: the generator replays the rest
    }
    torch.save(state, buffer)
    return buffer.getvalue()


def run_uninterrupted() -> tuple[bytes, list[float], bool]:
    model, optimizer = make_model()
    checkpoint, losses = b"", []
    with make_stream() as stream:  # closing it stops the workers
        for _ in range(STEPS):
            losses.append(train_step(model, optimizer, next(stream)))
            if stream.step % 40 == 0:
                print(f"  epoch {stream.epoch:2d}  step {stream.step:3d}  loss {losses[-1]:.3f}")
            if stream.step == CHECKPOINT_AT:
                checkpoint = save_checkpoint(stream, model, optimizer)
                print(f"  -- checkpoint at step {stream.step} (epoch {stream.epoch})")
    return checkpoint, losses, model.calls == STEPS


def run_resumed(checkpoint: bytes) -> list[float]:
    """A new process would do this: fresh objects, then the checkpoint loaded into them."""
    state = torch.load(io.BytesIO(checkpoint))
    model, optimizer = make_model()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    losses = []
    with make_stream() as stream:
        stream.load_state_dict(state["stream"])  # before the first next()
        for _ in range(STEPS - stream.step):
            losses.append(train_step(model, optimizer, next(stream)))
    return losses


def main() -> None:
    started = time.perf_counter()
    # Bitwise equality needs kernels that always sum in the same order: on the CPU these
    # already do, on a GPU some (scatter-adds, some convolutions) do not unless told to.
    torch.use_deterministic_algorithms(True)
    print(f"text: {len(TEXT)} characters, vocab {len(VOCAB)}: {TEXT[:48]!r}...")
    checkpoint, losses, one_call = run_uninterrupted()
    print(f"one model call per batch: {one_call}")
    print(f"loss fell: {np.mean(losses[-20:]) < np.mean(losses[:20]) - 0.5}")

    resumed = run_resumed(checkpoint)
    print(f"  resumed at step {CHECKPOINT_AT}, replayed {len(resumed)} steps")
    print(f"resume exact: {resumed == losses[CHECKPOINT_AT:]}")  # floats compared exactly
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
