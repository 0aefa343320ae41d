"""`loopline demo` end to end, tiny: the table, the figure, CSV series, reproducibility."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from loopline.cli import main
from loopline.demo.figure import figure
from loopline.demo.run import DemoError, Options, run

TINY = ["--quiet", "--steps", "20", "--batch-size", "32", "--horizon", "120"]
METHODS = ["teacher forcing", "unroll", "pushforward"]
BASELINES = ["persistence (baseline)", "linear AR(4) (baseline)"]
PNG = b"\x89PNG\r\n\x1a\n"


def demo(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(["demo", *TINY, *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def table_rows(out: str) -> list[list[str]]:
    """The cells of the printed Markdown table, header first (the rule line left out)."""
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_demo_prints_a_table_of_the_three_methods_and_saves_a_figure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = demo(capsys, "--out", str(tmp_path), "--seed", "7")
    header, *rows = table_rows(out)
    # Of the horizons 1, 2, 4 and 8 Lyapunov times, 120 steps reach the first.
    assert header == [
        "method",
        "RMSE @1 LT",
        "valid mean (LT)",
        "valid median (LT)",
        "steps",
        "train s",
        "samples/s",
    ]
    assert [row[0] for row in rows] == METHODS + BASELINES
    for row in rows:
        numbers = [float(cell.replace(",", "")) for cell in row[1:] if cell != "-"]
        assert all(math.isfinite(n) and n >= 0 for n in numbers), row
        # 120 steps are 1.09 Lyapunov times: no valid time can be longer.
        assert float(row[2]) <= 1.09 and float(row[3]) <= 1.09
    assert [row[4] for row in rows] == ["20", "20", "20", "-", "-"]
    assert [row[5:] for row in rows[3:]] == [["-", "-"], ["-", "-"]]
    assert out.startswith("loopline demo: Lorenz-63")
    assert (
        "3 methods x 20 steps (the first 15 one-step, shared), batches of 32 windows of 8 "
        "steps, 2 DataLoader workers" in out
    )
    assert "linear and quadratic terms of the state (30 weights) (--model quadratic)" in out
    assert closing_line(out).startswith("best: ")
    figure = tmp_path / "lorenz.png"
    assert f"figure: {figure}" in out
    assert figure.read_bytes().startswith(PNG)

    # --seed makes the run reproducible: the same table again, timings aside.
    again = table_rows(demo(capsys, "--out", str(tmp_path), "--seed", "7"))
    assert [row[:-2] for row in again] == [header[:-2], *(row[:-2] for row in rows)]


def closing_line(out: str) -> str:
    """The verdict printed after the table's notes."""
    (line,) = [line for line in out.splitlines() if line.startswith("best: ")]
    return line


def write_series(path: Path, rows: int, *, columns: int) -> Path:
    """A damped, forced oscillator sampled every 0.5 time units, plus a text column."""
    lines = [",".join([*["t", "position", "velocity"][: columns + 1], "note"])]
    x, v = 1.0, 0.0
    for i in range(rows):
        cells = [f"{i * 0.5:g}", f"{x:.6f}", f"{v:.6f}"][: columns + 1]
        lines.append(",".join([*cells, "ok"]))
        for _ in range(10):  # 10 Euler steps of 0.05 per row
            x, v = x + 0.05 * v, v + 0.05 * (-x - 0.1 * v + math.sin(0.3 * i))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_univariate_series_end_to_end(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_series(tmp_path / "spring.csv", 150, columns=1)
    out = demo(capsys, "--csv", str(path), "--column", "position", "--out", str(tmp_path))
    assert f"loopline demo: {path}: 'position', 150 rows (120 train, 30 held out)" in out
    header, *rows = table_rows(out)
    # No time column: time in rows; 30 held-out rows give a horizon of 29 steps.
    assert header[1:-3] == [
        "RMSE @1 steps",
        "RMSE @7 steps",
        "RMSE @14 steps",
        "RMSE @29 steps",
        "valid mean (steps)",
        "valid median (steps)",
    ]
    assert [row[0] for row in rows] == METHODS + BASELINES
    assert "over 1 held-out rollout of 29 steps." in out
    assert (tmp_path / "spring.png").read_bytes().startswith(PNG)
    assert "forecaster: x + 0.1 f(x), f a GELU MLP 1-64-64-1 (--model mlp)" in out


def test_csv_multivariate_series_with_a_time_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_series(tmp_path / "spring.csv", 400, columns=2)
    out = demo(
        capsys,
        *("--csv", str(path), "--column", "position", "--column", "velocity"),
        *("--time-column", "t", "--horizon", "40", "--out", str(tmp_path)),
    )
    assert "'position', 'velocity', 400 rows (320 train, 80 held out)" in out
    header, *rows = table_rows(out)
    # Time in the units of column t, 0.5 per row: 40 steps are 20 of them.
    assert header[1:5] == ["RMSE @0.5 t", "RMSE @5 t", "RMSE @10 t", "RMSE @20 t"]
    assert "valid mean (t)" in header
    # 80 held-out rows leave room for 32 rollouts of 40 steps.
    assert "over 32 held-out rollouts of 40 steps." in out
    for row in rows:
        assert 0 <= float(row[5]) <= 20
    assert [row[0] for row in rows] == METHODS + BASELINES
    assert " steps)" not in closing_line(out) and " t" in closing_line(out)


def test_a_missing_matplotlib_skips_the_figure_with_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("matplotlib", "matplotlib.backends.backend_agg", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: ImportError
    assert figure([], None, tmp_path / "x.png") is None  # type: ignore[arg-type]
    assert "figure skipped: matplotlib is not installed" in capsys.readouterr().out
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (Options(columns=["x"]), "--column and --time-column need --csv FILE"),
        (Options(time_column="t"), "--column and --time-column need --csv FILE"),
        (
            Options(csv=Path("s.csv")),
            "--csv s.csv needs --column NAME: the column(s) to forecast",
        ),
        (
            Options(csv=Path("s.csv"), columns=["x", "t"], time_column="t"),
            "column 't' cannot be both --column and --time-column",
        ),
        (Options(model="lstm"), "--model 'lstm': expected one of quadratic, mlp"),
    ],
)
def test_the_demo_itself_refuses_data_options_that_do_not_fit_together(
    options: Options, message: str
) -> None:
    with pytest.raises(DemoError) as error:
        options.validate()
    assert str(error.value) == message


def test_data_options_that_fit_together_pass_validation() -> None:
    Options().validate()
    Options(model="mlp").validate()
    Options(csv=Path("s.csv"), columns=["x", "y"], time_column="t").validate()


def test_run_checks_its_options_before_doing_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(DemoError, match="needs --column NAME"):
        run(Options(csv=tmp_path / "s.csv", out=tmp_path, quiet=True))
    assert capsys.readouterr() == ("", "")
    assert list(tmp_path.iterdir()) == []
