"""`loraplex serve gateway` with cProfile switched on by SIGUSR1 and written out by SIGUSR2, so
the profile covers requests only (not imports and start-up).

    python -m bench.gateway_overhead.profiled PORT OUT.prof
"""

from __future__ import annotations

import cProfile
import signal
import sys
from types import FrameType


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    prof = cProfile.Profile()

    def start(_sig: int, _frame: FrameType | None) -> None:
        prof.enable()

    def dump(_sig: int, _frame: FrameType | None) -> None:
        prof.disable()
        prof.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, dump)
    from cli import _run_asgi

    _run_asgi("cli.compose:gateway_app", "127.0.0.1", port, 1)


if __name__ == "__main__":
    main()
