"""`loraplex teachers ...` (ops) and `loraplex labelling ...`: teacher models that label
prompts, kept only when their answers pass the adapter's eval checks."""

from __future__ import annotations

import typer

teachers_app = typer.Typer(no_args_is_help=True, help="Teacher models (ops)")
labelling_app = typer.Typer(no_args_is_help=True, help="Labelling jobs: teacher answers")
