"""`loraplex datasets from-traffic`: curate a dataset version from captured traffic."""

from __future__ import annotations


def from_traffic() -> None:
    """Curate a dataset version from the adapter's captured traffic."""
    raise NotImplementedError
