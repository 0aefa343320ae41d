"""Benchmark of loopline.Graph: forward overhead against hand-written forwards, and the
cost of Graph.check on models of about 100M parameters.

Run ``python benchmarks/compose.py`` (about 2 minutes) or ``--quick`` (about 40 s). Tables
are printed and written to ``benchmarks/out/compose.md``.

1. Forward: each model is written twice over the same submodules, as the ``nn.Module`` a
   person would write and as a ``Graph``, both called with the same dict batch, on one
   thread. Timing: ``time.perf_counter`` around ``reps`` calls, two untimed rounds, then
   rounds in which every variant runs once, the order rotating. Figures are medians of
   µs per call; ratios are medians of per-round ratios (variants of a round run moments
   apart, so load from other processes mostly cancels). A second copy of the
   hand-written forward shows the noise floor.
2. check: wall time of ``graph.check()`` from specs on models with real parameters on the
   CPU. Memory: the growth of the process's peak resident set during the check (VmHWM,
   reset through /proc/self/clear_refs first; Linux only), and tracemalloc's peak of
   Python allocations during a separate check. For scale, one real forward at the sizes
   the check used.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _compose_check import CHECK_HEADERS, check_rows
from _compose_forward import FORWARD_HEADERS, forward_rows
from _report import publish, settings, table

OUT = Path(__file__).resolve().parent / "out" / "compose.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 40 s)")
    quick = parser.parse_args().quick
    torch.set_num_threads(1)
    started = time.perf_counter()
    forward = forward_rows(quick)
    check = check_rows(quick)
    sections = [
        settings(quick),
        "### 1. Forward: Graph against the hand-written forward, µs per call\n\n"
        + table(FORWARD_HEADERS, forward)
        + "\n\nGoal: Graph / hand within 5% (1.05x). The graph's forward is generated once "
        "as Python source, one line per node, so it does what the hand-written one does; "
        "it can even read below 1.0x on tiny models, as it holds its modules in locals "
        "where the hand-written forward looks up `self.a` through `nn.Module.__getattr__`. "
        "The noise floor column is the same comparison between two copies of the "
        "hand-written forward.",
        "### 2. Graph.check on about 100M parameters\n\n"
        + table(CHECK_HEADERS, check)
        + "\n\nThe check runs every node on meta tensors: parameters are not copied and no "
        "activation is allocated, so the resident set does not grow. Its time depends on "
        "the number of operators, not on parameters: many of torch's meta kernels "
        "(layer_norm, elementwise ops) are Python reference implementations costing tens "
        "to hundreds of µs each, which is most of the transformer's check time.",
    ]
    publish("loopline compose benchmark", sections, OUT, started)


if __name__ == "__main__":
    main()
