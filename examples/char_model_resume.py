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

To resume, checkpoint `stream.state_dict()` next to the model and optimizer: a few integers
(epoch, position), as `slices` seeds its draws with `loopline.current_shard().seed` and
`.epoch`, so any epoch can be replayed. Here a tiny causal transformer trains on text made in
code, 2 workers serve it, and a checkpoint at step 100 (mid-epoch) resumes into fresh objects.

`_plain_char_model.py` does the same job by hand: an IterableDataset that splits the slices
between the workers with `get_worker_info`, its epoch set before each, and a resume that
replays the saved epoch and drops the batches done. It serves the same batches, resumes bit
for bit and gives the same losses (in float64). Counted alike (code lines of the functions of
the job, not of the model), loopline saves 10 lines, and its workers run on across epochs,
where the plain loader starts them afresh each epoch (see the times).

`python examples/char_model_resume.py` prints (abridged, measured on this machine):

    one model call per batch: True
    loss fell: True
    resume exact: True
    plain PyTorch serves the same batches: True
      float64, 240 steps and 140 resumed: largest difference 4.4e-16
      time: loopline 5.0 s, plain 10.7 s (its workers start afresh each epoch)
    plain PyTorch gives the same losses: True
    plain resume exact: True
    lines: loopline 32, plain PyTorch 42 (saves 10)
"""

from __future__ import annotations

import io
import time
from itertools import islice

import numpy as np
import torch
from _lines import describe_counts
from _plain_char_model import (
    RandomSlices,
    make_loader_plain,
    resume_plain,
    save_plain,
    train_plain,
    train_step_plain,
)
from torch import nn
from torch.utils.data import DataLoader

import loopline

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "log", "big", "small"]
WORDS += ["red", "fast", "slowly", "and"]
SENTENCES = 2000
BLOCK = 32  # characters a model input sees
PER_EPOCH = 128  # slices per epoch: 8 batches of 16
BATCH = 16
BATCHES = PER_EPOCH // BATCH
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
        h = self.embed(tokens) + self.position[:steps]  # [T, B, D]
        mask = nn.Transformer.generate_square_subsequent_mask(steps, dtype=h.dtype)
        return self.head(self.blocks(h, mask=mask, is_causal=True))


def make_model(dtype: torch.dtype = torch.float32) -> tuple[TinyGPT, torch.optim.Optimizer]:
    torch.manual_seed(SEED)
    model = TinyGPT(len(VOCAB)).to(dtype)
    return model, torch.optim.Adam(model.parameters(), lr=3e-3)


# ------------------------------------------------------------- loopline's side of the job


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


def train_step(model: TinyGPT, optimizer: torch.optim.Optimizer, batch: torch.Tensor) -> float:
    inputs, targets = batch[:, :-1].T, batch[:, 1:].T  # [T, B]: unroll is time first
    out = loopline.unroll(
        model, None, targets, inputs=inputs, whole=True, loss_fn=nn.CrossEntropyLoss()
    )
    optimizer.zero_grad()
    out.loss.backward()  # the mean of the BLOCK positions' losses
    optimizer.step()
    return out.loss.item()


def train(model: TinyGPT, optimizer: torch.optim.Optimizer, stream: loopline.Forever):
    while True:  # the stream runs on into the next epoch, in the same workers
        yield train_step(model, optimizer, next(stream))


def save_checkpoint(stream: loopline.Forever, model: TinyGPT, optimizer) -> bytes:
    buffer = io.BytesIO()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    state["stream"] = stream.state_dict()  # epoch and position: the generator replays the rest
    torch.save(state, buffer)
    return buffer.getvalue()


def resume(checkpoint: bytes, model: TinyGPT, optimizer, stream: loopline.Forever):
    """A new process would do this: fresh objects, then the checkpoint loaded into them."""
    state = torch.load(io.BytesIO(checkpoint))
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    stream.load_state_dict(state["stream"])  # before the first next()
    return train(model, optimizer, stream)


# ------------------------------------------------------------- runs and checks


def run_loopline(dtype: torch.dtype, show: bool = False) -> tuple[list[float], list[float], bool]:
    """STEPS steps with a checkpoint at CHECKPOINT_AT, then the rest again after a resume."""
    model, optimizer = make_model(dtype)
    checkpoint, losses = b"", []
    with make_stream() as stream:  # closing it stops the workers
        for loss in islice(train(model, optimizer, stream), STEPS):
            losses.append(loss)
            if show and stream.step % 40 == 0:
                print(f"  epoch {stream.epoch:2d}  step {stream.step:3d}  loss {loss:.3f}")
            if stream.step == CHECKPOINT_AT:
                checkpoint = save_checkpoint(stream, model, optimizer)
    with make_stream() as stream:
        resumed = islice(resume(checkpoint, *make_model(dtype), stream), STEPS - CHECKPOINT_AT)
        return losses, list(resumed), model.calls == STEPS


def run_plain(dtype: torch.dtype) -> tuple[list[float], list[float]]:
    """The same with the plain loop, checkpointed at the same (epoch, step)."""
    model, optimizer = make_model(dtype)
    dataset, loader = make_loader_plain(TOKENS, BLOCK, PER_EPOCH, SEED, BATCH)
    checkpoint, losses = b"", []
    for loss, position in islice(train_plain(model, optimizer, dataset, loader), STEPS):
        losses.append(loss)
        if position == divmod(CHECKPOINT_AT, BATCHES):
            checkpoint = save_plain(model, optimizer, position)
    dataset, loader = make_loader_plain(TOKENS, BLOCK, PER_EPOCH, SEED, BATCH)
    resumed = resume_plain(checkpoint, *make_model(dtype), dataset, loader)
    return losses, [loss for loss, _ in islice(resumed, STEPS - CHECKPOINT_AT)]


def same_batches() -> bool:
    """Two epochs of both pipelines: the same batches, a new order in the second epoch, and
    each slice of the epoch once."""
    with make_stream() as stream:
        ours = [next(stream) for _ in range(2 * BATCHES)]
    dataset, loader = make_loader_plain(TOKENS, BLOCK, PER_EPOCH, SEED, BATCH)
    theirs = []
    for epoch in range(2):
        dataset.epoch = epoch
        theirs += list(loader)
    whole = torch.stack(list(RandomSlices(TOKENS, BLOCK, PER_EPOCH, SEED)))  # no workers: all
    once = sorted(torch.cat(theirs[:BATCHES]).tolist()) == sorted(whole.tolist())
    fresh = not torch.equal(theirs[0], theirs[BATCHES])
    return once and fresh and all(map(torch.equal, ours, theirs))


def compare_with_plain() -> tuple[bool, bool]:
    """The whole job in float64, resume included (the two sum the positions' losses in
    another order); and whether the plain run resumed bit for bit."""
    started = time.perf_counter()
    ours, ours_resumed, _ = run_loopline(torch.float64)
    middle = time.perf_counter()
    plain, plain_resumed = run_plain(torch.float64)
    ended = time.perf_counter()
    pairs = zip(ours + ours_resumed, plain + plain_resumed, strict=True)
    gap = max(abs(a - b) for a, b in pairs)
    print(
        f"  float64, {STEPS} steps and {len(plain_resumed)} resumed: largest difference {gap:.1e}"
    )
    print(f"  time: loopline {middle - started:.1f} s, plain {ended - middle:.1f} s "
          "(its workers start afresh each epoch)")  # fmt: skip
    return gap < 1e-10, plain_resumed == plain[CHECKPOINT_AT:]


def main() -> None:
    started = time.perf_counter()
    # Bitwise equality needs kernels that always sum in the same order: on the CPU these
    # already do, on a GPU some (scatter-adds, some convolutions) do not unless told to.
    torch.use_deterministic_algorithms(True)
    # A model this small gains nothing from intra-op threads, and on a busy machine their
    # spin-waiting slows each step down many times over; one thread keeps it steady.
    torch.set_num_threads(1)
    print(f"text: {len(TEXT)} characters, vocab {len(VOCAB)}: {TEXT[:48]!r}...")
    losses, resumed, one_call = run_loopline(torch.float32, show=True)
    print(f"one model call per batch: {one_call}")
    print(f"loss fell: {np.mean(losses[-20:]) < np.mean(losses[:20]) - 0.5}")
    print(f"  resumed at step {CHECKPOINT_AT}, replayed {len(resumed)} steps")
    print(f"resume exact: {resumed == losses[CHECKPOINT_AT:]}")  # floats compared exactly

    print(f"plain PyTorch serves the same batches: {same_batches()}")
    same, exact = compare_with_plain()
    print(f"plain PyTorch gives the same losses: {same}")
    print(f"plain resume exact: {exact}")
    ours = (slices, make_stream, train_step, train, save_checkpoint, resume)
    plain = (
        RandomSlices,
        make_loader_plain,
        train_step_plain,
        train_plain,
        save_plain,
        resume_plain,
    )
    print(describe_counts(ours, plain))
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
