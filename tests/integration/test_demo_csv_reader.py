"""The demo's CSV reader: the fast C parsers (pandas', numpy's) give exactly what the
careful Python reader gives, values or the error naming line and column, on generated
files with odd formatting, bad cells, blank lines, quotes and a BOM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.demo import _fast_csv, series

ENGINES = ["numpy"] + (["pandas"] if _fast_csv.pandas is not None else [])

numbers = st.floats(-1e6, 1e6, allow_nan=False).map(repr) | st.integers(-999, 999).map(str)
odd = st.sampled_from(["", " ", "abc", "nan", "inf", "-inf", "1_0", '"2.5"', "1e999", " 3 "])
cell = numbers | numbers.map(lambda text: f" {text}") | odd
row = st.lists(cell, min_size=3, max_size=4)


def outcome(path: Path, engine: str, time_column: str | None) -> tuple:
    try:
        read = series._load(path, ["x", "y"], time_column, engine)
    except series.SeriesError as error:
        return ("error", str(error))
    return ("ok", read.values.tolist(), read.dt, read.unit, read.values.dtype)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(row | st.just([]), min_size=1, max_size=12),
    bom=st.booleans(),
    crlf=st.booleans(),
    timed=st.booleans(),
    clean=st.booleans(),
)
def test_the_fast_readers_agree_with_the_careful_one(rows, bom, crlf, timed, clean, tmp_path):
    if clean:  # a share of files with only numbers, so that the fast path is taken
        rows = [[f"{i}.5", f"{-i}", f"{i * 2}"] for i in range(len(rows))]
    newline = "\r\n" if crlf else "\n"
    text = newline.join(["t,x,y", *(",".join(cells) for cells in rows)]) + newline
    path = tmp_path / "s.csv"
    path.write_bytes((("\ufeff" if bom else "") + text).encode())
    time_column = "t" if timed else None
    expected = outcome(path, "python", time_column)
    for engine in ENGINES:
        assert outcome(path, engine, time_column) == expected, engine


@pytest.mark.parametrize("engine", ENGINES)
def test_a_clean_file_is_read_by_the_fast_parser(engine, tmp_path, monkeypatch):
    path = tmp_path / "s.csv"
    path.write_text("t,x,y,z\n0,1.5,2,9\n2, 2.5,3,9\n\n4,3.5,4,9\n")
    monkeypatch.setattr(series, "_read", None)  # the careful reader must not be needed
    read = series._load(path, ["y", "x"], "t", engine)
    assert torch.equal(read.values, torch.tensor([[2.0, 1.5], [3.0, 2.5], [4.0, 3.5]]))
    assert (read.dt, read.unit, read.columns) == (2.0, "t", ["y", "x"])


def test_load_csv_uses_pandas_where_it_is_installed():
    expected = "pandas" if _fast_csv.pandas is not None else "numpy"
    assert _fast_csv.default_engine() == expected
