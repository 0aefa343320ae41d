"""Run each example as a user would, in a fresh interpreter, and check its key line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

KEY_LINES = {
    "streams_forever.py": ["resume exact: True"],
    "generator_dataloader.py": ["each sample once: True", "new order each epoch: True"],
    "multimodal_batches.py": ["text padded, images stacked: True", "missing image named: True"],
    "variable_length_generator.py": ["each sample once: True", "bucketing pads less: True"],
    "feedback_rollouts.py": [
        "plain recursion matches the hand loop: True",
        "lstm state threaded: True",
        "bare lstm refused: True",
        "per-sample stopping: True",
        "nan sample flagged: True",
    ],
    "fixed_point.py": ["fixed points found: True"],
    "language_model_tbptt.py": [
        "resume exact: True",
        "loss equals the hand-written loop: True",
        "plain PyTorch gives the same losses: True",
        "scheduled sampling on tokens runs: True",
        "perplexity fell: True",
    ],
    "_plain_language_model.py": [],
    "_plain_char_model.py": [],
    "_plain_pde.py": [],
    "_lines.py": [],
    "pde_pushforward.py": [
        "pushforward equals the hand-written loop: True",
        "global RNG untouched: True",
        "pushforward k drawn from its own generator: True",
        "k draws resume exactly: True",
        "plain PyTorch gives the same losses: True",
    ],
    "char_model_resume.py": [
        "one model call per batch: True",
        "loss fell: True",
        "resume exact: True",
        "plain PyTorch serves the same batches: True",
        "plain PyTorch gives the same losses: True",
        "plain resume exact: True",
    ],
    "compose_concat.py": [
        "loss decreased: True",
        "graph equals the hand-written forward: True",
        "wrong width named before the first batch: True",
    ],
    "compose_chain.py": [
        "chain equals the hand-written loop: True",
        "mismatch named with its source: True",
        "first net untouched by the second loss: True",
        "second net receives gradients: True",
    ],
    "compose_multimodal.py": [
        "checked on specs and on a real batch: True",
        "loss decreased: True",
        "channels-last image caught: True",
        "stacked text caught: True",
    ],
    "output_as_training_input.py": [
        "first net gradients unchanged by second loss: True",
        "second net receives gradients: True",
        "detach().requires_grad_(True) reaches the first net: False",
        "unroll equals the hand-written loop: True",
        "delay=2 equals the hand-written loop: True",
    ],
}


@pytest.mark.parametrize("name", sorted(KEY_LINES))
def test_example_runs(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=EXAMPLES.parent,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for line in KEY_LINES[name]:
        assert line in [s.strip() for s in result.stdout.splitlines()], output


def test_every_example_is_tested() -> None:
    assert {path.name for path in EXAMPLES.glob("*.py")} == set(KEY_LINES)
