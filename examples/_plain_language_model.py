"""language_model_tbptt.py's job in plain PyTorch, the way its word_language_model does it."""

from __future__ import annotations

import io

import torch
from torch import nn


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len]


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def train_plain(model, optimizer, source, bptt: int, clip: float, position=(0, 0), hidden=None):
    # Endless, and unlike word_language_model the hidden state goes on across the epoch seam.
    criterion = nn.CrossEntropyLoss()
    epoch, start = position
    if hidden is None:
        hidden = model.init_state(source.size(1))
    while True:
        for i in range(start, source.size(0) - 1, bptt):
            data, targets = get_batch(source, i, bptt)
            hidden = repackage_hidden(hidden)
            optimizer.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, output.size(-1)), targets.reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            yield loss.item(), (epoch, i + bptt), hidden  # (epoch, row) where the next starts
        epoch, start = epoch + 1, 0


def save_plain(model, optimizer, position, hidden) -> bytes:
    buffer = io.BytesIO()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    state["position"] = position
    state["hidden"] = repackage_hidden(hidden)
    torch.save(state, buffer)
    return buffer.getvalue()


def resume_plain(checkpoint: bytes, model, optimizer, source, bptt: int, clip: float):
    saved = torch.load(io.BytesIO(checkpoint))
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    return train_plain(model, optimizer, source, bptt, clip, saved["position"], saved["hidden"])
