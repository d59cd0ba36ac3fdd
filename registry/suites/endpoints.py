"""Eval-suite uploads: a tenant's suites and ops' platform suites."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["eval suites"])
