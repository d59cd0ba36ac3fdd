"""The teacher client against a real HTTP server on 127.0.0.1 (scripted answers, 429s, 500s,
and a socket that never answers): retries, backoff, Retry-After, timeouts, budget, pacing."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from tests.workers.teacher_server import HANG, Reply, chat, completion, silent_socket
from tests.workers.teacher_server import teacher_server as server
from workers.teacher_client import (
    BudgetExhausted,
    PromptFailed,
    TeacherClient,
    TeacherDown,
    TeacherSpec,
    retry_after,
)

PROMPT = {"messages": [{"role": "user", "content": "hi"}]}


def spec(url: str, **over: Any) -> TeacherSpec:
    fields: dict[str, Any] = {
        "name": "t",
        "base_url": url,
        "model": "m",
        "api_key": "sk-test",
        "requests_per_minute": 60_000,
        "timeout_seconds": 5.0,
        "max_retries": 3,
        "max_requests": 100,
        "max_tokens": 32,
    }
    return TeacherSpec(**(fields | over))


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        if seconds > 0.01:  # backoffs; not the pacing of a 60000-per-minute teacher
            self.calls.append(seconds)


def test_chat_request_shape_and_answer() -> None:
    prompt = {**PROMPT, "tools": [{"type": "function", "function": {"name": "f"}}]}
    with server(lambda s: chat("hello")) as srv, TeacherClient(spec(srv.url)) as client:
        answer = client.answer(prompt)
    assert answer.content == "hello" and client.calls == 1
    (seen,) = srv.seen
    assert seen.path == "/v1/chat/completions" and seen.authorization == "Bearer sk-test"
    assert seen.body["temperature"] == 0 and seen.body["max_tokens"] == 32
    assert seen.body["model"] == "m" and seen.body["tools"] == prompt["tools"]


def test_prompt_records_use_completions_and_no_key_sends_no_header() -> None:
    with (
        server(lambda s: completion(" world")) as srv,
        TeacherClient(spec(srv.url, api_key=None)) as client,
    ):
        assert client.answer({"prompt": "hello"}).content == " world"
    assert srv.seen[0].path == "/v1/completions" and srv.seen[0].authorization is None


def test_5xx_and_429_are_retried_with_growing_backoff_then_answered() -> None:
    replies = iter([Reply(500), Reply(503), Reply(429), chat("ok")])
    sleeps = Sleeps()
    with server(lambda s: next(replies)) as srv:
        client = TeacherClient(spec(srv.url), sleep=sleeps, rng=random.Random(0))
        assert client.answer(PROMPT).content == "ok"
    assert client.calls == 4 and len(srv.seen) == 4
    assert len(sleeps.calls) == 3
    for attempt, delay in enumerate(sleeps.calls):  # 0.5 s * 2^n, jittered down to half
        assert 0.25 * 2**attempt <= delay <= 0.5 * 2**attempt


def test_retry_after_is_honoured_and_capped() -> None:
    replies = iter(
        [Reply(429, headers={"Retry-After": "7"}), Reply(429, {}, {"Retry-After": "9999"})]
    )
    sleeps = Sleeps()
    with server(lambda s: next(replies, chat("ok"))) as srv:
        client = TeacherClient(spec(srv.url), sleep=sleeps)
        assert client.answer(PROMPT).content == "ok"
    assert sleeps.calls[0] == 7 and sleeps.calls[1] == 60  # RETRY_AFTER_CAP
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # a date in the past
    assert retry_after("soon") is None


def test_retries_exhausted_is_teacher_down_with_the_reason() -> None:
    with server(lambda s: Reply(502)) as srv:
        client = TeacherClient(spec(srv.url, max_retries=2), sleep=Sleeps())
        with pytest.raises(TeacherDown, match=r"teacher 't' did not answer: HTTP 502 \(3 tries\)"):
            client.answer(PROMPT)
    assert len(srv.seen) == 3


def test_a_server_that_never_answers_times_out() -> None:
    with silent_socket() as url:
        client = TeacherClient(spec(url, timeout_seconds=0.5, max_retries=1), backoff_base=0.01)
        started = time.monotonic()
        with pytest.raises(TeacherDown, match=r"timed out after 0.5 s \(2 tries\)"):
            client.answer(PROMPT)
        assert 1.0 <= time.monotonic() - started < 4
    with server(lambda s: HANG) as srv:  # an HTTP server that reads and then stalls
        client = TeacherClient(spec(srv.url, timeout_seconds=0.3, max_retries=0))
        with pytest.raises(TeacherDown, match=r"timed out.*\(1 try\)"):
            client.answer(PROMPT)


def test_connection_refused_is_retried_then_down() -> None:
    with server(lambda s: chat("x")) as srv:
        url = srv.url
    client = TeacherClient(spec(url, max_retries=1), sleep=Sleeps())
    with pytest.raises(TeacherDown, match="connection failed"):
        client.answer(PROMPT)
    assert client.calls == 2


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refused_key_or_model_stops_at_once(status: int) -> None:
    with server(lambda s: Reply(status, {"error": "no"})) as srv:
        client = TeacherClient(spec(srv.url), sleep=Sleeps())
        with pytest.raises(TeacherDown, match=f"HTTP {status}"):
            client.answer(PROMPT)
    assert len(srv.seen) == 1


def test_a_refused_or_garbled_prompt_fails_that_prompt_only() -> None:
    replies = iter([Reply(400, {"error": "too long"}), Reply(200, {"choices": []}), chat("ok")])
    with server(lambda s: next(replies)) as srv, TeacherClient(spec(srv.url)) as client:
        with pytest.raises(PromptFailed, match="HTTP 400"):
            client.answer(PROMPT)
        with pytest.raises(PromptFailed, match="not an OpenAI completion"):
            client.answer(PROMPT)
        assert client.answer(PROMPT).content == "ok"


def test_the_budget_counts_retries() -> None:
    replies = iter([Reply(500), chat("a"), Reply(500), Reply(500)])
    with server(lambda s: next(replies)) as srv:
        client = TeacherClient(spec(srv.url, max_requests=3), sleep=Sleeps())
        assert client.answer(PROMPT).content == "a"  # 2 calls
        with pytest.raises(BudgetExhausted):
            client.answer(PROMPT)  # 1 call (500), then no call left
    assert client.calls == 3 and len(srv.seen) == 3


def test_requests_are_paced_to_the_rate() -> None:
    with server(lambda s: chat("x")) as srv:
        client = TeacherClient(spec(srv.url, requests_per_minute=600))  # one per 0.1 s
        for _ in range(4):
            client.answer(PROMPT)
    gaps = [b.at - a.at for a, b in zip(srv.seen, srv.seen[1:], strict=False)]
    assert all(g >= 0.06 for g in gaps), gaps  # 0.1 s paced; unpaced, answers come in ~1 ms
    # How long the client itself waited depends on how slow each answer was (on a loaded
    # machine the answers alone may take 0.1 s): the gaps above are the guarantee.
