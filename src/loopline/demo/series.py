"""A user's series from a CSV file: loading with clear errors, and windowing.

`load_csv` reads the named columns of a CSV file with a header row into a `Series`:
values `[N, D]` float64 and, with a time column, the time step. A C parser reads a clean
file (`_fast_csv`: pandas' if installed, else numpy's); anything it cannot read is read
again by the stdlib `csv` reader here, so that every problem a user can cause is a
`SeriesError` whose one-line message names the file, and where it applies the row, the
column and the value. `windows` is the generator the
demo streams: all windows of a series, in an order fixed by `current_shard()`'s seed and
epoch.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from loopline import Shard, current_shard
from loopline.demo import _fast_csv
from loopline.demo.lorenz import shard_generator


class SeriesError(ValueError):
    """The CSV file cannot give the series the demo needs; the message says why."""


@dataclass
class Series:
    """Columns of a CSV file as numbers.

    Attributes:
        values: `[N, D]` float64, one row per CSV data row, one column per name.
        columns: the D column names.
        dt: time per row (the median step of the time column; 1.0 without one).
        unit: what `dt` counts: "steps", the time column's name, or "days" for dates.
    """

    values: torch.Tensor
    columns: list[str]
    dt: float = 1.0
    unit: str = "steps"


def load_csv(path: str | Path, columns: Sequence[str], time_column: str | None = None) -> Series:
    """Read `columns` (and `time_column`) of a CSV file with a header row.

    Args:
        path: the file; comma-separated, UTF-8, first row the column names.
        columns: the names of the series' columns (one for a univariate series).
        time_column: a column of increasing numbers or ISO dates; it sets `dt`.

    Raises:
        SeriesError: no such file, no header, a missing column, a non-numeric or
            non-finite value, or times that do not increase.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
        >>> _ = path.write_text("t,x\\n0,1.5\\n2,2.5\\n4,3.5\\n")
        >>> series = load_csv(path, ["x"], time_column="t")
        >>> series.values[:, 0].tolist(), series.dt, series.unit
        ([1.5, 2.5, 3.5], 2.0, 't')
    """
    return _load(Path(path), list(columns), time_column, _fast_csv.default_engine())


def _load(path: Path, columns: list[str], time_column: str | None, engine: str) -> Series:
    """`load_csv` with the fast reader `engine` ("pandas", "numpy"; "python": none)."""
    _check_path(path)
    wanted = [*columns, *([time_column] if time_column else [])]
    try:
        header = _header(path, wanted)
        if engine != "python":
            fast = _fast_csv.numeric_columns(path, header, wanted, engine)
            if fast is not None and _increasing(fast, time_column):
                table = torch.from_numpy(fast)  # [N, D (+ 1)] float64
                if time_column:  # numbers, increasing: the median step is dt
                    dt = _median_step(table[:, -1])
                    return Series(table[:, :-1].contiguous(), columns, dt, time_column)
                return Series(table, columns)
        lines, cells = _read(path, wanted)
    except (UnicodeDecodeError, csv.Error) as error:
        raise SeriesError(f"{path} is not a readable CSV text file: {error}") from None
    values = [
        [_number(path, line, name, row[j]) for j, name in enumerate(columns)]
        for line, row in zip(lines, cells, strict=True)
    ]
    series = Series(
        torch.tensor(values, dtype=torch.float64).reshape(len(cells), len(columns)), columns
    )
    if time_column:
        times = [
            _time(path, line, time_column, row[-1]) for line, row in zip(lines, cells, strict=True)
        ]
        series.dt, series.unit = _step(path, time_column, lines, times)
    return series


def _check_path(path: Path) -> None:
    if not path.exists():
        raise SeriesError(f"no such file: {path}")
    if path.is_dir():
        raise SeriesError(f"{path} is a directory, not a CSV file")
    if not path.is_file():
        raise SeriesError(f"{path} is not a regular file (a device, pipe or socket), not a CSV")


def _header(path: Path, wanted: list[str]) -> list[str]:
    """The column names of the first line; each wanted name must be there, once."""
    with path.open(newline="", encoding="utf-8-sig") as file:
        header = next(csv.reader(file), None)
    if not header or not any(name.strip() for name in header):
        raise SeriesError(f"{path} is empty: its first line must name the columns")
    header = [name.strip() for name in header]
    for name in wanted:
        if name not in header:
            raise SeriesError(
                f"column {name!r} is not in {path}; its columns are: {', '.join(header)}"
            )
        if header.count(name) > 1:
            places = [str(i + 1) for i, other in enumerate(header) if other == name]
            raise SeriesError(
                f"column {name!r} appears {len(places)} times in the header of {path} "
                f"(columns {', '.join(places)}); rename the copies so each name is one column"
            )
    return header


def _increasing(values: np.ndarray, time_column: str | None) -> bool:
    """Without a time column, True; with one (the last column), whether it increases."""
    return time_column is None or bool((np.diff(values[:, -1]) > 0).all())


def _median_step(times: torch.Tensor) -> float:
    """The median of the steps between times, as `_step` takes it (the upper middle one)."""
    steps = times.diff().sort().values
    return steps[len(steps) // 2].item() if len(steps) else 1.0


def _read(path: Path, wanted: list[str]) -> tuple[list[int], list[list[str | None]]]:
    """The line number and the `wanted` cells of every non-blank data row."""
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        header = [name.strip() for name in next(reader)]
        where = [header.index(name) for name in wanted]
        lines, cells = [], []
        for row in reader:
            if any(cell.strip() for cell in row):
                lines.append(reader.line_num)
                cells.append([row[i].strip() if i < len(row) else None for i in where])
    return lines, cells


def _number(path: Path, line: int, column: str, text: str | None) -> float:
    place = f"{path}, line {line}, column {column!r}"
    if text is None or text == "":
        raise SeriesError(f"{place}: missing value; every row needs a number there")
    try:
        value = float(text)
    except ValueError:
        raise SeriesError(f"{place}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SeriesError(f"{place}: {text!r} is not a finite number")
    return value


def _time(path: Path, line: int, column: str, text: str | None) -> float | datetime:
    try:
        return _number(path, line, column, text)
    except SeriesError:
        try:
            return datetime.fromisoformat(text or "")
        except ValueError:
            raise SeriesError(
                f"{path}, line {line}, column {column!r}: {text!r} is neither a number nor "
                "an ISO date (2024-01-31 or 2024-01-31T12:00)"
            ) from None


def _step(
    path: Path, column: str, lines: list[int], times: list[float | datetime]
) -> tuple[float, str]:
    """The median time step and its unit; times must increase."""
    dates = [t for t in times if isinstance(t, datetime)]
    if dates and len(dates) != len(times):
        raise SeriesError(f"{path}, column {column!r}: mixes numbers and dates")
    if dates:
        points, unit = [(t - dates[0]).total_seconds() / 86400 for t in dates], "days"
    else:
        points, unit = [float(t) for t in times], column  # type: ignore[arg-type]
    steps = [b - a for a, b in itertools.pairwise(points)]
    for line, step in zip(lines[1:], steps, strict=True):
        if not step > 0:
            raise SeriesError(
                f"{path}, line {line}, column {column!r}: times must increase, but this "
                "one is not after the previous row's"
            )
    return (sorted(steps)[len(steps) // 2] if steps else 1.0), unit


def windows(values: torch.Tensor, window: int, batch: int) -> Iterator[torch.Tensor]:
    """Every window `[window + 1, D]` of `values: [N, D]`, in batches `[batch, window + 1, D]`
    (the last one may be smaller), in a random order per epoch.

    For `from_generator(windows, values, window, batch, batched=True)` (not sharded): the
    order depends only on the seed and epoch, so every shard computes the same one and
    keeps its batches.

    Example:
        >>> import torch
        >>> [b[:, :, 0].tolist() for b in windows(torch.arange(5.0)[:, None], 2, batch=2)]
        [[[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [[2.0, 3.0, 4.0]]]
    """
    shard = current_shard()
    generator = shard_generator(Shard(seed=shard.seed, epoch=shard.epoch))
    steps = torch.arange(window + 1)  # [W+1]
    for starts in torch.randperm(len(values) - window, generator=generator).split(batch):
        yield values[starts[:, None] + steps]  # [B, W+1, D]
