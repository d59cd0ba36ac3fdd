"""Adapter upload throughput: the registry's API against plain boto3, same bytes, same S3.

    .venv/bin/python -m bench.upload_bench [--mib 64 256] [--repeats 3] [--warmup 1]

Starts its own PostgreSQL and moto S3 (tests.services) and a real registry process
(tests.live); registers a base model whose shapes fit LoRA files of the asked sizes (rank 128
or 512, q/k/v/o of 16 layers of hidden 1024, random F32 data), then per size and round:
  boto3   - `upload_file` of adapter_model.safetensors, default TransferConfig (the baseline)
  api     - POST /v1/tenants/{t}/adapters/{a}/versions over HTTP (config + weights, checked,
            stored, registered): the new path end to end
  writer  - the registry's S3 writer alone in-process, opened on its key (1 MiB writes)
  legacy  - the writer before this change (bench/legacy_s3_writer.py: one part at a time to
            `_tmp/`, complete, server-side copy), in-process: the old path's storage cost
Prints a markdown table (median MiB/s, ratios to boto3) and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import struct
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import httpx
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from bench.legacy_s3_writer import LegacyS3ObjectWriter
from bench.registry_bench import _cpu_s, _EofClock, _git_rev, _tenant
from registry.storage import ObjectWriter, S3ObjectStore, open_store
from tests.live import BUCKET, LiveRegistry, start_registry
from tests.registry.adapters.fakes import adapter_config, safetensors_bytes
from tests.services import AWS_ENV, start_postgres, start_s3, sweep_stale

MiB = 1 << 20
HIDDEN, LAYERS, HEADS = 1024, 16, 16
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
RESULTS = Path(__file__).parent / "results"
PATHS = ("boto3", "api", "writer", "legacy")


def _base_model(folder: Path) -> Path:
    """Shapes only (I8 zeros): q/k/v/o of every layer, as the registry's checks read them."""
    folder.mkdir(parents=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "intermediate_size": 2816,
        "vocab_size": 128,
        "rms_norm_eps": 1e-5,
        "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config))
    spec = {
        f"model.layers.{i}.self_attn.{m}.weight": ("I8", [HIDDEN, HIDDEN])
        for i in range(LAYERS)
        for m in MODULES
    }
    (folder / "model.safetensors").write_bytes(safetensors_bytes(spec))
    return folder


def _adapter(folder: Path, rank: int, base_name: str) -> tuple[bytes, Path]:
    """adapter_config.json bytes and an adapter_model.safetensors of random F32 data."""
    spec: dict[str, tuple[str, list[int]]] = {}
    for i in range(LAYERS):
        for m in MODULES:
            module = f"base_model.model.model.layers.{i}.self_attn.{m}"
            spec[f"{module}.lora_A.weight"] = ("F32", [rank, HIDDEN])
            spec[f"{module}.lora_B.weight"] = ("F32", [HIDDEN, rank])
    empty = safetensors_bytes(spec)  # header + zeros; the data is replaced by random bytes
    (header_len,) = struct.unpack("<Q", empty[:8])
    data_len = len(empty) - 8 - header_len
    path = folder / f"adapter-r{rank}.safetensors"
    with path.open("wb") as f:
        f.write(empty[: 8 + header_len])
        for _ in range(data_len // MiB):
            f.write(os.urandom(MiB))
        f.write(os.urandom(data_len % MiB))
    config = adapter_config(
        base_model_name_or_path=base_name, r=rank, lora_alpha=rank, target_modules=list(MODULES)
    )
    return json.dumps(config).encode(), path


def _api_upload(
    http: httpx.Client, url: str, headers: dict[str, str], config: bytes, path: Path
) -> dict[str, float]:
    t0 = time.perf_counter()
    with _EofClock(path) as f:
        files: dict[str, tuple[str, bytes | BinaryIO, str]] = {
            "adapter_config.json": ("adapter_config.json", config, "application/json"),
            "adapter_model.safetensors": (path.name, f, "application/octet-stream"),
        }
        resp = http.post(url, headers=headers, files=files)
    done = time.perf_counter()
    assert resp.status_code == 201, resp.text
    size = resp.json()["manifest"]["files"]["adapter_model.safetensors"]["size"]
    assert size == path.stat().st_size
    return {"seconds": done - t0, "after_body_s": done - f.eof_at}


def _writer_upload(
    store: S3ObjectStore, open_writer: Callable[[str], ObjectWriter], path: Path
) -> dict[str, float]:
    key = f"bench/{uuid.uuid4().hex}/adapter_model.safetensors"
    t0 = time.perf_counter()
    writer = open_writer(key)
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            writer.write(chunk)
    t1 = time.perf_counter()
    stored = writer.commit(key)
    t2 = time.perf_counter()
    store.delete(stored.key)
    return {"seconds": t2 - t0, "write_s": t1 - t0, "commit_s": t2 - t1}


def bench_size(
    live: LiveRegistry,
    s3_url: str,
    store: S3ObjectStore,
    target: tuple[str, dict[str, str]],
    config: bytes,
    path: Path,
    repeats: int,
    warmup: int,
) -> dict[str, Any]:
    url, headers = target
    s3 = boto3.client(
        "s3", endpoint_url=s3_url, region_name="us-east-1", config=Config(signature_version="s3v4")
    )
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in PATHS}
    with live.http(timeout=600) as http:
        for round_ in range(warmup + repeats):
            key = f"bench/{uuid.uuid4().hex}.safetensors"
            t0 = time.perf_counter()
            s3.upload_file(str(path), BUCKET, key, Config=TransferConfig())
            boto = {"seconds": time.perf_counter() - t0}
            s3.delete_object(Bucket=BUCKET, Key=key)
            cpu0 = _cpu_s(live.pid)
            api = _api_upload(http, url, headers, config, path)
            api["server_cpu_s"] = _cpu_s(live.pid) - cpu0
            writer = _writer_upload(store, store.writer, path)
            legacy = _writer_upload(store, lambda _: LegacyS3ObjectWriter(store), path)
            if round_ >= warmup:
                for name, result in zip(PATHS, (boto, api, writer, legacy), strict=True):
                    runs[name].append(result)
    size_mib = path.stat().st_size / MiB
    out: dict[str, Any] = {"file_mib": round(size_mib, 1)}
    for name, rs in runs.items():
        for r in rs:
            r["mib_per_s"] = size_mib / r["seconds"]
        out[name] = {"runs": rs, "median_mib_per_s": statistics.median(r["mib_per_s"] for r in rs)}
    base = out["boto3"]["median_mib_per_s"]
    out["ratios"] = {name: out[name]["median_mib_per_s"] / base for name in PATHS[1:]}
    return out


def render(res: dict[str, Any]) -> str:
    lines = [
        f"### Adapter upload ({res['params']['repeats']} runs each, medians; moto S3, "
        f"{res['machine']['cpus']} CPUs shared)",
        "",
        "| file | path | MiB/s | x boto3 | notes (medians) |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    labels = {
        "boto3": "boto3 upload_file, default TransferConfig",
        "api": "API POST .../versions over HTTP (new)",
        "writer": "registry S3 writer on its key, in-process (new)",
        "legacy": "old S3 writer: _tmp/ + complete + copy, in-process",
    }
    for size in res["sizes"]:
        for name in PATHS:
            rs = size[name]["runs"]
            notes = ""
            if name == "api":
                after = statistics.median(r["after_body_s"] for r in rs)
                cpu = statistics.median(r["server_cpu_s"] for r in rs)
                notes = f"{after:.2f} s after the body was sent; server CPU {cpu:.2f} s"
            elif name in ("writer", "legacy"):
                write = statistics.median(r["write_s"] for r in rs)
                commit = statistics.median(r["commit_s"] for r in rs)
                notes = f"writes {write:.2f} s, commit {commit:.2f} s"
            ratio = size["ratios"].get(name, 1.0)
            lines.append(
                f"| {size['file_mib']} MiB | {labels[name]} | "
                f"{size[name]['median_mib_per_s']:.0f} | {ratio:.2f} | {notes} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, nargs="+", default=[64, 256], choices=[64, 256])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="rounds not counted")
    args = ap.parse_args()
    for key, value in AWS_ENV.items():
        os.environ.setdefault(key, value)
    sweep_stale()
    pg, s3 = start_postgres(), start_s3()
    sizes = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="loraplex-bench-") as tmp,
            start_registry(pg.url, s3.url) as live,
            live.http(timeout=600) as http,
        ):
            ops = live.bearer()
            base = _base_model(Path(tmp) / "base")
            body = {"name": "bench-base", "uri": str(base), "max_lora_rank": 512}
            http.post("/v1/base-models", json=body, headers=ops).raise_for_status()
            slug, headers = _tenant(live, http, ops)
            adapter = {"name": "bench", "base_model": "bench-base", "training": {"rank": 8}}
            resp = http.post(f"/v1/tenants/{slug}/adapters", json=adapter, headers=headers)
            resp.raise_for_status()
            target = (f"/v1/tenants/{slug}/adapters/bench/versions", headers)
            store = open_store(
                f"s3://{BUCKET}/bench-writer", s3_endpoint_url=s3.url, s3_region="us-east-1"
            )
            assert isinstance(store, S3ObjectStore)
            for mib in args.mib:
                config, path = _adapter(Path(tmp), 128 if mib == 64 else 512, "bench-base")
                sizes.append(
                    bench_size(live, s3.url, store, target, config, path, args.repeats, args.warmup)
                )
                path.unlink()
    finally:
        s3.stop()
        pg.stop()
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    res = {
        "when": when,
        "git": _git_rev(),
        "machine": {"cpus": os.cpu_count(), "load_1m": os.getloadavg()[0]},
        "params": vars(args),
        "sizes": sizes,
    }
    print(render(res))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"upload_bench-{when.replace(':', '')}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
