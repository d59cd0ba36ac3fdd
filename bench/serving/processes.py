"""Processes around the benchmark: the LoRA-disabled reference servers, the engine's argv, CPU
accounting from /proc, the git revision."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.services import free_port
from tests.serving.stack import Service, ServingStack


def _vllm_server(
    key: str, base: Path, tmp: Path, extra: list[str], env: dict[str, str] | None = None
) -> tuple[Service, str]:
    """A plain vLLM OpenAI server on the tiny model in fp32, its own home under tmp."""
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
    full_env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "TMPDIR": str(home),
        "VLLM_CACHE_ROOT": str(home / "vllm"),
        **(env or {}),
    }
    return Service(key, argv, full_env, home / "server.log"), f"http://127.0.0.1:{port}"


def start_references(base: Path, tmp: Path) -> dict[str, tuple[Service, str]]:
    """Plain vLLM servers on the same model with LoRA disabled: compiled (vLLM's CPU default)
    and --enforce-eager."""
    return {
        key: _vllm_server(key, base, tmp, extra)
        for key, extra in (("vllm_nolora_compiled", []), ("vllm_nolora_eager", ["--enforce-eager"]))
    }


def start_lora_reference(
    base: Path, tmp: Path, folders: list[Path], max_rank: int
) -> tuple[Service, str]:
    """A plain vLLM server with LoRA on through vLLM's own CPU ops (compilation off, as vLLM
    0.32 does on CPU): `LORAPLEX_ENGINE_LORA_OPS=vllm` keeps our plugin's ops out. The 8
    adapters are static modules `a0`..`a7`, the same weights as the stack's versions."""
    modules = [f"a{k}={folder}" for k, folder in enumerate(folders)]
    extra = ["--enable-lora", "--max-loras", "8", "--max-lora-rank", str(max_rank)]
    extra += ["--lora-modules", *modules]
    env = {"LORAPLEX_ENGINE_LORA_OPS": "vllm"}
    return _vllm_server("vllm_lora_vllm_ops", base, tmp, extra, env)


def git_rev() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def read_engine_argv(stack: ServingStack) -> list[str]:
    """The engine's command line, as the stack started it."""
    argv = Path(f"/proc/{stack.services[0].proc.pid}/cmdline").read_bytes().split(b"\0")
    return [a.decode() for a in argv if a]


def cpu_s(pid: int, tree: bool = False) -> float:
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


def steal() -> tuple[float, float]:
    """(steal, total) jiffies of all CPUs: the hypervisor's share taken from this VM."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[7], sum(fields)
