"""Templates, the console's route class and its HTML error pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from registry.errors import LoraplexError, Unauthorized, outage

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

# Scripts and styles come from the registry itself only; SVG is markup, so charts need no
# inline style (use presentation attributes: fill=, stroke=).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(value: Any) -> str:
    """A timestamp as people read it: 2026-12-04 10:31:07 UTC."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _short(value: Any, n: int = 12) -> str:
    """A digest cut for tables (the whole value goes in the title attribute)."""
    text = "" if value is None else str(value)
    return text if len(text) <= n else text[:n] + "…"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(when=_when, short=_short, num=_num)


def page(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render `template` with the caller (for the header and the CSRF field) and `context`."""
    caller = getattr(request.state, "console", None)
    html = templates.get_template(template).render(
        request=request, caller=caller, csrf=caller.csrf if caller else "", **context
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def svg(markup: str) -> Markup:
    """SVG drawn by our own code from escaped values (see svg.py), safe to inline."""
    return Markup(markup)  # noqa: S704 - built by registry/console/svg.py with escaped text


class Rendered(Exception):  # noqa: N818 - an answer on its way out, not an error of its own
    """An error page already rendered, raised through the dependency stack so the unit of work
    rolls back (nothing a refused form wrote is committed)."""

    def __init__(self, response: Response) -> None:
        super().__init__("rendered")
        self.response = response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    if status == 401:
        from registry.console.session import login_page  # the sign-in form, at the same URL

        return login_page(request, message=message, status_code=401)
    return page(request, "error.html", status_code=status, status=status, message=message)


class ConsoleRoute(APIRoute):
    """Registry errors become HTML pages with the same status (401 shows the sign-in form)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except LoraplexError as exc:
                raise Rendered(error_page(request, exc.status_code, exc.detail)) from exc
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(
                    str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")
                )
                message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
                raise Rendered(error_page(request, 422, message)) from exc
            except Exception as exc:
                down = outage(exc)
                if down is None:
                    raise
                log.warning("console.dependency_down", dependency=down, error=str(exc))
                response = error_page(request, 503, f"The {down} is unavailable; retry shortly.")
                response.headers["Retry-After"] = "5"
                raise Rendered(response) from exc

        return guarded


def install(app: FastAPI) -> None:
    """Every app that mounts the console calls this once."""

    async def rendered(_: Request, exc: Exception) -> Response:
        if isinstance(exc, Rendered):
            return exc.response
        raise exc

    app.add_exception_handler(Rendered, rendered)


__all__ = ["ConsoleRoute", "Rendered", "Unauthorized", "install", "page", "svg", "templates"]
