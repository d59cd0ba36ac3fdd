"""ASGI middleware for the engine: every route needs the engine's API key, except probes.

vLLM's `--api-key` covers its `/v1/*` routes but not the `/adapters` routes it also mounts (load
or delete an adapter from any local path): unguarded, anything that reaches the engine could
bind one of our engine names to other weights. Installed with `--middleware`.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

OPEN_PATHS = frozenset({"/health", "/metrics", "/ping", "/version"})


class RequireEngineKey:
    def __init__(self, app: Any) -> None:
        self.app = app
        key = os.environ.get("VLLM_API_KEY", "")
        if not key:
            raise RuntimeError("the engine guard needs VLLM_API_KEY")
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        body = b'{"error":{"message":"engine API key required","type":"Unauthorized","code":401}}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
