"""pde_pushforward.py's job in plain PyTorch: the pushforward step, its k and its checks by hand."""

from __future__ import annotations

import io

import torch
from torch import nn


def pushforward_plain(model, x0: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    with torch.no_grad():
        x = x0
        for _ in range(k):
            x = model(x)
    y = model(x)
    # mse_loss only warns when the shapes differ, and then compares broadcast elements.
    if y.shape != targets[k].shape:
        raise ValueError(f"output of shape {tuple(y.shape)}, target {tuple(targets[k].shape)}")
    return nn.functional.mse_loss(y, targets[k])


def train_plain(model, data: torch.Tensor, max_unroll: int, steps: int, batch: int, seed: int):
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    draws = torch.Generator().manual_seed(seed)  # k apart from the global RNG
    batches = torch.Generator().manual_seed(seed)
    losses, ks, checkpoint = [], [], b""
    for step in range(steps):
        if step == steps // 2:
            buffer = io.BytesIO()
            torch.save(draws.get_state(), buffer)
            checkpoint = buffer.getvalue()
        k = int(torch.randint(0, max_unroll + 1, (), generator=draws))
        b = torch.randint(0, len(data), (batch,), generator=batches)
        t0 = torch.randint(0, data.shape[1] - 1 - k, (batch,), generator=batches)
        window = data[b[:, None], t0[:, None] + torch.arange(k + 2)].transpose(0, 1)
        loss = pushforward_plain(model, window[0], window[1:], k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        ks.append(k)
    return losses, ks, checkpoint


def horizon_plain(model, test: torch.Tensor, steps: int) -> torch.Tensor:
    errors, x = [], test[:, 0]
    with torch.no_grad():
        for t in range(steps):
            x = model(x)
            errors.append((x - test[:, t + 1]).square().mean().sqrt())
    return torch.stack(errors)
