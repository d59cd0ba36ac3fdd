"""The layer boundaries hold (import-linter contracts in pyproject.toml), and each contract
really fails when broken: a deliberate violation in a copy of the tree is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("cli", "registry", "workers", "serving")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


def test_contracts_hold() -> None:
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 kept, 0 broken" in out.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", dest)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


VIOLATIONS = {
    # module written into the copy, its source, and the contract that must break
    "registry/_lazy.py": (
        "def f() -> None:\n    from workers.inprocess import InProcessQueue  # noqa\n",
        "registry imports neither workers, serving, cli nor ML libraries",
    ),
    "registry/_torch.py": ("import torch  # noqa\n", "registry imports neither"),
    "workers/_serving.py": ("import serving.names  # noqa\n", "workers import neither"),
    "serving/_workers.py": ("import workers.cache  # noqa\n", "serving imports neither"),
    "serving/gateway/_torch.py": ("import torch  # noqa\n", "the gateway loads no ML library"),
    "registry/_cli.py": ("import cli.compose  # noqa\n", "registry imports neither"),
}


@pytest.mark.parametrize("path", sorted(VIOLATIONS))
def test_a_violation_is_caught(tree: Path, path: str) -> None:
    source, contract = VIOLATIONS[path]
    target = tree / path
    target.write_text(source)
    try:
        out = lint(tree)
    finally:
        target.unlink()
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"{contract}" in out.stdout and "BROKEN" in out.stdout, out.stdout
    assert "1 broken" in out.stdout
