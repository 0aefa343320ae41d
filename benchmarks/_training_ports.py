"""Figures of benchmarks/training.py for three ported training scripts, each against its
hand-written loop in the same rounds: a word-level LSTM language model trained with
truncated BPTT (PyTorch's word_language_model: batchify, get_batch, repackage_hidden),
the pushforward trick of neural PDE solvers, and a GPT-style character model.

Each first checks that both compute the same loss (float64, to 1e-10), then times
training steps of both (float32) interleaved round by round, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import loopline

CE = nn.CrossEntropyLoss()
MSE = nn.MSELoss()
VOCAB, BATCH, BPTT = 50, 16, 35


class TokenLSTM(nn.Module):
    """Tokens [T, B] (or [B] for one step), state (h, c) -> logits [T, B, V] (or [B, V])."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.lstm = nn.Embedding(VOCAB, 64), nn.LSTM(64, 128)
        self.head = nn.Linear(128, VOCAB)

    def forward(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        step = tokens.dim() == 1
        out, state = self.lstm(self.embed(tokens[None] if step else tokens), state)
        logits = self.head(out)
        return (logits[0] if step else logits), state


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds of each variant, run in turn every round (the order rotating)."""
    names, times = list(variants), {name: [] for name in variants}
    for r in range(rounds + 1):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            variants[name]()
            if r:  # round 0 warms up
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def ratios(times: dict[str, float], base: str) -> list[str]:
    return [f"{times[name] * 1e3:.1f} ms ({times[name] / times[base]:.2f}x)" for name in times]


# ---------------------------------------------------------------- language model, TBPTT


def lm_data(length: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (length, BATCH), generator=torch.Generator().manual_seed(1))


def lm_zeros(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(1, BATCH, 128, dtype=dtype), torch.zeros(1, BATCH, 128, dtype=dtype)


def lm_hand(model: nn.Module, opt: Any, data: torch.Tensor) -> list[float]:
    """The word_language_model loop: get_batch, repackage_hidden, one fused call."""
    hidden, losses = lm_zeros(next(model.parameters()).dtype), []
    for i in range(0, len(data) - 1, BPTT):
        seq = min(BPTT, len(data) - 1 - i)
        x, y = data[i : i + seq], data[i + 1 : i + 1 + seq]
        hidden = tuple(h.detach() for h in hidden)  # repackage_hidden
        opt.zero_grad()
        logits, hidden = model(x, hidden)
        loss = CE(logits.reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def lm_loopline(model: nn.Module, opt: Any, data: torch.Tensor, whole: bool) -> list[float]:
    state = lm_zeros(next(model.parameters()).dtype)
    windows = loopline.unroll_windows(
        model, None, data[1:], inputs=data[:-1], whole=whole, window=BPTT, state=state,
        loss_fn=CE, feedback=lambda logits: logits.argmax(-1),
    )  # fmt: skip
    losses = []
    for part in windows:
        opt.zero_grad()
        part.loss.backward()
        opt.step()
        losses.append(part.loss.item())
    return losses


def lm_setup(dtype: torch.dtype) -> tuple[nn.Module, Any]:
    model = TokenLSTM().to(dtype)
    return model, torch.optim.SGD(model.parameters(), lr=0.5)


def figure_language_model(quick: bool, counter_cls: Any) -> str:
    data = lm_data(BPTT * 4 + 1)
    ways = {
        "hand": lambda m, o: lm_hand(m, o, data),
        "whole": lambda m, o: lm_loopline(m, o, data, True),
        "steps": lambda m, o: lm_loopline(m, o, data, False),
    }
    reference = ways["hand"](*lm_setup(torch.float64))
    for name in ("whole", "steps"):
        got = ways[name](*lm_setup(torch.float64))
        assert max(abs(a - b) for a, b in zip(got, reference, strict=True)) < 1e-10, name
    runs = {name: lm_setup(torch.float32) for name in ways}
    times = interleaved({n: (lambda n=n: ways[n](*runs[n])) for n in ways}, 5 if quick else 15)
    memory = []
    for length in (BPTT, 4 * BPTT, 16 * BPTT):
        model, _ = lm_setup(torch.float32)
        counter = counter_cls(list(model.parameters()))
        with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
            lm_loopline(
                model, torch.optim.SGD(model.parameters(), lr=0.1), lm_data(length + 1), True
            )
        memory.append(f"{counter.peak / 1024:,.0f}")
    hand, whole, steps = ratios(times, "hand")
    return (
        "### 3. Word-level LSTM language model, truncated BPTT (4 windows of 35, batch 16)\n\n"
        + "| hand loop (fused nn.LSTM per window) | loopline, whole=True | loopline, one call "
        "per step | loss equal, fp64 |\n|---|---|---|---|\n"
        + f"| {hand} | {whole} | {steps} | yes (to 1e-10, all three) |\n\n"
        + "Peak KiB held for backward, loopline whole=True, over sequences of 35 / 140 / 560 "
        f"tokens: {' / '.join(memory)} (flat: one window's graph at a time)."
    )


# ---------------------------------------------------------------- pushforward, 1-D PDE


def pde_setup(dtype: torch.dtype) -> tuple[nn.Module, Any, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(1, 16, 5, padding=2, padding_mode="circular"), nn.GELU(),
        nn.Conv1d(16, 1, 5, padding=2, padding_mode="circular"),
    ).to(dtype)  # fmt: skip
    data = torch.randn(4, 32, 1, 64, dtype=dtype)  # [T, B, 1, X]
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), data


def pde_hand(model: nn.Module, opt: Any, data: torch.Tensor, ks: list[int]) -> list[float]:
    losses = []
    for k in ks:
        x = data[0]
        with torch.no_grad():
            for _ in range(k):
                x = model(x)
        opt.zero_grad()
        loss = MSE(model(x), data[k + 1])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def pde_loopline(model: nn.Module, opt: Any, data: torch.Tensor, ks: list[int]) -> list[float]:
    draw, losses = loopline.PushforwardSteps(2, seed=0), []
    for _ in ks:
        opt.zero_grad()
        out = loopline.pushforward(model, data[0], data[1:], loss_fn=MSE, k=draw)
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    return losses


def figure_pushforward(quick: bool) -> str:
    draw = loopline.PushforwardSteps(2, seed=0)
    ks = [draw() for _ in range(20)]  # the same k sequence the loopline side draws
    reference = pde_hand(*pde_setup(torch.float64), ks)
    got = pde_loopline(*pde_setup(torch.float64), ks)
    assert max(abs(a - b) for a, b in zip(got, reference, strict=True)) < 1e-10
    runs = {name: pde_setup(torch.float32) for name in ("hand", "loopline")}
    ways = {"hand": pde_hand, "loopline": pde_loopline}
    times = interleaved({n: (lambda n=n: ways[n](*runs[n], ks)) for n in ways}, 5 if quick else 15)
    hand, ours = ratios(times, "hand")
    return (
        "### 4. Pushforward on a 1-D field (Conv1d surrogate, 20 steps, k in [0, 2])\n\n"
        + "| hand loop | loopline.pushforward(k=PushforwardSteps(2)) | loss equal, fp64 |\n"
        + f"|---|---|---|\n| {hand} | {ours} | yes (to 1e-10) |"
    )


# ---------------------------------------------------------------- character model


class CausalLM(nn.Module):
    """Tokens [T, B] -> logits [T, B, V] through a causal transformer."""

    def __init__(self, vocab: int = 40, width: int = 32) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.head = nn.Embedding(vocab, width), nn.Linear(width, vocab)
        layer = nn.TransformerEncoderLayer(width, 2, 64, dropout=0.0)
        self.body = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(
            len(tokens), dtype=self.embed.weight.dtype
        )
        return self.head(self.body(self.embed(tokens), mask=mask, is_causal=True))


def char_steps(model: nn.Module, opt: Any, data: torch.Tensor, ours: bool) -> list[float]:
    losses = []
    for batch in data:  # batch: [T + 1, B]
        opt.zero_grad()
        if ours:
            loss = loopline.unroll(
                model, None, batch[1:], inputs=batch[:-1], whole=True, loss_fn=CE
            ).loss
        else:
            logits = model(batch[:-1])
            loss = CE(logits.reshape(-1, logits.shape[-1]), batch[1:].reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def figure_char_model(quick: bool) -> str:
    data = torch.randint(0, 40, (5, 65, 16), generator=torch.Generator().manual_seed(2))

    def setup(dtype: torch.dtype) -> tuple[nn.Module, Any]:
        model = CausalLM().to(dtype)
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

    reference = char_steps(*setup(torch.float64), data, False)
    got = char_steps(*setup(torch.float64), data, True)
    assert max(abs(a - b) for a, b in zip(got, reference, strict=True)) < 1e-10
    runs = {name: setup(torch.float32) for name in ("hand", "loopline")}
    times = interleaved(
        {n: (lambda n=n: char_steps(*runs[n], data, n == "loopline")) for n in runs},
        5 if quick else 15,
    )
    hand, ours = ratios(times, "hand")
    return (
        "### 5. GPT-style character model (2 causal layers, 64 positions, batch 16, 5 steps)\n\n"
        + "| hand loop (flattened cross-entropy) | loopline.unroll(inputs=..., whole=True) | "
        f"loss equal, fp64 |\n|---|---|---|\n| {hand} | {ours} | yes (to 1e-10) |"
    )
