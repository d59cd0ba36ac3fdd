"""The eval suites pinned to an adapter."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["eval suites"])
