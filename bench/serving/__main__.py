"""`python -m bench.serving`: flags, the services, the adapters, each measurement in turn, the
report (see the package docstring)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import bench.serving
from bench.serving.cold import bench_cold
from bench.serving.common import RESULTS, STACK_ENV, THROUGHPUT, progress
from bench.serving.gateway import bench_gateway
from bench.serving.lora_ops import bench_lora_ops
from bench.serving.peft_baseline import Peft
from bench.serving.processes import (
    git_rev,
    read_engine_argv,
    start_lora_reference,
    start_references,
    steal,
)
from bench.serving.promotion import bench_promotion
from bench.serving.report import render
from bench.serving.throughput import bench_throughput
from serving.names import engine_name
from tests.services import AWS_ENV, start_postgres, start_s3, sweep_stale
from tests.serving.stack import Service, ServingStack, make_peft_adapter
from tests.workers.platform import tiny_base_model

DESCRIPTION = (bench.serving.__doc__ or "serving benchmark").splitlines()[0]


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.serving", description=DESCRIPTION)
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
    ap.add_argument(
        "--max-lora-rank",
        type=int,
        default=16,
        help="the tiny base model's max_lora_rank at registration (the engine follows it); "
        "default 16, as `loraplex up` registers it",
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
    load_before, steal_before = os.getloadavg(), steal()
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
            stack = ServingStack(
                pg.url,
                s3.url,
                base,
                extra_env=stack_env,
                base_fields={"max_lora_rank": args.max_lora_rank},
            )
            engine_argv = read_engine_argv(stack)
            for svc, url in refs.values():
                svc.wait_http(f"{url}/health", 600)
            progress("making and uploading adapters")
            seeds = [s for *_, s in THROUGHPUT] + [201 + k for k in range(args.cold)]
            seeds += [301 + k for k in range(args.promotions)]
            folders = {s: make_peft_adapter(base, tmp / f"seed{s}", seed=s) for s in seeds}
            if reference:
                progress("starting the reference engine with vLLM's own CPU LoRA ops")
                max_rank = int(engine_argv[engine_argv.index("--max-lora-rank") + 1])
                refs["vllm_lora_vllm_ops"] = start_lora_reference(
                    base, tmp, [folders[s] for *_, s in THROUGHPUT], max_rank
                )
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
            for svc, url in refs.values():
                svc.wait_http(f"{url}/health", 600)
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
        "git": git_rev(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "cpu_steal_share": (steal()[0] - steal_before[0]) / (steal()[1] - steal_before[1]),
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
