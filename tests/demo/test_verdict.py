"""The demo's table rows for baselines and its closing line, on results made by hand."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from loopline.demo.report import Result, best, table, verdict

LT = SimpleNamespace(unit="LT", dt=0.5, horizons=[1, 2], time_format=".2g")


def result(name: str, valid: list[float], *, steps: int | None = 100) -> Result:
    v = torch.tensor(valid, dtype=torch.float64)
    errors = torch.tensor([0.1, 0.2])
    return Result(name, errors, errors[:, None], v, errors, steps, 2.0, 50 if steps else None)


def test_the_verdict_names_the_best_method_and_its_lead_over_the_best_baseline() -> None:
    results = [
        result("teacher forcing", [2.0, 3.0, 4.0]),
        result("unroll", [3.0, 4.0, 5.0]),
        result("persistence", [0.1, 0.2, 0.3], steps=None),
        result("linear AR(4)", [0.4, 0.5, 0.6], steps=None),
    ]
    assert verdict(results, LT) == (
        "best: unroll, median valid time 4.00 LT, 8.00x the best baseline (linear AR(4), 0.50 LT)"
    )


def test_a_baseline_that_wins_is_named_with_the_share_the_best_method_reaches() -> None:
    results = [result("unroll", [1.0, 1.0]), result("seasonal naive (7)", [4.0, 4.0], steps=None)]
    assert verdict(results, LT) == (
        "best: seasonal naive (7) (a baseline), median valid time 4.00 LT; the best trained "
        "method, unroll, reaches 0.25x of it (1.00 LT)"
    )


def test_a_lead_over_a_baseline_never_valid_is_a_difference_not_a_ratio() -> None:
    results = [result("unroll", [2.0]), result("persistence", [0.0], steps=None)]
    assert verdict(results, LT) == (
        "best: unroll, median valid time 2.00 LT, 2.00 LT more than the best baseline "
        "(persistence, 0.00 LT)"
    )


def test_a_tie_on_the_median_says_so_with_both_means() -> None:
    results = [
        result("unroll", [1.0, 2.0, 9.0]),
        result("persistence", [1.0, 2.0, 3.0], steps=None),
    ]
    assert verdict(results, LT) == (
        "best: unroll and persistence (a baseline) tie at a median valid time of 2.00 LT "
        "(mean 4.00 against 2.00)"
    )


def test_best_ranks_by_median_then_mean() -> None:
    a, b = result("a", [1.0, 2.0, 3.0]), result("b", [0.0, 2.0, 9.0])
    assert best([a, b]).method == "b"
    assert best([a, result("c", [0.0], steps=None)], baseline=True).method == "c"


def test_baseline_rows_say_baseline_and_have_no_training_cost() -> None:
    text = table([result("unroll", [1.0]), result("persistence", [0.5], steps=None)], LT)
    header, _, method, baseline = (line.split("|")[1:-1] for line in text.splitlines())
    assert [cell.strip() for cell in header] == [
        "method", "RMSE @0.5 LT", "RMSE @1 LT", "valid mean (LT)", "valid median (LT)",
        "steps", "train s", "samples/s",
    ]  # fmt: skip
    assert [cell.strip() for cell in method][-3:] == ["100", "2.0", "25"]
    assert [cell.strip() for cell in baseline] == [
        "persistence (baseline)", "0.100", "0.200", "0.50", "0.50", "-", "-", "-",
    ]  # fmt: skip
