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
