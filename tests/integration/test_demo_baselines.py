"""`loopline demo --noise`, `--season` and `--model`: their errors, the baseline rows of the
table, and the forecaster asked for."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from loopline.cli import main

TINY = ["--quiet", "--steps", "8", "--batch-size", "16"]


def run_demo(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["demo", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """A clean usage error: exit 2, one line on stderr naming the option, no traceback."""
    code, out, err = run_demo(capsys, "--quiet", *argv)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert out == ""
    return err.strip()


def rows(out: str) -> dict[str, list[str]]:
    """The table's rows by method, the header and rule left out."""
    lines = [line for line in out.splitlines() if line.startswith("| ")][1:]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in cells}


def periodic(path: Path, rows: int, period: int) -> Path:
    """A pattern of `period` digits of pi repeated: no AR(4) continues it exactly."""
    pattern = [int(digit) for digit in f"{math.pi:.{period + 2}f}".replace(".", "")[:period]]
    path.write_text("y\n" + "".join(f"{pattern[i % period]}\n" for i in range(rows)))
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--season", "0"], "--season 0: expected a whole number >= 1"),
        (["--season", "-3"], "--season -3: expected a whole number >= 1"),
        (["--season", "1.5"], "--season 1.5: expected a whole number"),
        (["--noise", "-1"], "--noise -1: expected a finite number >= 0"),
        (["--noise", "nan"], "--noise nan: expected a finite number >= 0"),
        (["--noise", "lots"], "--noise lots: expected a number"),
        (["--season", "12"], "--season 12 needs --csv FILE: Lorenz-63 has no season"),
        (["--model", "lstm"], "--model 'lstm': expected one of quadratic, mlp"),
    ],
)
def test_bad_noise_and_season_are_one_line_errors_naming_the_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert error_line(capsys, *argv) == f"loopline demo: error: {message}"


def test_a_season_longer_than_the_training_rows_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = periodic(tmp_path / "s.csv", 100, 10)  # 80 rows train, 20 held out
    line = error_line(capsys, "--csv", str(path), "--column", "y", "--season", "81")
    assert line.endswith(
        f"--season 81 is longer than the 80 training rows of {path} (100 rows, the last 20 "
        "held out); use at most 80"
    )


def test_noise_is_for_lorenz_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = periodic(tmp_path / "s.csv", 100, 10)
    line = error_line(capsys, "--csv", str(path), "--column", "y", "--noise", "0.05")
    assert "--noise 0.05 adds noise to Lorenz-63's observations" in line


def test_a_csv_table_has_persistence_ar_and_seasonal_rows_and_a_verdict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = periodic(tmp_path / "s.csv", 200, 10)  # 160 train, 40 held out: 39 steps
    argv = [*TINY, "--csv", str(path), "--column", "y", "--season", "10", "--out", str(tmp_path)]
    code, out, err = run_demo(capsys, *argv)
    assert code == 0, err
    table = rows(out)
    assert list(table) == [
        "teacher forcing",
        "unroll",
        "pushforward",
        "persistence (baseline)",
        "linear AR(4) (baseline)",
        "seasonal naive (10) (baseline)",
    ]
    # A series of period 10 is its own seasonal forecast: no error over the whole horizon.
    seasonal = table["seasonal naive (10) (baseline)"]
    assert seasonal[:4] == ["0.000"] * 4 and seasonal[4:] == ["39.00", "39.00", "-", "-", "-"]
    assert table["persistence (baseline)"][0] != "0.000"
    (verdict,) = [line for line in out.splitlines() if line.startswith("best: ")]
    assert verdict.startswith(
        "best: seasonal naive (10) (a baseline), median valid time 39.00 steps; the best "
        "trained method, "
    )


def test_lorenz_with_noise_zero_trains_on_clean_states(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = [*TINY, "--horizon", "30", "--out", str(tmp_path)]
    code, out, err = run_demo(capsys, *argv, "--noise", "0")
    assert code == 0, err
    assert out.startswith("loopline demo: Lorenz-63 (RK4, dt 0.01), trained and scored on clean")
    assert list(rows(out))[3:] == ["persistence (baseline)", "linear AR(4) (baseline)"]
    code, out, err = run_demo(capsys, *argv)
    assert code == 0, err
    assert "trained on observations with noise 0.02, scored against the clean truth" in out


def test_lorenz_trains_the_mlp_when_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_demo(
        capsys, *TINY, "--horizon", "30", "--out", str(tmp_path), "--model", "mlp"
    )
    assert code == 0, err
    assert "forecaster: x + 0.1 f(x), f a GELU MLP 3-64-64-3 (--model mlp)" in out
    assert list(rows(out))[:3] == ["teacher forcing", "unroll", "pushforward"]
