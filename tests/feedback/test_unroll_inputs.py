"""Inputs from the data and whole-window calls (issue 13, item 1): a language model with
truncated BPTT had to be fed its tokens through forcing= and feedback=lambda y, nxt: nxt,
scheduled sampling failed on logits against token ids, and the fused nn.LSTM was never
used. Now inputs= gives every step's true input, a teacher chooses per step and sample
between it and the prediction made an input, and whole=True is one model call."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import loopline

VOCAB, EMBED, HIDDEN, T, B = 11, 6, 8, 7, 4
CE = nn.CrossEntropyLoss()


class TokenLSTM(nn.Module):
    """Tokens [B] (one step) or [T, B] (a window), state (h, c) -> logits, state."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.lstm = nn.Embedding(VOCAB, EMBED), nn.LSTM(EMBED, HIDDEN)
        self.head = nn.Linear(HIDDEN, VOCAB)

    def forward(self, tokens, state):
        step = tokens.dim() == 1
        out, state = self.lstm(self.embed(tokens[None] if step else tokens), state)
        logits = self.head(out)
        return (logits[0] if step else logits), state


def corpus():
    torch.manual_seed(3)
    return torch.randint(0, VOCAB, (T + 1, B))


def zeros():
    return (torch.zeros(1, B, HIDDEN, dtype=torch.float64),) * 2


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def hand_teacher_forcing(model, data):
    state, losses = zeros(), []
    for t in range(T):
        logits, state = model(data[t], state)
        losses.append(CE(logits, data[t + 1]))
    return torch.stack(losses).mean()


def argmax(logits):
    return logits.argmax(-1)


@pytest.mark.parametrize("whole", [False, True])
def test_inputs_from_the_data_equal_the_hand_written_teacher_forcing(whole):
    model, data = TokenLSTM().double(), corpus()
    out = loopline.unroll(
        model, None, data[1:], inputs=data[:-1], whole=whole, state=zeros(),
        loss_fn=CE, feedback=argmax,
    )  # fmt: skip
    expected = hand_teacher_forcing(model, data)
    torch.testing.assert_close(out.loss, expected, rtol=0, atol=1e-10)
    for got, want in zip(grads(model, out.loss), grads(model, expected), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    assert out.outputs.shape == (T, B, VOCAB)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_scheduled_sampling_chooses_between_the_true_tokens_and_the_predicted_ones(p):
    model, data = TokenLSTM().double(), corpus()
    out = loopline.unroll(
        model, None, data[1:], inputs=data[:-1], state=zeros(), loss_fn=CE,
        feedback=argmax, teacher=loopline.scheduled_sampling(p),
    )  # fmt: skip
    state, losses, x = zeros(), [], data[0]
    for t in range(T):  # p is the chance of the truth: 1 is teacher forcing, 0 free running
        logits, state = model(x, state)
        losses.append(CE(logits, data[t + 1]))
        x = data[t + 1] if p == 1.0 else argmax(logits)
    torch.testing.assert_close(out.loss, torch.stack(losses).mean(), rtol=0, atol=1e-10)


def test_windows_over_inputs_carry_the_state_and_the_next_true_token():
    model, data = TokenLSTM().double(), corpus()
    parts = list(
        loopline.unroll_windows(
            model, None, data[1:], window=3, inputs=data[:-1], whole=True, state=zeros(),
            loss_fn=CE, feedback=argmax,
        )
    )  # fmt: skip
    assert [len(part.step_losses) for part in parts] == [3, 3, 1]
    assert torch.equal(parts[0].carry, data[3])
    joined = torch.cat([part.step_losses for part in parts]).mean()
    torch.testing.assert_close(joined, hand_teacher_forcing(model, data), rtol=0, atol=1e-10)
    for part in parts:  # the state went on detached: no window's graph reaches another's
        part.loss.backward()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"whole": True, "teacher": loopline.scheduled_sampling(0.5)}, "no prediction for a"),
        ({"whole": True, "grad": 2}, "whole=True makes one model call"),
        ({"forcing": torch.zeros(T, B)}, "which forcing= cannot add to"),
        ({"inputs": corpus()[:3]}, "inputs has 3 steps but 7 are unrolled"),
    ],
)
def test_inputs_that_do_not_fit_are_errors_naming_the_function(options, message):
    model, data = TokenLSTM().double(), corpus()
    kwargs = {"inputs": data[:-1], "state": zeros(), "loss_fn": CE, "feedback": argmax}
    with pytest.raises(ValueError, match=f"^unroll: .*{message}"):
        loopline.unroll(model, None, data[1:], **{**kwargs, **options})


def test_a_whole_window_model_that_drops_the_time_axis_is_an_error():
    model, data = TokenLSTM().double(), corpus()
    last = lambda tokens, state: (model(tokens, state)[0][-1], state)  # noqa: E731
    with pytest.raises(ValueError, match=r"it must return one output per step, time first"):
        loopline.unroll(last, None, data[1:], inputs=data[:-1], whole=True, state=zeros(),
                        loss_fn=CE)  # fmt: skip


def test_without_x0_or_inputs_the_error_says_what_to_pass():
    with pytest.raises(ValueError, match=r"unroll: x0 is None; pass the first input"):
        loopline.unroll(nn.Linear(2, 2), None, torch.zeros(3, 4, 2), loss_fn=nn.MSELoss())


def test_teacher_forcing_step_by_step_needs_no_feedback():
    # The prediction is never fed, so it is never made an input nor checked as one.
    model, data = TokenLSTM().double(), corpus()
    out = loopline.unroll(model, None, data[1:], inputs=data[:-1], state=zeros(), loss_fn=CE)
    torch.testing.assert_close(out.loss, hand_teacher_forcing(model, data), rtol=0, atol=1e-10)


def test_a_teacher_without_a_token_feedback_is_told_to_pass_one():
    model, data = TokenLSTM().double(), corpus()
    with pytest.raises(ValueError, match=r"feedback produced \(4, 11\) float64 .*argmax"):
        loopline.unroll(
            model, None, data[1:], inputs=data[:-1], state=zeros(), loss_fn=CE,
            teacher=loopline.scheduled_sampling(0.5),
        )  # fmt: skip
