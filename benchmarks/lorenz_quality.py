"""Does training through feedback make better forecasters? Lorenz-63, clean and noisy.

Run ``python benchmarks/lorenz_quality.py`` (about 5 minutes: twelve runs of the demo) or
``--quick`` (about a minute). The report is printed and written to
``benchmarks/out/lorenz_quality.md``.

Each run is ``loopline demo`` itself (`loopline.demo.run.run` with its defaults, quiet):
Lorenz-63 by RK4 (dt 0.01) streamed from 2 DataLoader workers, one forecaster (an RK4
step of a learned field, linear in whitened linear and quadratic terms of the state)
trained three ways for the same Adam steps (teacher forcing, ``unroll``, ``pushforward``,
the last two after a shared one-step phase), rolled out from 128 clean held-out states
over 15 Lyapunov times, against the demo's baselines (persistence, a linear AR(4)). Seeds
0, 1 and 2, on clean states (``--noise 0``) and on observations with the demo's default
noise, scored against the clean truth in both; then again with ``--model mlp``, the
residual GELU MLP that assumes nothing of the equations' form. The reference row is a
next-generation reservoir computer (ridge regression of the next increment on a constant,
two delayed states and their quadratic monomials: Gauthier et al. 2021), fitted on the
same observations the baselines see, in a few lines of torch below.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch

import loopline
from loopline.demo import tasks
from loopline.demo.report import THRESHOLD, Result
from loopline.demo.run import DEFAULT_NOISE, Options, run

OUT = Path(__file__).resolve().parent / "out" / "lorenz_quality.md"
DELAYS, RIDGE = 2, 1e-10  # NG-RC: states x_t, x_{t-1}; ridge per equation
REFERENCE = "NG-RC (ridge, quadratic delay features)"
MLP = "--model mlp"
TRAINED = ("teacher forcing", "unroll", "pushforward")


def ngrc_features(lags: torch.Tensor) -> torch.Tensor:
    """`[k, ..., D]` delayed states as `[..., 1 + kD + kD(kD+1)/2]`: 1, linear, quadratic."""
    linear = lags.movedim(0, -2).flatten(-2)  # [..., kD]
    i, j = torch.triu_indices(linear.shape[-1], linear.shape[-1])
    return torch.cat(
        [torch.ones_like(linear[..., :1]), linear, linear[..., i] * linear[..., j]], -1
    )


def fit_ngrc(observed: torch.Tensor) -> torch.Tensor:
    """Ridge weights `[F, D]` of the increment x_{t+1} - x_t on the features, `[T, N, D]` data."""
    observed = observed.double()
    steps = len(observed) - DELAYS  # equations per series
    lags = torch.stack([observed[k : k + steps] for k in range(DELAYS)])  # [k, S, N, D]
    inputs = ngrc_features(lags).flatten(0, 1)  # [S * N, F]
    increments = (observed[DELAYS:] - observed[DELAYS - 1 : -1]).flatten(0, 1)  # [S * N, D]
    gram = inputs.T @ inputs
    ridge = RIDGE * len(inputs) * torch.eye(len(gram), dtype=gram.dtype)
    return torch.linalg.solve(gram + ridge, inputs.T @ increments)


def ngrc(task: tasks.Task) -> tuple[torch.Tensor, float]:
    """The reference's valid time on every held-out rollout, and its fitting seconds."""
    started = time.perf_counter()
    weights = fit_ngrc(task.observed)
    seconds = time.perf_counter() - started

    def step(x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen = torch.cat([state, x[None]])  # [P + 1, B, D], the latest last
        return x + ngrc_features(seen[len(seen) - DELAYS :]) @ weights, seen[1:]

    test = task.test.double()
    outputs = loopline.rollout(
        step, test[0], len(test) - 1, state=task.history.double(), on_nonfinite="ignore"
    ).outputs
    errors = loopline.horizon_error(outputs, test[1:], per_sample=True)  # [H, B]
    return loopline.valid_time(errors, THRESHOLD, dt=task.dt), seconds


def demo_runs(noise: float, seeds: tuple[int, ...], steps: int) -> dict[int, list[Result]]:
    """The demo's results for each seed (its printed report left out): its own forecaster's
    methods and baselines, then the methods again with `--model mlp`, labelled so."""
    runs: dict[int, list[Result]] = {}
    with tempfile.TemporaryDirectory() as out:
        for seed in seeds:
            for model in (None, "mlp"):
                options = Options(
                    seed=seed, noise=noise, steps=steps, model=model, quiet=True, out=Path(out)
                )
                with contextlib.redirect_stdout(io.StringIO()):
                    results = run(options)
                if model is not None:
                    results = [r for r in results if not r.baseline]
                    for r in results:
                        r.method = f"{r.method} ({MLP})"
                runs.setdefault(seed, []).extend(results)
    return runs


def section(noise: float, seeds: tuple[int, ...], steps: int) -> tuple[str, dict[str, float]]:
    """The Markdown table for one noise level, and each row's pooled median valid time."""
    runs = demo_runs(noise, seeds, steps)
    names = [r.method for r in runs[seeds[0]] if not r.baseline]  # the MLP's rows second
    names += [r.method for r in runs[seeds[0]] if r.baseline]
    valid: dict[str, list[torch.Tensor]] = {name: [] for name in [*names, REFERENCE]}
    seconds: dict[str, list[float]] = {name: [] for name in [*names, REFERENCE]}
    for seed in seeds:
        for r in runs[seed]:
            valid[r.method].append(r.valid)
            seconds[r.method].append(r.seconds)
        task = tasks.lorenz_task(
            window=8, batch=256, horizon=len(r.errors), seed=seed,
            noise=noise, history=DELAYS - 1, show=False,
        )  # fmt: skip
        reference, fitted = ngrc(task)
        valid[REFERENCE].append(reference)
        seconds[REFERENCE].append(fitted)
    medians = {name: float(torch.cat(v).median()) for name, v in valid.items()}
    lines = [
        "| method | median per seed (LT) | spread (max - min) | median (LT) | mean (LT) "
        "| steps | train s / seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, per_seed in valid.items():
        seed_medians = [float(v.median()) for v in per_seed]
        pooled = torch.cat(per_seed)
        trained = name.removesuffix(f" ({MLP})") in TRAINED
        label = name if trained or name == REFERENCE else f"{name} (baseline)"
        if name == REFERENCE:
            label += " (reference)"
        cost = f"{steps:,}" if trained else "-"
        lines.append(
            f"| {label} | {', '.join(f'{m:.2f}' for m in seed_medians)} | "
            f"{max(seed_medians) - min(seed_medians):.2f} | {medians[name]:.2f} | "
            f"{float(pooled.mean()):.2f} | {cost} | {statistics.mean(seconds[name]):.1f} |"
        )
    for suffix in ("", f" ({MLP})"):
        unrolled, forced = valid[f"unroll{suffix}"], valid[f"teacher forcing{suffix}"]
        pairs = zip(unrolled, forced, strict=True)
        ratios = [float(u.median()) / float(f.median()) for u, f in pairs]
        pooled_ratio = medians[f"unroll{suffix}"] / medians[f"teacher forcing{suffix}"]
        lines.append(
            f"\nunroll / teacher forcing{suffix}, median valid time per seed: "
            f"{', '.join(f'{q:.2f}x' for q in ratios)}; pooled {pooled_ratio:.2f}x."
        )
    return "\n".join(lines), medians


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 1,000 steps")
    quick = parser.parse_args().quick
    torch.set_num_threads(1)
    started = time.perf_counter()
    seeds, steps = ((0,), 1000) if quick else ((0, 1, 2), Options().steps)
    parts = [
        "## Lorenz-63: valid prediction time by training method, clean and noisy\n",
        f"`loopline demo` with its defaults: {len(seeds)} seed(s) x {steps:,} Adam steps per "
        "method (lr 5e-3, cosine; the first 3/4 one-step, shared), batches of 256 windows "
        "of 8 steps streamed from 2 DataLoader workers; 128 clean held-out trajectories "
        "rolled out 1656 steps (15 Lyapunov times). Rows marked --model mlp: the same runs "
        "with the residual GELU MLP (x + 0.1 f(x)) in place of the demo's RK4 step of a "
        "quadratic field." + (" --quick." if quick else ""),
    ]
    for noise in (0.0, DEFAULT_NOISE):
        title = "clean states" if noise == 0 else f"observations with noise {noise:g}"
        table, _ = section(noise, seeds, steps)
        parts += [f"\n### Trained on {title}\n", table]
    parts.append(
        f"\nValid time: leading steps whose RMSE over the 3 normalized coordinates stays "
        f"within {THRESHOLD}, in Lyapunov times (LT); median and mean over the held-out "
        "rollouts of all seeds, always against the clean truth. train s: the demo's "
        "training seconds per method, the shared one-step phase included in each (it runs "
        "once); for the baselines and the reference, fitting seconds. The baselines and the "
        "reference are fitted on 512 trajectories of 1000 steps of the first shard's first "
        f"epoch, as the models see them; the reference with delays {DELAYS}, ridge "
        f"{RIDGE:g} per equation."
    )
    text = "\n".join(parts)
    print(text)
    print(f"\n(ran in {time.perf_counter() - started:.0f} s)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text + "\n")


if __name__ == "__main__":
    main()
