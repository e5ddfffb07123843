"""The package installs on its own: a wheel with the weights and the licence, bounded dependencies, extras."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline from a copy of the sources (the checkout gets no build/ or egg-info)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "deepstem_utils", src / "deepstem_utils",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    dist = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "--no-index", "-q", "-w", str(dist), str(src)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (path,) = dist.glob("deepstem_utils-*.whl")
    return path


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(z.read(name).decode())


def test_license_file_exists_and_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert PYPROJECT["project"]["license"] == "MIT"


def test_wheel_holds_the_weights_the_license_and_every_module(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for weights in ("deepstem.pt", "supervised_unet.pt"):
            member = f"deepstem_utils/weights/{weights}"
            assert member in names
            packed = hashlib.sha256(z.read(member)).hexdigest()
            assert packed == hashlib.sha256((ROOT / "deepstem_utils" / "weights" / weights).read_bytes()).hexdigest()
        assert "deepstem_utils/weights/deepstem.json" in names
        licences = [n for n in names if ".dist-info/" in n and n.rsplit("/", 1)[-1] == "LICENSE"]
        assert licences and z.read(licences[0]) == (ROOT / "LICENSE").read_bytes()
        modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "deepstem_utils").rglob("*.py")}
        assert modules <= names
        entry = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "deepstem = deepstem_utils.cli:main" in z.read(entry[0]).decode()
    metadata = _metadata(wheel)
    assert metadata["License-Expression"] == "MIT"


def test_runtime_dependencies_have_lower_bounds_and_the_optional_parts_are_extras(wheel):
    metadata = _metadata(wheel)
    requires = metadata.get_all("Requires-Dist")
    runtime = [r for r in requires if "extra ==" not in r]
    assert runtime and all(">=" in r for r in runtime), runtime
    assert not any("==" in r.split(";")[0] for r in requires)  # bounds, never pins
    extras = set(metadata.get_all("Provides-Extra"))
    assert {"book", "baselines", "widgets", "test"} <= extras

    def extra(name):
        return [r.split(";")[0].strip().lower() for r in requires if f'extra == "{name}"' in r]

    assert any(r.startswith("bm3d") for r in extra("baselines")) and any(r.startswith("atomap") for r in extra("baselines"))
    assert any(r.startswith("ipywidgets") for r in extra("widgets"))
    assert any(r.startswith("jupyter-book") and "<2" in r for r in extra("book"))
    assert any(r.startswith("pytest") for r in extra("test"))
    # the book's tools stay out of a plain install
    for tool in ("jupyter-book", "sphinx", "selenium", "pytest", "bm3d", "atomap"):
        assert not any(r.lower().startswith(tool) for r in runtime)


def test_the_pinned_environment_satisfies_the_bounds():
    """requirements.txt (the book's reproducible environment) stays a freeze, and every pin meets its bound."""
    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.split("+")[0]
    assert len(pins) > 50
    for spec in PYPROJECT["project"]["dependencies"]:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in requirements.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {req.specifier}"
