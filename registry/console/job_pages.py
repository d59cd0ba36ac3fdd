"""(being written)"""

from __future__ import annotations

from fastapi import APIRouter

from .render import ConsoleRoute
from .session import PATH

router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)
