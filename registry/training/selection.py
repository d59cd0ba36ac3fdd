"""Which datasets an automatic retrain (schedule or drift) trains on.

`latest`: the newest version of each dataset name; `all`: every version of each name. The names
are the ones given, else those the adapter's current version (production, or the latest ready)
was trained on, else every dataset name of the tenant.

`traffic` (drift policies) adds the curated traffic to `uploaded_datasets`: the same names, but
only uploaded versions (`origin` None): data the platform derived (curated traffic, teacher
labels) is never carried into the next retrain by name.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.adapters.repository import VersionRepository
from registry.adapters.versions import versions
from registry.errors import Unprocessable
from registry.models import Adapter, Dataset
from registry.models.enums import DatasetMode


def dataset_names(
    session: Session, adapter: Adapter, names: list[str] | None, *, uploaded: bool = False
) -> list[str]:
    if names:
        return sorted(set(names))
    current = versions.default_parent(session, adapter=adapter)
    if current is not None:
        used = VersionRepository(session, adapter.tenant_id).datasets([current.id])[current.id]
        trained = sorted(
            {d.name for d, role in used if role == "train" and not (uploaded and d.origin)}
        )
        if trained:
            return trained
    stmt = select(Dataset.name, Dataset.origin).where(Dataset.tenant_id == adapter.tenant_id)
    return sorted({n for n, origin in session.execute(stmt) if not (uploaded and origin)})


def uploaded_datasets(
    session: Session, adapter: Adapter, names: list[str] | None, *, exclude: str
) -> list[Dataset]:
    """The newest uploaded version of each name (given, else as `dataset_names` finds them),
    never `exclude` (the curated dataset) nor a derived version; may be empty."""
    chosen = set(dataset_names(session, adapter, names, uploaded=True)) - {exclude}
    if not chosen:
        return []
    stmt = (
        select(Dataset)
        .where(Dataset.tenant_id == adapter.tenant_id, Dataset.name.in_(sorted(chosen)))
        .order_by(Dataset.name, Dataset.version)
    )
    newest: dict[str, Dataset] = {}
    for d in session.execute(stmt).scalars():
        if d.origin is None:
            newest[d.name] = d  # ordered by version: the last one wins
    return list(newest.values())


def check_uploaded_names(session: Session, adapter: Adapter, names: list[str]) -> None:
    """422 unless every name has an uploaded version (for a traffic policy's `dataset_names`)."""
    found = {d.name for d in uploaded_datasets(session, adapter, names, exclude="")}
    missing = sorted(set(names) - found)
    if missing:
        raise Unprocessable(f"no uploaded dataset named {', '.join(map(repr, missing))}")


def select_datasets(
    session: Session, adapter: Adapter, mode: DatasetMode, names: list[str] | None
) -> list[Dataset]:
    chosen = dataset_names(session, adapter, names)
    if not chosen:
        raise Unprocessable(f"tenant has no datasets to retrain adapter '{adapter.name}' on")
    stmt = (
        select(Dataset)
        .where(Dataset.tenant_id == adapter.tenant_id, Dataset.name.in_(chosen))
        .order_by(Dataset.name, Dataset.version)
    )
    rows = list(session.execute(stmt).scalars())
    missing = sorted(set(chosen) - {d.name for d in rows})
    if missing:
        raise Unprocessable(f"no dataset named {', '.join(map(repr, missing))}")
    if mode == DatasetMode.ALL:
        return rows
    newest: dict[str, Dataset] = {}
    for d in rows:
        newest[d.name] = d  # ordered by version: the last one wins
    return list(newest.values())
