"""Platform datasets: ops' rehearsal data, never readable by tenants."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/platform/datasets", tags=["platform datasets"])
