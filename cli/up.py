"""`loraplex up`: the embedded platform as one command, for a laptop.

The registry (SQLite and a local object store under LORAPLEX_HOME; its in-process worker trains,
evaluates and runs the periodic tasks: reaper, schedule tick, drift pass), the gateway, and the
vLLM CPU engine on the tiny base model (built on first start). Prints the URLs (the console's
too) and, on first start, an ops client's credentials; Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx
import typer
from rich.console import Console
from rich.table import Table

console = Console()
CLI = [sys.executable, "-m", "cli"]
EMBEDDED_RESEND_SECONDS = 30  # a queued job nobody claimed this long is re-sent by the reaper


class _Child:
    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.log = name, logs / f"{name}.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*CLI, *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches `up`, which stops the children in order
            )

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _ops_client(settings_home: Path) -> tuple[dict[str, str], bool]:
    """The ops client of this home: created (and kept, mode 0600) on first start."""
    path = settings_home / "ops-client.json"
    if path.exists():
        return json.loads(path.read_text()), False
    from registry.auth.principal import Principal
    from registry.auth.scopes import Role
    from registry.auth.service import clients
    from registry.db import make_engine, make_sessionmaker, run_unit_of_work
    from registry.settings import get_settings

    engine = make_engine(get_settings().resolved_database_url)
    for session in run_unit_of_work(make_sessionmaker(engine)):
        client, secret = clients.create(
            session, actor=Principal.local_operator("loraplex-up"), role=Role.OPS, name="up"
        )
        creds = {"client_id": client.client_id, "client_secret": secret}
    engine.dispose()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f, indent=2)
    return creds, True


def _base_model(
    name: str,
    path: Path | None,
    home: Path,
    env: dict[str, str],
    tool_call_parser: str | None,
    max_lora_rank: int,
) -> None:
    """Register `name` (building the tiny base model under home on first start)."""
    from registry.auth.principal import Principal
    from registry.base_models.repository import BaseModelRepository
    from registry.base_models.schemas import BaseModelCreate
    from registry.base_models.service import base_models
    from registry.db import make_engine, make_sessionmaker, run_unit_of_work
    from registry.errors import LoraplexError
    from registry.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        for session in run_unit_of_work(make_sessionmaker(engine)):
            if BaseModelRepository(session).get_by_name(name) is not None:
                return
        folder = path or home / "base-models" / name
        if not (folder / "model.safetensors").exists():
            console.print(f"building the tiny base model into {folder} (about 2 min, once)")
            subprocess.run([*CLI, "dev", "make-base-model", str(folder)], env=env, check=True)
        try:
            for session in run_unit_of_work(make_sessionmaker(engine)):
                base_models.register(
                    session,
                    actor=Principal.local_operator("loraplex-up"),
                    data=BaseModelCreate(
                        name=name,
                        uri=str(folder),
                        tool_call_parser=tool_call_parser,
                        max_lora_rank=max_lora_rank,
                    ),
                    settings=settings,
                )
        except (ValueError, LoraplexError) as exc:  # pydantic's ValidationError is a ValueError
            console.print(f"[red]cannot register base model {name}: {exc}[/red]")
            if tool_call_parser:
                console.print(
                    "--tool-call-parser none serves it without tool calling; a tiny model built "
                    "before tool calling needs a rebuild: loraplex dev make-base-model PATH --force"
                )
            raise typer.Exit(1) from None
        calls = f"tool calls read by '{tool_call_parser}'" if tool_call_parser else "no tool calls"
        console.print(
            f"registered base model {name} from {folder} ({calls}, LoRA ranks up to "
            f"{max_lora_rank})"
        )
    finally:
        engine.dispose()


def _wait(children: list[_Child], url: str, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with console.status(f"waiting for {what} ({url})"):
        while time.monotonic() < deadline:
            for child in children:
                if child.proc.poll() is not None:
                    raise RuntimeError(
                        f"{child.name} exited ({child.proc.returncode}):\n{child.tail()}"
                    )
            try:
                if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


def up(
    host: str = typer.Option("127.0.0.1", help="where the registry and gateway listen"),
    port: int = typer.Option(8000, help="registry port"),
    gateway_port: int = typer.Option(8080),
    engine_port: int = typer.Option(8100, help="engine port (loopback only)"),
    base_model: str = typer.Option("tiny-chat", help="base model to register and serve"),
    base_model_path: Path = typer.Option(None, help="use this folder instead of building one"),
    engine: bool = typer.Option(True, "--engine/--no-engine", help="start the vLLM engine"),
    tool_call_parser: str = typer.Option(
        "hermes",
        help="vLLM tool-call parser registered with the base model (the tiny model's template "
        "is Hermes style); 'none' serves no tool calling",
    ),
    max_lora_rank: int = typer.Option(
        16,
        help="highest LoRA rank the base model serves, when up registers it (one of vLLM's: "
        "8, 16, 32, 64...); the engine's CPU LoRA ops pay for every rank up to it",
    ),
) -> None:
    """Run the whole platform on this machine until Ctrl-C."""
    from cli.config import configured_settings
    from registry.auth.keys import load_audit_key, load_signing_keys
    from registry.migrate import upgrade

    settings = configured_settings()
    home = settings.home_dir
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    # Keys before the children: they would otherwise race to create them on a first start.
    load_signing_keys(settings)
    load_audit_key(settings)
    env = {
        **os.environ,
        "LORAPLEX_HOME": str(home),
        "LORAPLEX_ENGINE_PORT": str(engine_port),
        "LORAPLEX_ENGINE_BASE_MODEL": base_model,
    }
    if not settings.broker_url:
        # The gateway sends no tasks here (the registry process runs the workers): the
        # registry's reaper starts what it queued (fine-tuning jobs), within about a minute.
        env.setdefault("LORAPLEX_JOB_RESEND_SECONDS", str(EMBEDDED_RESEND_SECONDS))
    creds, created = _ops_client(home)
    parser = None if tool_call_parser.lower() == "none" else tool_call_parser
    _base_model(base_model, base_model_path, home, env, parser, max_lora_rank)

    registry_url, gateway_url = f"http://{host}:{port}", f"http://{host}:{gateway_port}"
    children = [
        _Child("registry", ["serve", "registry", "--host", host, "--port", str(port)], env, logs)
    ]
    children.append(
        _Child(
            "gateway", ["serve", "gateway", "--host", host, "--port", str(gateway_port)], env, logs
        )
    )
    if engine:
        children.append(
            _Child("engine", ["serve", "engine", "--base-model", base_model], env, logs)
        )
    stopping = False

    def _stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        _wait(children, f"{registry_url}/readyz", "the registry", 120)
        _wait(children, f"{gateway_url}/healthz", "the gateway", 60)
        if engine:
            _wait(children, f"{gateway_url}/readyz", "the engine (vLLM start-up)", 900)
        _banner(registry_url, gateway_url, home, creds, created, engine)
        while not stopping:
            for child in children:
                if child.proc.poll() is not None:
                    raise RuntimeError(
                        f"{child.name} exited ({child.proc.returncode}):\n{child.tail()}"
                    )
            time.sleep(0.5)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        _shutdown(children)
        raise typer.Exit(1) from None
    _shutdown(children)


def _shutdown(children: list[_Child]) -> None:
    console.print("stopping: " + ", ".join(c.name for c in reversed(children)))
    for child in reversed(children):
        child.stop()
    console.print("stopped")


def _banner(
    registry: str, gateway: str, home: Path, creds: dict[str, str], created: bool, engine: bool
) -> None:
    table = Table("", "", show_header=False)
    table.add_row("registry API", f"{registry}  (docs: {registry}/docs)")
    table.add_row("console", f"{registry}/console  (sign in with a client's id and secret)")
    table.add_row("gateway (OpenAI API)", f"{gateway}/v1" + ("" if engine else "  (no engine)"))
    table.add_row("home", f"{home}  (logs: {home / 'logs'})")
    table.add_row("ops client", f"{creds['client_id']}  (saved in {home / 'ops-client.json'})")
    if created:
        table.add_row("ops secret", f"{creds['client_secret']}  (shown once here)")
    console.print(table)
    console.print(
        f"log in: loraplex login --url {registry} --client-id {creds['client_id']} "
        f"--client-secret <secret>\nready; Ctrl-C stops everything"
    )
