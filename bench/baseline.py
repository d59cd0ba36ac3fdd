"""The code a bench compares against, taken from git: `export_tree(rev, dest)` unpacks a commit's
tree (read-only use of the repository) so a bench can run it beside this one."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE_ISSUE_20 = "3a24d0d"  # the tree before issue 20: the default baseline of its benches


def export_tree(rev: str, dest: Path) -> Path:
    """`git archive` of `rev` unpacked under `dest`; returns the tree's folder."""
    archive = dest / "baseline.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", rev], cwd=REPO, stdout=out, check=True)
    tree = dest / "baseline"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree
