"""The hand-written TBPTT loop of PyTorch's word_language_model, for language_model_tbptt.py."""

from __future__ import annotations

import torch
from torch import nn


def batchify(data: torch.Tensor, bsz: int) -> torch.Tensor:
    nbatch = data.size(0) // bsz
    return data[: nbatch * bsz].view(bsz, -1).t().contiguous()


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len]


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def train_plain(model, optimizer, source, bptt: int, clip: float, windows: int) -> list[float]:
    criterion = nn.CrossEntropyLoss()
    hidden = model.init_state(source.size(1))
    losses = []
    for i in range(0, source.size(0) - 1, bptt):
        if len(losses) == windows:
            break
        data, targets = get_batch(source, i, bptt)
        hidden = repackage_hidden(hidden)
        optimizer.zero_grad()
        output, hidden = model(data, hidden)
        loss = criterion(output.view(-1, output.size(-1)), targets.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        losses.append(loss.item())
    return losses
