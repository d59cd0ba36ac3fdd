"""The Helm chart (helm/loraplex): `helm lint --strict`, `helm template` validated against the
Kubernetes 1.37 schemas (kubernetes-validate, offline, strict), and the rendered objects.

helm comes from a PyPI package (tests/helm_tool.py); if it cannot be had, these tests fail.
"""

from __future__ import annotations

import base64
import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm_tool import HelmUnavailable, helm_binary

CHART = Path(__file__).resolve().parents[1] / "helm" / "loraplex"
GPU_VALUES = CHART / "ci" / "gpu-values.yaml"
RELEASE = "lpx"
KUBE_VERSION = "1.37.0"
GPU = "nvidia.com/gpu"
KINDS = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job"}
KINDS |= {"Secret", "ConfigMap", "ServiceAccount"}
DEPLOYMENTS = {"registry", "gateway", "engine", "worker-training", "worker-default", "beat"}
HOOK = "pre-install,pre-upgrade"
HOOK_DELETE = "before-hook-creation,hook-succeeded"

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        return helm_binary()
    except HelmUnavailable as exc:
        pytest.fail(f"helm is needed to check the chart and could not be fetched: {exc}")


def run_helm(helm: Path, *args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {  # keep helm away from the user's own helm config and caches
        "HOME": str(tmp),
        "PATH": "/usr/bin:/bin",
        "HELM_CACHE_HOME": str(tmp / "cache"),
        "HELM_CONFIG_HOME": str(tmp / "config"),
        "HELM_DATA_HOME": str(tmp / "data"),
    }
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, env=env)


@functools.cache
def render_text(helm: Path, tmp: Path, *extra: str) -> str:
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", "ml", *extra, tmp=tmp)
    assert proc.returncode == 0, f"helm template {' '.join(extra)} failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.fixture(scope="module")
def render(helm: Path, helm_home: Path) -> Any:
    def _render(*extra: str) -> list[Manifest]:
        docs = yaml.safe_load_all(render_text(helm, helm_home, *extra))
        return [d for d in docs if d]

    return _render


def find(docs: list[Manifest], kind: str, component: str | None = None) -> list[Manifest]:
    return [
        d
        for d in docs
        if d["kind"] == kind
        and (component is None or d["metadata"]["name"] == f"{RELEASE}-loraplex-{component}")
    ]


def one(docs: list[Manifest], kind: str, component: str) -> Manifest:
    found = find(docs, kind, component)
    assert len(found) == 1, f"expected one {kind} for {component}, got {len(found)}"
    return found[0]


def container(deployment: Manifest) -> Manifest:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(c: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


@pytest.mark.parametrize("values", [None, "ci/default-values.yaml", "ci/gpu-values.yaml"])
def test_lint_strict(helm: Path, helm_home: Path, values: str | None) -> None:
    args = ["lint", "--strict", str(CHART)] + (["-f", str(CHART / values)] if values else [])
    proc = run_helm(helm, *args, tmp=helm_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("values", [(), ("-f", str(GPU_VALUES))], ids=["default", "gpu"])
def test_manifests_validate(helm: Path, helm_home: Path, values: tuple[str, ...]) -> None:
    text = render_text(helm, helm_home, *values)
    cmd = [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBE_VERSION, "-"]
    proc = subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A kind without a schema only warns: every object must have been checked.
    assert "WARN" not in proc.stdout, proc.stdout
    checked = proc.stdout.count(" passed for resource ")
    assert checked == len([d for d in yaml.safe_load_all(text) if d]) > 10, proc.stdout


def test_default_objects(render: Any) -> None:
    docs = render()
    kinds = {d["kind"] for d in docs}
    assert kinds >= KINDS
    prefix = f"{RELEASE}-loraplex-"
    names = {d["metadata"]["name"].removeprefix(prefix) for d in find(docs, "Deployment")}
    assert names == DEPLOYMENTS
    for component in ("registry", "gateway", "engine"):
        assert one(docs, "Service", component)["spec"]["type"] == "ClusterIP"
        assert one(docs, "PodDisruptionBudget", component)
    hpa = one(docs, "HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-loraplex-gateway"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"

    beat = one(docs, "Deployment", "beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}

    for component, port in (("registry", 8000), ("gateway", 8080)):
        c = container(one(docs, "Deployment", component))
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["ports"][0]["containerPort"] == port
        assert c["args"][:2] == ["serve", component]
        assert env_of(c)["LORAPLEX_DATABASE_URL"]["secretKeyRef"]["key"] == "database-url"
        # the gateway's fine-tuning routes queue training and store uploads, as the registry
        assert env_of(c)["LORAPLEX_BROKER_URL"]["secretKeyRef"]["key"] == "broker-url"
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts["jwt"] == "/etc/loraplex/jwt"

    engine = container(one(docs, "Deployment", "engine"))
    assert engine["args"] == ["serve", "engine", "--base-model", "tiny-chat"]
    assert engine["livenessProbe"]["httpGet"]["path"] == "/health"
    env = env_of(engine)
    assert env["LORAPLEX_ENGINE_API_KEY"]["secretKeyRef"]["key"] == "engine-api-key"
    for name in ("RESOLVER_CACHE_BYTES", "ENGINE_MAX_LORAS", "ENGINE_MAX_CPU_LORAS"):
        assert env[f"LORAPLEX_{name}"].isdigit(), name
    assert "LORAPLEX_ENGINE_MAX_LORA_RANK" not in env  # the base model's max_lora_rank rules
    assert "jwt" not in {m["name"] for m in engine["volumeMounts"]}  # only registry and gateway

    training = container(one(docs, "Deployment", "worker-training"))
    assert " ".join(training["args"]) == "worker --queues training --pool solo --concurrency 1"
    default = container(one(docs, "Deployment", "worker-default"))
    assert " ".join(default["args"]) == "worker --queues default --pool threads --concurrency 4"

    for d in find(docs, "Deployment"):  # no GPUs by default; hardened containers everywhere
        c = container(d)
        assert GPU not in str(c.get("resources")), d["metadata"]["name"]
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "loraplex"

    config = find(docs, "ConfigMap")[0]["data"]
    assert config["LORAPLEX_ENVIRONMENT"] == "production"
    assert config["LORAPLEX_ENGINE_URL"] == f"http://{RELEASE}-loraplex-engine:8100"


def test_engine_lora_rank_override(render: Any) -> None:
    """Engines start at their base model's max_lora_rank; the value is an optional override."""
    docs = render("--set", "engine.maxLoraRank=128")
    assert (
        env_of(container(one(docs, "Deployment", "engine")))["LORAPLEX_ENGINE_MAX_LORA_RANK"]
        == "128"
    )


def test_gateway_metrics_are_internal(render: Any) -> None:
    """/metrics names tenants: its port is in the internal metrics Service only."""
    docs = render()
    c = container(one(docs, "Deployment", "gateway"))
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080, "metrics": 9464}
    env = env_of(c)
    assert env["LORAPLEX_GATEWAY_METRICS_PORT"] == "9464"
    assert env["LORAPLEX_GATEWAY_METRICS_HOST"] == "0.0.0.0"
    assert c["readinessProbe"]["httpGet"]["port"] == "http"  # probes stay on the tenant port
    tenant_facing = one(docs, "Service", "gateway")
    assert [p["targetPort"] for p in tenant_facing["spec"]["ports"]] == ["http"]
    internal = one(docs, "Service", "gateway-metrics")
    assert internal["spec"]["type"] == "ClusterIP"
    assert [p["targetPort"] for p in internal["spec"]["ports"]] == ["metrics"]
    assert internal["spec"]["selector"] == tenant_facing["spec"]["selector"]
    notes = internal["metadata"]["annotations"]
    assert notes["prometheus.io/port"] == "9464" and notes["prometheus.io/scrape"] == "true"


def test_engines_are_replicas_behind_a_headless_service_the_gateway_resolves(
    render: Any,
) -> None:
    """Issue 19: N engine pods, one DNS address each (ready ones only); the gateway re-resolves
    the name and routes by adapter across them."""
    for extra, replicas in (((), 1), (("--set", "engine.replicas=4"), 4)):
        docs = render(*extra)
        assert one(docs, "Deployment", "engine")["spec"]["replicas"] == replicas
        headless = one(docs, "Service", "engine-headless")["spec"]
        assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is False
        assert headless["selector"] == one(docs, "Service", "engine")["spec"]["selector"]
        assert [(p["port"], p["targetPort"]) for p in headless["ports"]] == [(8100, "http")]
        env = env_of(container(one(docs, "Deployment", "gateway")))
        assert env["LORAPLEX_ENGINE_DNS"] == f"{RELEASE}-loraplex-engine-headless.ml.svc:8100"
        assert env["LORAPLEX_GATEWAY_ROUTING"] == "affinity"
        assert env["LORAPLEX_ENGINE_POLL_SECONDS"] == "2"
        assert env["LORAPLEX_GATEWAY_SPILL_QUEUE"] == "32"
        assert env["LORAPLEX_GATEWAY_MAX_REPLICAS"] == "3"
        assert "LORAPLEX_ENGINE_DNS" not in env_of(container(one(docs, "Deployment", "engine")))
    gpu = render("-f", str(GPU_VALUES))
    assert one(gpu, "Deployment", "engine")["spec"]["replicas"] == 2
    policy = one(gpu, "NetworkPolicy", "engine")["spec"]  # pod to pod: the same policy applies
    assert (
        policy["podSelector"]["matchLabels"]
        == one(gpu, "Service", "engine-headless")["spec"]["selector"]
    )
    random = render("--set", "gateway.routing.mode=random")
    assert env_of(container(one(random, "Deployment", "gateway")))["LORAPLEX_GATEWAY_ROUTING"] == (
        "random"
    )


def test_audit_key_reaches_every_audit_writer(render: Any) -> None:
    """Production refuses to start without LORAPLEX_AUDIT_KEY_FILE: every process gets the path,
    the ones that write audit events (registry, workers, the gateway's fine-tuning routes) get
    the key mounted there."""
    docs = render()
    own = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    path = own["ConfigMap", f"{RELEASE}-loraplex"]["data"]["LORAPLEX_AUDIT_KEY_FILE"]
    secret = own["Secret", f"{RELEASE}-loraplex"]  # the chart's own: generated, kept on upgrade
    assert len(base64.b64decode(secret["data"]["audit-hmac.key"])) >= 32
    for component in ("registry", "gateway", "worker-training", "worker-default"):
        deployment = one(docs, "Deployment", component)
        mounts = {m["name"]: m["mountPath"] for m in container(deployment)["volumeMounts"]}
        assert path.startswith(mounts["audit-key"] + "/"), component
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["audit-key"]["secret"]["items"][0]["path"] == path.rsplit("/", 1)[1]
    assert "audit-key" not in str(one(docs, "Deployment", "engine")["spec"])  # writes none
    assert env_of(container(one(docs, "Job", "migrations")))["LORAPLEX_AUDIT_KEY_FILE"] == path
    external = render("-f", str(GPU_VALUES))
    volume = [
        v
        for v in one(external, "Deployment", "registry")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "audit-key"
    ]
    assert volume[0]["secret"]["secretName"] == "loraplex-audit"


def test_migration_hook(render: Any) -> None:
    docs = render()
    job = one(docs, "Job", "migrations")
    notes = job["metadata"]["annotations"]
    assert notes["helm.sh/hook"] == HOOK
    assert notes["helm.sh/hook-delete-policy"] == HOOK_DELETE
    c = container(job)
    assert c["args"] == ["db", "upgrade"]
    # Hooks run before the chart's Secret exists: the Job's own hook Secret, created first.
    secret = one(docs, "Secret", "migrations")
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == HOOK
    secret_weight = secret["metadata"]["annotations"]["helm.sh/hook-weight"]
    assert int(secret_weight) < int(notes["helm.sh/hook-weight"])
    ref = env_of(c)["LORAPLEX_DATABASE_URL"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["data"]
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]  # the chart's: not yet


def test_gpu_values(render: Any) -> None:
    docs = render("-f", str(GPU_VALUES))
    for component in ("engine", "worker-training"):
        resources = container(one(docs, "Deployment", component))["resources"]
        assert resources["limits"][GPU] == 1, component
        assert resources["requests"][GPU] == 1, component
    for component in ("registry", "gateway", "worker-default", "beat"):
        assert GPU not in str(container(one(docs, "Deployment", component))["resources"])

    hpa = one(docs, "HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["minReplicas"] == 3
    assert "replicas" not in one(docs, "Deployment", "gateway")["spec"]  # the HPA owns it

    # External services through existing Secrets: the chart stores no URL of its own.
    secrets = find(docs, "Secret")
    assert [s["metadata"]["name"] for s in secrets] == [f"{RELEASE}-loraplex"]
    assert set(secrets[0]["data"]) == {"engine-api-key"}
    env = env_of(container(one(docs, "Deployment", "registry")))
    assert env["LORAPLEX_DATABASE_URL"]["secretKeyRef"]["name"] == "loraplex-external"
    assert env["LORAPLEX_S3_SECRET_ACCESS_KEY"]["secretKeyRef"]["name"] == "loraplex-external"
    job_env = env_of(container(one(docs, "Job", "migrations")))
    assert job_env["LORAPLEX_DATABASE_URL"]["secretKeyRef"]["name"] == "loraplex-external"
    assert one(docs, "NetworkPolicy", "engine")


def test_gateway_replicas_without_autoscaler(render: Any) -> None:
    docs = render("-f", str(GPU_VALUES), "--set", "gateway.autoscaling.enabled=false")
    assert one(docs, "Deployment", "gateway")["spec"]["replicas"] == 3
    assert not find(docs, "HorizontalPodAutoscaler")


@pytest.mark.parametrize(
    "override, message",
    [
        ("database.url=mysql://db/x", "/database"),
        ("objectStore.url=file:///data", "/objectStore/url"),
        ("engine.gpu.count=0", "/engine/gpu/count"),
        ("registry.replica=3", "additional properties 'replica'"),
        ("gateway.workers=2", "/gateway/workers"),  # one process owns the metrics port
        ("gateway.routing.mode=round-robin", "/gateway/routing/mode"),
        ("gateway.routing.maxReplicas=0", "/gateway/routing/maxReplicas"),
        ("engine.maxLoraRank=48", "/engine/maxLoraRank"),  # not a rank vLLM can serve
    ],
)
def test_schema_rejects(helm: Path, helm_home: Path, override: str, message: str) -> None:
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--set", override, tmp=helm_home)
    assert proc.returncode != 0
    assert "schema" in proc.stderr and message in proc.stderr, proc.stderr
