"""The `loopline` command line: subcommands, and errors as one clean line with exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from loopline.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the demo expecting a clean error: exit 2, one line on stderr, no traceback."""
    code, _, err = run_cli(capsys, "demo", "--quiet", *argv)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert err.startswith("loopline demo: error: ")
    return err.strip()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_help_lists_the_demo_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    assert "demo" in out


def test_demo_help_shows_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "demo", "--help")
    assert code == 0
    for flag in ("--csv", "--column", "--time-column", "--steps", "--seed", "--device"):
        assert flag in out
    for flag in ("--quiet", "--checkpoint", "--checkpoint-every", "--out"):
        assert flag in out


def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys)
    assert code == 2
    assert "COMMAND" in err


def test_a_step_count_below_one_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "demo", "--steps", "0")
    assert code == 2
    assert "--steps: expected a number >= 1, got 0" in err


def test_missing_csv_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    line = error_line(capsys, "--csv", str(missing), "--column", "x")
    assert line.endswith(f"no such file: {missing}")


def test_missing_column_lists_the_available_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path / "s.csv", "time,speed,load\n0,1,2\n")
    line = error_line(capsys, "--csv", str(path), "--column", "sped")
    assert f"column 'sped' is not in {path}; its columns are: time, speed, load" in line


def test_missing_time_column_lists_the_available_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path / "s.csv", "t,x\n0,1\n")
    line = error_line(capsys, "--csv", str(path), "--column", "x", "--time-column", "when")
    assert "column 'when' is not in" in line
    assert "its columns are: t, x" in line


def test_non_numeric_value_names_line_column_and_value(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows = [f"{i},{i * 0.5}" for i in range(100)]
    rows[7] = "7,3.5 kg"  # line 9 of the file: the header is line 1
    path = write(tmp_path / "s.csv", "t,x\n" + "\n".join(rows) + "\n")
    line = error_line(capsys, "--csv", str(path), "--column", "x")
    assert line.endswith(f"{path}, line 9, column 'x': '3.5 kg' is not a number")


def test_non_finite_value_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", "x\n1\nnan\n")
    line = error_line(capsys, "--csv", str(path), "--column", "x")
    assert line.endswith(f"{path}, line 3, column 'x': 'nan' is not a finite number")


def test_empty_cell_is_reported_as_missing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path / "s.csv", "x,y\n1,2\n3,\n")
    line = error_line(capsys, "--csv", str(path), "--column", "x,y")
    assert f"{path}, line 3, column 'y': missing value" in line


def test_too_short_series_says_rows_found_and_needed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path / "s.csv", "x\n" + "".join(f"{i}\n" for i in range(30)))
    line = error_line(capsys, "--csv", str(path), "--column", "x")
    assert f"{path} has 30 data rows in 'x'; the demo needs at least 45 with --window 8" in line
    line = error_line(capsys, "--csv", str(path), "--column", "x", "--window", "6")
    assert "has 30 data rows in 'x'; the demo needs at least 35 with --window 6" in line


def test_a_window_longer_than_the_lorenz_trajectories_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = error_line(capsys, "--window", "300")
    assert (
        "--window 300 is too long for Lorenz-63 trajectories of 1000 steps; use at most 200" in line
    )


def test_csv_needs_a_column(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", "x\n1\n")
    line = error_line(capsys, "--csv", str(path))
    assert "needs --column NAME" in line


def test_column_needs_a_csv(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--column and --time-column need --csv FILE" in error_line(capsys, "--column", "x")


def test_a_column_cannot_also_be_the_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path / "s.csv", "t,x\n0,1\n")
    line = error_line(capsys, "--csv", str(path), "--column", "t", "--time-column", "t")
    assert "cannot be both --column and --time-column" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert "CUDA is not available here; use --device cpu" in error_line(capsys, "--device", "cuda")


def test_an_unknown_device_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--device 'gpu0' is not a device torch knows" in error_line(capsys, "--device", "gpu0")


def test_python_dash_m_reports_an_error_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loopline", "demo", "--csv", "absent.csv", "--column", "x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "loopline demo: error: no such file: absent.csv\n"


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "loopline"
    if not script.exists():
        pytest.skip("the package is not installed with its console script")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "demo" in result.stdout
