from __future__ import annotations

from registry.models import EvalSuite
from registry.owned import OwnedRepository


class EvalSuiteRepository(OwnedRepository[EvalSuite]):
    """Every query is scoped to one owner: a tenant, or with `tenant_id` None the platform
    (ops' suites, `EvalSuite.tenant_id IS NULL`). The two never mix."""

    model = EvalSuite
    lock_name = "loraplex:platform-eval-suites"
