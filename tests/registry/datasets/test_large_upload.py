"""A ~200 MB upload to a real server process on PostgreSQL + S3: correct, and memory stays flat."""

from __future__ import annotations

import hashlib
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.live import LiveRegistry, start_registry

MiB = 1 << 20
UPLOAD_MB = 200
DUPLICATE_EVERY = 1000  # every 1000th line repeats an earlier row, so dedup is exercised too

# Peak RSS growth the server may show for the whole upload. What it legitimately holds: one S3
# part buffer (8 MiB) plus botocore's copies of it while sending (a few x 8 MiB); the 1 MiB
# batches the form parser hands to the sink, with their joined/validated copies (a few MiB);
# the dedup set of 16-byte digests, ~100 B per unique row (~200k rows -> ~20 MB); allocator
# slack. That is ~60-70 MB at worst (measured: ~31 MB); anything near the file size means it is
# buffered somewhere, which is what this bound catches.
MAX_RSS_GROWTH_MB = 120
MAX_CLIENT_RSS_GROWTH_MB = 64  # the test streams from disk too


@dataclass(frozen=True)
class GeneratedJsonl:
    path: Path
    bytes: int  # the file as uploaded
    sha256: str  # of the file as uploaded (the dataset's source_sha256)
    rows: int  # unique rows (what the registry keeps)
    duplicates: int
    stored_sha256: str  # of the kept rows, in order (the dataset's sha256)
    stored_bytes: int


_TEXT = (
    "adapter rank alpha dropout gradient token batch epoch learning rate schedule warmup decay "
    "the model answers a question about data with care and cites its sources when asked to"
)
_WORDS = _TEXT.split()


def write_chat_jsonl(path: Path, target_bytes: int, row_bytes: int = 1024) -> GeneratedJsonl:
    """Write chat rows of ~`row_bytes` each until the file reaches `target_bytes`."""
    filler = [" ".join(_WORDS[(i + j) % len(_WORDS)] for j in range(80)) for i in range(64)]
    src, kept = hashlib.sha256(), hashlib.sha256()
    size = stored = rows = dups = 0
    first = b""
    with path.open("wb") as f:
        while size < target_bytes:
            if rows and (rows + dups) % DUPLICATE_EVERY == 0:
                line, dups = first, dups + 1
            else:
                body = filler[rows % 64] + " " + filler[(rows * 7) % 64]
                room = max(1, (row_bytes - 80) // 2)
                row = {
                    "messages": [
                        {"role": "user", "content": f"question {rows}: {body[:room]}"},
                        {"role": "assistant", "content": f"answer {rows}: {body[-room:]}"},
                    ]
                }
                line = orjson.dumps(row) + b"\n"
                kept.update(line)
                stored += len(line)
                rows += 1
                first = first or line
            f.write(line)
            src.update(line)
            size += len(line)
    return GeneratedJsonl(path, size, src.hexdigest(), rows, dups, kept.hexdigest(), stored)


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def _own_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@pytest.fixture
def live(pg_admin_url: str, s3_endpoint: str) -> Iterator[LiveRegistry]:
    with start_registry(pg_admin_url, s3_endpoint) as registry:
        yield registry


def _tenant(live: LiveRegistry, slug: str) -> dict[str, str]:
    ops = live.bearer()
    with live.http() as http:
        resp = http.post("/v1/tenants", json={"slug": slug, "display_name": slug}, headers=ops)
        assert resp.status_code == 201, resp.text
        resp = http.post(f"/v1/tenants/{slug}/clients", json={}, headers=ops)
        assert resp.status_code == 201, resp.text
    client = resp.json()
    return live.bearer(client["client_id"], client["client_secret"])


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Path]:
    """A folder for the generated files, emptied afterwards (pytest keeps recent tmp_paths)."""
    yield tmp_path
    for path in tmp_path.glob("*.jsonl"):
        path.unlink()


@pytest.mark.slow
def test_large_upload_streams_with_bounded_memory(
    live: LiveRegistry, files: Path, record_property: Callable[[str, object], None]
) -> None:
    headers = _tenant(live, "bigdata")
    t0 = time.monotonic()
    data = write_chat_jsonl(files / "big.jsonl", UPLOAD_MB * MiB)
    gen_s = time.monotonic() - t0
    small = write_chat_jsonl(files / "small.jsonl", 2 * MiB)

    with live.http(timeout=300) as http:

        def upload(name: str, path: Path) -> dict[str, object]:
            with path.open("rb") as f:  # httpx reads the file in 64 KiB chunks as it sends
                resp = http.post(
                    "/v1/tenants/bigdata/datasets",
                    headers=headers,
                    data={"name": name},
                    files={"file": (path.name, f, "application/x-ndjson")},
                )
            assert resp.status_code == 201, resp.text
            body: dict[str, object] = resp.json()
            return body

        upload("warmup", small.path)  # imports, pools, threads and S3 connections warm
        rss_before = peak_rss_mb(live.pid)
        client_before = _own_peak_rss_mb()
        t0 = time.monotonic()
        out = upload("big", data.path)
        upload_s = time.monotonic() - t0
        rss_after = peak_rss_mb(live.pid)
        client_growth = _own_peak_rss_mb() - client_before

    assert out["rows"] == data.rows
    assert out["duplicates_dropped"] == data.duplicates
    assert out["source_sha256"] == data.sha256 and out["source_bytes"] == data.bytes
    assert out["sha256"] == data.stored_sha256 and out["bytes"] == data.stored_bytes

    growth = rss_after - rss_before
    figures = {
        "upload_mb": round(data.bytes / MiB, 1),
        "rows": data.rows,
        "generate_s": round(gen_s, 2),
        "upload_s": round(upload_s, 2),
        "upload_mb_per_s": round(data.bytes / MiB / upload_s, 1),
        "server_peak_rss_before_mb": round(rss_before, 1),
        "server_peak_rss_after_mb": round(rss_after, 1),
        "server_peak_rss_growth_mb": round(growth, 1),
        "client_peak_rss_growth_mb": round(client_growth, 1),
    }
    for key, value in figures.items():
        record_property(key, value)
    print("\nlarge upload:", " ".join(f"{k}={v}" for k, v in figures.items()))
    assert growth < MAX_RSS_GROWTH_MB, figures
    assert client_growth < MAX_CLIENT_RSS_GROWTH_MB, figures
