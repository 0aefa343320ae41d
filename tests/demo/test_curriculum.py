"""The demo's training curriculum: one-step first, then each method's own loss, with the
one-step phase trained once and handed on."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from loopline import from_generator
from loopline.demo import checkpoint as ckpt
from loopline.demo import series
from loopline.demo.models import MODELS, ResidualMLP
from loopline.demo.train import MSE, method_loss, one_step_steps, train

CPU = torch.device("cpu")


def loader() -> DataLoader:
    values = torch.sin(torch.arange(120.0) * 0.2)[:, None]  # [N, D=1]
    dataset = from_generator(series.windows, values, 4, 16, batched=True, seed=0)
    return DataLoader(dataset, batch_size=None)


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return list(model.state_dict().values())


def test_the_one_step_phase_is_three_quarters_of_the_steps() -> None:
    assert [one_step_steps(n) for n in (1, 4, 10, 20000)] == [0, 3, 7, 15000]


def test_teacher_forcing_scores_the_first_pair_of_each_window() -> None:
    torch.manual_seed(0)
    model, window = ResidualMLP(2), torch.randn(5, 3, 2)  # [W + 1, B, D]
    generator = torch.Generator()
    expected = MSE(model(window[0]), window[1])
    assert torch.equal(method_loss("teacher forcing", model, window, generator), expected)
    for method in ("unroll", "pushforward"):  # in the one-step phase, the same loss
        loss = method_loss(method, model, window, generator, one_step=True)
        assert torch.equal(loss, expected)
    assert not torch.equal(method_loss("unroll", model, window, generator), expected)


@pytest.mark.parametrize("forecaster", list(MODELS))
def test_a_method_forked_from_the_one_step_phase_equals_one_trained_from_scratch(
    forecaster: str,
) -> None:
    forks: list[dict] = []
    options = {"dim": 1, "steps": 12, "seed": 3, "device": CPU, "show": False}
    options |= {"forecaster": forecaster, "sample": torch.randn(50, 1)}
    train("teacher forcing", loader(), fork=forks.append, **options)
    assert len(forks) == 1 and forks[0][ckpt.STEP] == one_step_steps(12) == 9
    for method in ("unroll", "pushforward"):
        whole = train(method, loader(), **options)
        forked = train(method, loader(), resume=forks[0], **options)
        assert forked.samples == whole.samples
        for a, b in zip(weights(whole.model), weights(forked.model), strict=True):
            assert torch.equal(a, b), method


@pytest.mark.parametrize("forecaster", list(MODELS))
def test_the_fork_is_a_copy_that_later_steps_leave_alone(forecaster: str) -> None:
    forks: list[dict] = []
    options = {"dim": 1, "steps": 8, "seed": 0, "device": CPU, "show": False}
    options["forecaster"] = forecaster
    trained = train("teacher forcing", loader(), fork=forks.append, **options)
    forked = forks[0][ckpt.MODEL]
    assert not all(
        torch.equal(a, b) for a, b in zip(forked.values(), weights(trained.model), strict=True)
    )
