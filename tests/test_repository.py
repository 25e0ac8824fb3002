"""Repository invariants: CI runs exactly the README's test command; nothing from ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = 'pip install torch==2.13.0 && pip install -e ".[dev]" && python -m pytest'


def test_ci_runs_the_readme_test_command() -> None:
    readme, ci = ROOT / "README.md", ROOT / ".ci" / "run"
    if not readme.exists() or not ci.exists():
        pytest.skip("not running from a checkout")
    assert TEST_COMMAND in readme.read_text()
    ci_lines = [line.strip() for line in ci.read_text().splitlines()]
    assert TEST_COMMAND in ci_lines


def test_shipped_example_image_is_readable() -> None:
    from scn_deploy.imageio import read_image

    example = ROOT / "examples" / "astronaut.png"
    if not example.exists():
        pytest.skip("not running from a checkout")
    assert read_image(example).shape == (256, 256, 3)


def test_readme_python_example_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    """The README's first ```python block runs from the repository root (here: a folder that
    holds the same examples/) and writes what it says."""
    import re

    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("not running from a checkout")
    block = re.search(r"```python\n(.*?)```", readme.read_text(), re.S)
    assert block is not None
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})
    from scn_deploy.imageio import read_image

    assert read_image(tmp_path / "astronaut_x2.png").shape == (512, 512, 3)
