"""A live serving stack for tests and benches: registry + vLLM engine + gateway processes on
PostgreSQL and the S3 server, the tiny base model registered from S3, two tenants with adapters.

Adapters are PEFT LoRAs with random (non-zero) A and B, so each one visibly changes the model's
output; they go through the registry's real upload checks. The engine runs in fp32 so its greedy
output can be compared token for token with PEFT + transformers.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.live import BUCKET, LiveRegistry, start_registry
from tests.services import AWS_ENV, _die_with, free_port

CLI = [sys.executable, "-m", "cli"]
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def make_peft_adapter(base: Path, out: Path, *, seed: int, r: int = 8) -> Path:
    """A LoRA with random A and B (PEFT's `init_lora_weights=False`), saved in PEFT layout:
    far from trained, but every adapter visibly moves the model somewhere else."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=list(TARGETS),
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out)
    config_file = out / "adapter_config.json"  # name the registered base model, as a user would
    config_json = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config_json, "base_model_name_or_path": "tiny"}))
    return out


def wait_engines_seen(gateway_url: str, want: str, timeout: float) -> None:
    """Until the gateway's /readyz reports `want` ("healthy/known") engines: it polls them every
    few seconds, so right after an engine starts it may still hold it down and answer 503."""
    deadline, seen = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{gateway_url}/readyz", timeout=5, trust_env=False)
            seen = r.headers.get("x-loraplex-engines", "")
            if seen == want:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{gateway_url} sees engines {seen!r}, not {want!r} healthy")


class Service:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        with log.open("wb") as f:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with(signal.SIGTERM),
                start_new_session=True,
            )

    def wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{self.name} not ready (exit {self.proc.poll()}):\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            import os

            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class ServingStack:
    def __init__(
        self,
        pg_admin_url: str,
        s3_endpoint: str,
        base: Path,
        *,
        extra_env: dict[str, str] | None = None,
        base_fields: dict[str, Any] | None = None,
    ) -> None:
        """`base_fields`: more fields of the base model's registration (`tool_call_parser`)."""
        self.base = base
        self.base_fields = base_fields or {}
        self.live: LiveRegistry = start_registry(pg_admin_url, s3_endpoint)
        self.services: list[Service] = []
        try:
            self._setup(s3_endpoint, extra_env or {})
        except BaseException:
            self.close()
            raise

    def _setup(self, s3_endpoint: str, extra_env: dict[str, str]) -> None:
        live = self.live
        self.http = live.http(timeout=120)
        self.ops = live.bearer()
        self.s3 = boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        self.prefix = live.env["LORAPLEX_OBJECT_STORE"].removeprefix(f"s3://{BUCKET}/")
        for f in sorted(self.base.iterdir()):
            self.s3.put_object(Bucket=BUCKET, Key=f"base-models/tiny/{f.name}", Body=f.read_bytes())
        self.ok(
            self.http.post(
                "/v1/base-models",
                json={"name": "tiny", "uri": f"s3://{BUCKET}/base-models/tiny", **self.base_fields},
                headers=self.ops,
            )
        )
        self.tokens: dict[str, dict[str, str]] = {}
        for slug in ("acme", "globex"):
            self.ok(
                self.http.post(
                    "/v1/tenants",
                    json={"slug": slug, "display_name": slug.title()},
                    headers=self.ops,
                )
            )
            client = self.ok(
                self.http.post(f"/v1/tenants/{slug}/clients", json={}, headers=self.ops)
            )
            self.tokens[slug] = live.bearer(client["client_id"], client["client_secret"])
        engine_port, gateway_port, metrics_port = free_port(), free_port(), free_port()
        self.engine_url = f"http://127.0.0.1:{engine_port}"
        self.gateway_url = f"http://127.0.0.1:{gateway_port}"
        self.gateway_metrics_url = f"http://127.0.0.1:{metrics_port}"  # internal port only
        self.env = {
            **live.env,
            "LORAPLEX_ENGINE_PORT": str(engine_port),
            "LORAPLEX_GATEWAY_METRICS_PORT": str(metrics_port),
            "LORAPLEX_ENGINE_DTYPE": "float32",
            "LORAPLEX_ENGINE_MAX_LORAS": "2",  # small: slot -1 is soon a loaded adapter
            "LORAPLEX_ENGINE_MAX_MODEL_LEN": "1024",
            "LORAPLEX_RESOLVER_DELETE_GRACE_SECONDS": "1",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "TMPDIR": str(live.home),
            **extra_env,
        }
        engine = Service(
            "engine",
            [*CLI, "serve", "engine", "--base-model", "tiny"],
            self.env,
            live.home / "engine.log",
        )
        self.services.append(engine)
        gateway = Service(
            "gateway",
            [*CLI, "serve", "gateway", "--port", str(gateway_port)],
            self.env,
            live.home / "gateway.log",
        )
        self.services.append(gateway)
        gateway.wait_http(f"{self.gateway_url}/healthz", 60)
        engine.wait_http(f"{self.engine_url}/health", 300)
        wait_engines_seen(self.gateway_url, "1/1", 60)

    @property
    def engine_key(self) -> str:
        return (self.live.home / "keys" / "engine-api-key").read_text().strip()

    @staticmethod
    def ok(resp: httpx.Response) -> Any:
        assert resp.status_code < 300, f"{resp.status_code}: {resp.text}"
        return resp.json()

    def create_adapter(self, tenant: str, name: str) -> None:
        self.ok(
            self.http.post(
                f"/v1/tenants/{tenant}/adapters",
                json={"name": name, "base_model": "tiny"},
                headers=self.tokens[tenant],
            )
        )

    def upload(self, tenant: str, name: str, folder: Path) -> dict[str, Any]:
        files = {
            f: (f, (folder / f).read_bytes())
            for f in ("adapter_config.json", "adapter_model.safetensors")
        }
        return self.ok(
            self.http.post(
                f"/v1/tenants/{tenant}/adapters/{name}/versions",
                files=files,
                headers=self.tokens[tenant],
            )
        )

    def promote(self, tenant: str, name: str, version: int, alias: str = "production") -> None:
        self.ok(
            self.http.put(
                f"/v1/tenants/{tenant}/adapters/{name}/aliases/{alias}",
                json={"version": version, "reason": "test"},
                headers=self.tokens[tenant],
            )
        )

    def openai(self, tenant: str) -> Any:
        import openai

        token = self.tokens[tenant]["Authorization"].removeprefix("Bearer ")
        return openai.OpenAI(
            base_url=f"{self.gateway_url}/v1",
            api_key=token,
            max_retries=0,
            http_client=httpx.Client(trust_env=False, timeout=120),
        )

    def engine_log(self) -> str:
        return (self.live.home / "engine.log").read_text(errors="replace")

    def gateway_log(self) -> str:
        return (self.live.home / "gateway.log").read_text(errors="replace")

    def close(self) -> None:
        for s in reversed(self.services):
            s.stop()
        if hasattr(self, "http"):
            self.http.close()
        self.live.stop()


def manifest(version: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(version["manifest"]))
