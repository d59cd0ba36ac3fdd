"""The markdown report of one run."""

from __future__ import annotations

from typing import Any

from bench.serving.common import NEW_TOKENS, PROMPTS

LABELS = {
    "vllm_base": 'vLLM, base model "tiny", LoRA enabled',
    "vllm_one": "vLLM, one adapter for all 16",
    "vllm_mixed8": "vLLM, 8 adapters mixed in one batch (2 prompts each)",
    "vllm_nolora_compiled": "vLLM, LoRA disabled (reference; compiled, vLLM's CPU default)",
    "vllm_nolora_eager": "vLLM, LoRA disabled, --enforce-eager (reference)",
    "vllm_lora_vllm_ops": "vLLM, 8 adapters mixed, vLLM's own CPU LoRA ops (reference)",
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
    ratios += [
        f"**mixed8 / {k.removeprefix('mixed8_over_vllm_')} = {v:.2f}**"
        for k, v in r.items()
        if k.startswith("mixed8_over_vllm_")
    ]
    lines += [
        "",
        "Ratios: " + "; ".join(ratios) + ".",
        "",
        f"Check: vLLM mixed8 == PEFT switching token for token on "
        f"{tp['identical_outputs_mixed8_vs_peft']}/{len(PROMPTS)} prompts; the adapters change "
        f"the base model's output on {tp['adapters_change_output']}/{len(PROMPTS)}"
        + (
            f"; vLLM mixed8 == vLLM's own ops token for token on "
            f"{tp['identical_outputs_mixed8_vs_vllm_ops']}/{len(PROMPTS)}."
            if "identical_outputs_mixed8_vs_vllm_ops" in tp
            else "."
        ),
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
        f"| ours (serving/lora_ops.py), eager, rank {ops['max_lora_rank']}, 8 adapters mixed "
        f"| {ops['masked_mixed8']['min_ms']:.2f} |",
        f"| ours, compiled (as in the engine: torch.compile of the same step) "
        f"| {ops['masked_compiled_mixed8']['min_ms']:.2f} |",
        f"| engine as measured above (16 x 1000 / tok/s, incl. prefill): base / one / mixed8 "
        f"| {step['vllm_base']:.1f} / {step['vllm_one']:.1f} / {step['vllm_mixed8']:.1f} |",
    ]
    return "\n".join(lines)
