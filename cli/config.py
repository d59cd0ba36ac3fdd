"""Settings from the environment, with structured logging configured: how every process starts.
Kept apart from `compose.py` so that processes which build no app (the engine) stay light."""

from __future__ import annotations

from registry.logging import configure_logging
from registry.settings import Settings, get_settings


def configured_settings() -> Settings:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings
