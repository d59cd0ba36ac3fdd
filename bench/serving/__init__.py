"""Serving benchmark: vLLM multi-LoRA throughput against PEFT, gateway overhead, cold adapter
loads from S3, and the time from a promotion to the first answer of the new version.

    .venv/bin/python -m bench.serving                       # 3 repeats, 5 s load runs
    .venv/bin/python -m bench.serving --quick         # 1 repeat, 2 s runs, no references
    .venv/bin/python -m bench.serving [--repeats 3] [--seconds 5] [--streams 32]
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

Modules: `__main__` (flags, set-up, the run), `common` (constants, stats, metrics scraping),
`processes` (reference servers, engine argv, /proc CPU), `load` (load generators),
`peft_baseline`, one module per measurement (`throughput`, `gateway`, `cold`, `promotion`,
`lora_ops`) and `report` (markdown).
"""
