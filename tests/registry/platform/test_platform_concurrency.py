"""Platform dataset versions under concurrency, on real PostgreSQL with real commits: the
advisory lock numbers racing uploads of one name 1..N instead of failing on the unique index."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

from fastapi import FastAPI
from sqlalchemy import select

from registry.auth.principal import Principal
from registry.datasets.repository import DatasetRepository
from registry.datasets.service import datasets, open_ingest
from registry.db import make_engine, make_sessionmaker
from registry.migrate import upgrade
from registry.models import Dataset
from registry.owned import register
from registry.settings import Settings
from registry.storage import open_store
from tests.conftest import create_database, require_env

N = 12


def test_concurrent_platform_uploads_get_one_to_n(pg_app: FastAPI, tmp_path: Path) -> None:
    # pg_app: the app factory has set this process's audit key
    url = create_database(require_env("LORAPLEX_TEST_PG_URL"), f"lpx_pconc_{os.getpid()}")
    upgrade(url)
    engine = make_engine(url, pool_size=N + 2)
    factory = make_sessionmaker(engine)
    store = open_store(f"file://{tmp_path / 'objects'}", create_bucket=True)
    settings = Settings(home=tmp_path / "home")
    barrier = Barrier(N)

    def upload(i: int) -> int:
        ingest = open_ingest(store, None, settings)
        ingest.begin("mix.jsonl", "application/jsonl")
        ingest.feed(json.dumps({"prompt": f"q{i}", "completion": "a"}).encode() + b"\n")
        ingest.end()
        with factory() as session:
            barrier.wait()  # all start registering together
            outcome = register(
                session,
                repo=DatasetRepository(session, None),
                tenant=None,
                name="mix",
                ingest=ingest,
                noun="dataset",
                insert=lambda stored, version: datasets.insert(
                    session,
                    actor=Principal.local_operator(),
                    tenant=None,
                    name="mix",
                    ingest=ingest,
                    stored=stored,
                    version=version,
                ),
            )
            session.commit()
            return outcome.row.version

    try:
        with ThreadPoolExecutor(N) as pool:
            numbers = sorted(pool.map(upload, range(N)))
        assert numbers == list(range(1, N + 1))
        with factory() as session:
            stored = session.execute(select(Dataset.version, Dataset.tenant_id)).all()
            assert sorted(v for v, _ in stored) == list(range(1, N + 1))
            assert {t for _, t in stored} == {None}
    finally:
        engine.dispose()
