"""The test side of loopline's torch.distributed tests: two rank processes on gloo.

Two rank processes are started with the "spawn" method (tests/_dist_workers.py holds
their code) and kept for a test module (the `ranks` fixture of tests/streams/conftest.py);
each test asks them to run one scenario in a fresh process group, which rendezvouses
through a TCPStore this process hosts. Each rank writes its outcome to a JSON file in the
test's tmp_path, which the test reads. Every wait is bounded: the process groups time
out, and ranks that do not answer in time are killed and the test fails. After any error
the ranks are replaced by fresh ones, so a broken collective cannot leak into the next
test.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

import _dist_workers

WORLD_SIZE = 2
GROUP_TIMEOUT_S = 60  # torch.distributed timeout of every collective
ANSWER_TIMEOUT_S = 90  # how long a test waits for both ranks before killing them


class Ranks:
    """Two rank processes that run scenarios of tests/_dist_workers.py on request."""

    def __init__(self) -> None:
        self.processes: list[Any] = []
        self.queues: list[Any] = []
        self.store: Any = None
        self.commands = 0

    def start(self) -> None:
        # Port 0: the OS picks a free port, so parallel runs never collide.
        self.store = dist.TCPStore(
            "127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=60)
        )
        context = mp.get_context("spawn")
        self.queues = [context.Queue() for _ in range(WORLD_SIZE)]
        self.processes = [
            context.Process(
                target=_dist_workers.serve,
                args=(rank, WORLD_SIZE, self.store.port, queue),
                name=f"rank{rank}",
            )
            for rank, queue in enumerate(self.queues)
        ]
        for process in self.processes:
            process.start()

    def alive(self) -> bool:
        return bool(self.processes) and all(process.is_alive() for process in self.processes)

    def stop(self, grace_s: float = 10) -> None:
        """Ask the ranks to exit; kill any that has not after `grace_s` seconds."""
        for queue, process in zip(self.queues, self.processes, strict=True):
            if process.is_alive():
                queue.put(None)
        for process in self.processes:
            process.join(grace_s)
            if process.is_alive():
                process.kill()
                process.join(10)
        for queue in self.queues:
            queue.close()
            queue.cancel_join_thread()
        self.processes, self.queues, self.store = [], [], None

    def run(
        self,
        scenario: str,
        out_dir: Path,
        *,
        timeout_s: float = GROUP_TIMEOUT_S,
        breaks_group: bool = False,
        **params: Any,
    ) -> list[Any]:
        """Run `scenario` on both ranks; the result of each rank, rank 0 first.

        Fails the test (after killing the ranks) when a rank does not answer within
        ANSWER_TIMEOUT_S, and shows the traceback of every rank that raised. Ranks are
        replaced after an error, or after a scenario that `breaks_group` on purpose.
        """
        if not self.alive():
            self.stop(grace_s=0)
            self.start()
        self.commands += 1
        name = f"{scenario}-{self.commands}"
        outs = [out_dir / f"{name}-rank{rank}.json" for rank in range(WORLD_SIZE)]
        for queue, out in zip(self.queues, outs, strict=True):
            queue.put((name, scenario, params, str(out), timeout_s))
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while not all(out.exists() for out in outs):
            dead = [process.name for process in self.processes if not process.is_alive()]
            if dead or time.monotonic() > deadline:
                self.stop(grace_s=0)
                why = f"{dead} died" if dead else f"no answer in {ANSWER_TIMEOUT_S} s (a hang?)"
                pytest.fail(f"scenario {scenario!r} {params}: {why}; ranks killed")
            time.sleep(0.02)
        outcomes = [json.loads(out.read_text()) for out in outs]
        errors = [
            f"--- rank {rank} raised:\n{outcome['error']}"
            for rank, outcome in enumerate(outcomes)
            if "error" in outcome
        ]
        if errors or breaks_group:
            self.stop()
        if errors:
            pytest.fail(f"scenario {scenario!r} {params} failed\n" + "\n".join(errors))
        return [outcome["result"] for outcome in outcomes]


def flatten(batches: list[list[int]]) -> list[int]:
    return list(chain.from_iterable(batches))
