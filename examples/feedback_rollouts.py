"""How can I use PyTorch DataLoader to pass model output as input?

Let the DataLoader do what it is made for, serving batches of starting points, and run the
feedback loop itself with `loopline.rollout(model, x0, steps)`: step t computes
`y_t = model(x_t)` and feeds `x_{t+1} = feedback(y_t)` back, for every sample of the batch.
Nothing has to be fed back into the DataLoader.

This example shows, in order:

  (a) plain recursion with an MLP: `rollout` for N steps, and the lazy `Rollout` that
      yields one step at a time; both match the hand-written loop;
  (b) recursion with state on an nn.LSTM: nn.LSTM returns `(output, (h, c))`, not a
      tensor, so a small wrapper runs the LSTM and a head on the last time step and returns
      `(y, state)`; `rollout(..., state=...)` threads (h, c) from step to step, and
      `feedback` turns `y: [B, D]` back into a `[B, 1, D]` input. Passing the bare nn.LSTM
      without state gets an error that says so;
  (c) batched recursion: `x0` is a DataLoader batch; each sample stops on its own when it
      has converged (`until=loopline.converged()`), and a NaN planted in one record is
      frozen and flagged (`on_nonfinite="stop"`) while the other samples run on.

The models are random or hand-set; nothing is trained or downloaded.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import loopline

FEATURES = 4
HIDDEN = 16
SEED = 0


# ------------------------------------------------------------- (a) plain recursion


def plain_recursion() -> None:
    print("(a) plain recursion: an MLP fed its own output")
    torch.manual_seed(SEED)
    # eval(): rollout keeps the autograd graph for a model in training mode; not wanted here.
    model = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, FEATURES))
    model.eval()
    x0 = torch.randn(2, FEATURES)  # [B, D]

    trajectory = loopline.rollout(model, x0, 6)
    print(f"    rollout(model, x0 {tuple(x0.shape)}, 6): outputs {tuple(trajectory.outputs.shape)}")

    with torch.no_grad():  # the loop rollout replaces
        x, expected = x0, []
        for _ in range(6):
            x = model(x)
            expected.append(x)
    same = torch.allclose(trajectory.outputs, torch.stack(expected))

    for t, y in loopline.Rollout(model, x0, 3):  # the lazy form, one step at a time
        print(f"    Rollout step {t}: y[0] = {[round(v, 3) for v in y[0].tolist()]}")
    print(f"plain recursion matches the hand loop: {same}")


# ------------------------------------------------------------- (b) recursion with state


class LSTMForecaster(nn.Module):
    """One step of an LSTM forecaster: `forward(x, state) -> (y, state)`, what rollout needs."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, features)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        # x: [B, 1, D]; state: (h, c), each [layers, B, H]
        out, state = self.lstm(x, state)  # out: [B, 1, H]
        y = self.head(out[:, -1, :])  # y: [B, D], the prediction for the next time step
        return y, state


def recursion_with_state() -> None:
    print("(b) recursion with state: an nn.LSTM forecaster")
    torch.manual_seed(SEED)
    model = LSTMForecaster(FEATURES, HIDDEN).eval()
    history = torch.randn(3, 10, FEATURES)  # [B, T, D], the observed past

    # Warm the state up on the history, then forecast from its last step.
    with torch.no_grad():
        _, state = model.lstm(history[:, :-1])
    x0 = history[:, -1:]  # [B, 1, D]
    # feedback: the forecast y: [B, D] becomes the next one-step input [B, 1, D]
    trajectory = loopline.rollout(model, x0, 5, state=state, feedback=lambda y: y.unsqueeze(1))
    h, c = trajectory.state
    print(f"    forecast {tuple(trajectory.outputs.shape)}, final h {tuple(h.shape)}")

    # Check: one LSTM pass over the whole input sequence (x0, then each fed-back forecast)
    # must end in the same (h, c) as the rollout did, step by step.
    inputs = torch.cat([x0, trajectory.outputs[:-1].transpose(0, 1)], dim=1)  # [B, 5, D]
    with torch.no_grad():
        _, (h_ref, c_ref) = model.lstm(inputs, state)
    threaded = torch.allclose(h, h_ref, atol=1e-6) and torch.allclose(c, c_ref, atol=1e-6)
    print(f"lstm state threaded: {threaded}")

    try:  # the bare nn.LSTM returns (output, (h, c)), which cannot be fed back
        loopline.rollout(model.lstm, x0, 5)
        refused = False
    except ValueError as error:
        print(f"    bare nn.LSTM without state: ValueError: {error}")
        refused = True
    print(f"bare lstm refused: {refused}")


# ------------------------------------------------------------- (c) batched recursion


def batched_recursion() -> None:
    print("(c) batched recursion: x0 from a DataLoader, per-sample stopping, a planted NaN")
    torch.manual_seed(SEED)
    # A contraction, y = W x + b with ||W|| = 0.5: every sample converges to the same fixed
    # point, (I - W) x* = b, in steps that grow with its distance from x*.
    model = nn.Linear(FEATURES, FEATURES).eval()
    with torch.no_grad():
        model.weight.mul_(0.5 / torch.linalg.matrix_norm(model.weight, ord=2))
        fixed = torch.linalg.solve(torch.eye(FEATURES) - model.weight, model.bias)
    starts = torch.randn(8, FEATURES) * torch.logspace(0, 6, 8)[:, None]  # near to far
    starts[5, 2] = float("nan")  # a corrupt record
    loader = DataLoader(TensorDataset(starts), batch_size=4)

    lengths, diverged, at_fixed = [], [], True
    for i, (x0,) in enumerate(loader):
        trajectory = loopline.rollout(
            model, x0, 200, until=loopline.converged(atol=1e-5), on_nonfinite="stop"
        )
        ok = ~trajectory.diverged  # the others ran on, each until it converged
        at_fixed &= torch.allclose(trajectory.last[ok], fixed.expand_as(x0)[ok], atol=1e-4)
        print(
            f"    batch {i}: lengths {trajectory.lengths.tolist()}, "
            f"diverged {trajectory.diverged.tolist()}"
        )
        lengths += trajectory.lengths.tolist()
        diverged += trajectory.diverged.tolist()

    finite = [n for n, bad in zip(lengths, diverged, strict=True) if not bad]
    own_pace = finite == sorted(finite) and len(set(finite)) > 1 and max(finite) < 200
    print(f"per-sample stopping: {at_fixed and own_pace}")  # the farther, the longer
    print(f"nan sample flagged: {diverged == [i == 5 for i in range(8)]}")

    try:  # the default, on_nonfinite="raise", names the step and the samples
        loopline.rollout(model, starts[4:], 200, until=loopline.converged(atol=1e-5))
    except loopline.RolloutDiverged as error:
        print(f"    by default: RolloutDiverged at step {error.step}, samples {error.samples}:")
        print(f"    {error}")


def main() -> None:
    started = time.perf_counter()
    plain_recursion()
    recursion_with_state()
    batched_recursion()
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
