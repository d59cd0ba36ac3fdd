"""Gateway pieces on their own: model names, token buckets, samples, the stream's usage event,
the bounded cache; and model names resolved on the real database (no engine)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import update

from registry.adapters.resolve import ModelRef
from registry.models import AdapterVersion
from serving.gateway.errors import GatewayError
from serving.gateway.proxy import Outcome, _usage_event
from serving.gateway.ratelimit import RateLimiter
from serving.gateway.routing import Router, parse_model
from serving.gateway.ttl import TTLMemo
from serving.gateway.usage import sample_records
from serving.names import engine_name, lora_int_id, parse_engine_name
from tests.conftest import World
from tests.registry.adapters.conftest import AdapterWorld

THIRTY_DIGITS = "1" * 30
REFUSED = [
    "", "@v1", "orders@", "a@b@c", "x" * 101, 7, None, "../x", "orders@@v1", "orders@v0",
    "orders@v01", "orders@v٣", "orders@v²", "orders@٣", f"orders@{THIRTY_DIGITS}",
    f"orders@v{THIRTY_DIGITS}", "orders@Nightly", "orders@" + "a" * 41, "orders\n", "ṡupport",
    "orders@" + "9" * 5000,
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("orders", ModelRef("orders", "production")),
        ("orders@production", ModelRef("orders", "production")),
        ("orders@candidate", ModelRef("orders", "candidate")),
        ("orders@v3", ModelRef("orders", 3)),
        ("orders@V3", ModelRef("orders", 3)),
        ("my.adapter-2@3", ModelRef("my.adapter-2", 3)),
    ],
)
def test_model_forms(model: str, expected: ModelRef) -> None:
    assert parse_model(model) == expected


@pytest.mark.parametrize("model", REFUSED)
def test_bad_model_names_are_400(model: object) -> None:
    with pytest.raises(GatewayError) as err:
        parse_model(model)
    assert err.value.status == 400 and err.value.param == "model"
    assert err.value.message.startswith("'model' must name one of your adapters")
    assert len(err.value.message) < 600


def test_the_cache_is_bounded_and_entries_expire() -> None:
    now = [0.0]
    memo: TTLMemo[str, str] = TTLMemo(maxsize=3, ttl=0.5, timer=lambda: now[0])
    loads: list[str] = []

    async def get(key: str) -> str:
        async def load() -> str:
            loads.append(key)
            return key.upper()

        return await memo.get(key, load)

    async def main() -> None:
        assert [await get(k) for k in "abcd"] == ["A", "B", "C", "D"]
        assert len(memo) == 3  # the least recently used ('a') went
        assert await get("d") == "D" and loads == list("abcd")
        assert await get("a") == "A" and loads == list("abcda")
        now[0] = 0.49
        assert await get("a") == "A" and len(loads) == 5  # still fresh
        now[0] = 0.5
        assert await get("a") == "A" and len(loads) == 6  # expired: loaded again
        now[0] = 10.0
        await get("z")
        assert len(memo) == 1  # a write drops what has expired

    asyncio.run(main())
    with pytest.raises(ValueError):
        TTLMemo(maxsize=0, ttl=1.0)


def test_concurrent_misses_on_the_cache_share_one_load() -> None:
    memo: TTLMemo[str, int] = TTLMemo(maxsize=10, ttl=60)
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 42

    async def main() -> list[int]:
        return list(await asyncio.gather(*(memo.get("k", load) for _ in range(16))))

    assert asyncio.run(main()) == [42] * 16 and calls == 1


def test_model_names_on_the_database_are_400_404_or_409_never_500(
    world: World, tmp_path: Path
) -> None:
    aw = AdapterWorld(world, tmp_path / "tiny-base")
    for _ in range(2):
        assert aw.upload().status_code == 201
    assert aw.set_alias("production", 1).status_code == 200
    acme = uuid.UUID(aw.acme.tenant_id)
    globex = uuid.UUID(world.tenant("globex").tenant_id)
    with world.stack.session() as session:
        session.execute(update(AdapterVersion).where(AdapterVersion.version == 2).values(
            status="training"))  # fmt: skip
        session.commit()
    router = Router(world.stack.app.state.sessionmaker, ttl_seconds=0)

    def outcome(tenant: uuid.UUID, model: object) -> tuple[int, str]:
        try:
            route = asyncio.run(router.route(tenant, model))
        except GatewayError as exc:
            return exc.status, exc.message
        return 200, route.label

    for model in ("support", "support@production", "support@v1", "support@V1", "support@1"):
        assert outcome(acme, model) == (200, "support@v1"), model
    gone = "does not exist or you do not have access to it."
    assert outcome(acme, "support@v9") == (
        404, f"The model 'support@v9' {gone} Adapter 'support' has no version 9.")
    assert outcome(acme, "support@nightly") == (
        404, f"The model 'support@nightly' {gone} Adapter 'support' has no 'nightly' alias.")
    assert outcome(acme, "support@v2") == (
        409, "Version 2 of 'support' is training, not ready to serve.")
    assert outcome(globex, "support")[0] == outcome(acme, "nothing")[0] == 404
    for model in REFUSED:
        assert outcome(acme, model)[0] == 400, model


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
