"""Calls one teacher (an OpenAI-compatible endpoint) for one labelling job.

Greedy answers (temperature 0, `max_tokens`), one request at a time, paced to the teacher's
requests per minute. Timeouts, connection errors, 429 and 5xx are retried with exponential
backoff and jitter (a Retry-After is honoured, capped); every call, retries included, counts
against the job's budget. What the caller gets:
- an `Answer`;
- `PromptFailed`: the teacher refused this prompt (400, 413, 422, a malformed answer): count it;
- `TeacherDown`: retries exhausted, or the key or model refused (401, 403, 404): stop the job;
- `BudgetExhausted`: no call left.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

log = structlog.get_logger(__name__)

BACKOFF_BASE = 0.5  # seconds before the first retry, doubled each time
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 60.0
FATAL = frozenset({401, 403, 404})


class TeacherError(Exception):
    pass


class TeacherDown(TeacherError):
    """The teacher cannot label anything now: the job fails and stores nothing."""


class PromptFailed(TeacherError):
    """The teacher refused or garbled this one prompt."""


class BudgetExhausted(TeacherError):
    """The job's `max_requests` calls are spent."""


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    base_url: str
    model: str
    api_key: str | None
    requests_per_minute: int
    timeout_seconds: float
    max_retries: int
    max_requests: int
    max_tokens: int


@dataclass(frozen=True)
class Answer:
    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None


def request_for(spec: TeacherSpec, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(path, body) for a prompt record: chat `messages` (+ tools) or a raw `prompt`."""
    body: dict[str, Any] = {"model": spec.model, "temperature": 0, "max_tokens": spec.max_tokens}
    if "messages" in record:
        extra: dict[str, Any] = {
            k: record[k] for k in ("tools", "tool_choice", "parallel_tool_calls") if k in record
        }
        return "/chat/completions", {**body, "messages": record["messages"], **extra}
    return "/completions", {**body, "prompt": record["prompt"]}


def parse_answer(path: str, data: Any) -> Answer:
    try:
        choice = data["choices"][0]
        if path == "/completions":
            text = choice["text"]
            calls: list[dict[str, Any]] = []
        else:
            message = choice["message"]
            text = message.get("content") or ""
            calls = list(message.get("tool_calls") or [])
        if not isinstance(text, str) or not all(isinstance(c, dict) for c in calls):
            raise TypeError("content is not text")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise PromptFailed(f"the answer is not an OpenAI completion ({exc!r})") from exc
    return Answer(text, calls, choice.get("finish_reason"))


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), None if absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class TeacherClient:
    def __init__(
        self,
        spec: TeacherSpec,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        backoff_base: float = BACKOFF_BASE,
    ) -> None:
        self.spec = spec
        headers = {"Authorization": f"Bearer {spec.api_key}"} if spec.api_key else {}
        self.http = httpx.Client(
            base_url=spec.base_url,
            headers=headers,
            timeout=httpx.Timeout(spec.timeout_seconds),
            transport=transport,
            trust_env=False,
        )
        self.sleep, self.clock = sleep, clock
        self.rng = rng or random.Random()
        self.backoff_base = backoff_base
        self.calls = 0  # HTTP requests made, retries included
        self.waited = 0.0  # seconds spent pacing and backing off
        self._last_start: float | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TeacherClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def budget_left(self) -> int:
        return self.spec.max_requests - self.calls

    def answer(self, record: dict[str, Any]) -> Answer:
        path, body = request_for(self.spec, record)
        tries = self.spec.max_retries + 1
        problem = ""
        for attempt in range(tries):
            if self.budget_left <= 0:
                raise BudgetExhausted(f"the budget of {self.spec.max_requests} calls is spent")
            self._pace()
            self.calls += 1
            wait: float | None = None
            try:
                resp = self.http.post(path, json=body)
            except httpx.TimeoutException:
                problem = f"timed out after {self.spec.timeout_seconds:g} s"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                if resp.status_code == 200:
                    try:
                        data = resp.json()
                    except ValueError as exc:
                        raise PromptFailed("the answer is not JSON") from exc
                    return parse_answer(path, data)
                if resp.status_code in FATAL:
                    raise TeacherDown(
                        f"teacher '{self.spec.name}' refused the request: HTTP "
                        f"{resp.status_code} {_excerpt(resp)} (check its key, base_url and model)"
                    )
                if resp.status_code != 429 and resp.status_code < 500:
                    raise PromptFailed(f"HTTP {resp.status_code} {_excerpt(resp)}")
                problem = f"HTTP {resp.status_code}"
                wait = retry_after(resp.headers.get("retry-after"))
            log.warning(
                "teacher.retry", teacher=self.spec.name, attempt=attempt + 1, problem=problem
            )
            if attempt + 1 < tries:
                self._backoff(attempt, wait)
        raise TeacherDown(
            f"teacher '{self.spec.name}' did not answer: {problem} ({tries} "
            f"{'try' if tries == 1 else 'tries'})"
        )

    def _pace(self) -> None:
        interval = 60.0 / self.spec.requests_per_minute
        now = self.clock()
        if self._last_start is not None and now - self._last_start < interval:
            delay = interval - (now - self._last_start)
            self.waited += delay
            self.sleep(delay)
        self._last_start = self.clock()

    def _backoff(self, attempt: int, retry_after_s: float | None) -> None:
        delay = min(BACKOFF_CAP, self.backoff_base * 2**attempt) * self.rng.uniform(0.5, 1.0)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, RETRY_AFTER_CAP))
        self.waited += delay
        self.sleep(delay)


def _excerpt(resp: httpx.Response) -> str:
    text = resp.text.strip().replace("\n", " ")
    return text[:200]
