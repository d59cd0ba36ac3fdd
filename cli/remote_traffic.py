"""`loraplex traffic ...`: capture settings, traces and erasure of an adapter's traffic."""

from __future__ import annotations

import typer

traffic_app = typer.Typer(no_args_is_help=True, help="Traffic capture, traces and erasure")
