"""The CLI with a bad CSV file: exit 2 and one line naming the file (and where it applies
the column and line), before any training; randomly corrupted CSV files give that, or a
run that reads the file as it stands and prints its table.

Every case runs in-process through `loopline.cli.main`, which is what the command calls
(test_cli.py runs `python -m loopline` as a real process once).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_demo_bad_input import CSV_TINY, assert_one_line_refusal, cli, run_in_process


def good_csv(rows: int = 120) -> str:
    lines = ["t,x,y"]
    lines += [f"{t},{math.sin(t / 5):.6f},{math.cos(t / 7):.6f}" for t in range(rows)]
    return "\n".join(lines) + "\n"


def with_cell(text: str, line: int, column: int, value: str) -> str:
    lines = text.splitlines()
    cells = lines[line - 1].split(",")
    cells[column] = value
    lines[line - 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


CONSTANT = "t,x,y\n" + "".join(f"{t},{math.sin(t):.5f},3.5\n" for t in range(120))
CSV_CASES = {
    "constant column": (CONSTANT, ["column 'y'", "every training row holds 3.5"]),
    "huge value": (with_cell(good_csv(), 5, 1, "1e308"), ["column 'x'", "overflow float64"]),
    "duplicated header": (good_csv().replace("t,x,y", "t,x,x,y", 1), ["'x' appears 2 times"]),
    "not a number": (with_cell(good_csv(), 7, 2, "abc"), ["line 7, column 'y'", "'abc'"]),
    "missing value": (with_cell(good_csv(), 9, 1, ""), ["line 9, column 'x'", "missing"]),
    "infinite": (with_cell(good_csv(), 4, 1, "inf"), ["line 4", "not a finite number"]),
    "nan": (with_cell(good_csv(), 4, 2, "nan"), ["line 4, column 'y'", "not a finite"]),
    "empty file": ("", ["is empty"]),
    "missing column": (good_csv().replace("t,x,y", "t,x,z", 1), ["column 'y' is not in"]),
    "too short": (good_csv(8), ["has 8 data rows"]),
    "not utf-8": (good_csv().replace("0.8", "\udcff", 1), ["not a readable CSV text file"]),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_a_bad_csv_is_refused_in_one_line_naming_what_is_wrong(case: str, tmp_path: Path) -> None:
    text, words = CSV_CASES[case]
    path = tmp_path / "series.csv"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    result = cli(*CSV_TINY, "--csv", str(path), "--out", str(tmp_path), cwd=tmp_path)
    assert_one_line_refusal(result, str(path), *words)


@pytest.mark.parametrize(
    ("where", "words"),
    [("directory", ["is a directory, not a CSV file"]), ("/dev/null", ["not a regular file"])],
)
def test_a_csv_path_that_is_no_file_says_what_it_is(where: str, words, tmp_path: Path) -> None:
    path = str(tmp_path) if where == "directory" else where
    result = cli(*CSV_TINY, "--csv", path, "--out", str(tmp_path), cwd=tmp_path)
    assert_one_line_refusal(result, *words)


def test_a_good_csv_runs_and_prints_its_table(tmp_path: Path) -> None:
    path = tmp_path / "series.csv"
    path.write_text(good_csv())
    result = cli(*CSV_TINY, "--csv", str(path), "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| teacher forcing" in result.stdout


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_corruption_of_a_csv_gives_a_run_or_one_line(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("csv")
    corrupted = bytearray(good_csv().encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(corrupted) - 1))
        corrupted[at] = data.draw(st.sampled_from(b'0123456789,.-e\n x"\xff'))
    path = directory / "series.csv"
    path.write_bytes(bytes(corrupted))
    code, out, err = run_in_process(*CSV_TINY, "--csv", str(path), "--out", str(directory))
    assert code in (0, 2) and "Traceback" not in err
    if code == 2:
        assert len(err.splitlines()) == 1 and out == "", err
        assert err.startswith("loopline demo: error: ")
    else:
        assert "| teacher forcing" in out
