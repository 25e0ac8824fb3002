"""Repository invariants: CI runs exactly the README's test command; nothing from ../shared."""

from __future__ import annotations

import ast
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
    """The README's first ```python block of the library (one that imports scn_deploy; the
    service's client example needs a server) runs from the repository root (here: a folder
    that holds the same examples/) and writes what it says."""
    import re

    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("not running from a checkout")
    blocks = re.finditer(r"```python\n(.*?)```", readme.read_text(), re.S)
    block = next((b for b in blocks if "scn_deploy" in b.group(1)), None)
    assert block is not None
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})
    from scn_deploy.imageio import read_image

    assert read_image(tmp_path / "astronaut_x2.png").shape == (512, 512, 3)


def _package_imports() -> tuple[dict[str, set[str]], list[str]]:
    """Every import between the package's modules (function-level ones and the type-only
    ones under `if TYPE_CHECKING:` included: a module that needs another's types depends
    on it), and the imports of another module's underscore names."""
    import ast

    root = ROOT / "scn_deploy"
    modules = {}
    for f in root.rglob("*.py"):
        parts = f.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = f
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private = []
    for name, f in modules.items():
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scn_deploy"):
                assert node.level == 0, f"{f}: relative import"
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    target = target if target in modules else node.module
                    if target != name and target in modules:
                        edges[name].add(target)
                    private_name = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private_name and target == node.module != name:
                        private.append(f"{name} imports {node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.name != name:
                        edges[name].add(alias.name)
    return edges, private


def test_no_import_cycles_and_no_private_imports() -> None:
    edges, private = _package_imports()
    assert not private
    # A cycle exists when some module reaches itself.
    for start in edges:
        seen, todo = set(), list(edges[start])
        while todo:
            module = todo.pop()
            assert module != start, f"{start} imports itself through {sorted(seen)}"
            if module not in seen:
                seen.add(module)
                todo.extend(edges[module])


def test_no_text_file_names_a_path_of_our_machines() -> None:
    """Scripts, docs and results name paths relative to the checkout (runs/, the data root),
    never a folder that exists only on the machines this was made on."""
    machine_only = "/" + "work" + "/"  # spelled apart so that this file does not match
    suffixes = {".py", ".md", ".json", ".toml", ".sh", ".txt", ".cfg", ".yml", ".yaml"}
    skip = {".git", ".venv", ".venv-runtime", "venv", "runs", "wheelhouse", "__pycache__"}
    found = []
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        wanted = path.suffix in suffixes and path.is_file() and not parts & skip
        if wanted and machine_only in path.read_text(errors="replace"):
            found.append(str(path.relative_to(ROOT)))
    assert not found


def test_tests_import_modules_not_scripts() -> None:
    loader = "spec_from_" + "file_location"
    for path in (ROOT / "tests").glob("*.py"):
        assert loader not in path.read_text(), path.name


def test_every_test_that_needs_a_gpu_carries_the_gpu_marker() -> None:
    """`pytest -m "not gpu"` must leave out every test that needs a GPU: a test module whose
    skip reasons mention a GPU marks those tests (or the whole module) `gpu`."""
    import re

    for path in (ROOT / "tests").glob("test_*.py"):
        text = path.read_text()
        for match in re.finditer(r'reason="needs [^"]*GPU"', text):
            before = text[: match.start()].rsplit("\ndef ", 1)[-1]
            module_wide = "pytestmark" in text and "pytest.mark.gpu" in text.split("def ", 1)[0]
            assert module_wide or "@pytest.mark.gpu" in before, (path.name, match.group())


def _task_name_branches(tree: ast.AST, names: frozenset[str]) -> list[tuple[int, str]]:
    """Where code branches on a literal task name: a comparison with one (``== "sr"``,
    ``in ("denoise", ...)``, ``TaskName.deblock``), a ``case "sr":``, or a dict literal keyed
    by task names (a lookup table standing in for a branch)."""

    def literal(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in names
        if isinstance(node, ast.Attribute):  # a member named after a task: TaskName.sr
            owner = node.value
            return node.attr in names and isinstance(owner, ast.Name) and owner.id[:1].isupper()
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return any(literal(e) for e in node.elts)
        return False

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            literal(operand) for operand in (node.left, *node.comparators)
        ):
            found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.MatchValue) and literal(node.value):
            found.append((node.lineno, f"case {ast.unparse(node.value)}"))
        elif isinstance(node, ast.Dict) and any(k is not None and literal(k) for k in node.keys):
            found.append((node.lineno, ast.unparse(node)[:60]))
    return found


def test_no_code_outside_tasks_branches_on_a_task_name() -> None:
    """The task names are data of `scn_deploy.tasks`: code elsewhere asks the `Task` (its
    attributes and methods) instead of comparing a task with "sr", "denoise" or "deblock"."""
    from scn_deploy.tasks import TASK_NAMES

    names = frozenset(TASK_NAMES)
    package = ROOT / "scn_deploy"
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "tasks.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        found += [
            f"{path.relative_to(ROOT)}:{line}: {code}"
            for line, code in _task_name_branches(tree, names)
        ]
    assert not found, "\n".join(found)


def test_the_task_name_check_finds_each_kind_of_branch() -> None:
    names = frozenset({"sr", "denoise", "deblock"})
    branches = """
if task == "sr": pass
if spec.task != "deblock": pass
if name in ("denoise", "x"): pass
if task == TaskName.denoise: pass
command = {"sr": "upscale", "denoise": "denoise"}[task]
match task:
    case "deblock": pass
"""
    assert len(_task_name_branches(ast.parse(branches), names)) == 6
    allowed = """
def f(task: str = "sr"): pass
resolve_model(None, task="sr")
if task.upscales and key == "scale": pass
if setting.mode == "off": pass
if result.deblock is not None: pass
"""
    assert _task_name_branches(ast.parse(allowed), names) == []


#: The package's layers, lowest first (docs/architecture.md, "Layers"): a module imports only
#: modules of its own layer or of lower ones. Keyed by the top-level module or package name.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("errors", "paths", "atomic", "digest", "cpu", "dihedral", "queues")),
    (
        "data",
        (
            "tasks",
            "arch",
            "degrade",
            "metrics",
            "png",
            "imageio",
            "jpeg_quality",
            "modelfile",
            "files",
            "remote",
            "video.formats",
        ),
    ),
    ("engines", ("engines", "exporting")),
    ("restoration", ("tiling", "restorer")),
    ("models", ("modelset", "zoo", "jpeg_input", "picture_restore", "info")),
    (
        "applications",
        ("restore", "pipeline", "cluster", "video", "evaluate", "baselines", "bench", "train"),
    ),
    ("interfaces", ("serve", "cli")),
)


def _layer_of(module: str) -> int | None:
    """The layer of a module: of its most specific entry in `LAYERS` ("video.formats" before
    "video")."""
    parts = module.split(".")[1:]
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        for i, (_name, tops) in enumerate(LAYERS):
            if key in tops:
                return i
    return None


def test_every_module_has_a_layer_and_imports_only_its_layer_or_lower() -> None:
    edges, _private = _package_imports()
    unplaced = sorted(m for m in edges if m != "scn_deploy" and _layer_of(m) is None)
    assert not unplaced, f"add these to LAYERS (and docs/architecture.md): {unplaced}"
    upward = [
        f"{m} ({LAYERS[_layer_of(m)][0]}) imports {t} ({LAYERS[_layer_of(t)][0]})"  # type: ignore[index]
        for m, targets in edges.items()
        if m != "scn_deploy"
        for t in targets
        if t != "scn_deploy" and _layer_of(t) > _layer_of(m)  # type: ignore[operator]
    ]
    assert not upward, upward


def test_the_layers_are_documented() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    for name, tops in LAYERS:
        assert f"**{name}**" in text, name
        for top in tops:
            assert f"`{top}" in text, (name, top)
