"""Prometheus gauges of the training backlog, served by the registry's `/metrics`.

A collector on the process's default registry (what `/metrics` renders) that computes the
backlog (registry/training/backlog.py, without the tenant list) at most once every
`LORAPLEX_BACKLOG_CACHE_SECONDS` (default 15): scrapes in between, from any number of
Prometheus replicas, get the cached figures. No tenant labels (`/metrics` carries no tenant data).

- `loraplex_training_backlog_jobs{status,trigger}`: queued, running and paused jobs;
- `loraplex_training_drain_per_hour`: jobs finished (any outcome) in the last hour;
- `loraplex_training_backlog_eta_seconds`: (queued + running) / drain rate; 0 when nothing
  waits, +Inf when jobs wait and nothing finished in the last hour (so `> threshold` alerts);
- `loraplex_training_oldest_queued_seconds`: age of the oldest queued job (0 when none).

If the database cannot be read, the last figures are served again (or none before the first
success) and the failure is logged; it is retried after the cache period, never per scrape.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import structlog
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from registry.training.backlog import TrainingBacklog, compute

log = structlog.get_logger(__name__)
DEFAULT_CACHE_SECONDS = 15.0


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(
            "loraplex_training_backlog_jobs",
            "Training jobs queued, running or paused, by trigger",
            labels=["status", "trigger"],
        ),
        GaugeMetricFamily(
            "loraplex_training_drain_per_hour", "Training jobs finished in the last hour"
        ),
        GaugeMetricFamily(
            "loraplex_training_backlog_eta_seconds",
            "Seconds to drain queued + running jobs at the last hour's rate (+Inf: no drain)",
        ),
        GaugeMetricFamily(
            "loraplex_training_oldest_queued_seconds", "Age of the oldest queued training job"
        ),
    )


class BacklogCollector:
    """Reads the backlog through an app's sessionmaker and settings (looked up per refresh,
    so a test that swaps them is followed)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._snapshot: TrainingBacklog | None = None
        self._refreshed = -math.inf
        self.refreshes = 0  # database reads so far (tests check the cache with it)

    def _cache_seconds(self) -> float:
        settings = self.app.state.settings
        return float(getattr(settings, "backlog_cache_seconds", DEFAULT_CACHE_SECONDS))

    def snapshot(self) -> TrainingBacklog | None:
        with self._lock:  # one refresh at a time; concurrent scrapes wait and share it
            if time.monotonic() - self._refreshed < self._cache_seconds():
                return self._snapshot
            self._refreshed = time.monotonic()
            self.refreshes += 1
            try:
                with self.app.state.sessionmaker() as session:
                    self._snapshot = compute(session, settings=self.app.state.settings, limit=0)
            except Exception as exc:  # noqa: BLE001 - a scrape must not fail on the database
                log.warning("training.backlog_metrics_unavailable", error=type(exc).__name__)
            return self._snapshot

    def describe(self) -> Iterator[Metric]:
        return iter(_families())  # names only: registering must not query the database

    def collect(self) -> Iterator[Metric]:
        jobs, drain, eta, oldest = _families()
        snap = self.snapshot()
        if snap is None:
            return
        for row in snap.by_trigger:
            for status in ("queued", "running", "paused"):
                jobs.add_metric([status, row.trigger], getattr(row, status))
        drain.add_metric([], snap.drain_per_hour)
        eta.add_metric([], math.inf if snap.eta_seconds is None else snap.eta_seconds)
        oldest.add_metric([], snap.oldest_queued_seconds or 0.0)
        yield from (jobs, drain, eta, oldest)


_installed: dict[int, BacklogCollector] = {}


def install(app: FastAPI, registry: CollectorRegistry = REGISTRY) -> BacklogCollector:
    """Serve the gauges for `app` on `registry`. One collector per registry: a later app (tests
    build several in one process) replaces the earlier one."""
    previous = _installed.pop(id(registry), None)
    if previous is not None:
        registry.unregister(previous)  # type: ignore[arg-type]
    collector = BacklogCollector(app)
    registry.register(collector)  # type: ignore[arg-type]
    _installed[id(registry)] = collector
    app.state.backlog_metrics = collector
    return collector
