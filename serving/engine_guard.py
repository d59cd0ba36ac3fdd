"""ASGI middleware for the engine: every route needs the engine's API key, except probes.

HTTP and WebSocket scopes alike: a WebSocket without the key is closed before it is accepted
(code 1008, which the server sends as an HTTP 403). Lifespan scopes pass through.

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
        kind = scope["type"]
        if kind not in ("http", "websocket") or (
            kind == "http" and scope["path"].rstrip("/") in OPEN_PATHS
        ):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            reason = "engine API key required"
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
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
