from __future__ import annotations

from registry.models import Dataset
from registry.owned import OwnedRepository


class DatasetRepository(OwnedRepository[Dataset]):
    """Every query is scoped to one owner: a tenant, or with `tenant_id` None the platform
    (ops' datasets, `Dataset.tenant_id IS NULL`). The two never mix: a tenant's repository
    cannot see platform rows, nor the platform's a tenant's."""

    model = Dataset
    lock_name = "loraplex:platform-datasets"
