"""`model` -> an immutable adapter version, per tenant, cached for well under a second.

`orders` means `orders@production`; `orders@candidate` any alias; `orders@v3` (or `orders@3`) a
version number. Parsing and lookup are the registry's (`registry.adapters.resolve`); this module
turns its errors into OpenAI's shapes. Only the caller's tenant is searched, so another tenant's
adapter is exactly as invisible as one that does not exist. Results (found or not) are reused
for `gateway_resolve_ttl_seconds` (default 0.5 s): an alias move reaches the gateway within that,
or at once on PostgreSQL, where the registry announces it and `invalidate` drops the tenant's.
The adapter's traffic capture settings are read in the same session and cached with the route,
so a capture change reaches the gateway within the TTL, at no extra query per request.

A fine-tuned model's name (`ft:<base>:<tenant>:<suffix>:<id>`, OpenAI's pattern) is the version
its job produced, promoted or not; `...:ckpt-step-N` that job's checkpoint, which the engine
knows as `lpx-<checkpoint id hex>` (the resolver serves a checkpoint like a version). Usage is
recorded against the job's version either way. The lookup is `registry.finetuning.resolve`'s;
a deleted model stops resolving once its cached route expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from registry.adapters import resolve
from registry.errors import NotFound, Unprocessable
from registry.finetuning import names as ft_names
from registry.finetuning import resolve as ft_resolve
from registry.models import Adapter, AdapterVersion
from registry.models.enums import VersionStatus
from serving.gateway.capture import CaptureSettings, load_settings
from serving.gateway.errors import GatewayError, bad_request, model_not_found
from serving.gateway.ttl import TTLMemo
from serving.names import engine_name

MAX_ROUTES = 50_000
FORMS = (
    "'model' must name one of your adapters: 'name', 'name@alias' or 'name@vN', "
    "or a fine-tuned model: 'ft:...'."
)


@dataclass(frozen=True)
class Route:
    adapter_id: uuid.UUID
    adapter: str
    version_id: uuid.UUID
    version: int
    engine_name: str
    capture: CaptureSettings = CaptureSettings()
    name: str | None = None  # a fine-tuned model's own name, shown instead of adapter@vN

    @property
    def label(self) -> str:
        return self.name or f"{self.adapter}@v{self.version}"


def _sentence(detail: str) -> str:
    return f"{detail[:1].upper()}{detail[1:]}."


def parse_model(model: object) -> resolve.ModelRef | None:
    """The registry's parse of `model` (None for a fine-tuned model's name); a 400 naming the
    accepted forms when it is neither."""
    if not isinstance(model, str):
        raise bad_request(FORMS, param="model")
    if ft_names.parse(model) is not None:
        return None
    try:
        return resolve.parse_model(model)
    except Unprocessable as exc:
        raise bad_request(f"{FORMS} {_sentence(exc.detail)}", param="model") from exc


def _ready(adapter: Adapter, version: AdapterVersion) -> None:
    if version.status != VersionStatus.READY:
        raise GatewayError(
            409,
            f"Version {version.version} of '{adapter.name}' is {version.status}, "
            "not ready to serve.",
            type_="invalid_request_error",
            code="model_not_ready",
            param="model",
        )


def lookup(
    session: Session,
    tenant_id: uuid.UUID,
    model: str,
    ref: resolve.ModelRef | None,
    sample_rate: float = 0.0,
) -> Route:
    """Three statements (adapter, then version or alias->version, then capture settings);
    registry errors as OpenAI's. `sample_rate`: the platform's, for adapters with no setting.
    `ref` None: `model` is a fine-tuned model's name (`ft_lookup`)."""
    if ref is None:
        return ft_lookup(session, tenant_id, model, sample_rate)
    try:
        found = resolve.resolve(session, tenant_id=tenant_id, model=ref)
    except NotFound as exc:
        raise model_not_found(model, _sentence(exc.detail)) from exc
    version = found.version
    _ready(found.adapter, version)
    return Route(
        adapter_id=found.adapter.id,
        adapter=found.adapter.name,
        version_id=version.id,
        version=version.version,
        engine_name=engine_name(version.id),
        capture=load_settings(session, found.adapter.id, sample_rate),
    )


def ft_lookup(session: Session, tenant_id: uuid.UUID, model: str, sample_rate: float) -> Route:
    """A fine-tuned model or one of its checkpoints: the job's version for usage and capture,
    the checkpoint's own engine name when it is one."""
    try:
        target = ft_resolve.lookup(session, tenant_id, model)
    except NotFound as exc:
        raise model_not_found(model, _sentence(exc.detail)) from exc
    _ready(target.adapter, target.version)
    served = target.checkpoint.id if target.checkpoint is not None else target.version.id
    return Route(
        adapter_id=target.adapter.id,
        adapter=target.adapter.name,
        version_id=target.version.id,
        version=target.version.version,
        engine_name=engine_name(served),
        capture=load_settings(session, target.adapter.id, sample_rate),
        name=model,
    )


class Router:
    def __init__(
        self, sessions: sessionmaker[Session], ttl_seconds: float, sample_rate: float = 0.0
    ) -> None:
        self.sessions = sessions
        self.sample_rate = sample_rate
        self._memo: TTLMemo[tuple[uuid.UUID, str], Route | GatewayError] = TTLMemo(
            maxsize=MAX_ROUTES, ttl=ttl_seconds
        )

    def invalidate(self, tenant_id: uuid.UUID | None) -> None:
        """Drop the cached routes of a tenant (None: every tenant's), found or not: a change was
        pushed (`serving.gateway.notify`). A lookup in flight does not store what it read."""
        if tenant_id is None:
            self._memo.drop()
        else:
            self._memo.drop(lambda key: key[0] == tenant_id)

    async def route(self, tenant_id: uuid.UUID, model: object) -> Route:
        ref = parse_model(model)  # 400 before any lookup
        text = str(model)
        outcome = await self._memo.get(
            (tenant_id, text), lambda: run_in_threadpool(self._lookup, tenant_id, text, ref)
        )
        if isinstance(outcome, GatewayError):
            raise outcome
        return outcome

    def _lookup(
        self, tenant_id: uuid.UUID, model: str, ref: resolve.ModelRef | None
    ) -> Route | GatewayError:
        with self.sessions() as session:
            try:
                return lookup(session, tenant_id, model, ref, self.sample_rate)
            except GatewayError as exc:
                return exc
