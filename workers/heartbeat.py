"""A running job's pulse: a thread that writes progress about once a second and renews the
lease, and tells the training loop when the job was cancelled, paused or taken away."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import structlog

from registry.training.lifecycle import lifecycle
from workers.context import WorkerContext

log = structlog.get_logger(__name__)


class Heartbeat:
    def __init__(self, ctx: WorkerContext, job_id: uuid.UUID, worker: str) -> None:
        self.ctx, self.job_id, self.worker = ctx, job_id, worker
        self.lease = ctx.settings.job_lease_seconds
        self.renew_every = max(0.5, self.lease / 4)
        self.cancelled = self.lost = False
        self.pause_wanted = False  # someone asked to pause: store the state and stop
        self._progress: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        """No more beats (before the job leaves `running`, so none reads it as lost)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def update(self, progress: dict[str, Any]) -> None:
        self._progress = progress

    @property
    def keep_going(self) -> bool:
        return not (self.cancelled or self.lost)

    def beat(self) -> None:
        progress, self._progress = self._progress, None
        with self.ctx.session() as session:
            state = lifecycle.heartbeat(
                session,
                job_id=self.job_id,
                worker=self.worker,
                lease_seconds=self.lease,
                progress=progress,
            )
        self.cancelled = self.cancelled or state == "cancel"
        self.pause_wanted = self.pause_wanted or state == "pause"
        if state == "lost" and not self.lost:
            self.lost = True
            log.warning("job.lease_lost", job_id=str(self.job_id), worker=self.worker)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(min(1.0, self.renew_every)):
            if self._progress is None and time.monotonic() - last < self.renew_every:
                continue
            try:
                self.beat()
                last = time.monotonic()
            except Exception:  # the database may be briefly away; the lease has slack
                log.exception("job.heartbeat_failed", job_id=str(self.job_id))
