"""Benchmark of training through feedback: loopline.unroll against the hand-written loop.

Run ``python benchmarks/training.py`` (about 40 s) or ``--quick`` (about 10 s). Tables are
printed and written to ``benchmarks/out/training.md``.

One training step is zero_grad, the unrolled forward over the horizon (the model fed its
own output, an MSE loss at every step, averaged), backward and ``optimizer.step()``. The
model is an MLP 32 -> 128 -> 32 (ReLU, Tanh out), batch 64, SGD, one thread. Timing:
``time.perf_counter`` around blocks of training steps, variants interleaved round by
round (the order rotating), medians; a second copy of the hand loop shows the noise floor.

Sections 3-5 (``_training_ports.py``) put three ported training scripts against their
hand-written loops: an LSTM language model with truncated BPTT, pushforward on a 1-D
field, a GPT-style character model.

Memory: a ``saved_tensors_hooks`` pair counts the storages the autograd graph holds for
backward (each storage once, however many nodes save it; parameters and data excluded),
live and at their peak over one training step. That is what ``tracemalloc`` cannot see.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _report import publish, settings, table
from _training_ports import figure_char_model, figure_language_model, figure_pushforward
from torch import nn

import loopline

OUT = Path(__file__).resolve().parent / "out" / "training.md"
HORIZONS = (10, 50, 200)
FEATURES, HIDDEN, BATCH, WINDOW = 32, 128, 64, 10
MSE = nn.MSELoss()
Step = Callable[[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor], None]


def hand_step(
    model: nn.Module, opt: torch.optim.Optimizer, x0: torch.Tensor, targets: torch.Tensor
) -> None:
    """The loop a user writes: every step's loss kept, the gradient through every input."""
    opt.zero_grad(set_to_none=True)
    x, losses = x0, []
    for target in targets:
        y = model(x)  # y: [B, D], fed back as the next input
        losses.append(MSE(y, target))
        x = y
    torch.stack(losses).mean().backward()
    opt.step()


def unroll_step(
    model: nn.Module, opt: torch.optim.Optimizer, x0: torch.Tensor, targets: torch.Tensor
) -> None:
    opt.zero_grad(set_to_none=True)
    loopline.unroll(model, x0, targets, loss_fn=MSE).loss.backward()
    opt.step()


def detach_step(
    model: nn.Module, opt: torch.optim.Optimizer, x0: torch.Tensor, targets: torch.Tensor
) -> None:
    opt.zero_grad(set_to_none=True)
    loopline.unroll(model, x0, targets, loss_fn=MSE, grad="detach").loss.backward()
    opt.step()


def windows_step(
    model: nn.Module, opt: torch.optim.Optimizer, x0: torch.Tensor, targets: torch.Tensor
) -> None:
    """One backward and optimizer step per window: the graph never spans more than it."""
    for part in loopline.unroll_windows(model, x0, targets, window=WINDOW, loss_fn=MSE):
        opt.zero_grad(set_to_none=True)
        part.loss.backward()
        opt.step()


class _Held:
    """A saved tensor the graph holds; tells the counter when backward lets it go."""

    def __init__(self, counter: SavedBytes, key: int, tensor: torch.Tensor) -> None:
        self.counter, self.key, self.tensor = counter, key, tensor

    def __del__(self) -> None:
        self.counter.release(self.key)


class SavedBytes:
    """Bytes of the storages saved for backward that are alive now, and their peak."""

    def __init__(self, exclude: list[torch.Tensor]) -> None:
        self.exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self.live: dict[int, list[int]] = {}  # storage address -> [holders, bytes]
        self.now = self.peak = 0

    def pack(self, tensor: torch.Tensor) -> object:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self.exclude:
            return tensor
        if key not in self.live:
            self.live[key] = [0, storage.nbytes()]
            self.now += storage.nbytes()
            self.peak = max(self.peak, self.now)
        self.live[key][0] += 1
        return _Held(self, key, tensor)

    def release(self, key: int) -> None:
        entry = self.live[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.now -= entry[1]
            del self.live[key]

    @staticmethod
    def unpack(held: object) -> torch.Tensor:
        return held.tensor if isinstance(held, _Held) else held


def peak_saved(step: Step, horizon: int) -> int:
    """Peak bytes held for backward during one training step (activations only)."""
    model, opt, x0, targets = setup(horizon)
    counter = SavedBytes([*model.parameters(), x0, targets])
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        step(model, opt, x0, targets)
    assert counter.now == 0, f"{counter.now} bytes still held after the step"
    return counter.peak


def setup(horizon: int) -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, FEATURES), nn.Tanh()
    )
    x0, targets = torch.randn(BATCH, FEATURES), torch.rand(horizon, BATCH, FEATURES) - 0.5
    return model, torch.optim.SGD(model.parameters(), lr=1e-3), x0, targets


def check_same_gradients(horizon: int) -> None:
    model, _, x0, targets = setup(horizon)
    x, losses = x0, []
    for target in targets:
        x = model(x)
        losses.append(MSE(x, target))
    expected = torch.autograd.grad(torch.stack(losses).mean(), list(model.parameters()))
    loss = loopline.unroll(model, x0, targets, loss_fn=MSE).loss
    got = torch.autograd.grad(loss, list(model.parameters()))
    assert all(torch.allclose(a, b) for a, b in zip(got, expected, strict=True)), horizon


def timed(steps: dict[str, Step], horizon: int, rounds: int) -> dict[str, float]:
    """Median milliseconds per training step of each variant, interleaved round by round."""
    reps = max(1, 200 // horizon)  # a block of about 200 unrolled steps per sample
    runs = {name: setup(horizon) for name in steps}  # each variant trains its own copy
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds + 1):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            step, run = steps[name], runs[name]
            start = time.perf_counter()
            for _ in range(reps):
                step(*run)
            if r > 0:  # round 0 warms up
                times[name].append((time.perf_counter() - start) / reps * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


MEMORY_STEPS = (hand_step, unroll_step, detach_step, windows_step)
WINDOWS = f"unroll_windows(window={WINDOW})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 10 s)")
    quick = parser.parse_args().quick
    torch.set_num_threads(1)
    started = time.perf_counter()
    time_rows, memory_rows = [], []
    for horizon in HORIZONS:
        check_same_gradients(horizon)
        steps = {"hand": hand_step, "unroll": unroll_step, "control": hand_step}
        timings = timed(steps, horizon, rounds=9 if quick else 41)
        ms = {name: f"{t:.2f} ({t / timings['hand']:.3f}x)" for name, t in timings.items()}
        time_rows.append([str(horizon), ms["hand"].split()[0], ms["unroll"], ms["control"]])
        kib = [peak_saved(step, horizon) / 1024 for step in MEMORY_STEPS]
        memory_rows.append([str(horizon), *(f"{k:,.0f}" for k in kib)])
    sections = [
        settings(quick),
        "### 1. Time per training step (forward + backward + optimizer step), ms "
        "(ratio to the hand loop)\n\n"
        + table(["horizon", "hand loop", "unroll", "hand loop again (noise)"], time_rows)
        + f"\n\nMLP {FEATURES} -> {HIDDEN} -> {FEATURES}, batch {BATCH}, SGD. Goal: unroll "
        "within 5% of the hand loop (1.05x). Both compute the same loss and gradients "
        "(checked before timing).",
        "### 2. Peak bytes saved for backward in one training step, KiB\n\n"
        + table(
            ["horizon", "hand loop", 'unroll, grad="full"', 'unroll, grad="detach"', WINDOWS],
            memory_rows,
        )
        + "\n\nActivation storages held by the autograd graph (parameters and data excluded), "
        "at their peak, which is the moment before backward. Goal: unroll_windows flat in the "
        "horizon: it calls backward and optimizer.step() per window, so the graph never spans "
        f'more than {WINDOW} steps. grad="detach" cuts the gradient path but not the graph: '
        "the mean loss is backpropagated once, so every step's graph is alive until then.",
        figure_language_model(quick, SavedBytes),
        figure_pushforward(quick),
        figure_char_model(quick),
    ]
    publish("loopline training benchmark", sections, OUT, started)


if __name__ == "__main__":
    main()
