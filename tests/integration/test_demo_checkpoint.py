"""Checkpoints of `loopline demo`: atomic saves, and exact resume after a real kill."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from loopline.cli import main
from loopline.demo import checkpoint as ckpt
from loopline.demo import run as demo_run

METHODS = ["teacher forcing", "unroll", "pushforward"]
# 160 steps: unroll goes on from teacher forcing's step 120 and saves at 130, 140, 150.
LORENZ = ["--quiet", "--steps", "160", "--batch-size", "32", "--horizon", "60"]
LORENZ += ["--checkpoint-every", "10"]


def run_demo(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["demo", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def final_models(directory: Path) -> dict[str, dict[str, torch.Tensor]]:
    state = ckpt.load(directory)
    assert state is not None and state[ckpt.METHOD] is None, "the run did not finish"
    return {method: state[ckpt.DONE][method][ckpt.MODEL] for method in METHODS}


def assert_bitwise_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    for method in METHODS:
        assert a[method].keys() == b[method].keys()
        for name, tensor in a[method].items():
            assert torch.equal(tensor, b[method][name]), f"{method}: {name} differs"


def table(out: str) -> list[str]:
    """The printed table without its two timing columns."""
    return ["|".join(line.split("|")[:-3]) for line in out.splitlines() if line.startswith("| ")]


def test_save_replaces_the_file_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt.save(tmp_path, {ckpt.STEP: 1})

    def torn_save(obj: object, file: Any) -> None:
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save(tmp_path, {ckpt.STEP: 2})
    state = ckpt.load(tmp_path)
    assert state is not None and state[ckpt.STEP] == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_killed_run_resumes_exactly_from_its_last_checkpoint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    code, whole_out, err = run_demo(
        capsys, *LORENZ, "--checkpoint", str(whole), "--out", str(tmp_path)
    )
    assert code == 0, err

    # The same run in its own process, killed (SIGKILL: no cleanup of any kind) while it
    # trains the second method, some steps after a checkpoint.
    command = [sys.executable, "-m", "loopline", "demo", *LORENZ, "--checkpoint", str(killed)]
    # Output to a file, not a pipe: the orphaned DataLoader workers hold on to their copy
    # of it for a few seconds after the kill, and a pipe would make us wait for them.
    with (tmp_path / "killed.log").open("w+") as log:
        process = subprocess.Popen(
            [*command, "--out", str(tmp_path)], stdout=log, stderr=log, cwd=tmp_path
        )
        deadline = time.monotonic() + 120
        try:
            while process.poll() is None and time.monotonic() < deadline:
                state = ckpt.load(killed) if (killed / ckpt.FILENAME).exists() else None
                if state is not None and state[ckpt.METHOD] == "unroll":
                    break
                time.sleep(0.01)
        finally:
            if process.poll() is None:
                process.kill()  # SIGKILL
            process.wait(timeout=60)
        log.seek(0)
        assert process.returncode == -signal.SIGKILL, log.read()
    state = ckpt.load(killed)
    assert state is not None
    assert list(state[ckpt.DONE]) == ["teacher forcing"] and state[ckpt.METHOD] == "unroll"
    step = state[ckpt.STEP]
    assert step % 10 == 0 and 120 < step < 160

    code, resumed_out, err = run_demo(
        capsys, *LORENZ, "--checkpoint", str(killed), "--out", str(tmp_path)
    )
    assert code == 0, err
    assert (
        f"resuming from {killed}: finished: teacher forcing; unroll at step {step}" in resumed_out
    )
    assert_bitwise_equal(final_models(killed), final_models(whole))
    assert table(resumed_out) == table(whole_out)


def write_series(path: Path, rows: int) -> Path:
    values = torch.sin(torch.arange(rows) * 0.3) + 0.1 * torch.cos(torch.arange(rows) * 1.7)
    path.write_text("y\n" + "".join(f"{v:.6f}\n" for v in values.tolist()))
    return path


def test_an_interrupted_csv_run_resumes_exactly_across_epochs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 80 training rows: 72 windows, 5 batches of 16 per epoch, so 60 steps span 12 epochs;
    # unroll goes on from teacher forcing's step 45.
    series = write_series(tmp_path / "wave.csv", 100)
    options = ["--quiet", "--csv", str(series), "--column", "y", "--steps", "60"]
    options += ["--batch-size", "16", "--checkpoint-every", "7", "--out", str(tmp_path)]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    code, whole_out, err = run_demo(capsys, *options, "--checkpoint", str(whole))
    assert code == 0, err

    real_save = ckpt.save

    def save_then_stop(directory: Path, state: dict[str, Any]) -> Path:
        path = real_save(directory, state)
        if state[ckpt.METHOD] == "unroll" and state[ckpt.STEP] == 49:  # epoch 9, batch 4
            raise KeyboardInterrupt  # as a Ctrl-C right after that save
        return path

    monkeypatch.setattr(demo_run.ckpt, "save", save_then_stop)
    code, _, err = run_demo(capsys, *options, "--checkpoint", str(cut))
    assert code == 130
    assert err.endswith(f"interrupted; rerun with --checkpoint {cut} to resume\n")
    monkeypatch.setattr(demo_run.ckpt, "save", real_save)

    code, resumed_out, err = run_demo(capsys, *options, "--checkpoint", str(cut))
    assert code == 0, err
    assert "finished: teacher forcing; unroll at step 49" in resumed_out
    assert_bitwise_equal(final_models(cut), final_models(whole))
    assert table(resumed_out) == table(whole_out)

    # A finished checkpoint trains nothing more and reports the same results.
    code, again_out, err = run_demo(capsys, *options, "--checkpoint", str(cut))
    assert code == 0, err
    assert "finished: teacher forcing, unroll, pushforward" in again_out
    assert table(again_out) == table(whole_out)

    # Other options would not resume exactly: refused, naming the difference.
    code, _, err = run_demo(capsys, *options[:-4], "--batch-size", "8", "--checkpoint", str(cut))
    assert code == 2
    assert (
        f"the checkpoint in {cut} was made with other options (batch_size 16 there, 8 now)" in err
    )
    # So would another forecaster: the series' own is the MLP.
    code, _, err = run_demo(capsys, *options, "--model", "quadratic", "--checkpoint", str(cut))
    assert code == 2
    assert "(model 'mlp' there, 'quadratic' now)" in err
