"""A real resized job (issue 12): two torchrun "nodes" of two processes each on localhost
(a c10d rendezvous on 127.0.0.1) train a DDP model over forever(even(...)) and stop
mid-epoch after a checkpoint; one node of three processes resumes it. Every sample of the
epoch is delivered exactly once across both runs, every rank of a run takes the same
number of steps, and every wait is bounded."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

JOB = Path(__file__).resolve().parents[1] / "_torchrun_job.py"
TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(out: Path, phase: str, nodes: int, per_node: int) -> list[subprocess.Popen]:
    port = free_port()
    command = [
        *(sys.executable, "-m", "torch.distributed.run"),
        *(f"--nnodes={nodes}", f"--nproc-per-node={per_node}", "--rdzv-backend=c10d"),
        *(f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={phase}", "--max-restarts=0"),
        *(str(JOB), str(out), phase),
    ]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(nodes)
    ]


def finish(nodes: list[subprocess.Popen]) -> None:
    try:
        for node in nodes:
            output, _ = node.communicate(timeout=TIMEOUT_S)
            assert node.returncode == 0, output.decode()[-3000:]
    finally:
        for node in nodes:
            node.kill()


def results(out: Path, phase: str) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(out.glob(f"{phase}-*.json"))]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="gloo on localhost, fork workers")
def test_a_job_of_two_nodes_resumed_as_one_node_of_three_delivers_each_sample_once(tmp_path):
    finish(launch(tmp_path, "first", nodes=2, per_node=2))
    first = results(tmp_path, "first")
    assert [r["world_size"] for r in first] == [4] * 4
    assert {r["steps"] for r in first} == {3}
    finish(launch(tmp_path, "second", nodes=1, per_node=3))
    second = results(tmp_path, "second")
    assert [r["world_size"] for r in second] == [3] * 3
    # 42 - 24 = 18 items left: 6 per rank, 3 steps of 2 after the first run's 3.
    assert {r["steps"] for r in second} == {6}
    seen = sorted(i for r in first + second for i in r["seen"])
    assert seen == list(range(42))
