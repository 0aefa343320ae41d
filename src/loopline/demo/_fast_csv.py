"""Fast reading of a CSV file's numeric columns by a C parser: pandas' when it is
installed, numpy's `loadtxt` otherwise.

Only the happy path is fast: `numeric_columns` returns None for anything it does not
read cleanly (a cell that is not a number, a missing or non-finite one, a ragged row),
and `series.load_csv` then reads the file again with its careful Python reader, which
names the line, the column and the value. Both readers agree wherever both succeed;
a property test holds them to it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

try:
    import pandas
except ImportError:  # the numpy reader is the fallback: pandas is an optional extra
    pandas = None


def default_engine() -> str:
    """pandas' parser where pandas is installed (about twice as fast), else numpy's."""
    return "pandas" if pandas is not None else "numpy"


def numeric_columns(
    path: Path, header: list[str], wanted: list[str], engine: str
) -> np.ndarray | None:
    """`[N, len(wanted)]` float64 of the `wanted` columns (named in `header`, the file's
    first row), every value finite; None if the C parser cannot read them cleanly."""
    where = [header.index(name) for name in wanted]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. numpy's "input contained no data"
            values = _pandas(path, where) if engine == "pandas" else _numpy(path, where)
    except (ValueError, TypeError, IndexError, UnicodeDecodeError, OverflowError):
        return None
    if values.ndim != 2 or values.shape[1] != len(where) or not np.isfinite(values).all():
        return None
    if not values.flags.writeable:  # pandas' copy-on-write hands out read-only views
        try:
            values.flags.writeable = True  # the frame is gone: the view is the only owner
        except ValueError:
            values = values.copy()
    return values


def _pandas(path: Path, where: list[int]) -> np.ndarray:
    if pandas is None:
        raise ValueError("pandas is not installed")
    frame = pandas.read_csv(
        path,
        usecols=where,
        dtype=np.float64,
        encoding="utf-8-sig",
        na_filter=False,  # an empty cell is an error to report, not a NaN
        engine="c",
    )
    return frame.iloc[:, np.argsort(np.argsort(where))].to_numpy(dtype=np.float64)


def _numpy(path: Path, where: list[int]) -> np.ndarray:
    return np.loadtxt(
        path,
        delimiter=",",
        skiprows=1,
        usecols=where,
        dtype=np.float64,
        comments=None,
        quotechar='"',
        encoding="utf-8-sig",
        ndmin=2,
    )
