"""Roles and scopes. A role bounds what a client may ever hold; a token's scope narrows it."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    TENANT = "tenant"  # its own tenant only
    OPS = "ops"  # platform-wide
    AUDITOR = "auditor"  # read-only across tenants, plus the audit endpoints


TENANTS_READ = "tenants:read"
TENANTS_WRITE = "tenants:write"
DATASETS_READ = "datasets:read"
DATASETS_WRITE = "datasets:write"
ADAPTERS_READ = "adapters:read"
ADAPTERS_WRITE = "adapters:write"
TRAINING_WRITE = "training:write"
RETRAINING_WRITE = "retraining:write"  # schedules and drift policies: ops
INFERENCE = "inference"
AUDIT_READ = "audit:read"
AUDIT_WRITE = "audit:write"  # anchor the audit chain on demand: ops
BASE_MODELS_READ = "base_models:read"
BASE_MODELS_WRITE = "base_models:write"
# promote a version that the promotion gate refused (recorded as an override)
PROMOTION_OVERRIDE = "promotion:override"
TRAFFIC_READ = "traffic:read"  # captured traces and feedback
TRAFFIC_WRITE = "traffic:write"  # capture settings, erasure
TEACHERS_READ = "teachers:read"
TEACHERS_WRITE = "teachers:write"  # register teacher endpoints: ops

ALL_SCOPES = frozenset(
    {
        TENANTS_READ,
        TENANTS_WRITE,
        DATASETS_READ,
        DATASETS_WRITE,
        ADAPTERS_READ,
        ADAPTERS_WRITE,
        TRAINING_WRITE,
        RETRAINING_WRITE,
        INFERENCE,
        AUDIT_READ,
        AUDIT_WRITE,
        BASE_MODELS_READ,
        BASE_MODELS_WRITE,
        PROMOTION_OVERRIDE,
        TRAFFIC_READ,
        TRAFFIC_WRITE,
        TEACHERS_READ,
        TEACHERS_WRITE,
    }
)
READ_SCOPES = frozenset(s for s in ALL_SCOPES if s.endswith(":read"))

ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.TENANT: frozenset(
        {
            TENANTS_READ,
            BASE_MODELS_READ,
            DATASETS_READ,
            DATASETS_WRITE,
            ADAPTERS_READ,
            ADAPTERS_WRITE,
            TRAINING_WRITE,
            INFERENCE,
            PROMOTION_OVERRIDE,
            TRAFFIC_READ,
            TRAFFIC_WRITE,
            TEACHERS_READ,
        }
    ),
    Role.OPS: ALL_SCOPES - {INFERENCE},
    Role.AUDITOR: READ_SCOPES,
}


def parse(scope: str | None) -> frozenset[str]:
    return frozenset(scope.split()) if scope else frozenset()


def render(scopes: frozenset[str] | set[str]) -> str:
    return " ".join(sorted(scopes))
