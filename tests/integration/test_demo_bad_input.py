"""The CLI under bad input: every user mistake with a checkpoint, an output path or a CSV
file exits 2 with one line on stderr, before any training, and leaves the files as they
were; randomly corrupted checkpoints and CSV files give that, or a correct run.

Every case runs in-process through `loopline.cli.main`, which is what the command calls
(test_cli.py runs `python -m loopline` as a real process once: its exit code and stderr
are main's); the lock is held by a real second process.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopline.cli import main

TINY = ["--steps", "4", "--batch-size", "16", "--workers", "1", "--quiet", "--horizon", "12"]
CSV_TINY = [*TINY, "--window", "4", "--column", "x,y"]


def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`loopline demo ARGV` run from `cwd` through `main`, as the command runs it: an
    exception that escaped `main` would be the command's traceback, and fails the test."""
    before = os.getcwd()
    os.chdir(cwd)  # contextlib.chdir is Python 3.11's
    try:
        code, out, err = run_in_process(*argv)
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(["loopline", "demo", *argv], code, out, err)


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2, nothing on stdout (refused before training), one line on stderr."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("loopline demo: error: "), result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a valid, finished checkpoint of a tiny Lorenz run."""
    directory = tmp_path_factory.mktemp("finished")
    argv = ["demo", *TINY, "--checkpoint", str(directory), "--out", str(directory)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0
    return (directory / "checkpoint.pt").read_bytes()


def flipped(data: bytes, at: int) -> bytes:
    corrupted = bytearray(data)
    corrupted[at] ^= 0x04
    return bytes(corrupted)


def foreign(tmp_path: Path, value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


CHECKPOINT_CASES = {
    "truncated": (lambda good, tmp: good[: len(good) // 3], "it cannot be read"),
    "empty": (lambda good, tmp: b"", "it is empty"),
    "bit-flipped tensor bytes": (lambda good, tmp: flipped(good, len(good) // 2), "digest"),
    "text": (lambda good, tmp: b"not a checkpoint\n", "it cannot be read"),
    "foreign state dict": (
        lambda good, tmp: foreign(tmp, {"weight": torch.ones(2)}),
        "not a demo checkpoint's keys",
    ),
    "foreign tensor": (lambda good, tmp: foreign(tmp, torch.ones(2)), "not a demo checkpoint"),
    "older format": (
        lambda good, tmp: foreign(tmp, {"format": 1, "config": {}}),
        "has format 1, this loopline writes 2",
    ),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_a_bad_checkpoint_file_is_refused_in_one_line_and_left_untouched(
    case: str, finished: bytes, tmp_path: Path
) -> None:
    make, why = CHECKPOINT_CASES[case]
    directory = tmp_path / "run"
    directory.mkdir()
    data = make(finished, tmp_path)
    (directory / "checkpoint.pt").write_bytes(data)
    result = cli(*TINY, "--checkpoint", str(directory), "--out", str(tmp_path), cwd=tmp_path)
    assert_one_line_refusal(result, str(directory / "checkpoint.pt"), why)
    assert (directory / "checkpoint.pt").read_bytes() == data


@pytest.mark.parametrize(
    ("make", "argv", "words"),
    [
        (lambda tmp: (tmp / "afile").write_text("x"), ["--checkpoint", "afile"], ["is a file"]),
        (lambda tmp: None, ["--checkpoint", "/dev/null/run"], ["/dev/null is not a directory"]),
        (
            lambda tmp: (tmp / "run" / "checkpoint.pt").mkdir(parents=True),
            ["--checkpoint", "run"],
            ["checkpoint.pt is not a file"],
        ),
        (lambda tmp: None, ["--out", "/dev/null/figures"], ["--out /dev/null/figures cannot"]),
        (lambda tmp: (tmp / "o").write_text("x"), ["--out", "o"], ["--out o cannot hold"]),
    ],
    ids=["checkpoint is a file", "under /dev/null", "checkpoint.pt a directory", "out", "out file"],
)
def test_an_unusable_path_is_refused_before_training(make, argv, words, tmp_path: Path) -> None:
    make(tmp_path)
    options = ["--out", str(tmp_path)] if "--out" not in argv else []
    assert_one_line_refusal(cli(*TINY, *options, *argv, cwd=tmp_path), *words)


def test_a_second_run_on_a_checkpoint_directory_in_use_is_refused(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = cli(*TINY, "--checkpoint", "run", "--out", str(tmp_path), cwd=tmp_path)
        assert_one_line_refusal(result, f"in use by another run (pid {holder.pid})")
    finally:
        holder.kill()  # SIGKILL: the lock goes with the process, nothing to clean up
        holder.wait(timeout=30)
    result = cli(*TINY, "--checkpoint", "run", "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


HOLDER = """
import sys, time
from pathlib import Path
from loopline.demo._lock import hold
with hold(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_corruption_of_a_checkpoint_gives_a_correct_run_or_one_line(
    data: st.DataObject, finished: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("corrupt")
    positions = data.draw(st.lists(st.integers(0, len(finished) - 1), min_size=1, max_size=4))
    corrupted = bytearray(finished)
    for at in positions:
        corrupted[at] = data.draw(st.integers(0, 255))
    (directory / "checkpoint.pt").write_bytes(bytes(corrupted))
    code, out, err = run_in_process(*TINY, "--checkpoint", str(directory), "--out", str(directory))
    assert code in (0, 2) and "Traceback" not in err
    if code == 2:
        assert len(err.splitlines()) == 1 and out == ""
        assert (directory / "checkpoint.pt").read_bytes() == bytes(corrupted)
    else:  # the bytes changed nothing that is read: the run resumes and reports
        assert "done in" in out


def run_in_process(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["demo", *argv])
    return code, out.getvalue(), err.getvalue()


def test_a_disk_error_mid_run_is_one_line_not_a_traceback(monkeypatch, tmp_path: Path) -> None:
    from loopline.demo import checkpoint

    def full_disk(directory, state):
        raise OSError(28, "No space left on device", str(directory))

    monkeypatch.setattr(checkpoint, "save", full_disk)
    argv = [*TINY, "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path)]
    code, _, err = run_in_process(*argv, "--checkpoint-every", "2")
    assert code == 2
    assert err == f"loopline demo: error: No space left on device: {tmp_path / 'run'}\n"
