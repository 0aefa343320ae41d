"""Benchmark of the demo's CSV reader (`loopline demo --csv`) against pandas.read_csv.

Run ``python benchmarks/csv_reader.py`` (about 2 minutes: it writes a 215 MB file of
8 million rows and 3 columns, as issue 14 measured) or ``--quick`` (1 million rows).
Each reader runs in a fresh process; its time is the read alone, its peak memory the
process's peak resident size less what it held before the read (Python, torch, pandas
imported). Both are given per 100 MB of file. The demo's reader returns float64 values
checked finite; pandas.read_csv returns a DataFrame of the same numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import publish, table

OUT = Path(__file__).resolve().parent / "out" / "csv_reader.md"

CHILD = """
import json, resource, sys, time
from pathlib import Path
import numpy, torch
engine, path = sys.argv[1], Path(sys.argv[2])
from loopline.demo import series
try:
    import pandas
except ImportError:
    pandas = None
if engine == "pandas.read_csv" and pandas is None:
    print(json.dumps(None)); sys.exit()
if engine == "loopline (pandas)" and pandas is None:
    print(json.dumps(None)); sys.exit()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if engine == "pandas.read_csv":
    rows = len(pandas.read_csv(path))
else:
    name = {"loopline (pandas)": "pandas", "loopline (numpy)": "numpy",
            "loopline (Python csv, the old reader)": "python"}[engine]
    rows = len(series._load(path, ["a", "b", "c"], None, name).values)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"seconds": seconds, "peak_kib": peak, "rows": rows}))
"""

ENGINES = ["pandas.read_csv", "loopline (pandas)", "loopline (numpy)"]
SLOW = "loopline (Python csv, the old reader)"


def write_csv(path: Path, rows: int) -> None:
    """`rows` rows of three numbers like "-0.12345", as issue 14's file (27 bytes a row)."""
    rng = np.random.default_rng(0)
    with path.open("w") as file:
        file.write("a,b,c\n")
        for start in range(0, rows, 1_000_000):
            block = rng.standard_normal((min(1_000_000, rows - start), 3))
            np.savetxt(file, block, fmt="%.5f", delimiter=",")


def measure(engine: str, path: Path) -> dict[str, float] | None:
    command = [sys.executable, "-c", CHILD, engine, str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 million rows")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = 1_000_000 if args.quick else 8_000_000
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "series.csv"
        write_csv(path, rows)
        size = path.stat().st_size
        per = 100e6 / size  # scale to 100 MB of file
        engines = [*ENGINES, SLOW] if args.quick else ENGINES
        results = {engine: measure(engine, path) for engine in engines}
    base = results["pandas.read_csv"]
    lines = []
    for engine, got in results.items():
        if got is None:
            lines.append([engine, "pandas not installed", "", "", ""])
            continue
        ratio = f"{got['seconds'] / base['seconds']:.2f}x" if base else "n/a"
        memory = got["peak_kib"] / 1024 * per
        lines.append(
            [engine, f"{got['seconds'] * per:.2f}", ratio, f"{memory:.0f}", f"{memory / 100:.2f}x"]
        )
    headers = ["reader", "s per 100 MB", "time vs pandas.read_csv", "peak MB per 100 MB"]
    headers.append("peak / file size")
    note = (
        f"A file of {rows:,} rows x 3 columns, {size / 1e6:.0f} MB. Goals (issue 14): time "
        "within 2x of pandas.read_csv, peak memory at most 3x the file. The demo reads with "
        "pandas' C parser where pandas is installed (`pip install loopline[csv]`), with "
        "numpy's loadtxt otherwise; either hands a file it cannot read cleanly to the "
        "Python csv reader, which names the line and column of the problem."
    )
    if not args.quick:
        note += " The old Python csv reader took 43 s and 5.06 GB on the 215 MB file."
    how = f"Settings: {os.cpu_count()} CPUs, numpy {np.__version__}, Python "
    how += f"{platform.python_version()}{', --quick' if args.quick else ''}."
    sections = [how, note, table(headers, lines)]
    publish("The demo's CSV reader (benchmarks/csv_reader.py)", sections, OUT, started)


if __name__ == "__main__":
    main()
