"""How can I use a feedforward neural network's output as a training input in PyTorch?

Decide first which losses should reach which parameters; the code follows from that.

  (a) A downstream network fed the first one's output: pass it `first_out.detach()`.
      Each network keeps its own loss and optimizer, and the second loss cannot change
      the first network's gradients (checked below). Do not add `.requires_grad_(True)`:
      it makes the detached tensor a new leaf, so the second loss fills its `.grad` and
      still never reaches the first network. Leave `detach()` out only when the second
      loss *should* train the first network (end to end).
  (b) A network fed its own output within one training step: `loopline.unroll` adds
      every step's loss, not just the last one's. `grad="full"` backpropagates through
      the fed-back outputs, so the model learns to correct its own drift;
      `grad="detach"` trains each step as if its input were given, so no loss can blame
      the step before for a drifted input (on this toy it does not learn the dynamics).
  (c) Delayed feedback, the output of step t feeding step t + 2: `unroll(..., delay=2)`,
      with `x0` the history `[2, B, ...]` of the first two inputs.

Toy data, small models, CPU; runs in a few seconds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import loopline

MSE = nn.MSELoss()


def mlp(inputs: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, 32), nn.Tanh(), nn.Linear(32, outputs))


# --------------------------------------------------- (a) two networks, two losses


def two_networks() -> None:
    print("(a) a second network trained on the first network's output")
    torch.manual_seed(0)
    first, second = mlp(10, 5), mlp(5, 2)
    opt_first = torch.optim.Adam(first.parameters(), lr=1e-2)
    opt_second = torch.optim.Adam(second.parameters(), lr=1e-2)
    x = torch.randn(256, 10)  # [B, 10]
    features = torch.sin(x @ torch.randn(10, 5))  # what the first net should output: [B, 5]
    labels = features[:, :2] * features[:, 2:4]  # what the second net should output: [B, 2]

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        first_out = first(x)  # [B, 5]
        second_out = second(first_out.detach())  # a constant input: the cut is here
        return MSE(first_out, features), MSE(second_out, labels)

    loss_first, loss_second = losses()
    alone = torch.autograd.grad(loss_first, list(first.parameters()), retain_graph=True)
    (loss_first + loss_second).backward()  # both losses at once: detach keeps them apart
    unchanged = all(torch.equal(a, p.grad) for a, p in zip(alone, first.parameters(), strict=True))
    reached = all(p.grad is not None and bool(p.grad.any()) for p in second.parameters())
    print(f"    first net gradients unchanged by second loss: {unchanged}")
    print(f"    second net receives gradients: {reached}")

    for step in range(301):
        opt_first.zero_grad()
        opt_second.zero_grad()
        loss_first, loss_second = losses()
        (loss_first + loss_second).backward()
        opt_first.step()
        opt_second.step()
        if step % 150 == 0:
            print(f"    step {step:3d}: first loss {loss_first:.4f}, second loss {loss_second:.4f}")

    # The question's version: the second loss fills the copy's .grad, and stops there.
    first.zero_grad()
    copy = first(x).detach().requires_grad_(True)
    MSE(second(copy), labels).backward()
    reaches = any(p.grad is not None for p in first.parameters())
    print(f"    detach().requires_grad_(True) input has a grad: {copy.grad is not None}")
    print(f"    detach().requires_grad_(True) reaches the first net: {reaches}")


# --------------------------------------------------- (b) recurrent input, one step


def rotation(angle: float, scale: float = 0.98) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return scale * torch.tensor([[c, -s], [s, c]])  # [2, 2]


def trajectory(x0: torch.Tensor, matrix: torch.Tensor, steps: int) -> torch.Tensor:
    states, x = [], x0
    for _ in range(steps):
        x = x @ matrix.T  # x: [B, 2]
        states.append(x)
    return torch.stack(states)  # [T, B, 2]


def recurrent_input() -> None:
    print("(b) a network fed its own output, every step's loss counted")
    matrix, steps = rotation(0.3), 20
    for grad in ("full", "detach"):
        torch.manual_seed(0)
        model = mlp(2, 2)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(300):
            x0 = torch.randn(64, 2)  # [B, 2]
            out = loopline.unroll(model, x0, trajectory(x0, matrix, steps), loss_fn=MSE, grad=grad)
            opt.zero_grad()
            out.loss.backward()  # the mean of all 20 step losses
            opt.step()
        torch.manual_seed(1)
        x0 = torch.randn(256, 2)
        free = loopline.rollout(model.eval(), x0, steps).outputs  # inference, no graph
        error = MSE(free, trajectory(x0, matrix, steps)).item()
        print(
            f'    grad="{grad}": unrolled training loss {out.loss:.5f}, 20-step error {error:.5f}'
        )

    # The same loss written by hand: one plain loop, no detach anywhere.
    torch.manual_seed(2)
    model, x0 = mlp(2, 2), torch.randn(8, 2)
    targets = trajectory(x0, matrix, steps)
    x, losses = x0, []
    for target in targets:
        x = model(x)  # the output is the next input, graph and all
        losses.append(MSE(x, target))
    hand = torch.autograd.grad(torch.stack(losses).mean(), list(model.parameters()))
    loss = loopline.unroll(model, x0, targets, loss_fn=MSE).loss
    ours = torch.autograd.grad(loss, list(model.parameters()))
    same = all(torch.allclose(a, b) for a, b in zip(hand, ours, strict=True))
    print(f"    unroll equals the hand-written loop: {same}")


# --------------------------------------------------- (c) delayed feedback


def delayed_feedback() -> None:
    print("(c) delayed feedback: the output of step t is the input of step t + 2")
    matrix, steps = rotation(0.5), 16  # s_t = matrix @ s_(t-2): two interleaved spirals

    def sequences(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        history = torch.randn(2, batch, 2)  # s_-2, s_-1: [2, B, 2]
        states = list(history)
        for t in range(steps):
            states.append(states[t] @ matrix.T)
        return history, torch.stack(states[2:])  # x0 [2, B, 2], targets [T, B, 2]

    torch.manual_seed(0)
    model = mlp(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(301):
        history, targets = sequences(64)
        out = loopline.unroll(model, history, targets, loss_fn=MSE, delay=2)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if step % 150 == 0:
            print(f"    step {step:3d}: unrolled loss {out.loss:.5f}")

    # By hand: a queue of the inputs of the next two steps.
    history, targets = sequences(8)
    pending, losses = list(history), []
    for target in targets:
        y = model(pending.pop(0))
        losses.append(MSE(y, target))
        pending.append(y)  # read again two steps later
    hand = torch.autograd.grad(torch.stack(losses).mean(), list(model.parameters()))
    loss = loopline.unroll(model, history, targets, loss_fn=MSE, delay=2).loss
    ours = torch.autograd.grad(loss, list(model.parameters()))
    same = all(torch.allclose(a, b) for a, b in zip(hand, ours, strict=True))
    print(f"    delay=2 equals the hand-written loop: {same}")


if __name__ == "__main__":
    torch.set_num_threads(1)  # models this small run slower on several threads
    two_networks()
    recurrent_input()
    delayed_feedback()
