"""The house: one-way imports between the library's layers (import-linter's contracts in
pyproject.toml), no import cycle anywhere, no source module over 300 lines, and the public
names of `import keras_models`."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

PACKAGES = ("keras_models", "tuning", "experiments")
MAX_LINES = 300


def sources():
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The project's modules that `path` imports, at any depth of its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def test_the_layer_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports is not installed (requirements.txt pins import-linter)")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 kept, 0 broken" in result.stdout


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (module -> modules it imports), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_anywhere():
    modules = {module_name(p): p for p in sources()}
    # A package's __init__ is imported by every module inside it; an import names its module.
    graph = {m: {i for i in imports_of(p) if i in modules and i != m} for m, p in modules.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_source_module_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in sources() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_import_keras_models_offers_its_names_without_loading_tensorflow():
    code = (
        "import json, sys, keras_models as km\n"
        "assert 'tensorflow' not in sys.modules\n"
        "print(json.dumps(sorted(km.__all__)))\n"
        "for name in km.__all__: getattr(km, name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    names = json.loads(result.stdout.strip().splitlines()[-1])
    assert names == sorted(
        [
            "Architecture",
            "Config",
            "Lever",
            "Predictor",
            "build_model",
            "compile_model",
            "draw_round",
            "export_saved_model",
            "load_data",
            "load_keras_model",
            "register",
            "train",
        ]
    )


def test_no_command_loads_tensorflow_before_its_work_starts():
    """`--help`, a bad flag and the ONNX runtime need no TensorFlow: no command module imports it."""
    commands = [f"keras_models.cli.{c}" for c in ("train", "export", "predict", "serve")]
    commands += ["tuning.cli", "experiments.cli.reproduce", "experiments.cli.benchmark"]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({c!r})\n" for c in commands)
    code += "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
