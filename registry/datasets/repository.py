from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Row, select
from sqlalchemy.orm import Session

from registry.datasets.schemas import DatasetOut
from registry.models import Dataset, Tenant
from registry.owned import OwnedRepository

_OUT_COLUMNS = [c for c in Dataset.__table__.c if c.key in DatasetOut.model_fields]


class DatasetRepository(OwnedRepository[Dataset]):
    """Every query is scoped to one owner: a tenant, or with `tenant_id` None the platform
    (ops' datasets, `Dataset.tenant_id IS NULL`). The two never mix: a tenant's repository
    cannot see platform rows, nor the platform's a tenant's."""

    model = Dataset
    lock_name = "loraplex:platform-datasets"


def dataset_out_row(
    session: Session, visible_tenant: ColumnElement[bool], dataset_id: uuid.UUID
) -> Row[Any] | None:
    """One statement for `GET .../datasets/{id}`: the tenant row `visible_tenant` picks (its id as
    `tenant_id`) with that tenant's dataset `dataset_id` joined, its `DatasetOut` columns null when
    the tenant has no such dataset. None: no visible tenant. Core, not ORM: a hot read."""
    stmt = (
        select(Tenant.id.label("tenant_id"), *_OUT_COLUMNS)
        .select_from(Tenant)
        .outerjoin(Dataset, (Dataset.tenant_id == Tenant.id) & (Dataset.id == dataset_id))
        .where(visible_tenant)
    )
    return session.connection().execute(stmt).first()
