"""The shape of the package: floors without upward imports, no circles, no private names across modules,
modules of one concept, imports at the top, a test file per module, one source per chapter."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "deepstem_utils"

#: The floors of the package (its __init__ docstring): a module imports only from its own floor or below.
FLOORS = {"core": 0, "physics": 1, "zemlin": 2, "network": 3, "atoms": 4, "insitu": 5, "evaluation": 6,
          "io": 7, "interop": 7, "book": 7, "plotting": 7, "timing": 7, "widgets": 8, "cli": 9, "cli_train": 9, "__main__": 10}
#: Third-party libraries that may be imported inside a function: heavy or optional ones.
LAZY_ALLOWED = {"torch", "hyperspy", "dask", "distributed", "bm3d", "atomap", "ipywidgets", "trackpy", "abtem"}
#: Modules without behaviour of their own to test (values, re-exports, the entry point).
NO_TESTS_NEEDED = {"core/version.py", "core/constants.py", "__main__.py"}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in sorted(PACKAGE.rglob("*.py"))}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, module: str):
    """(target module, imported name, inside a function) for every import of the package in ``path``."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rsplit(".", 1)[0]
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                out.append((target, alias.name, id(node) in inner))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                out.append((alias.name, None, id(node) in inner))
    return out


MODULES = _modules()


def test_floors_have_no_upward_import_and_no_circle():
    graph = {}
    for module, path in MODULES.items():
        deps = set()
        for target, name, _ in _imports(path, module):
            if not target.startswith("deepstem_utils"):
                continue
            full = f"{target}.{name}" if name and f"{target}.{name}" in MODULES else target
            if full in MODULES and full != module:
                deps.add(full)
        graph[module] = deps
    upward = []
    for module, deps in graph.items():
        if module == "deepstem_utils":
            continue  # the package's front door re-exports from every floor
        for dep in deps:
            if dep == "deepstem_utils":
                upward.append(f"{module} imports the package's front door")
            elif FLOORS[_area(dep)] > FLOORS[_area(module)]:
                upward.append(f"{module} (floor {FLOORS[_area(module)]}) -> {dep} (floor {FLOORS[_area(dep)]})")
    assert not upward, "imports that run up the floors:\n" + "\n".join(upward)
    # circles among modules (an area's __init__ re-exports; it is not a concept of its own)
    inits = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    g = {m: {d for d in ds if d not in inits} for m, ds in graph.items() if m not in inits}
    state, circles = {}, []

    def visit(u, stack):
        state[u] = 1
        for v in g.get(u, ()):
            if state.get(v) == 1:
                circles.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v, stack + [v])
        state[u] = 2

    for m in g:
        if m not in state:
            visit(m, [m])
    assert not circles, f"import circles: {circles}"


def test_no_private_name_crosses_a_module():
    crossing = [f"{module}: {name} from {target}" for module, path in MODULES.items()
                for target, name, _ in _imports(path, module)
                if target.startswith("deepstem_utils") and name and name.startswith("_") and not name.startswith("__")]
    assert not crossing, crossing


def test_imports_at_module_level_except_heavy_optional_libraries():
    inside = [f"{module}: {target}" for module, path in MODULES.items()
              for target, _, in_function in _imports(path, module)
              if in_function and target.split(".")[0] not in LAZY_ALLOWED]
    assert not inside, "imports inside functions (move them to the top of the module):\n" + "\n".join(inside)


def test_modules_hold_one_concept():
    long = {m: n for m, p in MODULES.items() if (n := p.read_text().count("\n")) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_every_module_has_its_tests():
    missing = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if path.name == "__init__.py" or rel.as_posix() in NO_TESTS_NEEDED or "weights" in rel.parts:
            continue
        expected = ROOT / "tests" / rel.parent / f"test_{path.stem}.py"
        if not expected.exists():
            missing.append(f"{rel} -> tests/{expected.relative_to(ROOT / 'tests')}")
    assert not missing, "modules without a test file:\n" + "\n".join(missing)


@pytest.mark.parametrize("test_file", sorted((ROOT / "tests").rglob("test_*.py")), ids=lambda p: p.name)
def test_tests_use_the_public_api(test_file):
    private = []
    for target, name, _ in _imports(test_file, "tests.x"):
        if target.startswith("deepstem_utils") and name and name.startswith("_") and not name.startswith("__"):
            private.append(f"{name} from {target}")
    assert not private, private


def test_one_source_per_chapter():
    generators = sorted(p.name for p in (ROOT / "tools").glob("build_ch*.py")) if (ROOT / "tools").exists() else []
    assert not generators, f"scripts that write chapters: {generators}"
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*"))
    stems = [p.stem for p in chapters]
    assert len(stems) == len(set(stems)), f"a chapter in two formats: {stems}"
