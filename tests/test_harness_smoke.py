"""Proves the services started by `python -m tests.services` answer (they fail without them)."""

from __future__ import annotations

import os
import uuid

import pytest


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} not set: run through `make test` (python -m tests.services)")
    return value


def test_postgres_select_1() -> None:
    import psycopg

    url = _env("LORAPLEX_TEST_PG_URL").replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT 1").fetchone()
    assert row == (1,)


def test_redis_ping() -> None:
    import redis

    client = redis.Redis.from_url(_env("LORAPLEX_TEST_REDIS_URL"), socket_timeout=5)
    try:
        assert client.ping() is True
        client.set("harness-smoke", b"ok")
        assert client.get("harness-smoke") == b"ok"
    finally:
        client.close()


def test_s3_round_trip() -> None:
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=_env("LORAPLEX_TEST_S3_ENDPOINT"),
        config=Config(signature_version="s3v4"),
    )
    bucket = f"harness-smoke-{uuid.uuid4().hex[:8]}"
    body = os.urandom(4096)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/b.bin", Body=body)
    assert s3.get_object(Bucket=bucket, Key="a/b.bin")["Body"].read() == body
