"""The README's code runs as shown: each Python block, and the output printed beneath it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```)?", re.S)


def blocks() -> list[tuple[str, str | None]]:
    return [(code, output) for code, output in BLOCK.findall(README.read_text())]


def heading_of(code: str) -> str:
    text = README.read_text()
    before = text[: text.index(code)]
    return re.findall(r"^## (.+)$", before, re.M)[-1]


def test_the_readme_has_a_snippet_per_section():
    sections = {heading_of(code) for code, _ in blocks()}
    assert {"Ten lines", "Feedback rollouts", "Model composition", "Distributed"} <= sections
    assert len(blocks()) >= 8


@pytest.mark.parametrize("code, output", blocks(), ids=[heading_of(c) for c, _ in blocks()])
def test_readme_snippet_prints_what_the_readme_shows(code, output):
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    if output:  # an empty text block (findall's "") means the block shows no output
        assert result.stdout == output


def test_readme_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    commands = [line.split("#")[0].strip() for line in lines[:12] if line.startswith("make ")]
    assert commands == ["make demo", "make test"]


def test_the_architecture_section_names_every_part():
    text = README.read_text()
    section = text[text.index("## Architecture") :]
    section = section[: section.index("\n## ", 1)]
    src = README.parent / "src" / "loopline"
    parts = sorted(path.parent.name for path in src.glob("*/__init__.py"))
    assert parts == ["batching", "compose", "demo", "feedback", "streams"]
    missing = [part for part in parts if f"loopline/{part}/" not in section]
    assert missing == []
    assert "tests/test_layering.py" in section


def test_inline_bucket_calls_in_the_prose_run_as_written():
    import torch

    from loopline import bucket

    calls = re.findall(r"`(bucket\([^`]*\))`", README.read_text())
    assert calls, "the README no longer shows bucket(...)"
    stream = [torch.zeros(n % 7) for n in range(100)]
    for call in calls:
        stage = eval(call, {"bucket": bucket, "stream": stream, "len": len})
        assert sum(len(batch) for batch in stage) == len(stream), call
