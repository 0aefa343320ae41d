"""Streaming truncated BPTT with checkpoints (issue 13): a token LSTM trained over an
endless stream of chunks, its recurrent state carried (detached) across windows and
chunks, killed mid-chunk and resumed from a checkpoint of the model, the optimizer, the
stream, the windows and the chunk: the losses and weights equal the uninterrupted run,
bit for bit."""

from __future__ import annotations

import copy
import io

import torch
from torch import nn
from torch.utils.data import DataLoader

import loopline

VOCAB, B, BPTT, WINDOW = 13, 3, 8, 3
CE = nn.CrossEntropyLoss()


def chunks(columns):
    """[BPTT + 1, B] chunks of the token columns, overlapping by one (the next targets)."""
    for begin in range(0, len(columns) - 1, BPTT):
        chunk = columns[begin : begin + BPTT + 1]
        if len(chunk) == BPTT + 1:
            yield chunk


class TokenLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.lstm, self.head = (
            nn.Embedding(VOCAB, 5),
            nn.LSTM(5, 7),
            nn.Linear(7, VOCAB),
        )

    def forward(self, tokens, state):  # tokens [T, B] -> logits [T, B, V]
        out, state = self.lstm(self.embed(tokens), state)
        return self.head(out), state


def setup():
    columns = torch.randint(0, VOCAB, (60, B), generator=torch.Generator().manual_seed(4))
    dataset = loopline.from_generator(chunks, columns, batched=True)
    stream = loopline.forever(DataLoader(dataset, batch_size=None))
    model = TokenLSTM()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    return stream, model, optimizer


def windows_of(model, chunk, state):
    return loopline.unroll_windows(
        model, None, chunk[1:], inputs=chunk[:-1], whole=True, window=WINDOW, state=state,
        loss_fn=CE, feedback=lambda logits: logits.argmax(-1),
    )  # fmt: skip


def train(stream, model, optimizer, windows, until, losses, stop_at=None):
    """Train window by window until `until` windows in all; returns a checkpoint if
    `stop_at` is reached first (the run is then 'killed')."""
    carried = (torch.zeros(1, B, 7), torch.zeros(1, B, 7))  # the state of a fresh start
    while len(losses) < until:
        if windows is None:
            chunk = next(stream)
            windows = windows_of(model, chunk, carried)
            windows.chunk = chunk
        for part in windows:
            optimizer.zero_grad()
            part.loss.backward()
            optimizer.step()
            losses.append(part.loss.item())
            if len(losses) == stop_at:
                return save(stream, model, optimizer, windows)
            if len(losses) == until:
                return None
        carried = windows.state  # the next chunk goes on from the last window's state
        windows = None
    return None


def save(stream, model, optimizer, windows):
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "stream": stream.state_dict(),
        "windows": windows.state_dict(),
        "chunk": windows.chunk,
    }
    buffer = io.BytesIO()
    torch.save(copy.deepcopy(state), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_a_run_killed_mid_chunk_resumes_bit_for_bit():
    total = 40  # windows: 3 per chunk, 7 chunks an epoch, so about two epochs
    stream, model, optimizer = setup()
    reference: list[float] = []
    train(stream, model, optimizer, None, total, reference)
    expected = [p.detach().clone() for p in model.parameters()]

    stream, model, optimizer = setup()
    head: list[float] = []
    saved = train(stream, model, optimizer, None, total, head, stop_at=17)  # mid-chunk
    assert saved is not None and head == reference[:17]

    stream, model, optimizer = setup()  # a fresh process, as after a kill
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    stream.load_state_dict(saved["stream"])
    windows = windows_of(model, saved["chunk"], state=None)  # state and carry: loaded
    windows.load_state_dict(saved["windows"])
    windows.chunk = saved["chunk"]
    tail = list(head)
    train(stream, model, optimizer, windows, total, tail)
    assert tail == reference
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), expected, strict=True))
