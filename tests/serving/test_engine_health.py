"""A health check that only timed out does not take an engine out of the pool at once: a busy
engine on a loaded host answers late (the CI flake this guards against emptied a one-engine
pool for a poll interval). Two late answers in a row, a refused connection, or a request that
failed on it still mark it down."""

from __future__ import annotations

import asyncio
import time

from serving.gateway import metrics
from serving.gateway.engine_state import SLOW_POLLS, Engine, poll
from tests.serving.test_gateway_engines import FakeEngine, complete, pool_of


async def check(engine: Engine, timeout: float) -> None:
    await poll(engine, timeout, time.monotonic)


def test_one_late_health_check_keeps_the_engine_two_in_a_row_mark_it_down() -> None:
    assert SLOW_POLLS == 2

    async def run() -> None:
        engine = FakeEngine()
        await engine.up()
        pool = pool_of([engine.url], engine_poll_seconds=30)  # polls only when asked
        await pool.start()
        try:
            seen = pool.engines[engine.name]
            assert seen.healthy is True
            downs = metrics.ENGINE_DOWN.labels(engine.name)._value.get()
            late = 0.3  # this test's health timeout
            engine.health_delay = late + 0.5
            await check(seen, late)  # late once: still routable
            assert (seen.healthy, seen.slow_polls) == (True, 1)
            status, out = await complete(pool, "lpx-" + "d" * 32)
            assert (status, out.engine) == (200, engine.name)
            await check(seen, late)  # late twice in a row: down
            assert (seen.healthy, seen.slow_polls) == (False, 2)
            assert metrics.ENGINE_DOWN.labels(engine.name)._value.get() == downs + 1
            engine.health_delay = 0.0
            await check(seen, late)  # answers in time: up, the count starts over
            assert (seen.healthy, seen.slow_polls) == (True, 0)
            engine.health_delay = late + 0.5
            await check(seen, late)
            engine.health_delay = 0.0
            await check(seen, late)  # late, then in time: never down
            assert (seen.healthy, seen.slow_polls) == (True, 0)
            assert metrics.ENGINE_DOWN.labels(engine.name)._value.get() == downs + 1
        finally:
            await pool.close()
            await engine.down()

    asyncio.run(run())


def test_a_refused_connection_marks_the_engine_down_at_the_first_poll() -> None:
    async def run() -> None:
        engine = FakeEngine()
        await engine.up()
        pool = pool_of([engine.url], engine_poll_seconds=30)
        await pool.start()
        try:
            assert pool.engines[engine.name].healthy is True
            await engine.down()
            await pool.poll()
            assert pool.engines[engine.name].healthy is False
        finally:
            await pool.close()

    asyncio.run(run())
