"""What the benchmark scripts share: Markdown tables, the settings line, writing the report."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import torch


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; cells are written with str()."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def settings(quick: bool) -> str:
    """The line that says how a script ran (RESULTS.md describes the machine itself)."""
    return (
        f"Settings: 1 intra-op thread{', --quick' if quick else ''}; {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, Python {platform.python_version()}."
    )


def publish(title: str, sections: list[str], out: Path, started: float) -> None:
    """Print the report, then write it to `out` (benchmarks/out/<name>.md)."""
    text = f"## {title}\n\n" + "\n\n".join(sections) + "\n"
    print(text)
    print(f"(ran in {time.perf_counter() - started:.0f} s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
