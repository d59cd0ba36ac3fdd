"""Version numbers under concurrency, on real PostgreSQL with real commits."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from sqlalchemy import select

from registry.adapters.versions import NewVersion, versions
from registry.db import make_engine, make_sessionmaker
from registry.migrate import upgrade
from registry.models import Adapter, AdapterVersion, BaseModel, Tenant
from tests.conftest import create_database, require_env


def test_twenty_concurrent_versions_get_one_to_twenty() -> None:
    url = create_database(require_env("LORAPLEX_TEST_PG_URL"), f"lpx_conc_{os.getpid()}")
    upgrade(url)
    engine = make_engine(url, pool_size=25)
    factory = make_sessionmaker(engine)
    with factory() as session:
        tenant = Tenant(slug="acme", display_name="Acme", quota_dataset_bytes=1, quota_adapters=1)
        base = BaseModel(name="b", uri="/x", digest="0" * 64, files={}, total_bytes=0,
                         architecture=None, num_layers=1, module_shapes={}, config={},
                         created_by="t")
        session.add_all([tenant, base])
        session.flush()
        adapter = Adapter(tenant_id=tenant.id, name="a", base_model_id=base.id,
                          training_config={}, promotion_policy={}, created_by="t")
        session.add(adapter)
        session.commit()
    barrier = Barrier(20)

    def create(i: int) -> int:
        with factory() as session:
            row = session.get(Adapter, adapter.id)
            assert row is not None
            barrier.wait()  # all twenty start together
            version = versions.allocate(session, adapter=row, new=NewVersion(
                status="queued", trigger="manual", created_by=f"w{i}", training_config={}))
            session.commit()
            return version.version

    with ThreadPoolExecutor(20) as pool:
        numbers = sorted(pool.map(create, range(20)))
    assert numbers == list(range(1, 21))
    with factory() as session:
        stored = session.execute(select(AdapterVersion.version)).scalars().all()
        assert sorted(stored) == list(range(1, 21))
        assert session.get(Adapter, adapter.id).next_version == 21  # type: ignore[union-attr]
    engine.dispose()
