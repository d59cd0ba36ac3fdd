"""Gateway pieces on their own: model names, token buckets, samples, the stream's usage event."""

from __future__ import annotations

import uuid

import pytest

from serving.gateway.errors import GatewayError
from serving.gateway.proxy import Outcome, _usage_event
from serving.gateway.ratelimit import RateLimiter
from serving.gateway.routing import parse_model
from serving.gateway.usage import sample_records
from serving.names import engine_name, lora_int_id, parse_engine_name


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("orders", ("orders", "production")),
        ("orders@candidate", ("orders", "candidate")),
        ("orders@v3", ("orders", "v3")),
        ("my.adapter-2@3", ("my.adapter-2", "3")),
    ],
)
def test_model_forms(model: str, expected: tuple[str, str]) -> None:
    assert parse_model(model) == expected


@pytest.mark.parametrize("model", ["", "@v1", "orders@", "a@b@c", "x" * 101, 7, None, "../x"])
def test_bad_model_names_are_400(model: object) -> None:
    with pytest.raises(GatewayError) as err:
        parse_model(model)
    assert err.value.status == 400 and err.value.param == "model"


def test_token_bucket_refills_at_its_rate_per_key() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # another tenant's bucket
    now[0] = 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    now[0] = 100.0  # never more than the burst
    assert [limiter.take("a") == 0.0 for _ in range(4)] == [True, True, True, False]


def test_samples_keep_the_dataset_row_format() -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}], "model": "x"}
    assert sample_records("chat.completions", chat) == [{"messages": chat["messages"]}]
    assert sample_records("completions", {"prompt": ["a", "", "b"]}) == [
        {"prompt": "a"},
        {"prompt": "b"},
    ]
    assert sample_records("completions", {"prompt": [1, 2, 3]}) == []  # token ids: no text


def test_only_the_injected_usage_event_is_taken_out() -> None:
    usage = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}'
    token = b'data: {"id":"c","choices":[{"delta":{"content":"x"}}],"usage":null}'
    out = Outcome()
    assert _usage_event(usage, out, strip=True) is True
    assert (out.prompt_tokens, out.completion_tokens) == (3, 5)
    assert _usage_event(usage, Outcome(), strip=False) is False  # the caller asked for it
    assert _usage_event(token, Outcome(), strip=True) is False
    assert _usage_event(b"data: [DONE]", Outcome(), strip=True) is False


def test_engine_names_are_per_version_and_reversible() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert engine_name(a) != engine_name(b)
    assert parse_engine_name(engine_name(a)) == a
    assert parse_engine_name("tiny") is None and parse_engine_name("lpx-xyz") is None
    assert 0 < lora_int_id(a) < 2**63


def test_concurrent_misses_share_one_lookup() -> None:
    import asyncio

    from serving.gateway.singleflight import SingleFlight

    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 42

    async def main() -> list[int]:
        flight: SingleFlight[int] = SingleFlight()
        results = await asyncio.gather(*(flight.run("k", load) for _ in range(32)))
        results.append(await flight.run("k", load))  # a later miss loads again
        return results

    assert asyncio.run(main()) == [42] * 33
    assert calls == 2


def test_a_failed_lookup_reaches_every_waiter() -> None:
    import asyncio

    from serving.gateway.singleflight import SingleFlight

    async def load() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("db down")

    async def main() -> list[object]:
        flight: SingleFlight[int] = SingleFlight()
        return await asyncio.gather(
            *(flight.run("k", load) for _ in range(4)), return_exceptions=True
        )

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))
