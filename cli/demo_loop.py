"""`loraplex demo` (`make demo`): the whole loop on this machine, told as it goes.

`loraplex up` in a fresh home; three tenants with their own data and adapters (one an agent
that calls its tools), trained, evaluated and promoted; each tenant's requests answered by its
own adapter through the gateway; a quarterly schedule fired by hand (`loraplex schedules tick
--now`); drift from shifted live traffic (`loraplex drift compute`) starting a retrain; the
lineage of the final version as a tree and as an SVG picture; globex's golden eval suite as a
leaderboard of its versions, the base model and production; the audit chain verified. It ends
with the console URL of the final version's page (`--keep-up` keeps the platform running to open
it; otherwise it says how to bring the registry back on the same port).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console

from cli import demo_agent
from cli.client import Api
from cli.evals_view import leaderboard_table
from cli.lineage_view import svg, tree
from cli.remote import follow_job
from workers.devmodel.golden import support_suite
from workers.devmodel.samples import ORDERS_SYSTEM, SUPPORT_SYSTEM, sample_rows, to_jsonl

console = Console()
CLI = [sys.executable, "-m", "cli"]
TRAINING = {"learning_rate": 0.008, "batch_size": 8, "rank": 8, "max_seq_length": 512}
EPOCHS = {"orders": 5, "support": 10, "agent": 5}
# slug -> (adapter, kind of sample data)
TENANTS = {
    "acme": ("orders", "orders"),
    "globex": ("support", "support"),
    "initech": ("desk", "agent"),
}
ASK = {
    "acme": ("orders", ORDERS_SYSTEM, "Please send 3 apples to Alice."),
    "globex": ("support", SUPPORT_SYSTEM, "Where is my parcel?"),
}


def base_model_dir() -> Path:
    """Built once per machine (about five minutes on two cores), then reused."""
    root = Path(os.environ.get("LORAPLEX_DEMO_CACHE", Path.home() / ".cache" / "loraplex"))
    return root / "tiny-chat-base"


def ensure_base_model(env: dict[str, str]) -> Path:
    """The cached model when it was built by this builder with the default options; else a
    fresh build (a model from an older builder may lack, say, the tool-calling template)."""
    from workers.devmodel.build import BUILD_INFO, BuildOptions, build_fingerprint

    path = base_model_dir()
    info = path / BUILD_INFO
    if (path / "model.safetensors").exists() and info.exists():
        built = json.loads(info.read_text()).get("fingerprint")
        if built == build_fingerprint(BuildOptions()):
            console.print(f"tiny base model already built at {path}")
            return path
        console.print(f"the tiny base model at {path} is from an older builder: rebuilding")
    subprocess.run([*CLI, "dev", "make-base-model", str(path), "--force"], env=env, check=True)
    return path


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def _api(url: str, client_id: str, secret: str) -> Api:
    api = Api({"url": url, "client_id": client_id, "client_secret": secret})
    api.save = lambda: None  # type: ignore[method-assign]  # the demo keeps no CLI profile
    return api


def console_url(registry: str, tenant: str, adapter: str, version: int) -> str:
    """The console page of one adapter version (registry/console/version_pages.py)."""
    parts = (quote(tenant, safe=""), quote(adapter, safe=""), int(version))
    return "{}/console/t/{}/adapters/{}/v/{}".format(registry.rstrip("/"), *parts)


def console_lines(url: str, creds: dict[str, str], home: Path, port: int, kept: bool) -> list[str]:
    """What the demo ends with: the final version's console page and how to sign in."""
    lines = [
        f"console: {url}",
        f"  sign in with the ops client: id {creds['client_id']}, "
        f"secret in {home / 'ops-client.json'}",
    ]
    if kept:
        lines.append("  the platform keeps running; Ctrl-C stops it")
    else:
        lines.append(
            "  the platform stopped with the demo; to browse, start it again on the same home "
            f"and port: LORAPLEX_HOME={home} loraplex up --port {port} --no-engine"
        )
    return lines


def run(
    home: Path = typer.Option(Path(".demo"), help="LORAPLEX_HOME for the demo (wiped first)"),
    keep_up: bool = typer.Option(
        False, "--keep-up", help="keep the platform running at the end (to browse the console)"
    ),
) -> None:
    """Start the platform with `loraplex up` and run the whole loop for three tenants."""
    started = time.monotonic()
    home = home.resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {**os.environ, "LORAPLEX_HOME": str(home), "LORAPLEX_TRAFFIC_SAMPLE_RATE": "1.0"}
    for key in ("LORAPLEX_DATABASE_URL", "LORAPLEX_OBJECT_STORE", "LORAPLEX_BROKER_URL"):
        env.pop(key, None)
    _step("1. The tiny base model (built once per machine, about 5 minutes on 2 cores)")
    base = ensure_base_model(env)
    ports = {"port": _port(), "gateway-port": _port(), "engine-port": _port()}
    _step("2. loraplex up: registry + in-process worker, gateway, vLLM CPU engine")
    args = [f"--{k}={v}" for k, v in ports.items()] + [f"--base-model-path={base}"]
    log = home / "up.log"
    with log.open("w") as out:
        up = subprocess.Popen([*CLI, "up", *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        with console.status("starting (the engine takes a minute or two)"):
            while "Ctrl-C stops everything" not in log.read_text():
                if up.poll() is not None:
                    raise SystemExit(f"loraplex up exited:\n{log.read_text()[-3000:]}")
                time.sleep(1)
        console.print(log.read_text().split("\n", 1)[-1])
        registry, gateway = (
            f"http://127.0.0.1:{ports['port']}",
            f"http://127.0.0.1:{ports['gateway-port']}",
        )
        final = _loop(registry, gateway, home, env)
        if keep_up:
            _hold(up, final, home, ports["port"], started)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
        console.print(log.read_text().strip().splitlines()[-1])
    if not keep_up:
        console.rule(f"[bold green]demo finished in {time.monotonic() - started:.0f} s")
        _end(final, home, ports["port"], kept=False)


def _end(url: str, home: Path, port: int, *, kept: bool) -> None:
    creds = json.loads((home / "ops-client.json").read_text())
    for line in console_lines(url, creds, home, port, kept):
        console.print(line, soft_wrap=True, highlight=False)


def _hold(up: subprocess.Popen[bytes], url: str, home: Path, port: int, started: float) -> None:
    """--keep-up: the platform stays until Ctrl-C (which reaches `up` too) or `up` exits."""
    console.rule(f"[bold green]demo finished in {time.monotonic() - started:.0f} s")
    _end(url, home, port, kept=True)
    with contextlib.suppress(KeyboardInterrupt):
        up.wait()


def _loop(registry: str, gateway: str, home: Path, env: dict[str, str]) -> str:
    """The whole loop; returns the console URL of globex's final version."""
    creds = json.loads((home / "ops-client.json").read_text())
    ops = _api(registry, creds["client_id"], creds["client_secret"])
    _step("3. Ops create three tenants; each uploads its data and creates an adapter")
    tenants: dict[str, Api] = {}
    for slug, (adapter, kind) in TENANTS.items():
        ops.post("/v1/tenants", json={"slug": slug, "display_name": slug.title()})
        client = ops.post(f"/v1/tenants/{slug}/clients", json={})
        api = tenants[slug] = _api(registry, client["client_id"], client["client_secret"])
        rows = to_jsonl(sample_rows(kind, 300, seed=1))  # type: ignore[arg-type]
        d = api.post(
            f"/v1/tenants/{slug}/datasets",
            data={"name": adapter},
            files={"file": ("d.jsonl", rows)},
        )
        console.print(
            f"{slug}: dataset {d['name']} v{d['version']}, {d['rows']} rows, "
            f"sha256 {d['sha256'][:12]}…"
        )
        training = {**TRAINING, "epochs": EPOCHS[kind]}
        body = {"name": adapter, "base_model": "tiny-chat", "training": training}
        api.post(f"/v1/tenants/{slug}/adapters", json=body)
        api.put(f"/v1/tenants/{slug}/adapters/{adapter}/promotion-policy", json={"mode": "auto"})
        api.profile["dataset"] = d["id"]
    _pin_golden_suite(tenants["globex"])
    _step("4. Each tenant trains its adapter (held-out evals, auto-promotion gate)")
    for slug, (adapter, _) in TENANTS.items():
        api = tenants[slug]
        job = api.post(
            f"/v1/tenants/{slug}/training-jobs",
            json={"adapter": adapter, "dataset_ids": [api.profile["dataset"]]},
        )
        console.print(f"[bold]{slug}/{adapter}[/bold]: job {job['id']}")
        follow_job(api, slug, job["id"], poll=0.5)
    _step("5. Each tenant calls its own model through the gateway (OpenAI API)")
    for slug in ASK:
        _ask(gateway, tenants[slug], slug)
    _step("5b. initech's order desk: tool calls, base model vs adapter, then one live round")
    demo_agent.scores(tenants["initech"], 1)
    demo_agent.live_round(gateway, tenants["initech"])

    _step("6. Ops schedule a quarterly retrain for acme; the due time is ticked by hand")
    more = to_jsonl(sample_rows("orders", 300, seed=3))
    d = tenants["acme"].post(
        "/v1/tenants/acme/datasets", data={"name": "orders"}, files={"file": ("d.jsonl", more)}
    )
    console.print(f"acme uploaded this quarter's data: orders v{d['version']}, {d['rows']} rows")
    s = ops.put(
        "/v1/tenants/acme/adapters/orders/schedule",
        json={"cron": "0 3 1 1,4,7,10 *", "timezone": "Europe/Berlin", "datasets": "all"},
    )
    console.print(
        f"cron '{s['cron']}' in {s['timezone']}; next runs (UTC): {', '.join(s['upcoming'])}"
    )
    due = dt.datetime.fromisoformat(s["next_run_at"]) + dt.timedelta(seconds=30)
    tick = subprocess.Popen(
        [*CLI, "schedules", "tick", "--now", due.isoformat()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    job_id = _wait_for(lambda: ops.get("/v1/tenants/acme/adapters/orders/schedule")["last_job_id"])
    console.print(
        f"loraplex schedules tick --now {due.isoformat()} → job {job_id} (trigger schedule)"
    )
    follow_job(tenants["acme"], "acme", job_id, poll=0.5)
    tick.wait()
    _ask(gateway, tenants["acme"], "acme")

    _step("7. globex's users start writing differently; its app corrects the answers")
    api = tenants["globex"]
    api.put(
        "/v1/tenants/globex/adapters/support/traffic-capture",
        json={"mode": "full", "sample_rate": 1.0},
    )
    shifted = sample_rows("support", 300, seed=2, shift=True)
    api.post(
        "/v1/tenants/globex/datasets",
        data={"name": "support-new"},
        files={"file": ("d.jsonl", to_jsonl(shifted))},
    )
    ops.put(
        "/v1/tenants/globex/adapters/support/drift-policy",
        json={
            "window": "1h",
            "min_samples": 40,
            "cooldown": "1d",
            "datasets": "traffic",  # the window's corrected answers + these uploads' newest
            "dataset_names": ["support", "support-new"],
        },
    )
    console.print(
        "globex turned on full capture (redacted) for support and uploaded new data "
        "(support-new v1);"
        "\n48 of the new kind of prompts go through the gateway, and globex's app posts the "
        "right answer for each to POST /v1/feedback"
    )
    for i, row in enumerate(shifted[:48]):
        *user, answer = row["messages"]
        if i % 16 == 0:  # some users paste their e-mail address: redacted before it is stored
            user[-1] = {
                **user[-1],
                "content": f"{user[-1]['content']} (reach me at pat{i}@example.com)",
            }
        resp = _chat(gateway, api, "support", user, 1)
        fix = {"request_id": resp.headers["x-request-id"], "rating": -1, "correction": answer}
        _post(gateway, api, "/v1/feedback", fix)
    time.sleep(1.5)  # the gateway writes traffic samples in batches
    drift = subprocess.Popen(
        [*CLI, "drift", "compute", "--tenant", "globex", "--adapter", "support"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    job_id = _wait_for(
        lambda: ops.get("/v1/tenants/globex/adapters/support/drift-policy")["last_job_id"]
    )
    policy = ops.get("/v1/tenants/globex/adapters/support/drift-policy")
    console.print(f"loraplex drift compute → {policy['last_outcome']}: {policy['last_message']}")
    traffic = api.get(f"/v1/tenants/globex/training-jobs/{job_id}")["trigger_ref"]["traffic"]
    curated = api.get(f"/v1/tenants/globex/datasets/{traffic['dataset_id']}")
    summary = curated["origin"]
    console.print(
        f"curated from traffic: {curated['name']} v{curated['version']}, {curated['rows']} rows "
        f"({summary['corrected']} corrected, {summary['redacted']} traces redacted: "
        f"{summary['redactions']}), trained with "
        + ", ".join(f"{u['name']} v{u['version']}" for u in traffic["uploaded"])
    )
    follow_job(tenants["globex"], "globex", job_id, poll=0.5)
    drift.wait()
    version = _ask(gateway, tenants["globex"], "globex")

    _step("7b. globex's golden suite: every version, the base model and production, same rows")
    board = tenants["globex"].get("/v1/tenants/globex/adapters/support/leaderboard")
    Console(width=max(console.width, 100)).print(leaderboard_table(board, scored=False))

    _step(f"8. The lineage of globex's {version}, as an auditor sees it")
    number = version.split("@v")[1]
    graph = ops.get(f"/v1/tenants/globex/adapters/support/versions/{number}/lineage")
    console.print(tree(graph))
    picture = home / f"lineage-support-v{number}.svg"
    picture.write_text(svg(graph))
    console.print(f"lineage picture: {picture}  (open it in a browser)")
    verify = ops.get("/v1/audit/verify")
    console.print(f"audit chain: ok={verify['ok']}, {verify['events_checked']} events checked")
    url = console_url(registry, "globex", "support", int(number))
    _open_console(url, registry, creds)
    return url


def _open_console(url: str, registry: str, creds: dict[str, str]) -> None:
    """Sign in to the console as an auditor would (the form, its cookie) and load the page."""
    with httpx.Client(base_url=registry, timeout=30) as web:
        web.get("/console/login")
        form = {
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
            "csrf": web.cookies.get("lpx_console_login") or "",
            "next": "/console",
        }
        web.post("/console/login", data=form)
        t0 = time.monotonic()
        page = web.get(url)
        took = (time.monotonic() - t0) * 1000
    shown = "lineage drawn" if 'id="lineage"' in page.text else "no lineage"
    console.print(f"console version page: HTTP {page.status_code} in {took:.0f} ms ({shown})")


def _pin_golden_suite(api: Api) -> None:
    """globex says what a good answer is: its voice, never a generic assistant, the right
    content. Every version of its adapter (and the base model) is scored on these rows."""
    rows = to_jsonl(support_suite())
    suite = api.post(
        "/v1/tenants/globex/eval-suites",
        data={"name": "voice"},
        files={"file": ("voice.jsonl", rows)},
    )
    api.put(
        "/v1/tenants/globex/adapters/support/eval-suites",
        json={"suites": [{"name": suite["name"], "version": suite["version"]}]},
    )
    console.print(
        f"globex: eval suite {suite['name']} v{suite['version']} ({suite['rows']} prompts, "
        f"checks {suite['check_counts']}) pinned to support"
    )


def _wait_for(get: Any, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := get():
            return value
        time.sleep(0.5)
    raise SystemExit("timed out waiting for the job to be created")


def _chat(
    gateway: str, api: Api, model: str, messages: list[dict[str, str]], max_tokens: int
) -> httpx.Response:
    resp = httpx.post(
        f"{gateway}/v1/chat/completions",
        json={"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0},
        headers=api._headers(),
        timeout=120,
        trust_env=False,
    )
    if resp.status_code != 200:
        raise SystemExit(f"gateway: {resp.status_code} {resp.text}")
    return resp


def _post(gateway: str, api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(
        f"{gateway}{path}", json=body, headers=api._headers(), timeout=60, trust_env=False
    )
    if resp.status_code not in (200, 201):
        raise SystemExit(f"gateway: {resp.status_code} {resp.text}")
    result: dict[str, Any] = resp.json()
    return result


def _ask(gateway: str, api: Api, slug: str) -> str:
    adapter, system, question = ASK[slug]
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    time.sleep(1.0)  # an alias move reaches the gateway within 0.5 s
    resp = _chat(gateway, api, adapter, messages, 40)
    answer = resp.json()["choices"][0]["message"]["content"]
    label = resp.headers["x-loraplex-model"]
    console.print(
        f"[bold]{slug}[/bold] asks {adapter}: {question!r}\n"
        f"  [green]{label}[/green] answers: {answer!r}"
    )
    return label
