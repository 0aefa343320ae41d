"""`loopline demo --checkpoint`: the shared one-step phase survives an interruption, so the
feedback methods go on from it exactly, whenever the run was stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_demo_checkpoint import METHODS, final_models, run_demo, write_series

from loopline.demo import checkpoint as ckpt
from loopline.demo import run as demo_run


def test_a_run_stopped_after_the_fork_resumes_every_method_exactly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    series = write_series(tmp_path / "wave.csv", 100)
    options = ["--quiet", "--csv", str(series), "--column", "y", "--steps", "40"]
    options += ["--batch-size", "16", "--checkpoint-every", "3", "--out", str(tmp_path)]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    code, _, err = run_demo(capsys, *options, "--checkpoint", str(whole))
    assert code == 0, err

    real_save = ckpt.save
    seen: list[dict[str, Any]] = []

    def save_then_stop(directory: Path, state: dict[str, Any]) -> Path:
        path = real_save(directory, state)
        seen.append(state)
        if state[ckpt.METHOD] == "teacher forcing" and state[ckpt.STEP] == 33:
            raise KeyboardInterrupt  # teacher forcing stopped 3 steps after the fork at 30
        return path

    monkeypatch.setattr(demo_run.ckpt, "save", save_then_stop)
    code, _, _ = run_demo(capsys, *options, "--checkpoint", str(cut))
    assert code == 130
    assert [s[demo_run.FORK] is None for s in seen] == [True] * 10 + [False]
    assert seen[-1][demo_run.FORK][ckpt.STEP] == 30
    monkeypatch.setattr(demo_run.ckpt, "save", real_save)

    code, out, err = run_demo(capsys, *options, "--checkpoint", str(cut))
    assert code == 0, err
    assert "finished: none; teacher forcing at step 33" in out
    expected, resumed = final_models(whole), final_models(cut)
    for method in METHODS:
        for name, tensor in expected[method].items():
            assert torch.equal(tensor, resumed[method][name]), f"{method}: {name} differs"
