"""Throwaway PostgreSQL, Redis and S3 (moto) servers for the test suite.

Run the suite against them:   python -m tests.services [pytest args...]
Reuse them from a script:     pg = start_postgres(); ...; pg.stop()   (or `with running_services()`)

Each service lives in its own temp dir on a random free 127.0.0.1 port and is stopped (temp dir
removed) in `finally`, also on Ctrl-C and SIGTERM. The exit status is pytest's."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def log(event: str, **fields: object) -> None:
    """One structured line (logfmt) per event, on stderr."""
    print(f"[services] {event} " + " ".join(f"{k}={v}" for k, v in fields.items()), file=sys.stderr)


@dataclass
class Service:
    name: str
    url: str
    env_var: str
    pid: int
    start_s: float
    _stop: Callable[[], None] = field(repr=False)
    stop_s: float | None = None

    def stop(self) -> None:
        """Stop the server and remove its temp dir; safe to call twice."""
        if self.stop_s is not None:
            return
        t0 = time.monotonic()
        try:
            self._stop()
        finally:
            self.stop_s = time.monotonic() - t0
            log("down", name=self.name, stop_s=f"{self.stop_s:.3f}")


def _mkdtemp(kind: str) -> Path:
    """/tmp/loraplex-test-KIND-*, not $TMPDIR: the postgres user must reach it and the unix
    socket path must stay short. `owner.pid` lets a later run remove it if we get SIGKILLed."""
    tmp = Path(tempfile.mkdtemp(prefix=f"loraplex-test-{kind}-", dir="/tmp"))
    (tmp / "owner.pid").write_text(str(os.getpid()))
    return tmp


def sweep_stale() -> None:
    """Remove temp dirs whose harness process is gone (it was SIGKILLed; its servers died too)."""
    for d in Path("/tmp").glob("loraplex-test-*-*/"):
        try:
            os.kill(int((d / "owner.pid").read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            pass  # alive, or not ours / being created


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with(sig: int) -> Callable[[], None]:
    """preexec_fn (runs after Popen's setuid, which would clear it): PR_SET_PDEATHSIG, i.e. the
    child gets `sig` when this process dies, even by SIGKILL. Linux only."""

    def preexec() -> None:
        ctypes.CDLL("libc.so.6").prctl(1, sig)  # 1 = PR_SET_PDEATHSIG

    return preexec


def _terminate(
    proc: subprocess.Popen[bytes], tmp: Path, sigs: tuple[int, ...] = (signal.SIGTERM,)
) -> None:
    """Send each of `sigs` in turn (10 s apart), then SIGKILL; then remove `tmp`."""
    try:
        for sig in (*sigs, signal.SIGKILL):
            if proc.poll() is not None:
                break
            proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pg_bindir() -> Path:
    """The highest-major PostgreSQL server bin dir under /usr/lib/postgresql."""
    dirs = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").exists()]
    if not dirs:
        raise RuntimeError("no initdb under /usr/lib/postgresql/*/bin (run `make system-deps`)")
    return max(dirs, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else -1)


def _pg_ready(data: Path) -> bool:
    """postmaster.pid's 8th line reads `ready` once connections are accepted (PG >= 10)."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready"


def _start(
    name: str,
    env_var: str,
    url: str,
    cmd: list[str],
    tmp: Path,
    ready: Callable[[], bool],
    t0: float,
    stop_sigs: tuple[int, ...] = (signal.SIGTERM,),
    **kw: Any,
) -> Service:
    """Spawn `cmd` (log in `tmp`), wait for `ready`; its stop() signals it and removes `tmp`."""
    logfile = tmp / f"{name}.log"
    try:
        # Own session: a terminal Ctrl-C reaches only us and pytest; we stop servers in order.
        # If we die (even by SIGKILL) the server gets its last stop signal.
        with logfile.open("wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with(stop_sigs[-1]),
                **kw,
            )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    stop = functools.partial(_terminate, proc, tmp, stop_sigs)
    try:
        deadline = time.monotonic() + 30
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} did not start ({proc.returncode}):\n"
                    f"{logfile.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.02)
    except BaseException:
        stop()
        raise
    return Service(name, url, env_var, proc.pid, time.monotonic() - t0, stop)


def _initdb(kind: str = "pg") -> tuple[Path, dict[str, Any]]:
    """A fresh cluster in a temp dir; returns (temp dir, Popen kwargs to run as its owner)."""
    bindir, tmp = pg_bindir(), _mkdtemp(kind)
    as_pg: dict[str, Any] = {"cwd": tmp}
    if os.geteuid() == 0:  # initdb refuses root: run initdb and the server as `postgres`
        shutil.chown(tmp, "postgres", "postgres")
        as_pg.update(user="postgres", group="postgres", extra_groups=[])
    try:
        r = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(tmp / "data"),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            **as_pg,
        )
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed ({r.returncode}): {r.stderr}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, as_pg


def _run_postgres(tmp: Path, port: int, as_pg: dict[str, Any], run_dir: Path, t0: float) -> Service:
    """`postgres` on the cluster in `tmp`; its stop() removes `run_dir` (the data stays if
    `run_dir` is not `tmp`)."""
    data = tmp / "data"
    cmd = [
        str(pg_bindir() / "postgres"),
        "-D",
        str(data),
        "-c",
        "listen_addresses=127.0.0.1",
        "-p",
        str(port),
        "-k",
        str(tmp),
        "-c",
        "fsync=off",
        "-c",
        "max_connections=200",
    ]
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    # SIGINT = fast shutdown, SIGQUIT = immediate shutdown.
    return _start(
        "postgres",
        "LORAPLEX_TEST_PG_URL",
        url,
        cmd,
        run_dir,
        lambda: _pg_ready(data),
        t0,
        (signal.SIGINT, signal.SIGQUIT),
        **as_pg,
    )


def start_postgres(port: int | None = None) -> Service:
    """initdb + `postgres` as our direct child (not via pg_ctl), so it can die with us."""
    t0, port = time.monotonic(), port or free_port()
    tmp, as_pg = _initdb()
    return _run_postgres(tmp, port, as_pg, tmp, t0)


def _redis_pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(port: int | None = None) -> Service:
    t0, port, binary = time.monotonic(), port or free_port(), shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found (run `make system-deps`)")
    tmp = _mkdtemp("redis")
    cmd = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(tmp),
    ]
    return _start(
        "redis",
        "LORAPLEX_TEST_REDIS_URL",
        f"redis://127.0.0.1:{port}/0",
        cmd,
        tmp,
        lambda: _redis_pong(port),
        t0,
    )


def _http_up(url: str) -> bool:
    try:
        # No proxy: an http_proxy in the environment must not intercept 127.0.0.1.
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except OSError:
        return False


def start_s3(port: int | None = None) -> Service:
    """moto's S3-compatible server (`python -m moto.server`): in-memory, no auth checks."""
    t0, port = time.monotonic(), port or free_port()
    tmp = _mkdtemp("s3")
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return _start(
        "s3", "LORAPLEX_TEST_S3_ENDPOINT", url, cmd, tmp, lambda: _http_up(f"{url}/moto-api/"), t0
    )


def service_env(services: list[Service]) -> dict[str, str]:
    """The variables a test process needs: LORAPLEX_TEST_* URLs plus dummy AWS credentials."""
    return {**AWS_ENV, **{s.env_var: s.url for s in services}}


@contextlib.contextmanager
def running_services() -> Iterator[list[Service]]:
    """Start all three, yield them, stop them in reverse order (even if a start fails)."""
    sweep_stale()
    started: list[Service] = []
    try:
        for start in (start_postgres, start_redis, start_s3):
            svc = start()
            started.append(svc)
            log(
                "up",
                name=svc.name,
                url=svc.url,
                env=svc.env_var,
                pid=svc.pid,
                start_s=f"{svc.start_s:.3f}",
            )
        yield started
    finally:
        for svc in reversed(started):
            try:
                svc.stop()
            except Exception as e:  # keep stopping the others
                log("stop-failed", name=svc.name, error=repr(e))


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, _frame: FrameType | None) -> None:
    for sig in _SIGNALS:  # shut down once, undisturbed by further signals
        signal.signal(sig, signal.SIG_IGN)
    raise _Signalled(signum)


def _stop_child(proc: subprocess.Popen[bytes], signum: int) -> None:
    """pytest shares our process group, so a terminal Ctrl-C already reached it: give it a
    moment to finish on its own, then forward the signal, then escalate."""
    for sig, grace in (
        (None, 2.0 if signum == signal.SIGINT else 0.0),
        (signum, 15.0),
        (signal.SIGKILL, 5.0),
    ):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            return


def main(argv: list[str]) -> int:
    for sig in _SIGNALS:
        signal.signal(sig, _raise_signalled)
    try:
        with running_services() as services:
            env = {**os.environ, **service_env(services)}
            cmd = [sys.executable, "-m", "pytest", *argv]
            log("pytest", cmd=" ".join(cmd[1:]))
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, env=env, preexec_fn=_die_with(signal.SIGTERM))
            try:
                rc = proc.wait()
            except _Signalled as s:
                log("signal", signum=s.signum, action="stopping pytest")
                _stop_child(proc, s.signum)
                rc = proc.returncode if proc.returncode is not None else 128 + s.signum
            log("pytest-exit", rc=rc, seconds=f"{time.monotonic() - t0:.2f}")
    except _Signalled as s:  # during start-up; running_services stopped what was up
        log("signal", signum=s.signum, action="aborted start-up")
        return 128 + s.signum
    return 128 - rc if rc < 0 else rc  # killed by a signal -> 128 + signum


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
