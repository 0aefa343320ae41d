import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_prints_what_the_readme_shows():
    text = README.read_text()
    code, output = re.search(
        r"## Ten lines\n\n```python\n(.*?)```\n\n```text\n(.*?)```", text, re.S
    ).groups()
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout == output


def test_readme_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    commands = [line.split("#")[0].strip() for line in lines[:12] if line.startswith("make ")]
    assert commands == ["make demo", "make test"]
