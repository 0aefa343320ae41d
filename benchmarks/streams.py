"""Benchmarks of loopline's streams, each side by side with plain PyTorch.

Run ``python benchmarks/streams.py`` (3-4 minutes) or ``--quick`` (40 s, noisier); the tables
are printed and written to ``benchmarks/out/streams.md``.

1. ``from_generator`` throughput with 0, 1 and 2 persistent workers on a CPU-bound generator
   (300 us of arithmetic per sample), against a naive ``IterableDataset`` (every worker yields
   every sample: duplicates are counted) and a hand-sharded one; after a warm-up epoch.
2. Per-batch overhead of ``forever(loader, epochs=N)`` against ``for epoch: for batch in
   loader`` and, when installed, a ``torchdata.nodes`` pipeline built the way its migration
   guide rebuilds a DataLoader. With 0 workers all advance side by side, batch by batch,
   summing the time inside each one's ``next()``; with 2 workers whole runs are timed.
3. Epoch-boundary stall on 2 workers whose items sleep 2 ms (like I/O), for the four loops
   (a)-(d) of the table: the wait for the first batch of a later epoch over the mean wait
   inside one (both workers finish together, so waits alternate between ~0 and a batch's
   load time, which makes medians unstable).
4. Resume mid-epoch: from building a loader and restoring a state saved at 10%, 50% or 90%
   of an epoch to holding the first batch, against the plain way (load and discard the
   batches before the position) and, when installed, torchdata's ``StatefulDataLoader`` and
   ``torchdata.nodes`` ``Loader``. Each resumed first batch is checked against an
   uninterrupted run.

Compared variants run in turn, the order reversed every other round, so that drift in this
shared machine's speed hits all alike; each figure is a median after a warm-up. One intra-op
thread per process (PyTorch sets it in workers), so that processes do not fight over cores.
"""

import argparse
import time
from pathlib import Path

import torch
from _streams_common import machine
from _streams_overhead import figure_overhead
from _streams_resume import figure_resume
from _streams_stall import figure_stall
from _streams_throughput import figure_generator

OUT = Path(__file__).resolve().parent / "out" / "streams.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run, noisier")
    quick = parser.parse_args().quick
    torch.set_num_threads(1)
    started = time.perf_counter()
    sections = [f"# loopline streams benchmark{' (--quick)' if quick else ''}\n\n{machine()}"]
    print(sections[0] + "\n", flush=True)
    for figure in (figure_generator, figure_overhead, figure_stall, figure_resume):
        sections.append(figure(quick))
        print(sections[-1] + "\n", flush=True)
    sections.append(f"Total run time: {time.perf_counter() - started:.0f} s.")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n\n".join(sections) + "\n")
    print(f"{sections[-1]} Wrote {OUT}.")


if __name__ == "__main__":
    main()
