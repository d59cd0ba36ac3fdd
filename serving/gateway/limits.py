"""Generation size, checked before a request reaches the engine, the same for every tenant.

`max_tokens` / `max_completion_tokens` up to `gateway_max_tokens`, `n` / `best_of` up to
`gateway_max_n` (400 naming the field and the limit). A request that sets no length, where vLLM
would generate up to the context length (chat without either field; any explicit null), gets
`max_tokens = gateway_default_max_tokens`. The result is the most completion tokens the request
may produce: what the tenant's token budget reserves up front.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry.settings import Settings
from serving.gateway.errors import bad_request

LENGTHS = ("max_tokens", "max_completion_tokens")
COPIES = ("n", "best_of")
ENGINE_COMPLETIONS_DEFAULT = 16  # vLLM's (and OpenAI's) max_tokens for /v1/completions


@dataclass(frozen=True)
class GenerationLimits:
    max_tokens: int
    default_max_tokens: int
    max_n: int

    @classmethod
    def from_settings(cls, settings: Settings) -> GenerationLimits:
        return cls(
            max_tokens=settings.gateway_max_tokens,
            default_max_tokens=min(
                settings.gateway_default_max_tokens, settings.gateway_max_tokens
            ),
            max_n=settings.gateway_max_n,
        )

    def apply(self, endpoint: str, body: dict[str, Any]) -> int:
        """Check `body` (400 on the first field over its limit), set the default length where
        none would hold; return the most completion tokens it may generate, over all copies."""
        for name in LENGTHS:
            _check(body, name, self.max_tokens)
        for name in COPIES:
            _check(body, name, self.max_n)
        length = body.get("max_completion_tokens") or body.get("max_tokens")
        if length is None:
            if endpoint == "completions" and "max_tokens" not in body:
                length = ENGINE_COMPLETIONS_DEFAULT
            else:
                length = body["max_tokens"] = self.default_max_tokens
        copies = max(body.get("n") or 1, body.get("best_of") or 1)
        return int(length) * int(copies)


def _check(body: dict[str, Any], name: str, limit: int) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise bad_request(
            f"'{name}' is {value!r:.40}; this gateway allows a whole number from 1 to {limit}.",
            param=name,
        )
