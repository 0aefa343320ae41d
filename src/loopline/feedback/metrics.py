"""How far ahead a rollout stays right: error per horizon step, and the valid time.

A rollout's trajectory `outputs` and the ground truth `truth` are both `[T, B, ...]`:
step, batch, then any feature dims. `horizon_error` reduces them to one error per step
`[T]` (or per step and sample, `[T, B]`), `valid_time` turns such a curve into the number
of leading steps within a threshold, and `plot_horizon` draws the curves (matplotlib,
from the `plots` extra, imported only when called).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from matplotlib.axes import Axes

BUILTIN_METRICS = ("rmse", "mae", "nrmse")


class StepMetric(Protocol):
    """`metric(y, target)`: `y` and `target` are one step `[B, ...]`; returns the error `[B]`.

    Example:
        >>> import torch, loopline
        >>> def worst(y, target):  # the largest absolute error of each sample
        ...     return (y - target).abs().flatten(1).amax(1)
        >>> outputs, truth = torch.tensor([[[1.0, -3.0]], [[0.0, 0.5]]]), torch.zeros(2, 1, 2)
        >>> loopline.horizon_error(outputs, truth, worst)
        tensor([3.0000, 0.5000])
    """

    def __call__(self, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...


def horizon_error(
    outputs: torch.Tensor,
    truth: torch.Tensor,
    metric: str | StepMetric = "rmse",
    *,
    per_sample: bool = False,
) -> torch.Tensor:
    """Error of a rollout against the truth at each step of the horizon.

    `"rmse"` and `"mae"` average over the feature dims, and for `[T]` over the batch too,
    inside the root: `rmse[t] = sqrt(mean over b, f of (outputs - truth)**2)`. `"nrmse"`
    is the rmse after dividing each feature by the std of `truth` over time and batch
    (population std), so that features of any scale weigh the same; a constant feature
    raises. A `StepMetric` is called step by step; `[T]` is the batch mean of its `[B]`.

    Args:
        outputs: the rollout's trajectory, `[T, B, ...]`.
        truth: the ground truth, same shape as `outputs`.
        metric: `"rmse"`, `"mae"`, `"nrmse"`, or a `StepMetric` callable.
        per_sample: return `[T, B]` instead of `[T]`.

    Returns:
        The error per step, `[T]`, or `[T, B]` with `per_sample=True`.

    Raises:
        ValueError: on a shape mismatch, an unknown metric, or a constant feature for nrmse.

    Example:
        >>> import torch
        >>> from loopline.feedback.metrics import horizon_error
        >>> truth = torch.zeros(3, 2, 1)
        >>> outputs = torch.tensor([[[0.0], [0.0]], [[1.0], [-1.0]], [[2.0], [4.0]]])
        >>> horizon_error(outputs, truth)
        tensor([0.0000, 1.0000, 3.1623])
        >>> horizon_error(outputs, truth, "mae", per_sample=True)
        tensor([[0., 0.],
                [1., 1.],
                [2., 4.]])
    """
    _check_shapes(outputs, truth)
    if callable(metric):
        per_step = _apply_per_step(metric, outputs, truth)  # [T, B]
        return per_step if per_sample else per_step.mean(dim=1)
    if metric not in BUILTIN_METRICS:
        raise ValueError(
            f"horizon_error: metric must be one of {BUILTIN_METRICS} or a callable, got {metric!r}"
        )
    steps, batch = outputs.shape[:2]
    diff = (outputs - truth).reshape(steps, batch, -1)  # [T, B, F]
    if not diff.is_floating_point():
        diff = diff.to(torch.get_default_dtype())
    if metric == "nrmse":
        diff = diff / _feature_scale(truth.reshape(steps, batch, -1).to(diff.dtype))  # / [F]
    dims = (2,) if per_sample else (1, 2)
    if metric == "mae":
        return diff.abs().mean(dim=dims)
    return diff.square().mean(dim=dims).sqrt()


def valid_time(errors: torch.Tensor, threshold: float, *, dt: float = 1.0) -> torch.Tensor:
    """Number of leading steps whose error stays within `threshold`.

    That is the index of the first step whose error exceeds `threshold` (strictly), or `T`
    when none does. A NaN error counts as exceeding: a rollout that blew up is not valid.
    A `dt` other than 1 turns the count into a float time, e.g. in Lyapunov times.

    Args:
        errors: an error curve `[T]`, or one per sample `[T, B]`, e.g. from `horizon_error`.
        threshold: the largest error still valid; must be positive.
        dt: time per step, positive; the result is multiplied by it.

    Returns:
        int64 step counts, a scalar for `[T]` and `[B]` for `[T, B]`; floats if `dt != 1`.

    Raises:
        ValueError: if `errors` is not 1-D or 2-D, or `threshold` or `dt` is not positive.

    Example:
        >>> import torch
        >>> from loopline.feedback.metrics import valid_time
        >>> errors = torch.tensor([[0.1, 0.1], [0.2, 0.9], [0.7, 0.9]])
        >>> valid_time(errors, 0.5)
        tensor([2, 1])
        >>> valid_time(errors[:, 0], 0.8, dt=0.25)
        tensor(0.7500)
    """
    if errors.dim() not in (1, 2):
        raise ValueError(
            f"valid_time: errors must be [T] or [T, B], got shape {tuple(errors.shape)}"
        )
    if not threshold > 0 or not dt > 0:
        raise ValueError(
            f"valid_time: threshold and dt must be positive, got {threshold=} and {dt=}"
        )
    # `<=` rather than `not >`, so that a NaN error counts as a crossing.
    within = (errors <= threshold).long()  # [T] or [T, B]
    # The running product is 1 until the first crossing, so its sum is that step's index.
    steps = within.cumprod(dim=0).sum(dim=0)
    if dt == 1:
        return steps
    # At least the default float: a bfloat16 count would be off past 256 steps.
    return steps.to(torch.promote_types(errors.dtype, torch.get_default_dtype())) * dt


def plot_horizon(
    errors: torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
    *,
    labels: str | Sequence[str] | None = None,
    ax: Axes | None = None,
    dt: float = 1.0,
    threshold: float | None = None,
    path: str | Path | None = None,
) -> Axes:
    """Draw error against horizon for one or several `[T]` curves.

    Without `ax` it draws on a new figure with the non-interactive Agg canvas, leaving
    pyplot and the global backend alone; pass `ax` to draw into a figure of your own.

    Args:
        errors: a `[T]` curve, a sequence of them, or a dict label -> `[T]` curve.
        labels: names for a curve or a sequence of curves (a dict's keys are its labels).
        ax: matplotlib Axes to draw on.
        dt: time per step; the x axis shows `step * dt`.
        threshold: draw this error level as a dashed line, e.g. the one for `valid_time`.
        path: save the figure there (format from the suffix, PNG when there is none).

    Returns:
        The matplotlib Axes drawn on.

    Raises:
        ImportError: if matplotlib is not installed.
        ValueError: if a curve is not `[T]`, the labels do not fit the curves, or `dt <= 0`.

    Example:
        >>> import torch
        >>> from loopline.feedback.metrics import plot_horizon
        >>> ax = plot_horizon({"model": torch.tensor([0.1, 0.4, 0.9])}, threshold=0.5)
        >>> [line.get_label() for line in ax.get_lines()]
        ['model', 'threshold 0.5']
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError('plot_horizon needs matplotlib: pip install "loopline[plots]"') from error
    if not dt > 0:
        raise ValueError(f"plot_horizon: dt must be positive, got {dt=}")
    curves = _named_curves(errors, labels)
    if ax is None:
        figure = Figure()
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
    for name, curve in curves:
        if curve.dim() != 1:
            raise ValueError(
                f"plot_horizon: draws [T] curves, got {name!r} of shape {tuple(curve.shape)}"
            )
        values = curve.detach().float().cpu().numpy()  # [T]
        ax.plot([step * dt for step in range(len(values))], values, label=name)
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlabel("step" if dt == 1 else f"time (step x {dt:g})")
    ax.set_ylabel("error")
    if threshold is not None or any(name is not None for name, _ in curves):
        ax.legend()
    if path is not None:
        # A subfigure cannot save itself; its .figure is the one that can.
        root = ax.figure if isinstance(ax.figure, Figure) else ax.figure.figure
        root.savefig(path)
    return ax


def _check_shapes(outputs: torch.Tensor, truth: torch.Tensor) -> None:
    shapes = f"outputs {tuple(outputs.shape)} and truth {tuple(truth.shape)}"
    if outputs.dim() < 2 or truth.dim() < 2:
        raise ValueError(
            f"horizon_error: outputs and truth must be [T, B, ...] (2 dims or more), got {shapes}"
        )
    if outputs.shape[1:] == truth.shape[1:] and len(outputs) != len(truth):
        shorter = "outputs" if len(outputs) < len(truth) else "truth"
        raise ValueError(
            f"horizon_error: outputs has {len(outputs)} steps but truth has {len(truth)}: "
            f"{shorter} is shorter ({shapes}); slice both to the common horizon"
        )
    if outputs.shape != truth.shape:
        raise ValueError(
            f"horizon_error: outputs and truth must have the same shape [T, B, ...], got {shapes}"
        )


def _apply_per_step(metric: StepMetric, outputs: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    name = getattr(metric, "__name__", repr(metric))
    batch = outputs.shape[1]
    per_step = []
    for step, (y, target) in enumerate(zip(outputs, truth, strict=True)):
        error = metric(y, target)  # [B]
        if not isinstance(error, torch.Tensor) or tuple(error.shape) != (batch,):
            got = tuple(error.shape) if isinstance(error, torch.Tensor) else type(error).__name__
            raise ValueError(
                f"horizon_error: metric {name} must return one error per sample, shape "
                f"({batch},), for y and target of shape {tuple(y.shape)}; got {got} at step {step}"
            )
        per_step.append(error)
    return torch.stack(per_step) if per_step else outputs.new_zeros(0, batch)  # [T, B]


def _feature_scale(truth: torch.Tensor) -> torch.Tensor:
    # truth: [T, B, F] -> std of each feature over time and batch: [F]
    scale = truth.reshape(-1, truth.shape[-1]).std(dim=0, correction=0)
    if bool((scale == 0).any()):  # one sync for the whole tensor, not one per step
        constant = (scale == 0).nonzero().flatten().tolist()
        raise ValueError(
            f"horizon_error: nrmse divides each feature by the std of truth over time and "
            f"batch, but it is 0 for flattened feature(s) {constant[:5]} of {len(scale)}; "
            "use metric='rmse'"
        )
    return scale


def _named_curves(
    errors: torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
    labels: str | Sequence[str] | None,
) -> list[tuple[str | None, torch.Tensor]]:
    if isinstance(errors, Mapping):
        if labels is not None:
            raise ValueError(
                "plot_horizon: labels must be None when errors is a dict: its keys are the labels"
            )
        return list(errors.items())
    tensors = [errors] if isinstance(errors, torch.Tensor) else list(errors)
    names: list[str | None] = [labels] if isinstance(labels, str) else [None] * len(tensors)
    if labels is not None and not isinstance(labels, str):
        names = list(labels)
    if len(names) != len(tensors):
        raise ValueError(
            f"plot_horizon: got {len(names)} labels for {len(tensors)} curves: {names}"
        )
    return list(zip(names, tensors, strict=True))
