"""Celery task definitions: one thin shell per entry of the task table, run with this
process's context."""

from __future__ import annotations

from typing import Any

from celery import Task

from workers.celery_app import app
from workers.context import get_context
from workers.task_table import TASKS, run_task


def _define(name: str) -> Task:
    def task(self: Task, *args: Any) -> None:
        run_task(get_context(), name, args, host=self.request.hostname or "worker")

    task.__name__ = name.rsplit(".", 1)[-1]
    return app.task(name=name, bind=True)(task)


tasks = {name: _define(name) for name in TASKS}
