"""The composition root's wiring: settings, the task queue, the worker context and the apps.

Every process starts here; `registry/`, `workers/` and `serving/` receive what they need as
arguments and never import this package.
"""

from __future__ import annotations

from fastapi import FastAPI

from registry.app import create_app
from registry.settings import Settings, get_settings
from registry.tasks import CeleryQueue, TaskQueue
from workers.context import WorkerContext, build_context
from workers.inprocess import InProcessQueue


def make_queue(settings: Settings) -> TaskQueue:
    """Celery when a broker is configured; otherwise the in-process queue (embedded default)."""
    return CeleryQueue(settings) if settings.broker_url else InProcessQueue(settings)


def build_registry_app(settings: Settings) -> FastAPI:
    return create_app(settings, queue=make_queue(settings))


def registry_app() -> FastAPI:
    """uvicorn's factory for `loraplex serve registry` (settings from the environment)."""
    return build_registry_app(get_settings())


def gateway_app() -> FastAPI:
    """uvicorn's factory for `loraplex serve gateway`. With a broker the gateway's fine-tuning
    routes send to Celery; embedded, the registry process owns the in-process workers, so the
    gateway sends nothing and the registry's reaper picks up what it queued (`UnsentQueue`)."""
    from serving.gateway.app import UnsentQueue, create_gateway

    settings = get_settings()
    queue: TaskQueue = CeleryQueue(settings) if settings.broker_url else UnsentQueue()
    return create_gateway(settings, queue=queue)


def worker_context(settings: Settings) -> WorkerContext:
    """For one-shot commands that do beat's work here: with no broker, the jobs they create
    run in this process (call `drain` before exiting)."""
    queue = make_queue(settings)
    if isinstance(queue, InProcessQueue):
        return queue.context
    return build_context(settings, queue)


def drain(ctx: WorkerContext) -> bool:
    """Wait for in-process work; False when the queue is a broker (nothing runs here)."""
    if isinstance(ctx.queue, InProcessQueue):
        ctx.queue.drain()
        return True
    return False
