"""Folder and logging helpers of the base-model build (a finished model appears all at once)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import transformers


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """save_pretrained draws a tqdm bar; the caller reports progress through `on_progress`."""
    hf_logging = transformers.utils.logging
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def make_readable(folder: Path) -> None:
    """mkdtemp makes a 0700 folder and safetensors writes 0600 files; a model is shared data."""
    folder.chmod(0o755)
    for file in folder.iterdir():
        file.chmod(0o644)


def replace_folder(tmp: Path, path: Path) -> None:
    """Move the finished build to `path`; an old folder there is removed only after the move."""
    old: Path | None = None
    if path.exists() or path.is_symlink():
        old = path.with_name(f".{path.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        path.rename(old)
    tmp.rename(path)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
