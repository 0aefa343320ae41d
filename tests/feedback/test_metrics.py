import math
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from loopline.feedback.metrics import horizon_error, plot_horizon, valid_time

# diff[t, b, f], chosen so every metric is easy to work out by hand:
# step 0: sample 0 is off by (3, 4), sample 1 is exact; step 1: (1, -1) and (2, 2).
DIFF = torch.tensor([[[3.0, 4.0], [0.0, 0.0]], [[1.0, -1.0], [2.0, 2.0]]])
TRUTH = torch.ones(2, 2, 2)


def assert_values(actual: torch.Tensor, expected: list) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype))


def reference_rmse(outputs: torch.Tensor, truth: torch.Tensor) -> list[float]:
    """rmse per step, pooled over batch and features, one element at a time."""
    errors = []
    for step in range(outputs.shape[0]):
        out, tru = outputs[step].flatten().tolist(), truth[step].flatten().tolist()
        squares = [(o - t) ** 2 for o, t in zip(out, tru, strict=True)]
        errors.append(math.sqrt(sum(squares) / len(squares)))
    return errors


def test_rmse_per_step_pools_batch_and_features_inside_the_root():
    errors = horizon_error(TRUTH + DIFF, TRUTH)
    assert errors.shape == (2,)
    assert errors.tolist() == pytest.approx([math.sqrt(25 / 4), math.sqrt(10 / 4)])


def test_rmse_per_sample_averages_features_only():
    errors = horizon_error(TRUTH + DIFF, TRUTH, per_sample=True)
    assert errors.shape == (2, 2)
    assert_values(errors, [[math.sqrt(12.5), 0.0], [1.0, 2.0]])


def test_mae_per_step_and_per_sample():
    assert horizon_error(TRUTH + DIFF, TRUTH, "mae").tolist() == pytest.approx([1.75, 1.5])
    per_sample = horizon_error(TRUTH + DIFF, TRUTH, "mae", per_sample=True)
    assert_values(per_sample, [[3.5, 0.0], [1.0, 2.0]])


def test_nrmse_divides_each_feature_by_its_std_over_time_and_batch():
    # feature 0 takes 0 and 2 (std 1), feature 1 takes 0 and 20 (std 10).
    truth = torch.tensor([[[0.0, 0.0], [2.0, 20.0]], [[0.0, 0.0], [2.0, 20.0]]])
    same_relative_error = truth + torch.tensor([1.0, 10.0])
    assert horizon_error(same_relative_error, truth, "nrmse").tolist() == pytest.approx([1, 1])
    outputs = truth.clone()
    outputs[0, 0, 0] += 2.0  # 2 stds off on feature 0, step 0, sample 0
    assert horizon_error(outputs, truth, "nrmse").tolist() == pytest.approx([1.0, 0.0])
    per_sample = horizon_error(outputs, truth, "nrmse", per_sample=True)
    assert_values(per_sample, [[math.sqrt(2), 0.0], [0.0, 0.0]])


def test_nrmse_on_a_constant_feature_raises_naming_the_feature():
    truth = torch.stack([torch.arange(6.0), torch.full((6,), 3.0)], dim=-1).reshape(3, 2, 2)
    with pytest.raises(ValueError, match=r"std of truth .* is 0 for flattened feature\(s\) \[1\]"):
        horizon_error(truth + 1, truth, "nrmse")


def test_outputs_without_feature_dims_are_one_feature():
    outputs, truth = torch.tensor([[1.0, -3.0], [0.0, 2.0]]), torch.zeros(2, 2)
    assert horizon_error(outputs, truth, per_sample=True).tolist() == [[1.0, 3.0], [0.0, 2.0]]
    assert horizon_error(outputs, truth, "mae").tolist() == [2.0, 1.0]


def test_callable_metric_is_called_per_step_and_averaged_over_the_batch():
    calls = []

    def max_abs(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(y.shape))
        return (y - target).abs().amax(dim=-1)

    per_sample = horizon_error(TRUTH + DIFF, TRUTH, max_abs, per_sample=True)
    assert per_sample.tolist() == [[4.0, 0.0], [1.0, 2.0]]
    assert calls == [(2, 2), (2, 2)]
    assert horizon_error(TRUTH + DIFF, TRUTH, max_abs).tolist() == [2.0, 1.5]


def test_callable_metric_returning_the_wrong_shape_raises_with_step_and_shapes():
    def squared(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (y - target) ** 2  # [B, F], forgot to reduce

    with pytest.raises(ValueError, match=r"metric squared must return one error per sample, "):
        horizon_error(TRUTH + DIFF, TRUTH, squared)
    with pytest.raises(ValueError, match=r"shape \(2,\), .* \(2, 2\); got \(2, 2\) at step 0"):
        horizon_error(TRUTH + DIFF, TRUTH, squared)


def test_callable_metric_returning_a_float_raises():
    with pytest.raises(ValueError, match=r"got float at step 0"):
        horizon_error(TRUTH, TRUTH, lambda y, target: 0.0)  # type: ignore[arg-type,return-value]


def test_unknown_metric_name_raises_listing_the_choices():
    with pytest.raises(ValueError, match=r"one of \('rmse', 'mae', 'nrmse'\) .* got 'mse'"):
        horizon_error(TRUTH, TRUTH, "mse")


def test_shorter_outputs_are_named_in_the_error():
    with pytest.raises(
        ValueError, match=r"outputs has 3 steps but truth has 5: outputs is shorter"
    ):
        horizon_error(torch.zeros(3, 2, 4), torch.zeros(5, 2, 4))


def test_shorter_truth_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"truth is shorter \(outputs \(5, 2\) and truth \(4, 2\)"):
        horizon_error(torch.zeros(5, 2), torch.zeros(4, 2))


def test_feature_shape_mismatch_raises_with_both_shapes():
    with pytest.raises(
        ValueError, match=r"same shape .* got outputs \(3, 2, 4\) and truth \(3, 2, 5\)"
    ):
        horizon_error(torch.zeros(3, 2, 4), torch.zeros(3, 2, 5))


def test_inputs_without_a_batch_dim_raise():
    with pytest.raises(
        ValueError, match=r"\[T, B, \.\.\.\] .* got outputs \(3,\) and truth \(3,\)"
    ):
        horizon_error(torch.zeros(3), torch.zeros(3))


def test_rmse_gradient_matches_a_hand_written_loop():
    torch.manual_seed(0)
    truth = torch.randn(4, 3, 2, dtype=torch.float64)
    outputs = (truth + torch.randn(4, 3, 2, dtype=torch.float64)).requires_grad_()
    horizon_error(outputs, truth).sum().backward()
    reference = outputs.detach().clone().requires_grad_()
    torch.stack([((reference[t] - truth[t]) ** 2).mean().sqrt() for t in range(4)]).sum().backward()
    torch.testing.assert_close(outputs.grad, reference.grad)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda steps: st.tuples(
            *[arrays(np.float64, (steps, 3, 2), elements=st.floats(-100, 100))] * 2
        )
    )
)
def test_rmse_per_step_equals_a_hand_written_loop(pair):
    outputs, truth = (torch.from_numpy(array) for array in pair)
    errors = horizon_error(outputs, truth)
    assert errors.tolist() == pytest.approx(reference_rmse(outputs, truth), abs=1e-6)


def test_valid_time_of_a_mean_curve_is_the_first_step_above_threshold():
    errors = torch.tensor([0.1, 0.5, 0.6, 0.2])
    steps = valid_time(errors, 0.5)  # 0.5 itself is still within
    assert steps.dtype == torch.int64 and steps.shape == () and steps.item() == 2


def test_valid_time_per_sample_includes_never_crossing_as_T():
    errors = torch.tensor([[0.1, 0.9, 0.1], [0.2, 0.9, 0.3], [0.7, 0.9, 0.4]])
    assert valid_time(errors, 0.5).tolist() == [2, 0, 3]


def test_valid_time_scales_by_dt_into_a_float():
    errors = torch.tensor([[0.1, 0.1], [0.2, 0.9], [0.7, 0.9]])
    times = valid_time(errors, 0.5, dt=0.1)
    assert times.is_floating_point()
    assert times.tolist() == pytest.approx([0.2, 0.1])
    assert valid_time(errors[:, 0], 1.0, dt=0.5).item() == pytest.approx(1.5)


def test_valid_time_counts_nan_as_a_crossing():
    assert valid_time(torch.tensor([0.1, float("nan"), 0.1]), 0.5).item() == 1


def test_valid_time_of_a_horizon_error_curve():
    errors = horizon_error(TRUTH + DIFF, TRUTH, per_sample=True)  # [[3.54, 0], [1, 2]]
    assert valid_time(errors, 1.5).tolist() == [0, 1]


@pytest.mark.parametrize("threshold", [0.0, -1.0, float("nan")])
def test_valid_time_rejects_a_threshold_that_is_not_positive(threshold):
    with pytest.raises(ValueError, match=r"threshold and dt must be positive, got threshold="):
        valid_time(torch.zeros(3), threshold)


def test_valid_time_rejects_errors_of_three_dims():
    with pytest.raises(
        ValueError, match=r"errors must be \[T\] or \[T, B\], got shape \(2, 2, 2\)"
    ):
        valid_time(torch.zeros(2, 2, 2), 1.0)


def test_plot_horizon_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "horizon.png"
    curves = {"model": torch.tensor([0.1, 0.3, 0.8]), "baseline": torch.tensor([0.2, 0.6, 1.0])}
    ax = plot_horizon(curves, threshold=0.5, dt=0.5, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [line.get_label() for line in ax.get_lines()] == ["model", "baseline", "threshold 0.5"]
    assert np.asarray(ax.get_lines()[0].get_xdata()).tolist() == [0.0, 0.5, 1.0]


def test_plot_horizon_leaves_pyplot_alone_and_draws_into_a_given_axes():
    pytest.importorskip("matplotlib")
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    before = plt.get_fignums()
    ax = plot_horizon(torch.tensor([0.1, 0.2]))
    assert plt.get_fignums() == before and ax.get_legend() is None
    mine = Figure().add_subplot()
    assert plot_horizon([torch.zeros(2), torch.ones(2)], labels=["a", "b"], ax=mine) is mine
    assert [line.get_label() for line in mine.get_lines()] == ["a", "b"]


def test_plot_horizon_rejects_per_sample_curves_and_mismatched_labels():
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=r"draws \[T\] curves, got 'model' of shape \(3, 2\)"):
        plot_horizon({"model": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match=r"got 1 labels for 2 curves"):
        plot_horizon([torch.zeros(2), torch.ones(2)], labels=["a"])
    with pytest.raises(ValueError, match=r"labels must be None when errors is a dict"):
        plot_horizon({"model": torch.zeros(2)}, labels=["a"])


def test_plot_horizon_without_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r'pip install "loopline\[plots\]"'):
        plot_horizon(torch.zeros(3))


@pytest.mark.parametrize(
    ("call", "prefix"),
    [
        (lambda: horizon_error(torch.ones(3), torch.ones(3)), "horizon_error: "),
        (lambda: horizon_error(torch.ones(3, 2), torch.ones(4, 2)), "horizon_error: "),
        (
            lambda: horizon_error(torch.ones(3, 2), torch.ones(3, 2), "l7"),
            "horizon_error: ",
        ),
        (
            lambda: horizon_error(torch.ones(3, 2, 1), torch.ones(3, 2, 1), "nrmse"),
            "horizon_error: ",
        ),
        (lambda: valid_time(torch.ones(2, 2, 2), 0.5), "valid_time: "),
        (lambda: valid_time(torch.ones(3), -1.0), "valid_time: "),
        (lambda: plot_horizon(torch.ones(3), dt=0), "plot_horizon: "),
        (lambda: plot_horizon(torch.ones(3, 2)), "plot_horizon: "),
        (lambda: plot_horizon({"a": torch.ones(3)}, labels=["b"]), "plot_horizon: "),
    ],
)
def test_every_metric_error_starts_with_the_function_called(call, prefix):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value).startswith(prefix)
