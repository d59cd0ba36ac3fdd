"""The OpenAI-compatible routes, mounted by the gateway: files, fine-tuning jobs, models.

One router per area, all with `OpenAIRoute`, so errors come back in OpenAI's shape."""

from __future__ import annotations

from fastapi import APIRouter

from registry.finetuning import files_endpoints, jobs_endpoints, models_endpoints
from registry.finetuning.errors import OpenAIRoute

router = APIRouter(route_class=OpenAIRoute, tags=["openai fine-tuning"])
router.include_router(files_endpoints.router)
router.include_router(jobs_endpoints.router)
router.include_router(models_endpoints.router)
