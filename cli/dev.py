"""`loraplex dev`: developer tools that need the `ml` extra (torch is imported only when run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(no_args_is_help=True, help="Developer tools (need the ml extra)")
console = Console()


@app.command("make-base-model")
def make_base_model(
    path: Path = typer.Argument(..., help="folder to create (must not exist, or be empty)"),
    steps: int | None = typer.Option(None, min=0, help="pre-training steps (default: 1200)"),
    seed: int = typer.Option(0, help="seed for weights and data order"),
    force: bool = typer.Option(False, "--force", help="replace a non-empty PATH"),
) -> None:
    """Build the tiny Llama base model (tokenizer + weights) from the bundled corpus."""
    try:
        from workers.devmodel.build import BuildOptions, build_base_model
    except ImportError as e:
        raise typer.BadParameter(f"needs the ml extra (pip install -e '.[ml]'): {e}") from None

    overrides: dict[str, Any] = {"seed": seed}
    if steps is not None:
        overrides["pretrain_steps"] = steps
    options = BuildOptions(**overrides)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        try:
            summary = build_base_model(path, options, force=force, on_progress=on_progress)
        except FileExistsError:
            raise typer.BadParameter(
                f"{path} already exists and is not empty; pass --force to replace it",
                param_hint="PATH",
            ) from None
    summary.pop("options", None)
    console.print_json(json.dumps(summary))
