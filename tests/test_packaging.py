"""The image build copies every package the distribution ships (a package added to
pyproject.toml but not to docker/Dockerfile would build an image without it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shipped_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return {p.rstrip("*") for p in patterns}


def test_every_package_is_in_the_image() -> None:
    packages = shipped_packages()
    assert {"cli", "registry", "serving", "workers", "migrations"} <= packages
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, flags=re.M))
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    unignored = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert packages <= copied, packages - copied
    assert packages <= unignored, packages - unignored


def test_console_script_is_the_composition_root() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["project"]["scripts"]["loraplex"] == "cli:main"


def test_console_templates_and_assets_ship_with_the_wheel() -> None:
    """A template or asset not matched by package-data would be missing from an installed
    registry (the console would answer 500 there and 200 in a source checkout)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["registry"]
    package = ROOT / "registry"
    shipped = {p for g in globs for p in package.glob(g)}
    on_disk = {
        p
        for folder in ("console/templates", "console/static")
        for p in (package / folder).rglob("*")
        if p.is_file()
    }
    assert on_disk and on_disk <= shipped, sorted(str(p) for p in on_disk - shipped)
