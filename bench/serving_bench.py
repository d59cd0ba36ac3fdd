"""Serving benchmark: vLLM multi-LoRA throughput against PEFT, gateway overhead, cold adapter
loads from S3, and the time from a promotion to the first answer of the new version.

    .venv/bin/python -m bench.serving_bench                 # 3 repeats, 5 s load runs
    .venv/bin/python -m bench.serving_bench --quick         # 1 repeat, 2 s runs, no references
    .venv/bin/python -m bench.serving_bench [--repeats 3] [--seconds 5] [--streams 32]
        [--cold 5] [--promotions 5] [--peft-threads 1,2] [--no-reference]
        [--env LORAPLEX_ENGINE_MAX_LORA_RANK=8]

Starts PostgreSQL, moto S3 and a live serving stack (tests/serving/stack.py: registry process,
`loraplex serve engine` in fp32, `loraplex serve gateway`), uploads PEFT adapters with random
weights for the tiny base model, and measures, with progress on stderr:

1. engine throughput over its HTTP API (16 prompts at once, 32 greedy tokens each, ignore_eos):
   base model with LoRA enabled, one adapter for all 16, 8 adapters mixed (2 prompts each), and
   unless --no-reference plain vLLM servers with LoRA disabled (compiled, and eager);
2. PEFT + transformers in this process on the same prompt tokens: set_adapter + generate per
   request (batch 1) at each of --peft-threads, and one generate per adapter (batch 2) at the
   first; a token-for-token check against vLLM;
3. the gateway against the engine directly: latency of a max_tokens=1 completion at 1 and N
   closed-loop streams, the gateway's own overhead histogram and its CPU per request;
4. cold adapter loads: a fresh version's first request vs a warm one, split by the resolver's
   histogram into fetch + verify and vLLM's load;
5. promotion -> first response from the new version through the gateway (warm and never-served);
6. where the engine's time goes: vLLM's CPU LoRA ops for one decode step, timed in-process with
   the engine's shapes (rank padded to its --max-lora-rank) against the projections' matmuls.

Configurations alternate within each repeat; medians are reported. Prints markdown tables and
writes JSON to bench/results/serving-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from serving.names import engine_name
from tests.services import AWS_ENV, free_port, start_postgres, start_s3, sweep_stale
from tests.serving.stack import Service, ServingStack, make_peft_adapter
from tests.workers.platform import tiny_base_model

RESULTS = Path(__file__).parent / "results"
NEW_TOKENS = 32
PROMPTS = [
    "Where is my order? I placed it last week and",
    "Hello, I would like to change the delivery address for",
    "The customer asked for a refund because the package",
    "Please reset my password, I cannot log in since",
    "Our invoice shows a charge twice for the same",
    "Can you tell me when the store opens on",
    "I received the wrong size of shoes and need",
    "My subscription renewed although I cancelled it in",
    "The tracking page says delivered but nothing arrived at",
    "How do I add a second user to my account so that",
    "The app crashes every time I open the settings",
    "Is there a discount for ordering more than ten",
    "I want to cancel order number 4471 before it",
    "Which payment methods do you accept for international",
    "The product description says waterproof, but after one",
    "Thank you for the quick help yesterday, one more question about",
]
# (tenant, adapter, seed): the 8 versions of the throughput runs; orders v1/v2 are also the warm
# pair of the promotion runs and orders v1 the target of the gateway runs.
THROUGHPUT = [
    ("acme", "orders", 101),
    ("acme", "orders", 102),
    ("acme", "billing", 103),
    ("acme", "billing", 104),
    ("globex", "support", 105),
    ("globex", "support", 106),
    ("globex", "search", 107),
    ("globex", "search", 108),
]
STACK_ENV = {
    "LORAPLEX_GATEWAY_RATE_LIMIT_RPS": "100000",  # the rate limiter must not shape the load
    "LORAPLEX_GATEWAY_RATE_LIMIT_BURST": "100000",
    "LORAPLEX_ENGINE_MAX_LORAS": "8",
    "LORAPLEX_TRAFFIC_SAMPLE_RATE": "0.1",
}
SETTLE_S = 1.5
OVERHEAD = "loraplex_gateway_overhead_seconds"
SMALL = {"prompt": "Where is my order?", "max_tokens": 1, "temperature": 0}


def progress(msg: str) -> None:
    print(f"[serving_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _cpu_s(pid: int, tree: bool = False) -> float:
    """utime + stime of a process (and with `tree`, of all its descendants), in seconds."""
    pids, total = [pid], 0.0
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            if tree:
                for task in Path(f"/proc/{p}/task").iterdir():
                    pids += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def _metric(text: str, name: str) -> float:
    """Sum of the samples of one Prometheus metric (all label sets) in an exposition text."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def _hist(url: str, name: str, les: tuple[str, ...] = ()) -> list[float]:
    """[sum, count, count in bucket le for each of `les`] of a histogram at `url`/metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10, trust_env=False).text
    keys = [f"{name}_sum", f"{name}_count"] + [f'{name}_bucket{{le="{le}"}}' for le in les]
    return [_metric(text, k) for k in keys]


def _steal() -> tuple[float, float]:
    """(steal, total) jiffies of all CPUs: the hypervisor's share taken from this VM."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[7], sum(fields)


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in seconds)
    q = statistics.quantiles(ms, n=100) if len(ms) > 1 else ms * 99
    return {"n": len(ms), "p50_ms": q[49], "p99_ms": q[98], "mean_ms": statistics.fmean(ms)}


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


# 1. Engine throughput -------------------------------------------------------------------------


async def _batch(
    url: str, headers: dict[str, str], models: list[str], max_tokens: int = NEW_TOKENS
) -> dict[str, Any]:
    """All 16 prompts at once (so the engine batches them); generated tokens over wall time."""
    limits = httpx.Limits(max_connections=len(models), max_keepalive_connections=len(models))
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, trust_env=False, timeout=300
    ) as http:

        async def one(prompt: str, model: str) -> dict[str, Any]:
            body = {
                "model": model,
                "prompt": prompt,
                "max_tokens": max_tokens,
                "temperature": 0,
                "ignore_eos": True,
                "return_token_ids": True,
            }
            r = await http.post("/v1/completions", json=body)
            assert r.status_code == 200, f"{r.status_code}: {r.text[:300]}"
            return r.json()["choices"][0]

        t0 = time.perf_counter()
        outs = await asyncio.gather(*(one(p, m) for p, m in zip(PROMPTS, models, strict=False)))
        seconds = time.perf_counter() - t0
    tokens = sum(len(o["token_ids"]) for o in outs)
    assert tokens == max_tokens * len(models), tokens
    return {
        "seconds": seconds,
        "tok_s": tokens / seconds,
        "prompt_ids": [o["prompt_token_ids"] for o in outs],
        "token_ids": [o["token_ids"] for o in outs],
    }


def _run_batch(url: str, headers: dict[str, str], models: list[str]) -> dict[str, Any]:
    return asyncio.run(_batch(url, headers, models))


class Peft:
    """transformers + PEFT in this process, fp32, with the 8 adapters loaded by name."""

    def __init__(self, base: Path, folders: list[Path]) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, GenerationConfig

        self.torch = torch
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        # No EOS at all: fixed-length output with the same semantics as vLLM's ignore_eos
        # (min_new_tokens would mask EOS out of the argmax, and this model often picks it).
        model.generation_config.eos_token_id = None
        self.model = PeftModel.from_pretrained(model, folders[0], adapter_name="a0").eval()
        for k, folder in enumerate(folders[1:], 1):
            self.model.load_adapter(folder, adapter_name=f"a{k}")
        self.config = GenerationConfig(
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )

    def _generate(self, rows: list[list[int]]) -> list[list[int]]:
        width = max(map(len, rows))  # left padding
        ids = self.torch.tensor([[0] * (width - len(r)) + r for r in rows])
        mask = self.torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        with self.torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, generation_config=self.config
            )
        return out[:, width:].tolist()

    def run(
        self, prompt_ids: list[list[int]], adapters: list[int], group: bool, threads: int
    ) -> dict[str, Any]:
        """group=False: set_adapter + generate per prompt; True: one generate per adapter."""
        self.torch.set_num_threads(threads)
        t0, outs = time.perf_counter(), [list[int]() for _ in prompt_ids]
        order = sorted(set(adapters)) if group else list(range(len(prompt_ids)))
        for key in order:
            idx = [i for i, a in enumerate(adapters) if a == key] if group else [key]
            self.model.set_adapter(f"a{adapters[idx[0]]}")
            for i, generated in zip(idx, self._generate([prompt_ids[i] for i in idx]), strict=True):
                outs[i] = generated
        seconds = time.perf_counter() - t0
        tokens = sum(map(len, outs))
        assert tokens == NEW_TOKENS * len(prompt_ids), tokens
        return {"seconds": seconds, "tok_s": tokens / seconds, "token_ids": outs}


def bench_throughput(
    stack: ServingStack,
    names: list[str],
    refs: dict[str, str],
    peft: Peft,
    peft_threads: list[int],
    repeats: int,
) -> dict[str, Any]:
    engine = (stack.engine_url, {"Authorization": f"Bearer {stack.engine_key}"})
    mixed_adapters = [i // 2 for i in range(len(PROMPTS))]
    configs: dict[str, Callable[[], dict[str, Any]]] = {
        "vllm_base": lambda: asyncio.run(_batch(*engine, ["tiny"] * len(PROMPTS))),
        "vllm_one": lambda: asyncio.run(_batch(*engine, [names[0]] * len(PROMPTS))),
        "vllm_mixed8": lambda: asyncio.run(_batch(*engine, [names[a] for a in mixed_adapters])),
    }
    for key, url in refs.items():
        configs[key] = functools.partial(_run_batch, url, {}, ["tiny"] * len(PROMPTS))
    asyncio.run(_batch(*engine, names, max_tokens=1))  # load time is not throughput
    prompt_ids = configs["vllm_base"]()["prompt_ids"]
    for n, threads in enumerate(peft_threads):
        suffix = "" if n == 0 else f"_{threads}t"
        configs[f"peft_switch{suffix}"] = functools.partial(
            peft.run, prompt_ids, mixed_adapters, False, threads
        )
        if n == 0:
            configs["peft_grouped"] = functools.partial(
                peft.run, prompt_ids, mixed_adapters, True, threads
            )
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in configs}
    for rep in range(repeats + 1):  # round 0 is a warm-up
        for key, fn in configs.items():
            # A vLLM worker busy-polls (sched_yield) for 1 s after its last step (busy_loop_s in
            # vllm/distributed/device_communicators/shm_broadcast.py), and every vLLM worker on
            # this machine is pinned to core 0: let the previous engine go idle first.
            time.sleep(SETTLE_S)
            r = fn()
            run = f"run {rep}" if rep else "warm-up"
            progress(f"throughput {run}: {key} {r['tok_s']:.0f} tok/s")
            if rep:
                runs[key].append(r)
    out: dict[str, Any] = {
        k: {"tok_s_runs": [r["tok_s"] for r in rs], "tok_s": _med([r["tok_s"] for r in rs])}
        for k, rs in runs.items()
    }
    out["rows"] = {k: peft_threads[0] for k in runs} | {
        f"peft_switch_{t}t": t for t in peft_threads[1:]
    }
    vllm_tokens, peft_tokens = (
        runs["vllm_mixed8"][-1]["token_ids"],
        runs["peft_switch"][-1]["token_ids"],
    )
    out["identical_outputs_mixed8_vs_peft"] = sum(
        a == b for a, b in zip(vllm_tokens, peft_tokens, strict=True)
    )
    base_tokens = runs["vllm_base"][-1]["token_ids"]
    out["adapters_change_output"] = sum(
        a != b for a, b in zip(vllm_tokens, base_tokens, strict=True)
    )
    tok = {k: out[k]["tok_s"] for k in runs}
    out["ratios"] = {
        "mixed8_over_one": tok["vllm_mixed8"] / tok["vllm_one"],
        "one_over_base": tok["vllm_one"] / tok["vllm_base"],
        "mixed8_over_peft_switch": tok["vllm_mixed8"] / tok["peft_switch"],
        "mixed8_over_peft_grouped": tok["vllm_mixed8"] / tok["peft_grouped"],
    }
    for key in refs:
        out["ratios"][f"base_over_{key}"] = tok["vllm_base"] / tok[key]
    for key in tok:
        if key.startswith("peft_switch_"):
            out["ratios"][f"mixed8_over_{key}"] = tok["vllm_mixed8"] / tok[key]
    return out


# 3. Gateway overhead --------------------------------------------------------------------------

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


async def _closed_loop(
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    streams: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """`streams` closed-loop clients on keep-alive connections, HTTP/1.1 written and parsed by
    hand (cheaper than httpx, so the load generator takes less of the 2 cores)."""
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    request = ("\r\n".join(head + [f"{k}: {v}" for k, v in headers.items()]) + "\r\n\r\n").encode()
    request += payload
    lat: list[float] = []
    errors = sent = 0
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds

    async def worker() -> None:
        nonlocal errors, sent
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while (t0 := time.perf_counter()) < end:
                writer.write(request)
                resp = await reader.readuntil(b"\r\n\r\n")
                length = _CONTENT_LENGTH.search(resp)
                assert length is not None, resp
                await reader.readexactly(int(length[1]))
                sent += 1
                if t0 >= measure_from:
                    lat.append(time.perf_counter() - t0)
                    errors += resp[9:12] != b"200"
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(streams)))
    return {"req_per_s": len(lat) / seconds, "errors": errors, "sent": sent, **_stats(lat)}


def bench_gateway(
    stack: ServingStack, orders_v1: str, repeats: int, seconds: float, streams: list[int]
) -> dict[str, Any]:
    gateway_pid, engine_pid = stack.services[1].proc.pid, stack.services[0].proc.pid
    paths = {
        "direct": (
            f"{stack.engine_url}/v1/completions",
            {"Authorization": f"Bearer {stack.engine_key}"},
            {**SMALL, "model": orders_v1},
        ),
        "gateway": (
            f"{stack.gateway_url}/v1/completions",
            stack.tokens["acme"],
            {**SMALL, "model": "orders"},
        ),
    }
    runs: dict[str, list[dict[str, Any]]] = {f"{p}_{n}": [] for n in streams for p in paths}
    for rep in range(repeats):
        for n in streams:
            for path in paths if rep % 2 == 0 else reversed(paths):  # alternate the order
                url, headers, body = paths[path]
                m0 = _hist(stack.gateway_url, OVERHEAD, ("0.001", "0.002"))
                cpu0 = (_cpu_s(gateway_pid), _cpu_s(engine_pid, tree=True), time.process_time())
                r = asyncio.run(_closed_loop(url, headers, body, n, seconds, warmup=0.5))
                cpu1 = (_cpu_s(gateway_pid), _cpu_s(engine_pid, tree=True), time.process_time())
                m1 = _hist(stack.gateway_url, OVERHEAD, ("0.001", "0.002"))
                r["gateway_cpu_ms_per_req"] = (cpu1[0] - cpu0[0]) * 1e3 / r.pop("sent")
                r["engine_cpu_cores"] = (cpu1[1] - cpu0[1]) / (seconds + 0.5)
                r["loadgen_cpu_cores"] = (cpu1[2] - cpu0[2]) / (seconds + 0.5)
                if path == "gateway" and m1[1] > m0[1]:
                    count = m1[1] - m0[1]
                    r["in_gateway_mean_ms"] = (m1[0] - m0[0]) / count * 1e3
                    r["in_gateway_under_1ms"] = (m1[2] - m0[2]) / count
                    r["in_gateway_under_2ms"] = (m1[3] - m0[3]) / count
                progress(
                    f"gateway run {rep + 1}: {path} x{n} p50 {r['p50_ms']:.2f} ms "
                    f"p99 {r['p99_ms']:.2f} ms {r['req_per_s']:.0f} req/s"
                )
                runs[f"{path}_{n}"].append(r)
    out: dict[str, Any] = {"runs": runs}
    for n in streams:
        d, g = runs[f"direct_{n}"], runs[f"gateway_{n}"]
        row = {
            "direct_p50_ms": _med([r["p50_ms"] for r in d]),
            "gateway_p50_ms": _med([r["p50_ms"] for r in g]),
            "direct_p99_ms": _med([r["p99_ms"] for r in d]),
            "gateway_p99_ms": _med([r["p99_ms"] for r in g]),
            "direct_req_per_s": _med([r["req_per_s"] for r in d]),
            "gateway_req_per_s": _med([r["req_per_s"] for r in g]),
            "in_gateway_mean_ms": _med([r["in_gateway_mean_ms"] for r in g]),
            "in_gateway_under_1ms": _med([r["in_gateway_under_1ms"] for r in g]),
            "in_gateway_under_2ms": _med([r["in_gateway_under_2ms"] for r in g]),
            "gateway_cpu_ms_per_req": _med([r["gateway_cpu_ms_per_req"] for r in g]),
            "errors": sum(r["errors"] for r in d + g),
        }
        row["overhead_p50_ms"] = row["gateway_p50_ms"] - row["direct_p50_ms"]
        row["overhead_p99_ms"] = row["gateway_p99_ms"] - row["direct_p99_ms"]
        row["ratio_p50"] = row["gateway_p50_ms"] / row["direct_p50_ms"]
        out[f"streams_{n}"] = row
    return out


# 4. Cold adapter loads ------------------------------------------------------------------------


def bench_cold(stack: ServingStack, folders: list[Path]) -> dict[str, Any]:
    """Each fresh version: upload, then its first request (max_tokens=1) straight to the engine,
    then 3 warm ones; the resolver histogram's delta is its DB lookup + S3 fetch + sha256."""
    stack.create_adapter("acme", "fresh")
    headers = {"Authorization": f"Bearer {stack.engine_key}"}
    rows = []
    with httpx.Client(
        base_url=stack.engine_url, headers=headers, trust_env=False, timeout=120
    ) as http:

        def timed(model: str) -> float:
            t0 = time.perf_counter()
            r = http.post("/v1/completions", json={**SMALL, "model": model})
            assert r.status_code == 200, r.text
            return time.perf_counter() - t0

        timed("tiny")
        for folder in folders:
            t0 = time.perf_counter()
            version = stack.upload("acme", "fresh", folder)
            upload_s = time.perf_counter() - t0
            name = engine_name(uuid.UUID(version["id"]))
            h0 = _hist(stack.engine_url, "loraplex_resolver_load_seconds")
            cold = timed(name)
            h1 = _hist(stack.engine_url, "loraplex_resolver_load_seconds")
            warm = _med([timed(name) for _ in range(3)])
            assert h1[1] - h0[1] == 1, "expected exactly one resolver call"
            resolver = h1[0] - h0[0]
            row = {
                "upload_s": upload_s,
                "cold_ms": cold * 1e3,
                "warm_ms": warm * 1e3,
                "resolver_ms": resolver * 1e3,
            }
            row["cold_minus_warm_ms"] = row["cold_ms"] - row["warm_ms"]
            row["vllm_load_ms"] = row["cold_minus_warm_ms"] - row["resolver_ms"]
            progress(
                f"cold load v{version['version']}: cold {row['cold_ms']:.0f} ms, warm "
                f"{row['warm_ms']:.0f} ms, resolver {row['resolver_ms']:.0f} ms"
            )
            rows.append(row)
    keys = ("cold_ms", "warm_ms", "cold_minus_warm_ms", "resolver_ms", "vllm_load_ms", "upload_s")
    return {"runs": rows, **{k: _med([r[k] for r in rows]) for k in keys}}


# 5. Promotion -> first response from the new version ------------------------------------------


class Looper(threading.Thread):
    """One gateway client sending max_tokens=1 requests for `orders` back to back."""

    def __init__(self, stack: ServingStack) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(
            base_url=stack.gateway_url, headers=stack.tokens["acme"], trust_env=False, timeout=120
        )
        self.records: list[tuple[float, str | None, int]] = []  # (done at, version label, status)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            r = self.http.post("/v1/completions", json={**SMALL, "model": "orders"})
            self.records.append(
                (time.perf_counter(), r.headers.get("x-loraplex-model"), r.status_code)
            )

    def first(self, label: str, after: float, timeout: float = 60) -> tuple[float, int]:
        """When the first response naming `label` arrived after `after`; errors seen since."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            recs = [r for r in list(self.records) if r[0] > after]
            for done, seen, _ in recs:
                if seen == label:
                    return done, sum(r[2] != 200 for r in recs if r[0] <= done)
            time.sleep(0.005)
        raise TimeoutError(f"no response from {label} within {timeout} s")


def bench_promotion(stack: ServingStack, fresh: list[Path], count: int) -> dict[str, Any]:
    """orders: v1 <-> v2 (both warm) alternate with never-served versions uploaded beforehand."""
    cold_versions = [stack.upload("acme", "orders", f)["version"] for f in fresh[:count]]
    looper = Looper(stack)
    looper.start()
    runs: dict[str, list[dict[str, float]]] = {"warm": [], "cold": []}
    try:
        looper.first("orders@v1", 0)
        rng = random.Random(7)
        for k in range(count):
            for kind, version in (("warm", 2 - k % 2), ("cold", cold_versions[k])):
                # Past the resolve TTL (0.5 s), then a random phase of the cache's refresh cycle:
                # a fixed pause would put every PUT at the same point of it.
                time.sleep(0.6 + 0.5 * rng.random())
                t0 = time.perf_counter()
                stack.promote("acme", "orders", version)
                t_put = time.perf_counter()
                done, errors = looper.first(f"orders@v{version}", t0)
                row = {
                    "put_ms": (t_put - t0) * 1e3,
                    "to_first_ms": (done - t_put) * 1e3,
                    "errors": errors,
                }
                progress(
                    f"promotion {kind} -> v{version}: first new response "
                    f"{row['to_first_ms']:.0f} ms after the PUT returned"
                )
                runs[kind].append(row)
    finally:
        looper.stopping.set()
        looper.join(30)
        looper.http.close()
    out: dict[str, Any] = {"runs": runs, "requests": len(looper.records)}
    for kind, rs in runs.items():
        ms = [r["to_first_ms"] for r in rs]
        out[kind] = {
            "median_ms": _med(ms),
            "min_ms": min(ms),
            "max_ms": max(ms),
            "put_median_ms": _med([r["put_ms"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
        }
    return out


# 6. Where the time goes: vLLM's CPU LoRA ops, in-process ----------------------------------


def bench_lora_ops(base: Path, max_rank: int, adapter_rank: int = 8, n: int = 20) -> dict:
    """One decode step of 16 sequences through vLLM's CPU LoRA ops (vllm.lora.ops.torch_ops,
    with our lora_patch as in the engine), called as PunicaWrapperCPU calls them: per layer,
    shrink + expand for each slice of qkv, o, gate_up and down. Weights are stacked as the
    engine stacks them: 8 slots, rank padded to --max-lora-rank. One torch thread, like the
    engine's worker. Against: the same projections' own matmuls."""
    import torch
    from vllm.lora.ops.torch_ops import lora_ops

    from serving import lora_patch

    lora_patch.apply()
    torch.set_num_threads(1)
    cfg = json.loads((base / "config.json").read_text())
    h, inter, heads = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or h // heads
    q, kv, tokens, slots = heads * hd, cfg["num_key_value_heads"] * hd, len(PROMPTS), 8
    shapes = [(h, [q, kv, kv]), (q, [h]), (h, [inter, inter]), (inter, [h])]
    start, lens = torch.arange(tokens), torch.ones(tokens, dtype=torch.long)

    def stacked(rank: int) -> list[tuple[Any, ...]]:
        return [
            (
                [torch.randn(slots, 1, rank, i) for _ in outs],
                [torch.randn(slots, 1, o, rank) for o in outs],
                torch.randn(tokens, i),
                [torch.zeros(tokens, rank) for _ in outs],
                torch.zeros(tokens, sum(outs)),
            )
            for i, outs in shapes
        ]

    def lora_step(weights: list[tuple[Any, ...]], idx: Any) -> None:
        for _ in range(cfg["num_hidden_layers"]):
            for (_, outs), (a, b, x, ys, y) in zip(shapes, weights, strict=True):
                for s in range(len(outs)):
                    lora_ops.sgmv_shrink(x, a[s], ys[s], start, lens, idx, tokens, 1, tokens, 1.0)
                offset = 0
                for s, o in enumerate(outs):
                    lora_ops.sgmv_expand_slice(
                        ys[s], b[s], y, start, lens, idx, tokens, 1, tokens, offset, o, True
                    )
                    offset += o

    linears = [(torch.randn(tokens, i), torch.randn(sum(outs), i)) for i, outs in shapes]

    def base_step() -> None:
        for _ in range(cfg["num_hidden_layers"]):
            for x, w in linears:
                torch.nn.functional.linear(x, w)

    def timed(fn: Callable[[], None]) -> dict[str, float]:
        fn()
        xs = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            xs.append((time.perf_counter() - t0) * 1e3)
        return {"min_ms": min(xs), "median_ms": _med(xs)}

    one, mixed = torch.zeros(tokens, dtype=torch.long), torch.arange(tokens) // 2
    padded, exact = stacked(max_rank), stacked(adapter_rank)
    return {
        "max_lora_rank": max_rank,
        "adapter_rank": adapter_rank,
        "base_matmuls": timed(base_step),
        "lora_padded_one": timed(lambda: lora_step(padded, one)),
        "lora_padded_mixed8": timed(lambda: lora_step(padded, mixed)),
        "lora_exact_mixed8": timed(lambda: lora_step(exact, mixed)),
    }


# Setup, rendering, main -----------------------------------------------------------------------


def start_references(base: Path, tmp: Path) -> dict[str, tuple[Service, str]]:
    """Plain vLLM servers on the same model with LoRA disabled: compiled (vLLM's CPU default)
    and --enforce-eager (what the LoRA-enabled engine runs as: LoRA turns compilation off)."""
    refs = {}
    for key, extra in (("vllm_nolora_compiled", []), ("vllm_nolora_eager", ["--enforce-eager"])):
        port, home = free_port(), tmp / key
        home.mkdir()
        argv = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(base),
            "--served-model-name",
            "tiny",
            "--dtype",
            "float32",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--max-model-len",
            "1024",
            *extra,
        ]
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "TMPDIR": str(home),
            "VLLM_CACHE_ROOT": str(home / "vllm"),
        }
        refs[key] = (Service(key, argv, env, home / "server.log"), f"http://127.0.0.1:{port}")
    return refs


def _git_rev() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


LABELS = {
    "vllm_base": 'vLLM, base model "tiny", LoRA enabled',
    "vllm_one": "vLLM, one adapter for all 16",
    "vllm_mixed8": "vLLM, 8 adapters mixed in one batch (2 prompts each)",
    "vllm_nolora_compiled": "vLLM, LoRA disabled (reference; compiled, vLLM's CPU default)",
    "vllm_nolora_eager": "vLLM, LoRA disabled, --enforce-eager (reference)",
    "peft_switch": "PEFT, set_adapter + generate per request (batch 1), {t} torch thread(s)",
    "peft_grouped": "PEFT, one generate per adapter (batch 2), {t} torch thread(s)",
}


def render(res: dict[str, Any]) -> str:
    p, tp, gw, cold, pro = (
        res[k] for k in ("params", "throughput", "gateway", "cold", "promotion")
    )
    m = res["machine"]
    lines = [
        f"Machine: {m['cpus']} CPUs; load average (1 min) {m['loadavg_before'][0]:.1f} before, "
        f"{m['loadavg_after'][0]:.1f} after; CPU steal {m['cpu_steal_share']:.1%}; "
        f"run {res['duration_s']:.0f} s.",
        "",
        f"### Throughput: {len(PROMPTS)} prompts x {NEW_TOKENS} new tokens, greedy, fp32 "
        f"(medians of {p['repeats']})",
        "",
        "| configuration | generated tok/s (median) | best | runs |",
        "| --- | ---: | ---: | --- |",
    ]
    for key, t in tp["rows"].items():
        label = LABELS.get(key) or LABELS[key.rsplit("_", 1)[0]]
        runs = ", ".join(f"{x:.0f}" for x in tp[key]["tok_s_runs"])
        best = max(tp[key]["tok_s_runs"])
        lines.append(f"| {label.format(t=t)} | {tp[key]['tok_s']:.0f} | {best:.0f} | {runs} |")
    r, t0 = tp["ratios"], p["peft_threads"][0]
    ratios = [
        f"mixed8 / one adapter = **{r['mixed8_over_one']:.2f}**",
        f"one adapter / base = **{r['one_over_base']:.2f}**",
        f"vLLM mixed8 / PEFT switching ({t0} thread(s)) = **{r['mixed8_over_peft_switch']:.2f}**",
        f"vLLM mixed8 / PEFT one generate per adapter = {r['mixed8_over_peft_grouped']:.2f}",
    ]
    ratios += [
        f"vLLM mixed8 / PEFT switching ({k.rsplit('_', 1)[1][:-1]} threads) = {v:.2f}"
        for k, v in r.items()
        if k.startswith("mixed8_over_peft_switch_")
    ]
    ratios += [
        f"base with LoRA / {k.removeprefix('base_over_vllm_')} = {v:.2f}"
        for k, v in r.items()
        if k.startswith("base_over_")
    ]
    lines += [
        "",
        "Ratios: " + "; ".join(ratios) + ".",
        "",
        f"Check: vLLM mixed8 == PEFT switching token for token on "
        f"{tp['identical_outputs_mixed8_vs_peft']}/{len(PROMPTS)} prompts; the adapters change "
        f"the base model's output on {tp['adapters_change_output']}/{len(PROMPTS)}.",
        "",
        f"### Gateway vs engine directly: completions, max_tokens=1, closed loop, "
        f"{p['seconds']:g} s per run (medians of {p['repeats']})",
        "",
        "| streams | direct p50 | gateway p50 | overhead p50 | direct p99 | gateway p99 | "
        "overhead p99 | gateway/direct p50 | in gateway before forwarding (histogram) | "
        "gateway CPU/req | "
        "req/s direct / gateway |",
        "| ---: " + "| ---: " * 10 + "|",
    ]
    for n in p["streams"]:
        g = gw[f"streams_{n}"]
        lines.append(
            f"| {n} | {g['direct_p50_ms']:.2f} ms | {g['gateway_p50_ms']:.2f} ms | "
            f"**{g['overhead_p50_ms']:.2f} ms** | {g['direct_p99_ms']:.2f} ms | "
            f"{g['gateway_p99_ms']:.2f} ms | {g['overhead_p99_ms']:.2f} ms | "
            f"{g['ratio_p50']:.2f} | {g['in_gateway_mean_ms']:.2f} ms; "
            f"{g['in_gateway_under_1ms']:.0%} < 1 ms, {g['in_gateway_under_2ms']:.0%} < 2 ms | "
            f"{g['gateway_cpu_ms_per_req']:.2f} ms | "
            f"{g['direct_req_per_s']:.0f} / {g['gateway_req_per_s']:.0f} |"
        )
    lines += [
        "",
        f"### Cold adapter load from S3 ({len(cold['runs'])} fresh versions, medians)",
        "",
        "| measurement | ms |",
        "| --- | ---: |",
        f"| first request to a fresh version (engine directly, max_tokens=1) "
        f"| {cold['cold_ms']:.1f} |",
        f"| warm request to the same version | {cold['warm_ms']:.1f} |",
        f"| **cold - warm: fetch + verify + load** | **{cold['cold_minus_warm_ms']:.1f}** |",
        f"| of which resolver: DB lookup + S3 fetch + sha256 (`loraplex_resolver_load_seconds`) "
        f"| {cold['resolver_ms']:.1f} |",
        f"| of which vLLM: load the folder, weights into a LoRA slot (remainder) "
        f"| {cold['vllm_load_ms']:.1f} |",
        "",
        f"### Promotion -> first response from the new version (gateway, resolve TTL 0.5 s; "
        f"{len(pro['runs']['warm'])} each)",
        "",
        "| new version | median ms | min | max | PUT alias median ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, label in (("warm", "already warm in the engine"), ("cold", "never served (cold)")):
        k = pro[kind]
        lines.append(
            f"| {label} | {k['median_ms']:.0f} | {k['min_ms']:.0f} | {k['max_ms']:.0f} "
            f"| {k['put_median_ms']:.0f} | {k['errors']} |"
        )
    ops = res["lora_ops"]
    step = {
        k: len(PROMPTS) * 1e3 / tp[k]["tok_s"] for k in ("vllm_base", "vllm_one", "vllm_mixed8")
    }
    lines += [
        "",
        f"### Where the time goes: one decode step of {len(PROMPTS)} sequences, in-process "
        "(1 thread, min of 20)",
        "",
        "| work per decode step (all layers) | ms |",
        "| --- | ---: |",
        f"| the 7 LoRA-wrapped projections' own matmuls | {ops['base_matmuls']['min_ms']:.2f} |",
        f"| vLLM CPU LoRA ops (56 sgmv shrink/expand), rank padded to {ops['max_lora_rank']} "
        f"(--max-lora-rank), one adapter | {ops['lora_padded_one']['min_ms']:.2f} |",
        f"| same, 8 adapters mixed | {ops['lora_padded_mixed8']['min_ms']:.2f} |",
        f"| same at rank {ops['adapter_rank']} (the adapters' own), 8 adapters mixed "
        f"| {ops['lora_exact_mixed8']['min_ms']:.2f} |",
        f"| engine as measured above (16 x 1000 / tok/s, incl. prefill): base / one / mixed8 "
        f"| {step['vllm_base']:.1f} / {step['vllm_one']:.1f} / {step['vllm_mixed8']:.1f} |",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 repeat, 2 s runs, no references")
    ap.add_argument("--repeats", type=int, default=None, help="default 3 (quick: 1)")
    ap.add_argument(
        "--seconds", type=float, default=None, help="per load run; default 5 (quick: 2)"
    )
    ap.add_argument("--streams", type=int, default=32, help="the concurrent gateway load")
    ap.add_argument("--cold", type=int, default=None, help="fresh versions; default 5 (quick: 2)")
    ap.add_argument("--promotions", type=int, default=None, help="each kind; default 5 (quick: 2)")
    ap.add_argument(
        "--peft-threads",
        default="1,2",
        help="torch threads for PEFT: all for switching, the first for the rest and the ratios",
    )
    ap.add_argument("--no-reference", action="store_true", help="skip the LoRA-disabled servers")
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="more stack settings, e.g. LORAPLEX_ENGINE_MAX_LORA_RANK=8",
    )
    args = ap.parse_args()
    quick = args.quick
    args.repeats = args.repeats or (1 if quick else 3)
    args.seconds = args.seconds or (2.0 if quick else 5.0)
    args.cold = args.cold or (2 if quick else 5)
    args.promotions = args.promotions or (2 if quick else 5)
    reference = not (args.no_reference or quick)
    peft_threads = [int(t) for t in args.peft_threads.split(",")]
    params = vars(args) | {
        "streams": [1, args.streams],
        "reference": reference,
        "peft_threads": peft_threads,
    }
    stack_env = STACK_ENV | dict(kv.split("=", 1) for kv in args.env)
    for key, value in AWS_ENV.items():
        os.environ.setdefault(key, value)
    started = time.perf_counter()
    load_before, steal_before = os.getloadavg(), _steal()
    progress("base model, PostgreSQL, S3")
    base = tiny_base_model()
    sweep_stale()
    pg, s3 = start_postgres(), start_s3()
    refs: dict[str, tuple[Service, str]] = {}
    stack: ServingStack | None = None
    with tempfile.TemporaryDirectory(prefix="loraplex-serving-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            if reference:
                progress("starting the LoRA-disabled reference servers")
                refs = start_references(base, tmp)
            progress("starting the serving stack (registry, engine, gateway)")
            stack = ServingStack(pg.url, s3.url, base, extra_env=stack_env)
            argv = Path(f"/proc/{stack.services[0].proc.pid}/cmdline").read_bytes().split(b"\0")
            engine_argv = [a.decode() for a in argv if a]
            for svc, url in refs.values():
                svc.wait_http(f"{url}/health", 600)
            progress("making and uploading adapters")
            seeds = [s for *_, s in THROUGHPUT] + [201 + k for k in range(args.cold)]
            seeds += [301 + k for k in range(args.promotions)]
            folders = {s: make_peft_adapter(base, tmp / f"seed{s}", seed=s) for s in seeds}
            names = []
            for tenant, adapter, seed in THROUGHPUT:
                if (tenant, adapter) not in {(t, a) for t, a, s in THROUGHPUT if s < seed}:
                    stack.create_adapter(tenant, adapter)
                version = stack.upload(tenant, adapter, folders[seed])
                names.append(engine_name(uuid.UUID(version["id"])))
            stack.promote("acme", "orders", 1)
            progress("PEFT baseline model")
            peft = Peft(base, [folders[s] for *_, s in THROUGHPUT])
            progress("1+2. throughput")
            ref_urls = {k: url for k, (_, url) in refs.items()}
            throughput = bench_throughput(stack, names, ref_urls, peft, peft_threads, args.repeats)
            for svc, _ in refs.values():  # idle from here on, but no need to keep them
                svc.stop()
            progress("3. gateway overhead")
            gateway = bench_gateway(stack, names[0], args.repeats, args.seconds, params["streams"])
            progress("4. cold adapter loads")
            cold = bench_cold(stack, [folders[201 + k] for k in range(args.cold)])
            progress("5. promotion to first new response")
            promotion = bench_promotion(
                stack, [folders[301 + k] for k in range(args.promotions)], args.promotions
            )
        finally:
            for svc, _ in refs.values():
                svc.stop()
            if stack is not None:
                stack.close()
            s3.stop()
            pg.stop()
    progress("6. vLLM's CPU LoRA ops, in-process")
    max_rank = int(engine_argv[engine_argv.index("--max-lora-rank") + 1])
    lora_ops = bench_lora_ops(base, max_rank)
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    res: dict[str, Any] = {
        "when": when,
        "git": _git_rev(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "cpu_steal_share": (_steal()[0] - steal_before[0]) / (_steal()[1] - steal_before[1]),
        },
        "params": params,
        "duration_s": time.perf_counter() - started,
        "throughput": throughput,
        "gateway": gateway,
        "cold": cold,
        "promotion": promotion,
        "lora_ops": lora_ops,
        "stack_env": stack_env,
        "engine_argv": engine_argv,
    }
    print(render(res))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"serving-{when.replace(':', '')}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {out} ({res['duration_s']:.0f} s)")


if __name__ == "__main__":
    main()
