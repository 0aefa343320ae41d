"""Gathers the reports of the benchmark scripts just run into ``benchmarks/RESULTS.md``.

``make bench`` calls it twice. ``--start`` before the scripts notes the time, load and
arguments of the run in ``benchmarks/out/.run.json``; the call after them writes one document:
a header that describes the machine once, then each script's ``benchmarks/out/<name>.md`` in a
fixed order, its headings moved so that its title is a ``##`` under the document's one ``#``.
Each report's own ``Machine:`` line goes, as the header says it once for all. A report older
than the run's start, or missing, is listed as not run: a stale table never passes for a new one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from _report import table

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RUN = OUT / ".run.json"
RESULTS = HERE / "RESULTS.md"
# The order of the sections; scripts not named here follow, alphabetically.
ORDER = ["streams", "elastic", "batching", "rollout", "training", "lorenz_quality", "compose"]
ORDER += ["csv_reader"]
# Keys of the run record written by --start.
STARTED, LOAD, ARGS = "started", "load", "args"
HEADING = re.compile(r"^(#{1,6})(?= )")


def record_start(args: str) -> None:
    """Notes when the run starts, the load then and the scripts' arguments."""
    OUT.mkdir(parents=True, exist_ok=True)
    run = {STARTED: time.time(), LOAD: os.getloadavg()[0], ARGS: args.split()}
    RUN.write_text(json.dumps(run) + "\n")


def package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def cpu() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    total = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    cores = f"{usable} usable cores" + (f" of {total}" if usable != total else "")
    return f"{model or platform.processor() or platform.machine()}, {cores}"


def memory() -> str:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "unknown"
    return f"{total / 2**30:.1f} GiB"


def accelerator(torch: Any) -> str:
    """The GPUs torch sees, or none."""
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return ", ".join(names) + f" (CUDA {torch.version.cuda or torch.version.hip})"
    mps = getattr(torch.backends, "mps", None)
    return "Apple MPS" if mps and mps.is_available() else "none (torch.cuda not available)"


def header(run: dict[str, Any] | None, quick: bool) -> str:
    """The document's title and the one description of the machine and the run."""
    import torch  # here, not at import: the --start call need not pay for it

    now = time.time()
    started = run[STARTED] if run else now
    args = " ".join(run[ARGS]) if run and run[ARGS] else "none"
    load = f"{run[LOAD]:.2f} at the start, " if run else ""
    took = f"{now - started:.0f} s" if run else "unknown (no --start record)"
    rows = [
        ["CPU", cpu()],
        ["memory", memory()],
        ["GPU", accelerator(torch)],
        ["OS", platform.platform()],
        ["Python", platform.python_version()],
        ["torch", f"{torch.__version__} ({torch.get_num_threads()} intra-op threads by default)"],
        ["loopline", package("loopline")],
        ["torchdata (peer)", package("torchdata")],
        ["date", datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")],
        ["run", "quick (--quick: fewer rounds, noisier)" if quick else "full"],
        ["script arguments", args],
        ["total run time", took],
        ["load average (1 min)", f"{load}{os.getloadavg()[0]:.2f} at the end"],
    ]
    warning = "\n\n**A quick run: for checking the pipeline, not for quoting.**" if quick else ""
    return (
        "# loopline benchmarks\n\nWritten by `make bench`: every script in `benchmarks/` run "
        "once on this machine, then its report gathered here. Within a script, the ways "
        "compared (loopline, the plain PyTorch way, and torchdata's `StatefulDataLoader` and "
        "`torchdata.nodes` where installed and where they apply) are measured side by side "
        "in the same run, and reported as ratios to the plain way."
        f"{warning}\n\n" + table(["", ""], rows)
    )


def script_names() -> list[str]:
    """The sections: ORDER first, then any other script or fresh report, alphabetically."""
    others = {p.stem for p in HERE.glob("[!_]*.py")} | {p.stem for p in OUT.glob("*.md")}
    return ORDER + sorted(others - set(ORDER))


def without_machine_lines(text: str) -> str:
    paragraphs = text.strip().split("\n\n")
    return "\n\n".join(p for p in paragraphs if not p.startswith("Machine:"))


def with_title_at_two(text: str) -> str:
    """`text` with its headings (outside code blocks) moved so that the first is a `##`;
    none goes above `##`, the document's title being the one `#`."""
    lines, fenced, shift = text.splitlines(), False, None
    for i, line in enumerate(lines):
        fenced ^= line.startswith("```")
        match = None if fenced else HEADING.match(line)
        if match:
            shift = 2 - len(match.group(1)) if shift is None else shift
            level = min(6, max(2, len(match.group(1)) + shift))
            lines[i] = "#" * level + line[len(match.group(1)) :]
    return "\n".join(lines)


def report(name: str, run: dict[str, Any] | None, failed: set[str]) -> tuple[str, str]:
    """A script's section and its status for the contents table."""
    path = OUT / f"{name}.md"
    fresh = path.exists() and (run is None or path.stat().st_mtime >= run[STARTED])
    if fresh:
        text = with_title_at_two(without_machine_lines(path.read_text()))
        if not text.startswith("## "):
            text = f"## {name}\n\n{text}"
        written = f"+{path.stat().st_mtime - run[STARTED]:.0f} s" if run else "yes"
        return text, written
    script = HERE / f"{name}.py"
    why = (
        "failed in this run (see make's output)"
        if name in failed
        else f"there is no benchmarks/{name}.py"
        if not script.exists()
        else "it wrote no report in this run"
    )
    return f"## `benchmarks/{name}.py`\n\nNot run: {why}.", f"not run: {why}"


def collect(quick: bool, failed: set[str]) -> str:
    run = json.loads(RUN.read_text()) if RUN.exists() else None
    sections, contents = [], []
    for name in script_names():
        text, status = report(name, run, failed)
        sections.append(text)
        contents.append([f"`benchmarks/{name}.py`", status])
    quick = quick or bool(run and "--quick" in run[ARGS])
    contents_table = table(["script", "report written, after the start"], contents)
    return "\n\n".join([header(run, quick), contents_table, *sections]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", action="store_true", help="note the start of a run")
    parser.add_argument("--args", default="", help="the scripts' arguments (with --start)")
    parser.add_argument("--failed", default="", help="names of scripts that failed")
    parser.add_argument("--quick", action="store_true", help="say it was a quick run")
    options = parser.parse_args()
    if options.start:
        record_start(options.args)
        return
    RESULTS.write_text(collect(options.quick, set(options.failed.split())))
    print(f"Wrote {RESULTS}.")


if __name__ == "__main__":
    main()
