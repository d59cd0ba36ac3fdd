"""0016 gives every base model a `max_lora_rank`: 64 (the old platform default), raised to the
highest rank its adapters or adapter versions already name, so nothing trained, uploaded or
served before the upgrade is refused after it (PostgreSQL and SQLite)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Uuid, bindparam, create_engine, text
from sqlalchemy.exc import IntegrityError

from registry.migrate import downgrade, upgrade
from tests.conftest import create_database, require_env

BASE = text(
    "INSERT INTO base_models (id, name, uri, digest, files, total_bytes, num_layers,"
    " module_shapes, config, created_by, created_at) VALUES (:id, :name, 'file:///base',"
    " :digest, '{}', 0, 1, '{}', '{}', 'test', CURRENT_TIMESTAMP)"
).bindparams(bindparam("id", type_=Uuid()))
TENANT = text(
    "INSERT INTO tenants (id, slug, display_name, quota_dataset_bytes, quota_adapters,"
    " created_at, updated_at) VALUES (:id, 'acme', 'Acme', 1024, 10, CURRENT_TIMESTAMP,"
    " CURRENT_TIMESTAMP)"
).bindparams(bindparam("id", type_=Uuid()))
ADAPTER = text(
    "INSERT INTO adapters (id, tenant_id, name, base_model_id, training_config,"
    " promotion_policy, next_version, created_by, created_at) VALUES (:id, :t, :name, :b, :cfg,"
    " '{}', 2, 'test', CURRENT_TIMESTAMP)"
).bindparams(*(bindparam(k, type_=Uuid()) for k in ("id", "t", "b")))
VERSION = text(
    "INSERT INTO adapter_versions (id, tenant_id, adapter_id, version, status, status_message,"
    " base_model_id, base_model_digest, training_config, config_hash, trigger, trigger_ref,"
    " code_version, created_by, created_at, updated_at) VALUES (:id, :t, :a, 1, 'ready', '',"
    " :b, :digest, :cfg, :digest, 'upload', '{}', 'test', 'test', CURRENT_TIMESTAMP,"
    " CURRENT_TIMESTAMP)"
).bindparams(*(bindparam(k, type_=Uuid()) for k in ("id", "t", "a", "b")))

# base model -> (its adapter's training config, its version's training config)
ROWS = {
    "plain": ({"rank": 8}, {"rank": 8}),  # below the default: 64
    "trained-wide": ({"rank": 8}, {"rank": 128}),  # a version trained at 128: 128
    "uploaded-pattern": ({"rank": 8}, {"r": 8, "rank_pattern": {"q_proj": 200}}),  # to 256
    "adapter-wide": ({"rank": 96}, None),  # the adapter's next job trains at 96: 128
}


def _url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'x.db'}"
    return create_database(require_env("LORAPLEX_TEST_PG_URL"), f"lpx_m0016_{os.getpid()}")


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_existing_base_models_keep_serving_what_they_served(kind: str, tmp_path: Path) -> None:
    url = _url(kind, tmp_path)
    upgrade(url, "0015")
    engine = create_engine(url)
    tenant, digest = uuid.uuid4(), "0" * 64
    with engine.begin() as conn:
        conn.execute(TENANT, {"id": tenant})
        for name, (adapter_cfg, version_cfg) in ROWS.items():
            base, adapter = uuid.uuid4(), uuid.uuid4()
            conn.execute(BASE, {"id": base, "name": name, "digest": digest})
            conn.execute(
                ADAPTER,
                {"id": adapter, "t": tenant, "name": name, "b": base,
                 "cfg": json.dumps(adapter_cfg)},
            )  # fmt: skip
            if version_cfg is not None:
                conn.execute(
                    VERSION,
                    {"id": uuid.uuid4(), "t": tenant, "a": adapter, "b": base,
                     "digest": digest, "cfg": json.dumps(version_cfg)},
                )  # fmt: skip
    upgrade(url)

    def ranks() -> dict[str, int]:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT name, max_lora_rank FROM base_models")).all())

    assert ranks() == {
        "plain": 64,
        "trained-wide": 128,
        "uploaded-pattern": 256,
        "adapter-wide": 128,
    }
    with engine.begin() as conn:  # a row written without the column (an older registry): 64
        conn.execute(BASE, {"id": uuid.uuid4(), "name": "late", "digest": digest})
    assert ranks()["late"] == 64
    with pytest.raises(IntegrityError), engine.begin() as conn:  # the CHECK holds
        conn.execute(text("UPDATE base_models SET max_lora_rank = 0 WHERE name = 'plain'"))
    downgrade(url, "0015")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM base_models")).scalar() == 5
    engine.dispose()
