"""The chart mounts teacher keys into the workers only when a Secret is named."""

from __future__ import annotations

from typing import Any

from tests import test_helm_chart as chart
from tests.test_helm_chart import CHART, RELEASE, container, env_of, one, run_helm

helm, helm_home, render = chart.helm, chart.helm_home, chart.render  # the chart tests' fixtures

WORKERS = ("worker-training", "worker-default")


def test_no_teacher_secret_mounts_nothing(render: Any) -> None:
    docs = render()
    for component in WORKERS:
        c = container(one(docs, "Deployment", component))
        assert "LORAPLEX_SECRETS_DIR" not in env_of(c)
        assert "teacher-secrets" not in str(one(docs, "Deployment", component)["spec"])


def test_teacher_secret_reaches_the_workers_only(render: Any) -> None:
    docs = render("--set", "teachers.secretName=teacher-keys")
    for component in WORKERS:
        deployment = one(docs, "Deployment", component)
        c = container(deployment)
        assert env_of(c)["LORAPLEX_SECRETS_DIR"] == "/etc/loraplex/teacher-secrets"
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        assert mounts["teacher-secrets"]["mountPath"] == "/etc/loraplex/teacher-secrets"
        assert mounts["teacher-secrets"]["readOnly"] is True
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["teacher-secrets"]["secret"]["secretName"] == "teacher-keys"
    for component in ("registry", "gateway", "engine", "beat"):
        assert "teacher-secrets" not in str(one(docs, "Deployment", component)["spec"])


def test_schema_rejects_a_relative_mount_path(helm: Any, helm_home: Any) -> None:
    proc = run_helm(
        helm,
        "template",
        RELEASE,
        str(CHART),
        "--set",
        "teachers.mountPath=relative",
        tmp=helm_home,
    )
    assert proc.returncode != 0 and "mountPath" in proc.stderr
