"""`loraplex feedback`: rate or correct one response by its request id."""

from __future__ import annotations


def feedback() -> None:
    """Rate or correct one response by its request id."""
    raise NotImplementedError
